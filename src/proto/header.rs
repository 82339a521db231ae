//! The JSON header of a message: parsed with every check the protocol
//! needs (one object, each required key once and of its type), and written
//! as Python's `json.dumps(obj, ensure_ascii=False)` writes it.

use std::fmt;
use std::io;

use serde::de::{Deserialize, Deserializer, MapAccess, Visitor};
use serde::ser::{Serialize, SerializeMap, Serializer as _};
use serde_json::Value;
use serde_json::ser::Formatter;
use serde_json::value::RawValue;

use super::codec::{DecodeError, Limits};

/// The sender's byte order, as the guide's header states it (`sys.byteorder`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ByteOrder {
    /// `"little"`.
    Little,
    /// `"big"`.
    Big,
}

impl ByteOrder {
    /// This machine's order, as a sender states it.
    pub fn native() -> ByteOrder {
        if cfg!(target_endian = "big") {
            ByteOrder::Big
        } else {
            ByteOrder::Little
        }
    }

    /// The header's word for it.
    pub fn as_str(self) -> &'static str {
        match self {
            ByteOrder::Little => "little",
            ByteOrder::Big => "big",
        }
    }
}

/// A message's header.
#[derive(Clone, Debug, PartialEq)]
pub struct Header {
    /// `byteorder`.
    pub byteorder: ByteOrder,
    /// `content-type`, e.g. `text/json` or `binary/custom-client-binary-type`.
    pub content_type: String,
    /// `content-encoding`, e.g. `utf-8` or `binary`.
    pub content_encoding: String,
    /// `content-length`: the content's size in bytes.
    pub content_length: u64,
    /// Any other keys, in the order they came.
    pub extra: Vec<(String, Value)>,
}

/// The header's keys in the guide's order.
const KEYS: [&str; 4] = [
    "byteorder",
    "content-type",
    "content-encoding",
    "content-length",
];

/// The most digits an exponent is read to: any more make a number too
/// large or too small for a length however many digits it has (a header
/// holds at most 65,535), and the arithmetic stays far from overflow.
const MAX_EXPONENT: i64 = 1 << 40;

/// `content-length` as the guide's Python reads it, checked against the
/// limit: an integer (`-0` is 0, as Python's `int`), else the first true
/// word of: negative, over the limit, not a whole number, a float.
fn length(raw: &str, max: u64) -> Result<u64, DecodeError> {
    let Some(number) = Number::parse(raw) else {
        let found = serde_json::from_str::<Value>(raw).map_or("a number", |v| kind(&v));
        return Err(DecodeError::WrongType {
            key: "content-length",
            expected: "an integer",
            found,
        });
    };
    if number.negative && !number.is_zero() {
        return Err(DecodeError::NegativeLength(raw.into()));
    }
    let whole = number.whole_part();
    let over = match &whole {
        Some(digits) => digits.parse::<u64>().map_or(true, |n| n > max),
        None => true,
    };
    if over {
        return Err(DecodeError::ContentTooLong {
            declared: raw.into(),
            max,
        });
    }
    if !number.is_whole() {
        return Err(DecodeError::FractionalLength(raw.into()));
    }
    if number.is_float {
        return Err(DecodeError::FloatLength(raw.into()));
    }
    Ok(whole
        .and_then(|digits| digits.parse().ok())
        .expect("checked against the limit above"))
}

/// A JSON number as exact decimal: `digits` x 10^`exponent`.
struct Number {
    negative: bool,
    /// Written with a fraction or an exponent: a float to Python.
    is_float: bool,
    /// The significant digits, no leading or trailing zeros ("" for 0).
    digits: String,
    exponent: i64,
}

impl Number {
    /// A JSON number's text (serde_json has checked its grammar), or `None`
    /// for another value.
    fn parse(raw: &str) -> Option<Number> {
        let body = raw.strip_prefix('-');
        let negative = body.is_some();
        let body = body.unwrap_or(raw);
        if !body.starts_with(|c: char| c.is_ascii_digit()) {
            return None;
        }
        let (mantissa, exp) = match body.find(['e', 'E']) {
            Some(at) => (&body[..at], Some(&body[at + 1..])),
            None => (body, None),
        };
        let (int, frac) = match mantissa.split_once('.') {
            Some((int, frac)) => (int, frac),
            None => (mantissa, ""),
        };
        let exp = exp.map_or(0, |e| {
            let (sign, digits) = match e.strip_prefix('-') {
                Some(d) => (-1, d),
                None => (1, e.strip_prefix('+').unwrap_or(e)),
            };
            // Saturates: past MAX_EXPONENT the value is 0 or too large anyway.
            let magnitude = digits.bytes().fold(0i64, |n, d| {
                (n * 10 + i64::from(d - b'0')).min(MAX_EXPONENT)
            });
            sign * magnitude
        });
        let all: String = int.chars().chain(frac.chars()).collect();
        let leading = all.len() - all.trim_start_matches('0').len();
        let trimmed = all.trim_matches('0');
        let trailing = all.len() - leading - trimmed.len();
        let frac_len = i64::try_from(frac.len()).expect("a header is at most 65,535 bytes");
        let trailing = i64::try_from(trailing).expect("a header is at most 65,535 bytes");
        Some(Number {
            negative,
            is_float: frac_len > 0 || !mantissa.eq(body),
            digits: trimmed.into(),
            exponent: exp - frac_len + trailing,
        })
    }

    fn is_zero(&self) -> bool {
        self.digits.is_empty()
    }

    fn is_whole(&self) -> bool {
        self.is_zero() || self.exponent >= 0
    }

    /// The digits of the whole part, or `None` when there are more than
    /// any `u64` has (20).
    fn whole_part(&self) -> Option<String> {
        const U64_DIGITS: i64 = 20;
        if self.is_zero() {
            return Some("0".into());
        }
        let len = i64::try_from(self.digits.len()).expect("a header is at most 65,535 bytes");
        let whole_len = len + self.exponent;
        if whole_len <= 0 {
            return Some("0".into());
        }
        if whole_len > U64_DIGITS {
            return None;
        }
        let mut out: String = self
            .digits
            .chars()
            .take(usize::try_from(whole_len).expect("at most 20"))
            .collect();
        while (out.len() as i64) < whole_len {
            out.push('0');
        }
        Some(out)
    }
}

/// A JSON object's entries in order, duplicates kept (so they can be
/// refused); `content-length` as it is written, so that it is read as
/// Python reads it (serde_json reads `-0` as a float, and numbers past
/// 2^64 as floats).
struct Entries<'de>(Vec<(String, Entry<'de>)>);

/// One entry's value.
enum Entry<'de> {
    /// `content-length`, unparsed.
    Length(&'de RawValue),
    /// Any other.
    Value(Value),
}

impl<'de> Deserialize<'de> for Entries<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Entries<'de>, D::Error> {
        struct EntriesVisitor;
        impl<'de> Visitor<'de> for EntriesVisitor {
            type Value = Entries<'de>;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Entries<'de>, A::Error> {
                let mut entries = Vec::new();
                while let Some(key) = map.next_key::<String>()? {
                    let value = if key == "content-length" {
                        Entry::Length(map.next_value()?)
                    } else {
                        Entry::Value(map.next_value()?)
                    };
                    entries.push((key, value));
                }
                Ok(Entries(entries))
            }
        }
        deserializer.deserialize_map(EntriesVisitor)
    }
}

/// What a JSON value is, for error messages.
fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "an integer",
        Value::Number(_) => "a fractional number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

impl Header {
    /// A header for `content_length` bytes of content, from this machine.
    pub fn new(content_type: &str, content_encoding: &str, content_length: u64) -> Header {
        Header {
            byteorder: ByteOrder::native(),
            content_type: content_type.into(),
            content_encoding: content_encoding.into(),
            content_length,
            extra: Vec::new(),
        }
    }

    /// Parses and checks a header's bytes.
    pub fn parse(bytes: &[u8], limits: &Limits) -> Result<Header, DecodeError> {
        let text = std::str::from_utf8(bytes).map_err(|e| DecodeError::HeaderNotUtf8 {
            at: e.valid_up_to(),
        })?;
        let Entries(entries) = serde_json::from_str(text).map_err(|e| {
            // Valid JSON that is not an object, or not JSON at all.
            match serde_json::from_str::<Value>(text) {
                Ok(value) => DecodeError::HeaderNotObject {
                    found: kind(&value),
                },
                Err(_) => DecodeError::HeaderNotJson(e.to_string()),
            }
        })?;
        // A set, not a scan of the keys before: a hostile header of
        // thousands of keys must not cost millions of comparisons.
        let mut seen = std::collections::HashSet::with_capacity(entries.len());
        if let Some((key, _)) = entries.iter().find(|(key, _)| !seen.insert(key.as_str())) {
            return Err(DecodeError::DuplicateKey(super::codec::shown(key)));
        }
        let mut found: [Option<Value>; 3] = Default::default();
        let mut content_length = None;
        let mut extra = Vec::new();
        for (key, value) in entries {
            match value {
                Entry::Length(raw) => content_length = Some(raw),
                Entry::Value(value) => match KEYS.iter().position(|k| *k == key) {
                    Some(i) => found[i] = Some(value),
                    None => extra.push((key, value)),
                },
            }
        }
        let [byteorder, content_type, content_encoding] = found;
        let string = |key: &'static str, value: Option<Value>| match value {
            None => Err(DecodeError::MissingKey(key)),
            Some(Value::String(s)) => Ok(s),
            Some(other) => Err(DecodeError::WrongType {
                key,
                expected: "a string",
                found: kind(&other),
            }),
        };
        let byteorder = match string("byteorder", byteorder)?.as_str() {
            "little" => ByteOrder::Little,
            "big" => ByteOrder::Big,
            other => return Err(DecodeError::UnknownByteOrder(super::codec::shown(other))),
        };
        let content_type = string("content-type", content_type)?;
        let content_encoding = string("content-encoding", content_encoding)?;
        let Some(content_length) = content_length else {
            return Err(DecodeError::MissingKey("content-length"));
        };
        let content_length = length(content_length.get(), limits.max_content)?;
        Ok(Header {
            byteorder,
            content_type,
            content_encoding,
            content_length,
            extra,
        })
    }

    /// The header as the guide's Python writes it.
    pub fn to_json(&self) -> String {
        let mut out = Vec::with_capacity(128);
        self.write_json(&mut out);
        String::from_utf8(out).expect("serde_json writes UTF-8")
    }

    /// Appends the header as the guide's Python writes it, the four keys
    /// first, then the others in their order.
    pub(crate) fn write_json(&self, out: &mut Vec<u8>) {
        let mut serializer = serde_json::Serializer::with_formatter(out, PyFormatter);
        let written = (|| {
            let mut map = serializer.serialize_map(Some(KEYS.len() + self.extra.len()))?;
            map.serialize_entry("byteorder", self.byteorder.as_str())?;
            map.serialize_entry("content-type", &self.content_type)?;
            map.serialize_entry("content-encoding", &self.content_encoding)?;
            map.serialize_entry("content-length", &self.content_length)?;
            for (key, value) in &self.extra {
                map.serialize_entry(key, value)?;
            }
            map.end()
        })();
        written.expect("strings and JSON values serialise into a Vec");
    }
}

/// Python's `json.dumps` layout: `", "` between items, `": "` after a key.
/// Everything else (escaping only the quote, the backslash and control
/// characters, with the same short forms; numbers; literals) is serde_json's
/// compact form, which is Python's with `ensure_ascii=False`.
struct PyFormatter;

impl Formatter for PyFormatter {
    fn begin_array_value<W: ?Sized + io::Write>(
        &mut self,
        w: &mut W,
        first: bool,
    ) -> io::Result<()> {
        if first { Ok(()) } else { w.write_all(b", ") }
    }

    fn begin_object_key<W: ?Sized + io::Write>(
        &mut self,
        w: &mut W,
        first: bool,
    ) -> io::Result<()> {
        if first { Ok(()) } else { w.write_all(b", ") }
    }

    fn begin_object_value<W: ?Sized + io::Write>(&mut self, w: &mut W) -> io::Result<()> {
        w.write_all(b": ")
    }
}

/// A JSON value as Python's `json.dumps(value, ensure_ascii=False)` writes
/// it: `", "` and `": "` separators, keys in their order, non-ASCII
/// characters as they are.
pub fn py_json(value: &Value) -> String {
    let mut out = Vec::new();
    value
        .serialize(&mut serde_json::Serializer::with_formatter(
            &mut out,
            PyFormatter,
        ))
        .expect("a JSON value serialises into a Vec");
    String::from_utf8(out).expect("serde_json writes UTF-8")
}
