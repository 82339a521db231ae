//! The incremental decoder and the encoder of framed messages.
//!
//! [`Decoder::decode`] takes whatever bytes have arrived, in any split (one
//! byte at a time included), and returns a [`Message`] once one is whole. It
//! consumes no byte past that message, so a connection that carries several
//! messages is decoded by calling it again with the rest. Its buffer grows
//! only with the bytes that arrived, never by a declared length.

use std::borrow::Cow;

use super::encoding::Encoding;
use super::header::Header;

/// The longest header accepted by default: the guide's are about 100 bytes;
/// 16 KiB leaves room for extra keys and keeps a hostile header cheap.
pub const DEFAULT_MAX_HEADER: usize = 16 * 1024;

/// The largest content accepted by default.
pub const DEFAULT_MAX_CONTENT: u64 = 16 * 1024 * 1024;

/// What a decoder accepts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// The longest header, in bytes (the wire allows 65,535).
    pub max_header: usize,
    /// The largest content, in bytes.
    pub max_content: u64,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_header: DEFAULT_MAX_HEADER,
            max_content: DEFAULT_MAX_CONTENT,
        }
    }
}

/// Text a peer wrote, fit for an error message: what Python's `repr` escapes
/// is escaped (`\x1b`), so that an error printed on a terminal cannot carry
/// the peer's escape sequences to it.
pub(crate) fn shown(peer_text: &str) -> String {
    crate::text::py_escape_unprintable(peer_text)
}

/// Why bytes are not a message. Each names the problem; after one, the
/// stream cannot be resynchronised and the decoder must be dropped. Text
/// the peer wrote (a key, a byte order, an encoding) is in it with control
/// characters escaped.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// The declared header length is over the limit.
    #[error("a header of {len} bytes is over the limit of {max}")]
    HeaderTooLong {
        /// The declared length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The header is not UTF-8.
    #[error("the header is not valid UTF-8 (from byte {at})")]
    HeaderNotUtf8 {
        /// Where the valid text ends.
        at: usize,
    },
    /// The header is not JSON.
    #[error("the header is not valid JSON: {0}")]
    HeaderNotJson(String),
    /// The header is JSON but not an object.
    #[error("the header is {found}, not a JSON object")]
    HeaderNotObject {
        /// What it is.
        found: &'static str,
    },
    /// A key appears twice.
    #[error("the header has the key `{0}` twice")]
    DuplicateKey(String),
    /// A required key is missing.
    #[error("the header has no `{0}`")]
    MissingKey(&'static str),
    /// A required key has the wrong type.
    #[error("the header's `{key}` is {found}, not {expected}")]
    WrongType {
        /// The key.
        key: &'static str,
        /// What it must be.
        expected: &'static str,
        /// What it is.
        found: &'static str,
    },
    /// `content-length` is negative.
    #[error("the header's `content-length` is negative ({0})")]
    NegativeLength(String),
    /// `content-length` is not a whole number.
    #[error("the header's `content-length` is not a whole number ({0})")]
    FractionalLength(String),
    /// `content-length` is a whole number written as a float (`5.0`,
    /// `5e0`), which Python reads as a float: the guide's server cannot
    /// slice its buffer by it.
    #[error("the header's `content-length` is written as a float ({0}), not an integer")]
    FloatLength(String),
    /// The declared content is over the limit (2^64 and `1e26` included:
    /// whole numbers, too large).
    #[error("a content of {declared} bytes is over the limit of {max}")]
    ContentTooLong {
        /// The declared length, as the header writes it.
        declared: String,
        /// The limit.
        max: u64,
    },
    /// `byteorder` is neither `little` nor `big`.
    #[error("the header's `byteorder` is `{0}`, not `little` or `big`")]
    UnknownByteOrder(String),
    /// An encoding the codec cannot check.
    #[error(
        "the content encoding `{0}` is not supported (utf-8, ascii, latin-1, utf-16, utf-32 \
         and their Python aliases are, and binary)"
    )]
    UnsupportedEncoding(String),
    /// The content does not decode with its declared encoding.
    #[error("the content is not valid {encoding}: {why} at byte {at}")]
    ContentNotDecodable {
        /// The declared encoding.
        encoding: String,
        /// Where the valid text ends.
        at: usize,
        /// What is wrong there.
        why: &'static str,
    },
    /// The stream ended inside a message.
    #[error("the stream ended inside a message: {have} of {need} bytes of its {part}")]
    Truncated {
        /// "length prefix", "header" or "content".
        part: &'static str,
        /// Bytes of that part received.
        have: u64,
        /// Bytes of that part expected.
        need: u64,
    },
}

/// A whole message.
#[derive(Clone, Debug, PartialEq)]
pub struct Message {
    /// Its header.
    pub header: Header,
    /// Its content, `header.content_length` bytes.
    pub content: Vec<u8>,
}

impl Message {
    /// A message from this machine, its header stating the content's length.
    pub fn new(content_type: &str, content_encoding: &str, content: Vec<u8>) -> Message {
        Message {
            header: Header::new(content_type, content_encoding, content.len() as u64),
            content,
        }
    }

    /// The content as text, decoded with its declared encoding as the
    /// guide's Python decodes it (`bytes.decode(encoding)`); an error for
    /// `binary` or an encoding the codec does not read.
    pub fn text(&self) -> Result<Cow<'_, str>, DecodeError> {
        let encoding = &self.header.content_encoding;
        let Some(known) = Encoding::lookup(encoding) else {
            return Err(DecodeError::UnsupportedEncoding(shown(encoding)));
        };
        known
            .decode(&self.content)
            .map_err(|bad| DecodeError::ContentNotDecodable {
                encoding: shown(encoding),
                at: bad.at,
                why: bad.why,
            })
    }
}

/// What one call of [`Decoder::decode`] did.
#[derive(Debug, PartialEq)]
pub struct Decoded {
    /// Input bytes it took (all of them, unless a message ended before).
    pub consumed: usize,
    /// The message those bytes completed, if any.
    pub message: Option<Message>,
}

/// Where the decoder is in the current message.
#[derive(Debug)]
enum State {
    /// Reading the 2-byte header length.
    Prefix,
    /// Reading a header of this many bytes.
    Header(usize),
    /// Reading the content this header announced.
    Content(Header),
}

/// An incremental decoder for one stream of messages.
#[derive(Debug)]
pub struct Decoder {
    limits: Limits,
    state: State,
    /// The current part's bytes so far.
    buf: Vec<u8>,
}

impl Decoder {
    /// A decoder with these limits.
    pub fn new(limits: Limits) -> Decoder {
        Decoder {
            limits,
            state: State::Prefix,
            buf: Vec::new(),
        }
    }

    /// Whether no byte of a next message has arrived: the stream may end here.
    pub fn is_between_messages(&self) -> bool {
        matches!(self.state, State::Prefix) && self.buf.is_empty()
    }

    /// Bytes held for the message being read (its header or content so far).
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// Whether the current message's header is whole (its content is being read).
    pub fn has_header(&self) -> bool {
        matches!(self.state, State::Content(_))
    }

    /// Takes bytes from `input` until a message is whole (or `input` runs
    /// out) and returns it with the number of bytes taken.
    pub fn decode(&mut self, input: &[u8]) -> Result<Decoded, DecodeError> {
        let mut used = 0;
        loop {
            match &self.state {
                State::Prefix => {
                    used += self.fill(2, &input[used..]);
                    if self.buf.len() < 2 {
                        return Ok(Decoded {
                            consumed: used,
                            message: None,
                        });
                    }
                    let len = usize::from(u16::from_be_bytes([self.buf[0], self.buf[1]]));
                    if len > self.limits.max_header {
                        return Err(DecodeError::HeaderTooLong {
                            len,
                            max: self.limits.max_header,
                        });
                    }
                    self.buf.clear();
                    self.state = State::Header(len);
                }
                &State::Header(len) => {
                    used += self.fill(len, &input[used..]);
                    if self.buf.len() < len {
                        return Ok(Decoded {
                            consumed: used,
                            message: None,
                        });
                    }
                    let header = Header::parse(&self.buf, &self.limits)?;
                    check_encoding_known(&header.content_encoding)?;
                    self.buf.clear();
                    self.state = State::Content(header);
                }
                State::Content(header) => {
                    let len = usize::try_from(header.content_length)
                        .expect("the content limit keeps the length within usize");
                    used += self.fill(len, &input[used..]);
                    if self.buf.len() < len {
                        return Ok(Decoded {
                            consumed: used,
                            message: None,
                        });
                    }
                    let State::Content(header) = std::mem::replace(&mut self.state, State::Prefix)
                    else {
                        unreachable!("matched as Content above");
                    };
                    let content = std::mem::take(&mut self.buf);
                    check_content(&header.content_encoding, &content)?;
                    return Ok(Decoded {
                        consumed: used,
                        message: Some(Message { header, content }),
                    });
                }
            }
        }
    }

    /// The stream has ended: fine between messages, an error inside one.
    pub fn finish(&self) -> Result<(), DecodeError> {
        let have = self.buf.len() as u64;
        match &self.state {
            State::Prefix if self.buf.is_empty() => Ok(()),
            State::Prefix => Err(DecodeError::Truncated {
                part: "length prefix",
                have,
                need: 2,
            }),
            &State::Header(len) => Err(DecodeError::Truncated {
                part: "header",
                have,
                need: len as u64,
            }),
            State::Content(header) => Err(DecodeError::Truncated {
                part: "content",
                have,
                need: header.content_length,
            }),
        }
    }

    /// Moves bytes from `input` into the buffer until it holds `want`;
    /// returns how many it took. The buffer grows by what arrives only.
    fn fill(&mut self, want: usize, input: &[u8]) -> usize {
        let take = want.saturating_sub(self.buf.len()).min(input.len());
        self.buf.extend_from_slice(&input[..take]);
        take
    }
}

/// Whether the codec can check content in this encoding.
fn check_encoding_known(encoding: &str) -> Result<(), DecodeError> {
    match Encoding::lookup(encoding) {
        Some(_) => Ok(()),
        None => Err(DecodeError::UnsupportedEncoding(shown(encoding))),
    }
}

/// Checks that content decodes with its encoding.
fn check_content(encoding: &str, content: &[u8]) -> Result<(), DecodeError> {
    match Encoding::lookup(encoding) {
        Some(known) => known
            .check(content)
            .map_err(|bad| DecodeError::ContentNotDecodable {
                encoding: shown(encoding),
                at: bad.at,
                why: bad.why,
            }),
        None => Err(DecodeError::UnsupportedEncoding(shown(encoding))),
    }
}

/// Why a message cannot be written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EncodeError {
    /// The header does not fit the 2-byte length.
    #[error("a header of {0} bytes does not fit the protocol's 2-byte length (65,535 at most)")]
    HeaderTooLong(usize),
    /// The header's `content-length` is not the content's.
    #[error("the header says {declared} bytes of content, but there are {actual}")]
    LengthMismatch {
        /// What the header says.
        declared: u64,
        /// The content's length.
        actual: usize,
    },
}

/// The bytes of a message, its header written as the guide's Python writes it.
pub fn encode(message: &Message) -> Result<Vec<u8>, EncodeError> {
    let mut out = Vec::with_capacity(2 + 128 + message.content.len());
    encode_into(message, &mut out)?;
    Ok(out)
}

/// Appends a message's bytes to `out` (a connection's queue of responses,
/// say), without an intermediate buffer. Nothing is appended on an error.
pub fn encode_into(message: &Message, out: &mut Vec<u8>) -> Result<(), EncodeError> {
    if message.header.content_length != message.content.len() as u64 {
        return Err(EncodeError::LengthMismatch {
            declared: message.header.content_length,
            actual: message.content.len(),
        });
    }
    // The header is written in place, after room for its length.
    let start = out.len();
    out.extend_from_slice(&[0, 0]);
    message.header.write_json(out);
    let header_len = out.len() - start - 2;
    let Ok(len) = u16::try_from(header_len) else {
        out.truncate(start);
        return Err(EncodeError::HeaderTooLong(header_len));
    };
    out[start..start + 2].copy_from_slice(&len.to_be_bytes());
    out.extend_from_slice(&message.content);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::{ByteOrder, py_json};
    use proptest::prelude::*;

    /// The guide's client asking `search morpheus`, as its Python writes it
    /// (json.dumps with ensure_ascii=False, struct.pack(">H", ...)), on x86.
    const GUIDE_SEARCH_MORPHEUS: &[u8] = b"\x00\x67{\"byteorder\": \"little\", \"content-type\": \"text/json\", \"content-encoding\": \"utf-8\", \"content-length\": 41}{\"action\": \"search\", \"value\": \"morpheus\"}";

    fn little(content_type: &str, encoding: &str, content: &[u8]) -> Message {
        let mut m = Message::new(content_type, encoding, content.to_vec());
        m.header.byteorder = ByteOrder::Little;
        m
    }

    fn frame(header: &str, content: &[u8]) -> Vec<u8> {
        let mut out = (header.len() as u16).to_be_bytes().to_vec();
        out.extend_from_slice(header.as_bytes());
        out.extend_from_slice(content);
        out
    }

    fn decode_all(bytes: &[u8]) -> Result<Option<Message>, DecodeError> {
        let mut d = Decoder::new(Limits::default());
        let r = d.decode(bytes)?;
        // A whole message takes exactly its bytes; an incomplete one takes all.
        assert_eq!(
            r.consumed,
            bytes.len(),
            "every byte belongs to the one message"
        );
        Ok(r.message)
    }

    #[test]
    fn the_guides_search_request_byte_for_byte() {
        let content = py_json(&serde_json::json!({"action": "search", "value": "morpheus"}));
        let message = little("text/json", "utf-8", content.as_bytes());
        assert_eq!(encode(&message).unwrap(), GUIDE_SEARCH_MORPHEUS);
        let decoded = decode_all(GUIDE_SEARCH_MORPHEUS).unwrap().unwrap();
        assert_eq!(decoded, message);
        assert_eq!(
            decoded.text().unwrap(),
            r#"{"action": "search", "value": "morpheus"}"#
        );
    }

    #[test]
    fn non_ascii_is_written_as_python_writes_it() {
        let content = py_json(&serde_json::json!({"result": "Follow the white rabbit. 🐰"}));
        assert_eq!(content, "{\"result\": \"Follow the white rabbit. 🐰\"}");
        let control = py_json(&serde_json::json!("a\u{1}\"\\\n\t"));
        // Python: json.dumps('a\x01"\\\n\t', ensure_ascii=False)
        assert_eq!(control, "\"a\\u0001\\\"\\\\\\n\\t\"");
        // Python: json.dumps({"a": [1, {"b": None}, [], {}], "c": 1.5, "d": True})
        let nested =
            py_json(&serde_json::json!({"a": [1, {"b": null}, [], {}], "c": 1.5, "d": true}));
        assert_eq!(
            nested,
            r#"{"a": [1, {"b": null}, [], {}], "c": 1.5, "d": true}"#
        );
    }

    #[test]
    fn every_rejection_names_its_problem() {
        let h = |s: &str| frame(s, b"");
        let cases: Vec<(Vec<u8>, DecodeError)> = vec![
            (
                b"\x00\x02\xff\xfe".to_vec(),
                DecodeError::HeaderNotUtf8 { at: 0 },
            ),
            (
                h("[1, 2]"),
                DecodeError::HeaderNotObject { found: "an array" },
            ),
            (
                h(r#"{"byteorder": "little", "byteorder": "big"}"#),
                DecodeError::DuplicateKey("byteorder".into()),
            ),
            (
                h(r#"{"byteorder": "little", "content-type": "x", "content-encoding": "binary"}"#),
                DecodeError::MissingKey("content-length"),
            ),
            (
                h(
                    r#"{"byteorder": "little", "content-type": 5, "content-encoding": "binary", "content-length": 0}"#,
                ),
                DecodeError::WrongType {
                    key: "content-type",
                    expected: "a string",
                    found: "an integer",
                },
            ),
            (
                h(
                    r#"{"byteorder": "little", "content-type": "x", "content-encoding": "binary", "content-length": -1}"#,
                ),
                DecodeError::NegativeLength("-1".into()),
            ),
            (
                h(
                    r#"{"byteorder": "little", "content-type": "x", "content-encoding": "binary", "content-length": 1.5}"#,
                ),
                DecodeError::FractionalLength("1.5".into()),
            ),
            (
                h(
                    r#"{"byteorder": "little", "content-type": "x", "content-encoding": "binary", "content-length": "5"}"#,
                ),
                DecodeError::WrongType {
                    key: "content-length",
                    expected: "an integer",
                    found: "a string",
                },
            ),
            (
                h(
                    r#"{"byteorder": "little", "content-type": "x", "content-encoding": "binary", "content-length": 1000000000000}"#,
                ),
                DecodeError::ContentTooLong {
                    declared: "1000000000000".into(),
                    max: DEFAULT_MAX_CONTENT,
                },
            ),
            (
                h(
                    r#"{"byteorder": "middle", "content-type": "x", "content-encoding": "binary", "content-length": 0}"#,
                ),
                DecodeError::UnknownByteOrder("middle".into()),
            ),
            (
                h(
                    r#"{"byteorder": "big", "content-type": "x", "content-encoding": "ebcdic", "content-length": 0}"#,
                ),
                DecodeError::UnsupportedEncoding("ebcdic".into()),
            ),
            (
                frame(
                    r#"{"byteorder": "big", "content-type": "x", "content-encoding": "utf-8", "content-length": 3}"#,
                    b"a\xffb",
                ),
                DecodeError::ContentNotDecodable {
                    encoding: "utf-8".into(),
                    at: 1,
                    why: "an invalid byte sequence",
                },
            ),
            (
                b"\xff\xff".to_vec(),
                DecodeError::HeaderTooLong {
                    len: 65535,
                    max: DEFAULT_MAX_HEADER,
                },
            ),
        ];
        for (bytes, want) in cases {
            assert_eq!(decode_all(&bytes), Err(want.clone()), "{want}");
        }
        assert!(matches!(
            decode_all(&h("{not json")),
            Err(DecodeError::HeaderNotJson(_))
        ));
    }

    /// A header declaring `length` for no content.
    fn with_length(length: &str) -> Result<Option<Message>, DecodeError> {
        decode_all(&frame(
            &format!(
                r#"{{"byteorder": "big", "content-type": "x", "content-encoding": "binary", "content-length": {length}}}"#
            ),
            b"",
        ))
    }

    #[test]
    fn a_huge_content_length_is_over_the_limit_not_fractional() {
        // Regression (issue 14): 2^64 and 1e26 were "not a whole number".
        for length in [
            "18446744073709551616",
            "1e26",
            "1E+26",
            "2.5e30",
            "100000000000000000000000000000.5",
            "1e99999999999999999999999999",
            "16777217",
        ] {
            let e = with_length(length).unwrap_err();
            assert_eq!(
                e,
                DecodeError::ContentTooLong {
                    declared: length.into(),
                    max: DEFAULT_MAX_CONTENT
                }
            );
            assert_eq!(
                e.to_string(),
                format!("a content of {length} bytes is over the limit of 16777216")
            );
        }
    }

    #[test]
    fn minus_zero_is_a_content_length_of_zero() {
        // Regression (issue 14): `-0` was refused; Python's json reads it as 0.
        let message = with_length("-0").unwrap().expect("a whole message");
        assert_eq!(message.header.content_length, 0);
        // At the limit: a header for content still to come.
        assert_eq!(with_length("16777216"), Ok(None));
        assert_eq!(
            with_length("1.6777216e7"),
            Err(DecodeError::FloatLength("1.6777216e7".into()))
        );
    }

    #[test]
    fn a_content_length_that_is_no_integer_says_which_way() {
        for (length, want) in [
            ("-1", DecodeError::NegativeLength("-1".into())),
            ("-0.5", DecodeError::NegativeLength("-0.5".into())),
            ("-1e30", DecodeError::NegativeLength("-1e30".into())),
            ("2.5", DecodeError::FractionalLength("2.5".into())),
            ("1e-400", DecodeError::FractionalLength("1e-400".into())),
            ("5.0", DecodeError::FloatLength("5.0".into())),
            ("1.5e1", DecodeError::FloatLength("1.5e1".into())),
            ("-0.0", DecodeError::FloatLength("-0.0".into())),
            ("0e5", DecodeError::FloatLength("0e5".into())),
        ] {
            assert_eq!(with_length(length), Err(want), "{length}");
        }
        assert_eq!(
            with_length("5.0").unwrap_err().to_string(),
            "the header's `content-length` is written as a float (5.0), not an integer"
        );
    }

    #[test]
    fn peer_text_in_an_error_cannot_reach_the_terminal() {
        // Regression (issue 14): app-client printed server-chosen text raw,
        // and a rejection's message carries some.
        for (header, want) in [
            (
                r#"{"byteorder": "\u001b[2J", "content-type": "x", "content-encoding": "binary", "content-length": 0}"#,
                "the header's `byteorder` is `\\x1b[2J`, not `little` or `big`",
            ),
            (
                r#"{"\u009b31m": 1, "\u009b31m": 2}"#,
                "the header has the key `\\x9b31m` twice",
            ),
            (
                r#"{"byteorder": "big", "content-type": "x", "content-encoding": "x\u0007", "content-length": 0}"#,
                "the content encoding `x\\x07` is not supported",
            ),
        ] {
            let e = decode_all(&frame(header, b"")).unwrap_err().to_string();
            assert!(e.starts_with(want), "{e}");
            assert!(!e.chars().any(char::is_control), "{e:?}");
        }
        // An encoding Python finds through the punctuation around it.
        let e = decode_all(&frame(
            r#"{"byteorder": "big", "content-type": "x", "content-encoding": "\u001b[ascii", "content-length": 1}"#,
            b"\xff",
        ))
        .unwrap_err()
        .to_string();
        assert_eq!(
            e,
            "the content is not valid \\x1b[ascii: a byte over 0x7f at byte 0"
        );
    }

    #[test]
    fn an_unencodable_message_appends_nothing() {
        let mut out = b"queued".to_vec();
        let mut long = little("x", "binary", b"");
        long.header
            .extra
            .push(("x-pad".into(), "p".repeat(70_000).into()));
        assert!(matches!(
            encode_into(&long, &mut out),
            Err(EncodeError::HeaderTooLong(n)) if n > 70_000
        ));
        let mut lying = little("x", "binary", b"abc");
        lying.header.content_length = 2;
        assert_eq!(
            encode_into(&lying, &mut out),
            Err(EncodeError::LengthMismatch {
                declared: 2,
                actual: 3
            })
        );
        assert_eq!(out, b"queued");
        // And a good one after them is whole.
        encode_into(&little("x", "binary", b"abc"), &mut out).unwrap();
        let mut d = Decoder::new(Limits::default());
        let got = d.decode(&out[6..]).unwrap();
        assert_eq!(got.consumed, out.len() - 6);
        assert_eq!(got.message.unwrap().content, b"abc");
    }

    #[test]
    fn the_stream_may_end_only_between_messages() {
        let mut d = Decoder::new(Limits::default());
        assert_eq!(d.finish(), Ok(()));
        d.decode(&GUIDE_SEARCH_MORPHEUS[..50]).unwrap();
        assert_eq!(
            d.finish(),
            Err(DecodeError::Truncated {
                part: "header",
                have: 48,
                need: 103
            })
        );
    }

    #[test]
    fn a_huge_declared_length_allocates_nothing_before_its_bytes() {
        let limits = Limits {
            max_header: DEFAULT_MAX_HEADER,
            max_content: u64::MAX >> 1,
        };
        let mut d = Decoder::new(limits);
        let bytes = frame(
            r#"{"byteorder": "big", "content-type": "x", "content-encoding": "binary", "content-length": 1000000000000}"#,
            b"abc",
        );
        let r = d.decode(&bytes).unwrap();
        assert!(r.message.is_none());
        assert!(d.buf.capacity() < 1024, "{}", d.buf.capacity());
    }

    #[test]
    fn one_call_stops_at_the_end_of_one_message() {
        let mut two = GUIDE_SEARCH_MORPHEUS.to_vec();
        two.extend_from_slice(GUIDE_SEARCH_MORPHEUS);
        let mut d = Decoder::new(Limits::default());
        let first = d.decode(&two).unwrap();
        assert_eq!(first.consumed, GUIDE_SEARCH_MORPHEUS.len());
        assert!(first.message.is_some());
        assert!(d.is_between_messages());
        let second = d.decode(&two[first.consumed..]).unwrap();
        assert_eq!(second.consumed, GUIDE_SEARCH_MORPHEUS.len());
        assert!(second.message.is_some());
    }

    fn arb_message() -> impl Strategy<Value = Message> {
        (
            prop_oneof![Just("text/json"), Just("binary/custom-client-binary-type")],
            prop::collection::vec(any::<u8>(), 0..300),
            prop::collection::vec(("[a-z]{1,8}", "\\PC{0,12}"), 0..3),
            any::<bool>(),
        )
            .prop_map(|(ct, bytes, extra, big)| {
                let mut m = Message::new(ct, "binary", bytes);
                m.header.byteorder = if big {
                    ByteOrder::Big
                } else {
                    ByteOrder::Little
                };
                let mut seen = Vec::new();
                for (k, v) in extra {
                    let k = format!("x-{k}");
                    if !seen.contains(&k) {
                        seen.push(k.clone());
                        m.header.extra.push((k, serde_json::Value::from(v)));
                    }
                }
                m
            })
    }

    proptest! {
        /// Any split of a stream of messages decodes to the same messages.
        #[test]
        fn round_trips_over_arbitrary_splits(
            messages in prop::collection::vec(arb_message(), 1..4),
            cuts in prop::collection::vec(any::<prop::sample::Index>(), 0..12),
        ) {
            let stream: Vec<u8> = messages.iter().flat_map(|m| encode(m).unwrap()).collect();
            let mut points: Vec<usize> = cuts.iter().map(|c| c.index(stream.len() + 1)).collect();
            points.push(0);
            points.push(stream.len());
            points.sort_unstable();
            let mut d = Decoder::new(Limits::default());
            let mut got = Vec::new();
            for w in points.windows(2) {
                let mut chunk = &stream[w[0]..w[1]];
                while !chunk.is_empty() {
                    let r = d.decode(chunk).unwrap();
                    prop_assert!(r.consumed > 0 || r.message.is_some());
                    got.extend(r.message);
                    chunk = &chunk[r.consumed..];
                }
            }
            prop_assert_eq!(d.finish(), Ok(()));
            prop_assert_eq!(got, messages);
        }

        /// Byte by byte, too.
        #[test]
        fn decodes_one_byte_at_a_time(message in arb_message()) {
            let bytes = encode(&message).unwrap();
            let mut d = Decoder::new(Limits::default());
            let mut got = None;
            for b in &bytes {
                let r = d.decode(std::slice::from_ref(b)).unwrap();
                prop_assert_eq!(r.consumed, 1);
                if r.message.is_some() {
                    got = r.message;
                }
            }
            prop_assert_eq!(got, Some(message));
        }
    }
}
