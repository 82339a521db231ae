//! The JSON header of a message: parsed with every check the protocol
//! needs (one object, each required key once and of its type), and written
//! as Python's `json.dumps(obj, ensure_ascii=False)` writes it.

use std::fmt;
use std::io;

use serde::de::{Deserialize, Deserializer, MapAccess, Visitor};
use serde::ser::{Serialize, SerializeMap, Serializer as _};
use serde_json::Value;
use serde_json::ser::Formatter;

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

/// A JSON object's entries in order, duplicates kept (so they can be refused).
struct Entries(Vec<(String, Value)>);

impl<'de> Deserialize<'de> for Entries {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Entries, D::Error> {
        struct EntriesVisitor;
        impl<'de> Visitor<'de> for EntriesVisitor {
            type Value = Entries;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Entries, A::Error> {
                let mut entries = Vec::new();
                while let Some((key, value)) = map.next_entry::<String, Value>()? {
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
            return Err(DecodeError::DuplicateKey(key.clone()));
        }
        let mut found: [Option<Value>; 4] = Default::default();
        let mut extra = Vec::new();
        for (key, value) in entries {
            match KEYS.iter().position(|k| *k == key) {
                Some(i) => found[i] = Some(value),
                None => extra.push((key, value)),
            }
        }
        let [byteorder, content_type, content_encoding, content_length] = found;
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
            other => return Err(DecodeError::UnknownByteOrder(other.into())),
        };
        let content_type = string("content-type", content_type)?;
        let content_encoding = string("content-encoding", content_encoding)?;
        let content_length = match content_length {
            None => return Err(DecodeError::MissingKey("content-length")),
            Some(Value::Number(n)) => {
                if let Some(len) = n.as_u64() {
                    len
                } else if n.as_i64().is_some() {
                    return Err(DecodeError::NegativeLength(n.to_string()));
                } else {
                    return Err(DecodeError::FractionalLength(n.to_string()));
                }
            }
            Some(other) => {
                return Err(DecodeError::WrongType {
                    key: "content-length",
                    expected: "an integer",
                    found: kind(&other),
                });
            }
        };
        if content_length > limits.max_content {
            return Err(DecodeError::ContentTooLong {
                declared: content_length,
                max: limits.max_content,
            });
        }
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
