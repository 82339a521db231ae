//! JSON as the guide's Python reads it (`json.loads`) and shows it (`str()`
//! and `repr()`), so that echokit answers as the guide's server answers and
//! prints as the guide's client prints. No I/O.
//!
//! What Python reads, and so [`parse`] takes: RFC 8259 JSON, and also
//! `NaN`, `Infinity` and `-Infinity` (Python's floats `nan`, `inf`, `-inf`:
//! the guide's server answers `No match for 'nan'.`, and so does echokit);
//! `\ud800`-style escapes of lone surrogates, which Python keeps in its
//! strings (they are refused only where they would have to be written as
//! UTF-8: [`JsonError::LoneSurrogate`]); integers of any size (printed
//! exactly), up to Python's 4,300 digits ([`MAX_INT_DIGITS`]).
//!
//! Where echokit refuses what Python takes, on purpose:
//! - A key twice in one object: Python keeps the last, other parsers the
//!   first, so such a request means two things ([`JsonError::DuplicateKey`]).
//! - Nesting past [`MAX_DEPTH`] (Python stops near 1,000, at its recursion
//!   limit).
//!
//! The text is checked whole once; after that a value is a span of it, walked
//! again to show it, so that a large request never becomes a tree (an array
//! of 4 million zeros would take some 40 times its size as one).
//!
//! How values show, as in Python: `str()` of a string is the string; of
//! anything else, its `repr()`: `True`, `False`, `None`, integers as
//! written (`-0` as `0`), floats as Python's `repr(float)` ([`py_float_repr`]:
//! `100.0`, `1e+16`), strings as `repr(str)` ([`crate::text::py_str_repr`]),
//! `[1, 'a']` and `{'x': 1}`.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};

use crate::text::{push_py_escaped, py_printable, py_quote};

/// The deepest nesting read. Python's json stops near 1,000 (its recursion
/// limit, less the server's own frames); 512 is far past any real request and
/// keeps the recursive walk within a small part of an event loop thread's
/// stack (2 MiB).
pub const MAX_DEPTH: usize = 512;

/// The most digits of an integer, as Python's `int` takes from text
/// (`sys.get_int_max_str_digits()`, 4,300 by default since 3.11, against
/// conversions that take quadratic time): past it, the guide's server fails.
pub const MAX_INT_DIGITS: usize = 4300;

/// Why a text is not JSON as the guide's Python reads it, or a value cannot
/// be shown. Positions are in characters from the start, as Python counts.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JsonError {
    /// Something else where JSON needs one thing.
    #[error("expected {expected} at character {at}")]
    Expected {
        /// What was needed: "a value", "',' or ']'", ...
        expected: &'static str,
        /// Where.
        at: usize,
    },
    /// A control character (U+0000 to U+001F) as it is in a string.
    #[error("an unescaped control character {shown} in a string at character {at}")]
    ControlCharacter {
        /// The character, escaped.
        shown: String,
        /// Where.
        at: usize,
    },
    /// A backslash not followed by a JSON escape.
    #[error("an invalid escape {shown} at character {at}")]
    InvalidEscape {
        /// The escape as written (escaped).
        shown: String,
        /// Where.
        at: usize,
    },
    /// A string without its closing quote.
    #[error("a string that does not end, from character {at}")]
    Unterminated {
        /// Where it began.
        at: usize,
    },
    /// More than one value.
    #[error("more after the JSON value, at character {at}")]
    ExtraData {
        /// Where.
        at: usize,
    },
    /// An object has a key twice.
    #[error("the key {key} appears twice in one object (again at character {at})")]
    DuplicateKey {
        /// The key, as Python's `repr` shows it.
        key: String,
        /// Where it came again.
        at: usize,
    },
    /// Nested past [`MAX_DEPTH`].
    #[error("values nested deeper than {max} at character {at}")]
    TooDeep {
        /// The limit.
        max: usize,
        /// Where.
        at: usize,
    },
    /// An integer past [`MAX_INT_DIGITS`].
    #[error(
        "an integer of {digits} digits at character {at}, over Python's limit of {max} \
         (sys.set_int_max_str_digits)"
    )]
    IntTooLong {
        /// Its digits.
        digits: usize,
        /// The limit.
        max: usize,
        /// Where.
        at: usize,
    },
    /// A byte order mark before the JSON (Python: "Unexpected UTF-8 BOM").
    #[error("a byte order mark before the JSON (Python's json takes none; utf-8-sig drops it)")]
    ByteOrderMark,
    /// A string with a lone surrogate, to be written where only text goes
    /// (`str()` of it, as the guide's f-strings take it): Python keeps it
    /// in a `str`, but UTF-8 cannot encode it.
    #[error("the lone surrogate {shown} (UTF-8 cannot encode it)")]
    LoneSurrogate {
        /// The surrogate, as `\udXXX`.
        shown: String,
    },
}

/// What a JSON value is to Python.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// A `dict`.
    Object,
    /// A `list`.
    Array,
    /// A `str`.
    String,
    /// An `int`.
    Integer,
    /// A `float` (`NaN` and `Infinity` too).
    Float,
    /// A `bool`.
    Bool,
    /// `None`.
    Null,
}

impl Kind {
    /// Its name in a sentence: "an object", "a string", ...
    pub fn name(self) -> &'static str {
        match self {
            Kind::Object => "an object",
            Kind::Array => "an array",
            Kind::String => "a string",
            Kind::Integer => "an integer",
            Kind::Float => "a float",
            Kind::Bool => "a boolean",
            Kind::Null => "null",
        }
    }
}

/// A JSON value in a text [`parse`] has checked: its exact span.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Json<'a> {
    text: &'a str,
}

/// Checks a whole text as Python's `json.loads` reads it (whitespace around
/// the one value allowed) and returns its value.
pub fn parse(text: &str) -> Result<Json<'_>, JsonError> {
    if text.starts_with('\u{feff}') {
        return Err(JsonError::ByteOrderMark);
    }
    let mut p = Parser::new(text, true);
    p.skip_ws();
    let start = p.at;
    p.value(0, None)?;
    let end = p.at;
    p.skip_ws();
    if p.at < text.len() {
        return Err(JsonError::ExtraData { at: p.chars(p.at) });
    }
    Ok(Json {
        text: &text[start..end],
    })
}

/// How a walk writes what it reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Show {
    /// `repr()`.
    Repr,
    /// `str()`: a string as it is.
    Str,
    /// `str()` with what `repr()` escapes escaped, quotes and backslashes
    /// as they are.
    Escaped,
    /// `str()`, a lone surrogate escaped (no UTF-8 can hold it).
    Lossless,
}

impl<'a> Json<'a> {
    /// The value as written.
    pub fn raw(&self) -> &'a str {
        self.text
    }

    /// What it is.
    pub fn kind(&self) -> Kind {
        match self.text.as_bytes().first() {
            Some(b'{') => Kind::Object,
            Some(b'[') => Kind::Array,
            Some(b'"') => Kind::String,
            Some(b't' | b'f') => Kind::Bool,
            Some(b'n') => Kind::Null,
            _ if self.text.contains(['.', 'e', 'E', 'N', 'I']) => Kind::Float,
            _ => Kind::Integer,
        }
    }

    /// An object's value for `key` (each key is once in an object: checked).
    pub fn get(&self, key: &str) -> Option<Json<'a>> {
        if self.kind() != Kind::Object {
            return None;
        }
        let mut p = Parser::new(self.text, false);
        let mut found = None;
        p.members(|p, name, _| {
            let start = p.at;
            p.value(1, None)?;
            if found.is_none() && code_points(name).eq(key.chars().map(u32::from)) {
                found = Some(Json {
                    text: &p.text[start..p.at],
                });
            }
            Ok(())
        })
        .expect("the text was checked whole");
        found
    }

    /// A string's text; `None` for another value, or a string that holds a
    /// lone surrogate (no Rust string, and no key of a search table, does).
    pub fn as_str(&self) -> Option<String> {
        if self.kind() != Kind::String {
            return None;
        }
        code_points(&self.text[1..self.text.len() - 1])
            .map(char::from_u32)
            .collect()
    }

    /// Appends Python's `str()` of the value: a lone surrogate in a string
    /// is an error (UTF-8 cannot carry it); nothing is appended then.
    pub fn write_py_str(&self, out: &mut String) -> Result<(), JsonError> {
        let len = out.len();
        let written = self.walk(out, Show::Str);
        if written.is_err() {
            out.truncate(len);
        }
        written
    }

    /// Python's `str()` of the value with what `repr()` would escape in it
    /// escaped (control characters, `\u200b`, lone surrogates, ...), fit for
    /// a terminal. Quotes and backslashes are as they are.
    pub fn py_str_escaped(&self) -> String {
        let mut out = String::new();
        self.walk(&mut out, Show::Escaped)
            .expect("escaped text holds no lone surrogate");
        out
    }

    /// Python's `str()` of the value, as it is but for a lone surrogate,
    /// written `\udXXX` (where Python's `print` would fail).
    pub fn py_str_lossless(&self) -> String {
        let mut out = String::new();
        self.walk(&mut out, Show::Lossless)
            .expect("lone surrogates are escaped");
        out
    }

    /// Python's `repr()` of the value.
    pub fn py_repr(&self) -> String {
        let mut out = String::new();
        self.walk(&mut out, Show::Repr)
            .expect("repr escapes lone surrogates");
        out
    }

    fn walk(&self, out: &mut String, show: Show) -> Result<(), JsonError> {
        let mut p = Parser::new(self.text, false);
        p.value(0, Some((out, show)))
    }
}

/// A walk over JSON text: checks it (the first time) and writes what it
/// reads (when asked).
struct Parser<'a> {
    text: &'a str,
    bytes: &'a [u8],
    /// The byte it is at.
    at: usize,
    /// Check objects for a key twice (the first walk; later ones know).
    check_keys: bool,
    /// Keys hash to one number each, with a random key per walk, so that a
    /// sender cannot make keys collide.
    hasher: RandomState,
}

impl<'a> Parser<'a> {
    fn new(text: &'a str, check_keys: bool) -> Parser<'a> {
        Parser {
            text,
            bytes: text.as_bytes(),
            at: 0,
            check_keys,
            hasher: RandomState::new(),
        }
    }

    /// The character position of a byte offset, as Python reports it.
    fn chars(&self, byte: usize) -> usize {
        self.text[..byte].chars().count()
    }

    fn expected(&self, expected: &'static str) -> JsonError {
        JsonError::Expected {
            expected,
            at: self.chars(self.at),
        }
    }

    /// JSON's whitespace (Python's too): space, tab, newline, return.
    fn skip_ws(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.bytes.get(self.at) {
            self.at += 1;
        }
    }

    fn eat(&mut self, word: &str) -> bool {
        if self.bytes[self.at..].starts_with(word.as_bytes()) {
            self.at += word.len();
            true
        } else {
            false
        }
    }

    /// One value at `at` (no whitespace before it), written if asked.
    fn value(&mut self, depth: usize, out: Option<(&mut String, Show)>) -> Result<(), JsonError> {
        match self.bytes.get(self.at) {
            Some(b'{' | b'[') if depth >= MAX_DEPTH => Err(JsonError::TooDeep {
                max: MAX_DEPTH,
                at: self.chars(self.at),
            }),
            Some(b'{') => self.object(depth, out.map(|(out, _)| out)),
            Some(b'[') => self.array(depth, out.map(|(out, _)| out)),
            Some(b'"') => {
                let inner = self.string()?;
                if let Some((out, show)) = out {
                    write_string(out, inner, show)?;
                }
                Ok(())
            }
            Some(b't') => self.literal("true", "True", out),
            Some(b'f') => self.literal("false", "False", out),
            Some(b'n') => self.literal("null", "None", out),
            Some(b'N') => self.literal("NaN", "nan", out),
            Some(b'I') => self.literal("Infinity", "inf", out),
            Some(b'-') if self.bytes[self.at..].starts_with(b"-Infinity") => {
                self.literal("-Infinity", "-inf", out)
            }
            Some(b'-' | b'0'..=b'9') => self.number(out.map(|(out, _)| out)),
            _ => Err(self.expected("a value")),
        }
    }

    /// A word: `true`, `NaN`, ...
    fn literal(
        &mut self,
        word: &str,
        shown: &str,
        out: Option<(&mut String, Show)>,
    ) -> Result<(), JsonError> {
        if !self.eat(word) {
            return Err(self.expected("a value"));
        }
        if let Some((out, _)) = out {
            out.push_str(shown);
        }
        Ok(())
    }

    /// A number as Python's json scans it:
    /// `-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][-+]?[0-9]+)?`, an `int` without a
    /// fraction or exponent, else a `float`.
    fn number(&mut self, out: Option<&mut String>) -> Result<(), JsonError> {
        let start = self.at;
        let digits = |p: &mut Parser<'_>| {
            let from = p.at;
            while p.bytes.get(p.at).is_some_and(u8::is_ascii_digit) {
                p.at += 1;
            }
            p.at - from
        };
        self.eat("-");
        let int_start = self.at;
        match self.bytes.get(self.at) {
            Some(b'0') => self.at += 1,
            Some(b'1'..=b'9') => {
                digits(self);
            }
            _ => {
                self.at = start;
                return Err(self.expected("a value"));
            }
        }
        let int_digits = self.at - int_start;
        let mut float = false;
        if self.bytes.get(self.at) == Some(&b'.')
            && self.bytes.get(self.at + 1).is_some_and(u8::is_ascii_digit)
        {
            self.at += 1;
            digits(self);
            float = true;
        }
        if let Some(b'e' | b'E') = self.bytes.get(self.at) {
            let sign = usize::from(matches!(self.bytes.get(self.at + 1), Some(b'+' | b'-')));
            if self
                .bytes
                .get(self.at + 1 + sign)
                .is_some_and(u8::is_ascii_digit)
            {
                self.at += 1 + sign;
                digits(self);
                float = true;
            }
        }
        let raw = &self.text[start..self.at];
        if !float && int_digits > MAX_INT_DIGITS {
            return Err(JsonError::IntTooLong {
                digits: int_digits,
                max: MAX_INT_DIGITS,
                at: self.chars(start),
            });
        }
        if let Some(out) = out {
            if float {
                let x: f64 = raw
                    .parse()
                    .expect("JSON's number grammar is Rust's float grammar");
                out.push_str(&py_float_repr(x));
            } else if raw == "-0" {
                out.push('0');
            } else {
                out.push_str(raw);
            }
        }
        Ok(())
    }

    /// A string token at `at` (on its quote), checked; returns what is
    /// between the quotes.
    fn string(&mut self) -> Result<&'a str, JsonError> {
        let open = self.at;
        self.at += 1;
        loop {
            match self.bytes.get(self.at) {
                None => {
                    return Err(JsonError::Unterminated {
                        at: self.chars(open),
                    });
                }
                Some(b'"') => {
                    self.at += 1;
                    return Ok(&self.text[open + 1..self.at - 1]);
                }
                Some(b'\\') => {
                    let ok = match self.bytes.get(self.at + 1) {
                        Some(b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't') => 2,
                        Some(b'u')
                            if self.bytes.len() >= self.at + 6
                                && self.bytes[self.at + 2..self.at + 6]
                                    .iter()
                                    .all(u8::is_ascii_hexdigit) =>
                        {
                            6
                        }
                        None => {
                            return Err(JsonError::Unterminated {
                                at: self.chars(open),
                            });
                        }
                        Some(_) => {
                            let shown: String = self.text[self.at..]
                                .chars()
                                .take(if self.bytes[self.at + 1] == b'u' {
                                    6
                                } else {
                                    2
                                })
                                .collect();
                            return Err(JsonError::InvalidEscape {
                                shown: crate::text::py_escape_unprintable(&shown),
                                at: self.chars(self.at),
                            });
                        }
                    };
                    self.at += ok;
                }
                Some(&b) if b < 0x20 => {
                    return Err(JsonError::ControlCharacter {
                        shown: format!("\\x{b:02x}"),
                        at: self.chars(self.at),
                    });
                }
                Some(_) => self.at += 1,
            }
        }
    }

    /// The members of an object at `at` (on its brace): each key's inner
    /// text and where it is to `member`, which reads the value (at its start).
    fn members(
        &mut self,
        mut member: impl FnMut(&mut Parser<'a>, &'a str, usize) -> Result<(), JsonError>,
    ) -> Result<(), JsonError> {
        self.at += 1;
        self.skip_ws();
        if self.eat("}") {
            return Ok(());
        }
        loop {
            if self.bytes.get(self.at) != Some(&b'"') {
                return Err(self.expected("a key in double quotes"));
            }
            let key_at = self.at;
            let key = self.string()?;
            self.skip_ws();
            if !self.eat(":") {
                return Err(self.expected("':'"));
            }
            self.skip_ws();
            member(self, key, key_at)?;
            self.skip_ws();
            if self.eat("}") {
                return Ok(());
            }
            if !self.eat(",") {
                return Err(self.expected("',' or '}'"));
            }
            self.skip_ws();
        }
    }

    fn object(&mut self, depth: usize, mut out: Option<&mut String>) -> Result<(), JsonError> {
        let start = self.at;
        // One hash a key, 8 bytes: what the check for a key twice holds.
        let mut hashes = Vec::new();
        let check_keys = self.check_keys;
        let hasher = self.hasher.clone();
        if let Some(out) = out.as_deref_mut() {
            out.push('{');
        }
        let mut first = true;
        self.members(|p, key, _| {
            if check_keys {
                hashes.push(hash_key(&hasher, key));
            }
            if let Some(out) = out.as_deref_mut() {
                if !first {
                    out.push_str(", ");
                }
                write_string(out, key, Show::Repr)?;
                out.push_str(": ");
            }
            first = false;
            p.value(depth + 1, out.as_deref_mut().map(|out| (out, Show::Repr)))
        })?;
        if let Some(out) = out {
            out.push('}');
        }
        if check_keys && hashes.len() > 1 {
            hashes.sort_unstable();
            if hashes.windows(2).any(|w| w[0] == w[1]) {
                self.find_duplicate(start, &hashes)?;
            }
        }
        Ok(())
    }

    /// Two keys of the object at `start` hashed the same: names the key that
    /// is there twice (if one is: hashes of different keys may collide).
    fn find_duplicate(&self, start: usize, sorted: &[u64]) -> Result<(), JsonError> {
        let mut p = Parser::new(self.text, false);
        p.hasher = self.hasher.clone();
        p.at = start;
        let mut seen: Vec<(u64, &str)> = Vec::new();
        p.members(|p, key, key_at| {
            let hash = hash_key(&p.hasher, key);
            if sorted
                .binary_search(&hash)
                .is_ok_and(|i| sorted.get(i + 1) == Some(&hash) || (i > 0 && sorted[i - 1] == hash))
            {
                if seen
                    .iter()
                    .any(|&(h, other)| h == hash && code_points(other).eq(code_points(key)))
                {
                    let mut shown = String::new();
                    write_string(&mut shown, key, Show::Repr)?;
                    return Err(JsonError::DuplicateKey {
                        key: shown,
                        at: p.chars(key_at),
                    });
                }
                seen.push((hash, key));
            }
            p.value(1, None)
        })
        .map_err(|e| match e {
            dup @ JsonError::DuplicateKey { .. } => dup,
            other => unreachable!("the object was read before: {other}"),
        })
    }

    fn array(&mut self, depth: usize, mut out: Option<&mut String>) -> Result<(), JsonError> {
        self.at += 1;
        self.skip_ws();
        if let Some(out) = out.as_deref_mut() {
            out.push('[');
        }
        if !self.eat("]") {
            loop {
                self.value(depth + 1, out.as_deref_mut().map(|out| (out, Show::Repr)))?;
                self.skip_ws();
                if self.eat("]") {
                    break;
                }
                if !self.eat(",") {
                    return Err(self.expected("',' or ']'"));
                }
                if let Some(out) = out.as_deref_mut() {
                    out.push_str(", ");
                }
                self.skip_ws();
            }
        }
        if let Some(out) = out {
            out.push(']');
        }
        Ok(())
    }
}

/// A key's hash: of its code points, so that `"a"` and `"\u0061"` are one.
fn hash_key(hasher: &RandomState, key: &str) -> u64 {
    let mut h = hasher.build_hasher();
    for c in code_points(key) {
        h.write_u32(c);
    }
    h.finish()
}

/// The code points of a checked string's inner text, as Python's json
/// decodes it: escapes resolved, a `\uD8xx\uDCxx` pair joined, a lone
/// surrogate kept.
fn code_points(inner: &str) -> impl Iterator<Item = u32> + '_ {
    let bytes = inner.as_bytes();
    let hex = move |at: usize| {
        u32::from_str_radix(&inner[at..at + 4], 16).expect("checked: four hex digits")
    };
    let mut at = 0;
    std::iter::from_fn(move || {
        let c = inner[at..].chars().next()?;
        if c != '\\' {
            at += c.len_utf8();
            return Some(u32::from(c));
        }
        let escape = bytes[at + 1];
        at += 2;
        Some(match escape {
            b'b' => 0x08,
            b'f' => 0x0c,
            b'n' => 0x0a,
            b'r' => 0x0d,
            b't' => 0x09,
            b'u' => {
                let high = hex(at);
                at += 4;
                if (0xd800..0xdc00).contains(&high) && bytes[at..].starts_with(b"\\u") {
                    let low = hex(at + 2);
                    if (0xdc00..0xe000).contains(&low) {
                        at += 6;
                        return Some(0x1_0000 + ((high - 0xd800) << 10) + (low - 0xdc00));
                    }
                }
                high
            }
            // `"`, `\` and `/` stand for themselves.
            other => u32::from(other),
        })
    })
}

/// Writes a checked string's inner text as `show` asks.
fn write_string(out: &mut String, inner: &str, show: Show) -> Result<(), JsonError> {
    let printable = |c: u32| char::from_u32(c).is_some_and(py_printable);
    match show {
        Show::Repr => {
            let (mut single, mut double) = (false, false);
            for c in code_points(inner) {
                single |= c == u32::from('\'');
                double |= c == u32::from('"');
            }
            let quote = py_quote(single, double);
            out.push(quote);
            for c in code_points(inner) {
                push_py_escaped(out, c, Some(quote), printable(c));
            }
            out.push(quote);
        }
        Show::Escaped => {
            for c in code_points(inner) {
                push_py_escaped(out, c, None, printable(c));
            }
        }
        Show::Str | Show::Lossless => {
            for c in code_points(inner) {
                match char::from_u32(c) {
                    Some(c) => out.push(c),
                    None if show == Show::Lossless => push_py_escaped(out, c, None, false),
                    None => {
                        return Err(JsonError::LoneSurrogate {
                            shown: format!("\\u{c:04x}"),
                        });
                    }
                }
            }
        }
    }
    Ok(())
}

/// The largest exponent (of 10) that Python's `repr(float)` writes without
/// an exponent: from 1e16 on it writes `1e+16`.
const FIXED_UNTIL: i32 = 16;

/// The smallest: from 1e-5 down it writes `1e-05`.
const FIXED_FROM: i32 = -4;

/// A float as Python's `repr(float)` writes it: the shortest digits that
/// read back to the same float (as Rust's formatting finds them), in fixed
/// notation with at least one decimal (`100.0`, `0.0001`) from 1e-4 to below
/// 1e16, else with an exponent of at least two digits and its sign
/// (`1e+16`, `1e-05`, `1.5e+300`); `inf`, `-inf`, `nan`.
pub fn py_float_repr(x: f64) -> String {
    if x.is_nan() {
        return "nan".into();
    }
    if x.is_infinite() {
        return if x > 0.0 { "inf" } else { "-inf" }.into();
    }
    // `{:e}` is the shortest round-trip digits: `1.2345e17`, `-5e-324`, `0e0`.
    let sci = format!("{x:e}");
    let (mantissa, exp) = sci.split_once('e').expect("`{:e}` writes an exponent");
    let exp: i32 = exp.parse().expect("`{:e}` writes an integer exponent");
    let (sign, mantissa) = match mantissa.strip_prefix('-') {
        Some(m) => ("-", m),
        None => ("", mantissa),
    };
    let digits: String = mantissa.chars().filter(|&c| c != '.').collect();
    let mut out = String::from(sign);
    if (FIXED_FROM..FIXED_UNTIL).contains(&exp) {
        if exp < 0 {
            out.push_str("0.");
            out.extend(std::iter::repeat_n(
                '0',
                usize::try_from(-exp - 1).expect("exp < 0"),
            ));
            out.push_str(&digits);
        } else {
            let point = usize::try_from(exp).expect("exp >= 0") + 1;
            if digits.len() <= point {
                out.push_str(&digits);
                out.extend(std::iter::repeat_n('0', point - digits.len()));
                out.push_str(".0");
            } else {
                out.push_str(&digits[..point]);
                out.push('.');
                out.push_str(&digits[point..]);
            }
        }
    } else {
        out.push_str(mantissa);
        out.push('e');
        out.push(if exp < 0 { '-' } else { '+' });
        out.push_str(&format!("{:02}", exp.unsigned_abs()));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn py_str(text: &str) -> String {
        let mut out = String::new();
        parse(text).unwrap().write_py_str(&mut out).unwrap();
        out
    }

    #[test]
    fn values_show_as_python_shows_them() {
        // What CPython 3.11 prints for str(json.loads(text)).
        for (text, want) in [
            ("1e2", "100.0"),
            ("true", "True"),
            ("false", "False"),
            ("null", "None"),
            (r#"{"x": 1}"#, "{'x': 1}"),
            ("[1, 2]", "[1, 2]"),
            ("[]", "[]"),
            ("{}", "{}"),
            ("-0", "0"),
            ("-0.0", "-0.0"),
            (
                "123456789012345678901234567890",
                "123456789012345678901234567890",
            ),
            ("1e16", "1e+16"),
            ("1e-5", "1e-05"),
            ("0.0001", "0.0001"),
            ("123456789012345678", "123456789012345678"),
            ("123456789012345678.0", "1.2345678901234568e+17"),
            ("1E400", "inf"),
            ("-1e400", "-inf"),
            ("NaN", "nan"),
            ("-Infinity", "-inf"),
            ("5e-324", "5e-324"),
            ("0.1", "0.1"),
            ("1.5", "1.5"),
            (r#""morpheus""#, "morpheus"),
            (r#""a\u00e9\ud83d\udc36""#, "aé🐶"),
            (
                r#"{"a": "b\n", "c": [null, true, 1.5], "it's": "\"x\""}"#,
                r#"{'a': 'b\n', 'c': [None, True, 1.5], "it's": '"x"'}"#,
            ),
            (
                r#"["\u001b[2J", "\u200b", "\ud800", "\\"]"#,
                r"['\x1b[2J', '\u200b', '\ud800', '\\']",
            ),
            (r#"{"k": {"nested": [[[]]]}}"#, "{'k': {'nested': [[[]]]}}"),
        ] {
            assert_eq!(py_str(text), want, "{text}");
        }
    }

    #[test]
    fn kinds() {
        for (text, kind) in [
            ("{}", Kind::Object),
            ("[0]", Kind::Array),
            (r#""""#, Kind::String),
            ("-12", Kind::Integer),
            ("1e2", Kind::Float),
            ("-Infinity", Kind::Float),
            ("NaN", Kind::Float),
            ("false", Kind::Bool),
            ("null", Kind::Null),
        ] {
            assert_eq!(parse(text).unwrap().kind(), kind, "{text}");
        }
    }

    #[test]
    fn members_are_found_by_their_decoded_keys() {
        let doc = parse(r#" {"act\u0069on": "search", "value": [1, {"value": 2}]} "#).unwrap();
        assert_eq!(doc.get("action").unwrap().as_str().unwrap(), "search");
        assert_eq!(doc.get("value").unwrap().raw(), r#"[1, {"value": 2}]"#);
        assert_eq!(doc.get("nothing"), None);
        assert_eq!(doc.get("value").unwrap().get("value"), None);
        assert_eq!(parse(r#""\ud800""#).unwrap().as_str(), None);
    }

    #[test]
    fn each_rejection_names_its_cause() {
        for (text, want) in [
            (
                "",
                JsonError::Expected {
                    expected: "a value",
                    at: 0,
                },
            ),
            (
                "[1,]",
                JsonError::Expected {
                    expected: "a value",
                    at: 3,
                },
            ),
            (
                r#"{"a" 1}"#,
                JsonError::Expected {
                    expected: "':'",
                    at: 5,
                },
            ),
            (
                r#"{"a": 1,}"#,
                JsonError::Expected {
                    expected: "a key in double quotes",
                    at: 8,
                },
            ),
            (
                "[1 2]",
                JsonError::Expected {
                    expected: "',' or ']'",
                    at: 3,
                },
            ),
            ("1.", JsonError::ExtraData { at: 1 }),
            ("01", JsonError::ExtraData { at: 1 }),
            (
                "-",
                JsonError::Expected {
                    expected: "a value",
                    at: 0,
                },
            ),
            (
                "nul",
                JsonError::Expected {
                    expected: "a value",
                    at: 0,
                },
            ),
            (
                "\"é\u{1}\"",
                JsonError::ControlCharacter {
                    shown: "\\x01".into(),
                    at: 2,
                },
            ),
            (
                r#""\x""#,
                JsonError::InvalidEscape {
                    shown: "\\x".into(),
                    at: 1,
                },
            ),
            (
                r#""\u12""#,
                JsonError::InvalidEscape {
                    shown: "\\u12\"".into(),
                    at: 1,
                },
            ),
            (r#""abc"#, JsonError::Unterminated { at: 0 }),
            (
                r#"{"action": "search", "act\u0069on": "x"}"#,
                JsonError::DuplicateKey {
                    key: "'action'".into(),
                    at: 21,
                },
            ),
            (
                r#"[{"a": {"b": 1, "b": 2}}]"#,
                JsonError::DuplicateKey {
                    key: "'b'".into(),
                    at: 16,
                },
            ),
            ("\u{feff}{}", JsonError::ByteOrderMark),
        ] {
            assert_eq!(parse(text), Err(want.clone()), "{text}");
        }
        let deep = format!("{}{}", "[".repeat(MAX_DEPTH + 1), "]".repeat(MAX_DEPTH + 1));
        assert_eq!(
            parse(&deep),
            Err(JsonError::TooDeep {
                max: MAX_DEPTH,
                at: MAX_DEPTH
            })
        );
        let ok = format!("{}{}", "[".repeat(MAX_DEPTH), "]".repeat(MAX_DEPTH));
        assert!(parse(&ok).is_ok());
        let long = "7".repeat(MAX_INT_DIGITS + 1);
        assert_eq!(
            parse(&long),
            Err(JsonError::IntTooLong {
                digits: MAX_INT_DIGITS + 1,
                max: MAX_INT_DIGITS,
                at: 0
            })
        );
        assert!(parse(&long[1..]).is_ok());
        // Floats have no such limit in Python.
        assert!(parse(&format!("{long}.0")).is_ok());
    }

    #[test]
    fn the_deepest_value_fits_an_event_loop_threads_stack() {
        // The loops other than the first run on threads of Rust's default
        // stack, 2 MiB; objects cost the most frames a level.
        let half = MAX_DEPTH / 2;
        let deep = format!(
            "{}{}{}",
            r#"{"a": ["#.repeat(half),
            "null",
            "]}".repeat(half)
        );
        let shown = std::thread::Builder::new()
            .stack_size(2 << 20)
            .spawn(move || {
                let v = parse(&deep).unwrap();
                let _ = v.get("a").unwrap().py_repr();
                v.py_repr()
            })
            .unwrap()
            .join()
            .expect("no stack overflow");
        let want = format!("{}None{}", "{'a': [".repeat(half), "]}".repeat(half));
        assert_eq!(shown, want);
    }

    #[test]
    fn a_lone_surrogate_is_refused_only_where_it_must_be_utf_8() {
        let lone = parse(r#""a\udc00""#).unwrap();
        let mut out = String::from("kept");
        assert_eq!(
            lone.write_py_str(&mut out),
            Err(JsonError::LoneSurrogate {
                shown: "\\udc00".into()
            })
        );
        assert_eq!(out, "kept", "nothing appended");
        assert_eq!(lone.py_repr(), r"'a\udc00'");
        assert_eq!(lone.py_str_escaped(), r"a\udc00");
        assert_eq!(
            parse(r#""\u001b\udc00""#).unwrap().py_str_lossless(),
            "\u{1b}\\udc00"
        );
        // A high surrogate followed by another escape stays alone, as in Python.
        assert_eq!(parse(r#""\ud800\u0041""#).unwrap().py_repr(), r"'\ud800A'");
    }

    #[test]
    fn escaped_str_keeps_quotes_and_backslashes() {
        let v = parse(r#""it's \"x\" \\ \u001b[2J\u0007 \u00a0 🐰""#).unwrap();
        assert_eq!(v.py_str_escaped(), r#"it's "x" \ \x1b[2J\x07 \xa0 🐰"#);
        // Containers show their repr, which escapes already.
        assert_eq!(parse(r#"["\n"]"#).unwrap().py_str_escaped(), r"['\n']");
    }

    #[test]
    fn many_keys_cost_a_hash_each_and_collisions_are_no_duplicates() {
        let members: Vec<String> = (0..20_000).map(|i| format!("\"k{i}\": {i}")).collect();
        let text = format!("{{{}}}", members.join(", "));
        assert!(parse(&text).is_ok());
        let again = format!("{{{}, \"k19999\": 0}}", members.join(", "));
        assert!(
            matches!(parse(&again), Err(JsonError::DuplicateKey { key, .. }) if key == "'k19999'")
        );
    }

    proptest! {
        /// Any JSON serde_json writes (strings of any characters, nested
        /// values) is read, and its repr, read back as Python reads a repr
        /// (here: by the same shapes), has the same shape.
        #[test]
        fn what_serde_json_writes_is_read(value in arb_json()) {
            let text = serde_json::to_string(&value).unwrap();
            let parsed = parse(&text);
            prop_assert!(parsed.is_ok(), "{text}: {parsed:?}");
            let parsed = parsed.unwrap();
            if let serde_json::Value::String(s) = &value {
                prop_assert_eq!(parsed.as_str(), Some(s.clone()));
                prop_assert_eq!(parsed.py_repr(), crate::text::py_str_repr(s));
            }
            prop_assert_eq!(parsed.raw(), text.as_str());
        }

        /// Any text is read or refused without a panic, and what is read
        /// shows without one.
        #[test]
        fn any_text_is_read_or_refused(text in "[\\[\\]{}\",:0-9eE.+\\-a-z\\\\ \\PC]{0,40}") {
            if let Ok(v) = parse(&text) {
                let _ = v.py_repr();
                let _ = v.py_str_escaped();
                let _ = v.write_py_str(&mut String::new());
            }
        }

        /// Floats print as Python's repr: the digits read back to the same
        /// float, and the form follows Python's rule.
        #[test]
        fn floats_read_back(bits in any::<u64>()) {
            let x = f64::from_bits(bits);
            let shown = py_float_repr(x);
            if x.is_finite() {
                let back: f64 = shown.parse().unwrap();
                prop_assert_eq!(back.to_bits(), x.to_bits(), "{}", shown);
                prop_assert!(shown.contains(['.', 'e']), "{}", shown);
            }
        }
    }

    fn arb_json() -> impl Strategy<Value = serde_json::Value> {
        let leaf = prop_oneof![
            Just(serde_json::Value::Null),
            any::<bool>().prop_map(serde_json::Value::from),
            any::<i64>().prop_map(serde_json::Value::from),
            any::<f64>()
                .prop_filter("JSON has no NaN or infinity", |x| x.is_finite())
                .prop_map(serde_json::Value::from),
            "\\PC{0,10}|[\\x00-\\x1f\"\\\\']{0,4}".prop_map(serde_json::Value::from),
        ];
        leaf.prop_recursive(4, 32, 4, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(serde_json::Value::from),
                prop::collection::btree_map("[a-z]{0,3}", inner, 0..4)
                    .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
            ]
        })
    }
}
