//! Content encodings as Python's codecs name and decode them, since the
//! guide's server reads `text/json` content with
//! `bytes.decode(header["content-encoding"])`.
//!
//! - Names are looked up as `codecs.lookup` looks them up: lower case, each
//!   run of other characters than letters, digits and `.` one `_`, then
//!   Python's aliases (`latin-1`, `l1`, `iso8859-1`, `cp819`; `utf8`, `u8`;
//!   `us-ascii`, `646`; `utf16`, `utf-16-le`; ...).
//! - The codecs are the ones a JSON text comes in: `utf-8` (and
//!   `utf-8-sig`), `ascii`, `latin-1` (each byte is the code point of the
//!   same number, as Python's: not windows-1252, which WHATWG labels
//!   `latin1` and which differs in 0x80 to 0x9F), `utf-16` and `utf-32`
//!   (a byte order mark picks the order, else this machine's, as Python
//!   does; `-le`/`-be` fix it and keep a mark as U+FEFF).
//! - `binary`, the guide's name for content that is not text, is not a
//!   Python codec: any bytes are `binary`, and none decode as text.
//! - Decoding is strict, as Python's default (`errors="strict"`): the first
//!   invalid byte is an error, with its offset.

use std::borrow::Cow;

/// A content encoding echokit reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Encoding {
    /// `utf-8`.
    Utf8,
    /// `utf-8-sig`: UTF-8 after an optional byte order mark.
    Utf8Sig,
    /// `ascii`.
    Ascii,
    /// `latin-1` (ISO 8859-1).
    Latin1,
    /// `utf-16`: the order from a byte order mark, else this machine's.
    Utf16,
    /// `utf-16-le`.
    Utf16Le,
    /// `utf-16-be`.
    Utf16Be,
    /// `utf-32`: the order from a byte order mark, else this machine's.
    Utf32,
    /// `utf-32-le`.
    Utf32Le,
    /// `utf-32-be`.
    Utf32Be,
    /// `binary`: any bytes, not text.
    Binary,
}

/// Why content does not decode.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Invalid {
    /// The offset of the first byte that does not decode.
    pub at: usize,
    /// What is wrong there.
    pub why: &'static str,
}

/// The codecs' module names in Python's `encodings`, which `codecs.lookup`
/// takes as they are; and `binary`.
const MODULES: [(&str, Encoding); 11] = [
    ("utf_8", Encoding::Utf8),
    ("utf_8_sig", Encoding::Utf8Sig),
    ("ascii", Encoding::Ascii),
    ("latin_1", Encoding::Latin1),
    ("utf_16", Encoding::Utf16),
    ("utf_16_le", Encoding::Utf16Le),
    ("utf_16_be", Encoding::Utf16Be),
    ("utf_32", Encoding::Utf32),
    ("utf_32_le", Encoding::Utf32Le),
    ("utf_32_be", Encoding::Utf32Be),
    ("binary", Encoding::Binary),
];

/// Python's aliases of the codecs above (`encodings.aliases`), which
/// `codecs.lookup` takes as they are or with `_` for `.`.
const ALIASES: [(&str, Encoding); 40] = [
    ("utf8", Encoding::Utf8),
    ("u8", Encoding::Utf8),
    ("utf", Encoding::Utf8),
    ("cp65001", Encoding::Utf8),
    ("utf8_ucs2", Encoding::Utf8),
    ("utf8_ucs4", Encoding::Utf8),
    ("646", Encoding::Ascii),
    ("ansi_x3.4_1968", Encoding::Ascii),
    ("ansi_x3.4_1986", Encoding::Ascii),
    ("ansi_x3_4_1968", Encoding::Ascii),
    ("cp367", Encoding::Ascii),
    ("csascii", Encoding::Ascii),
    ("ibm367", Encoding::Ascii),
    ("iso646_us", Encoding::Ascii),
    ("iso_646.irv_1991", Encoding::Ascii),
    ("iso_ir_6", Encoding::Ascii),
    ("us", Encoding::Ascii),
    ("us_ascii", Encoding::Ascii),
    ("8859", Encoding::Latin1),
    ("cp819", Encoding::Latin1),
    ("csisolatin1", Encoding::Latin1),
    ("ibm819", Encoding::Latin1),
    ("iso8859", Encoding::Latin1),
    ("iso8859_1", Encoding::Latin1),
    ("iso_8859_1", Encoding::Latin1),
    ("iso_8859_1_1987", Encoding::Latin1),
    ("iso_ir_100", Encoding::Latin1),
    ("l1", Encoding::Latin1),
    ("latin", Encoding::Latin1),
    ("latin1", Encoding::Latin1),
    ("u16", Encoding::Utf16),
    ("utf16", Encoding::Utf16),
    ("utf_16le", Encoding::Utf16Le),
    ("unicodelittleunmarked", Encoding::Utf16Le),
    ("utf_16be", Encoding::Utf16Be),
    ("unicodebigunmarked", Encoding::Utf16Be),
    ("u32", Encoding::Utf32),
    ("utf32", Encoding::Utf32),
    ("utf_32le", Encoding::Utf32Le),
    ("utf_32be", Encoding::Utf32Be),
];

/// The longest name worth normalising: longer than any in [`ALIASES`], so a
/// longer normalised name is unknown (and the lookup needs no allocation:
/// it runs for every message).
const LONGEST_NAME: usize = 32;

impl Encoding {
    /// The encoding a header names, as Python's `codecs.lookup` finds it;
    /// `None` for a codec echokit does not read (or none at all).
    pub fn lookup(name: &str) -> Option<Encoding> {
        // encodings.normalize_encoding, after codecs.lookup's lower-casing:
        // letters, digits and `.` are kept (non-ASCII ones dropped), each
        // run of anything else is one `_`, none at either end.
        let mut buf = [0u8; LONGEST_NAME];
        let mut len = 0;
        let mut punct = false;
        for c in name.chars() {
            if c.is_alphanumeric() || c == '.' {
                if c.is_ascii() {
                    let sep = usize::from(punct && len > 0);
                    if len + sep + 1 > LONGEST_NAME {
                        return None;
                    }
                    if sep == 1 {
                        buf[len] = b'_';
                        len += 1;
                    }
                    // ASCII: one byte.
                    buf[len] = c.to_ascii_lowercase() as u8;
                    len += 1;
                }
                punct = false;
            } else {
                punct = true;
            }
        }
        let norm = &buf[..len];
        let find = |table: &[(&str, Encoding)], name: &[u8]| {
            table
                .iter()
                .find(|(known, _)| known.as_bytes() == name)
                .map(|&(_, e)| e)
        };
        // encodings.search_function: the aliases as they are, then with `_`
        // for `.`, then the module of that name (none has a `.`).
        let mut dotless = [0u8; LONGEST_NAME];
        for (d, &b) in dotless.iter_mut().zip(norm) {
            *d = if b == b'.' { b'_' } else { b };
        }
        find(&ALIASES, norm)
            .or_else(|| find(&ALIASES, &dotless[..len]))
            .or_else(|| find(&MODULES, norm))
    }

    /// Python's name of the codec (`codecs.lookup(name).name`), or `binary`.
    pub fn name(self) -> &'static str {
        match self {
            Encoding::Utf8 => "utf-8",
            Encoding::Utf8Sig => "utf-8-sig",
            Encoding::Ascii => "ascii",
            Encoding::Latin1 => "iso8859-1",
            Encoding::Utf16 => "utf-16",
            Encoding::Utf16Le => "utf-16-le",
            Encoding::Utf16Be => "utf-16-be",
            Encoding::Utf32 => "utf-32",
            Encoding::Utf32Le => "utf-32-le",
            Encoding::Utf32Be => "utf-32-be",
            Encoding::Binary => "binary",
        }
    }

    /// Whether content in it is text (all but `binary`).
    pub fn is_text(self) -> bool {
        self != Encoding::Binary
    }

    /// Checks that the bytes decode, without keeping the text.
    pub fn check(self, bytes: &[u8]) -> Result<(), Invalid> {
        match self {
            Encoding::Binary | Encoding::Latin1 => Ok(()),
            _ => self.decode_with(bytes, |_| ()).map(drop),
        }
    }

    /// The text the bytes hold, as Python's `bytes.decode` gives it; `binary`
    /// holds none.
    pub fn decode(self, bytes: &[u8]) -> Result<Cow<'_, str>, Invalid> {
        let mut text = String::new();
        Ok(match self.decode_with(bytes, |c| text.push(c))? {
            Some(same) => Cow::Borrowed(same),
            None => Cow::Owned(text),
        })
    }

    /// Decodes: `Some(text)` when the bytes are the text as they are (UTF-8,
    /// ASCII), else each character to `push`.
    fn decode_with(
        self,
        bytes: &[u8],
        mut push: impl FnMut(char),
    ) -> Result<Option<&str>, Invalid> {
        match self {
            Encoding::Utf8 => utf8(bytes, 0).map(Some),
            Encoding::Utf8Sig => match bytes.strip_prefix(b"\xef\xbb\xbf") {
                Some(rest) => utf8(rest, 3).map(Some),
                None => utf8(bytes, 0).map(Some),
            },
            Encoding::Ascii => match bytes.iter().position(|b| !b.is_ascii()) {
                Some(at) => Err(Invalid {
                    at,
                    why: "a byte over 0x7f",
                }),
                // ASCII is UTF-8.
                None => Ok(std::str::from_utf8(bytes).ok()),
            },
            Encoding::Latin1 => {
                if bytes.is_ascii() {
                    return Ok(std::str::from_utf8(bytes).ok());
                }
                bytes.iter().for_each(|&b| push(char::from(b)));
                Ok(None)
            }
            Encoding::Utf16 => match bytes {
                [0xff, 0xfe, rest @ ..] => utf16(rest, 2, false, push),
                [0xfe, 0xff, rest @ ..] => utf16(rest, 2, true, push),
                _ => utf16(bytes, 0, cfg!(target_endian = "big"), push),
            },
            Encoding::Utf16Le => utf16(bytes, 0, false, push),
            Encoding::Utf16Be => utf16(bytes, 0, true, push),
            Encoding::Utf32 => match bytes {
                [0xff, 0xfe, 0, 0, rest @ ..] => utf32(rest, 4, false, push),
                [0, 0, 0xfe, 0xff, rest @ ..] => utf32(rest, 4, true, push),
                _ => utf32(bytes, 0, cfg!(target_endian = "big"), push),
            },
            Encoding::Utf32Le => utf32(bytes, 0, false, push),
            Encoding::Utf32Be => utf32(bytes, 0, true, push),
            Encoding::Binary => Err(Invalid {
                at: 0,
                why: "binary content is not text",
            }),
        }
    }
}

/// UTF-8 text, starting `skipped` bytes into the content.
fn utf8(bytes: &[u8], skipped: usize) -> Result<&str, Invalid> {
    std::str::from_utf8(bytes).map_err(|e| Invalid {
        at: skipped + e.valid_up_to(),
        why: match e.error_len() {
            None => "unexpected end of data",
            Some(_) => "an invalid byte sequence",
        },
    })
}

/// UTF-16 text, starting `skipped` bytes into the content.
fn utf16(
    bytes: &[u8],
    skipped: usize,
    big: bool,
    mut push: impl FnMut(char),
) -> Result<Option<&'static str>, Invalid> {
    let unit = |i: usize| {
        let pair = [bytes[i], bytes[i + 1]];
        if big {
            u16::from_be_bytes(pair)
        } else {
            u16::from_le_bytes(pair)
        }
    };
    let whole = bytes.len() - bytes.len() % 2;
    let mut i = 0;
    while i < whole {
        let u = unit(i);
        let bad = |why| {
            Err(Invalid {
                at: skipped + i,
                why,
            })
        };
        match u {
            0xd800..=0xdbff => {
                if i + 2 >= whole {
                    return bad("unexpected end of data");
                }
                let low = unit(i + 2);
                if !(0xdc00..=0xdfff).contains(&low) {
                    return bad("a high surrogate without its low one");
                }
                let c = 0x1_0000 + ((u32::from(u) - 0xd800) << 10) + (u32::from(low) - 0xdc00);
                push(char::from_u32(c).expect("a surrogate pair is a code point past U+FFFF"));
                i += 4;
            }
            0xdc00..=0xdfff => return bad("a low surrogate without its high one"),
            _ => {
                push(char::from_u32(u32::from(u)).expect("not a surrogate: a char"));
                i += 2;
            }
        }
    }
    if whole < bytes.len() {
        return Err(Invalid {
            at: skipped + whole,
            why: "truncated data",
        });
    }
    Ok(None)
}

/// UTF-32 text, starting `skipped` bytes into the content.
fn utf32(
    bytes: &[u8],
    skipped: usize,
    big: bool,
    mut push: impl FnMut(char),
) -> Result<Option<&'static str>, Invalid> {
    let mut chunks = bytes.chunks_exact(4);
    for (n, chunk) in chunks.by_ref().enumerate() {
        let quad = [chunk[0], chunk[1], chunk[2], chunk[3]];
        let c = if big {
            u32::from_be_bytes(quad)
        } else {
            u32::from_le_bytes(quad)
        };
        match char::from_u32(c) {
            Some(c) => push(c),
            None => {
                return Err(Invalid {
                    at: skipped + 4 * n,
                    why: if (0xd800..0xe000).contains(&c) {
                        "a surrogate code point"
                    } else {
                        "a code point past U+10FFFF"
                    },
                });
            }
        }
    }
    if !chunks.remainder().is_empty() {
        return Err(Invalid {
            at: skipped + bytes.len() - chunks.remainder().len(),
            why: "truncated data",
        });
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn names_are_looked_up_as_python_looks_them_up() {
        // What `codecs.lookup(name).name` says in CPython 3.11.
        for (name, want) in [
            ("utf-8", Some(Encoding::Utf8)),
            ("UTF_8", Some(Encoding::Utf8)),
            (" utf-8 ", Some(Encoding::Utf8)),
            ("utf 8", Some(Encoding::Utf8)),
            ("utf--8", Some(Encoding::Utf8)),
            ("_utf_8_", Some(Encoding::Utf8)),
            ("UTF8", Some(Encoding::Utf8)),
            ("u8", Some(Encoding::Utf8)),
            ("cp65001", Some(Encoding::Utf8)),
            ("utf-8-sig", Some(Encoding::Utf8Sig)),
            ("Latin 1", Some(Encoding::Latin1)),
            ("latin-1", Some(Encoding::Latin1)),
            ("l1", Some(Encoding::Latin1)),
            ("iso-8859-1", Some(Encoding::Latin1)),
            ("iso 8859 1", Some(Encoding::Latin1)),
            ("8859", Some(Encoding::Latin1)),
            ("US-ASCII", Some(Encoding::Ascii)),
            ("ANSI_X3.4-1968", Some(Encoding::Ascii)),
            ("iso_646.irv:1991", Some(Encoding::Ascii)),
            ("UTF-16LE", Some(Encoding::Utf16Le)),
            ("utf_32be", Some(Encoding::Utf32Be)),
            ("u16", Some(Encoding::Utf16)),
            ("utf.8", None),
            ("utf16le", None),
            ("UTF8-sig", None),
            ("utf-", Some(Encoding::Utf8)),
            ("utf\u{e9}8", Some(Encoding::Utf8)),
            ("utf\u{a0}8", Some(Encoding::Utf8)),
            ("windows-1252", None),
            ("ebcdic", None),
            ("", None),
        ] {
            assert_eq!(Encoding::lookup(name), want, "{name:?}");
        }
        // The guide's word for bytes that are not text.
        assert_eq!(Encoding::lookup("binary"), Some(Encoding::Binary));
        assert_eq!(Encoding::lookup(&"-".repeat(10_000)), None);
        assert_eq!(Encoding::lookup(&"u".repeat(40)), None);
    }

    #[test]
    fn latin_1_is_python_latin_1_not_windows_1252() {
        let text = Encoding::Latin1.decode(b"caf\xe9 \x80\x9f\xff").unwrap();
        assert_eq!(text, "café \u{80}\u{9f}ÿ");
        assert!(matches!(
            Encoding::Latin1.decode(b"plain").unwrap(),
            Cow::Borrowed("plain")
        ));
    }

    #[test]
    fn invalid_bytes_are_named_with_their_offset() {
        let bad = |e: Encoding, bytes: &[u8]| e.decode(bytes).unwrap_err();
        assert_eq!(bad(Encoding::Utf8, b"ab\xffc").at, 2);
        assert_eq!(bad(Encoding::Utf8, b"ab\xc3").why, "unexpected end of data");
        assert_eq!(bad(Encoding::Utf8Sig, b"\xef\xbb\xbfa\xff").at, 4);
        assert_eq!(bad(Encoding::Ascii, b"caf\xe9").at, 3);
        assert_eq!(bad(Encoding::Utf16Le, b"a\x00b").at, 2);
        assert_eq!(bad(Encoding::Utf16Le, b"a\x00\x00\xdc").at, 2);
        assert_eq!(bad(Encoding::Utf16Le, b"\x00\xd8a\x00").at, 0);
        assert_eq!(bad(Encoding::Utf16, b"\xff\xfe\x00\xd8").at, 2);
        assert_eq!(bad(Encoding::Utf32Be, b"\x00\x11\x00\x00").at, 0);
        assert_eq!(
            bad(Encoding::Utf32, b"\xff\xfe\x00\x00\x00\xd8\x00\x00").at,
            4
        );
        assert_eq!(bad(Encoding::Utf32Le, b"a\x00\x00").at, 0);
        assert!(Encoding::Binary.decode(b"x").is_err());
        assert!(Encoding::Binary.check(b"\xff").is_ok());
    }

    #[test]
    fn byte_order_marks_pick_the_order_as_python_does() {
        let d = |e: Encoding, bytes: &[u8]| e.decode(bytes).unwrap().into_owned();
        assert_eq!(d(Encoding::Utf16, b"\xff\xfea\x00"), "a");
        assert_eq!(d(Encoding::Utf16, b"\xfe\xff\x00a"), "a");
        assert_eq!(d(Encoding::Utf16Le, b"\xff\xfea\x00"), "\u{feff}a");
        assert_eq!(
            d(Encoding::Utf32, b"\x00\x00\xfe\xff\x00\x01\xf4\x30"),
            "🐰"
        );
        assert_eq!(d(Encoding::Utf8Sig, b"\xef\xbb\xbfa"), "a");
        assert_eq!(d(Encoding::Utf8, b"\xef\xbb\xbfa"), "\u{feff}a");
        let native = if cfg!(target_endian = "big") {
            b"\x00a"
        } else {
            b"a\x00"
        };
        assert_eq!(d(Encoding::Utf16, native), "a");
    }

    fn encode(text: &str, e: Encoding) -> Vec<u8> {
        match e {
            Encoding::Utf8 | Encoding::Utf8Sig => text.as_bytes().to_vec(),
            Encoding::Utf16Le => text.encode_utf16().flat_map(u16::to_le_bytes).collect(),
            Encoding::Utf16Be | Encoding::Utf16 => {
                let mut out = b"\xfe\xff".to_vec();
                out.extend(text.encode_utf16().flat_map(u16::to_be_bytes));
                out
            }
            Encoding::Utf32Le => text
                .chars()
                .flat_map(|c| u32::from(c).to_le_bytes())
                .collect(),
            _ => text
                .chars()
                .flat_map(|c| u32::from(c).to_be_bytes())
                .collect(),
        }
    }

    proptest! {
        /// Any text survives a trip through each Unicode encoding, and the
        /// check agrees with the decoder on any bytes.
        #[test]
        fn unicode_text_round_trips(text in "\\PC{0,40}", bytes in prop::collection::vec(any::<u8>(), 0..40)) {
            for e in [Encoding::Utf8, Encoding::Utf16Le, Encoding::Utf16, Encoding::Utf32Le, Encoding::Utf32Be] {
                let encoded = encode(&text, e);
                let decoded = e.decode(&encoded).unwrap();
                prop_assert_eq!(decoded.as_ref(), text.as_str());
            }
            for e in [Encoding::Utf8, Encoding::Utf8Sig, Encoding::Ascii, Encoding::Latin1, Encoding::Utf16, Encoding::Utf16Be, Encoding::Utf32, Encoding::Utf32Le] {
                prop_assert_eq!(e.check(&bytes), e.decode(&bytes).map(drop));
            }
        }
    }
}
