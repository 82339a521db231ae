//! Requests and responses as the guide's programs build them. No I/O.
//!
//! - A `search` request is `text/json` in `utf-8`:
//!   `{"action": "search", "value": VALUE}`; any other action is
//!   `binary/custom-client-binary-type` in `binary`: the UTF-8 bytes of
//!   ACTION followed by VALUE.
//! - The answer to a JSON request is `text/json`: `{"result": ANSWER}`, the
//!   table's entry for VALUE, `No match for 'VALUE'.`, or for another action
//!   `Error: invalid action 'ACTION'.`; the answer to a binary request is
//!   `binary/custom-server-binary-type`: `First 10 bytes of request: ` and
//!   the request's first 10 bytes.

use serde_json::{Value, json};

use super::table::SearchTable;
use crate::Endpoint;
use crate::proto::{Header, Message, py_json};

/// The content type of a JSON request or response.
pub const TEXT_JSON: &str = "text/json";
/// The content type of a binary request.
pub const CLIENT_BINARY: &str = "binary/custom-client-binary-type";
/// The content type of a binary response.
pub const SERVER_BINARY: &str = "binary/custom-server-binary-type";
/// What a binary response starts with.
pub const BINARY_PREFIX: &[u8] = b"First 10 bytes of request: ";

/// The request the guide's client sends for `ACTION VALUE`.
pub fn request(action: &str, value: &str) -> Message {
    if action == "search" {
        let content = py_json(&json!({"action": action, "value": value}));
        Message::new(TEXT_JSON, "utf-8", content.into_bytes())
    } else {
        Message::new(
            CLIENT_BINARY,
            "binary",
            format!("{action}{value}").into_bytes(),
        )
    }
}

/// Why a request gets no answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    /// A `text/json` request whose content is not a JSON object.
    #[error("a text/json request whose content is not a JSON object")]
    NotJsonObject,
}

/// The guide's server's answer to a request.
pub fn respond(request: &Message, table: &SearchTable) -> Result<Message, RequestError> {
    if request.header.content_type != TEXT_JSON {
        let mut content = BINARY_PREFIX.to_vec();
        content.extend_from_slice(&request.content[..request.content.len().min(10)]);
        return Ok(Message::new(SERVER_BINARY, "binary", content));
    }
    // Only `action` and `value` are read, and as raw text: a request does
    // not become a JSON tree (a 16 MiB array of zeros would be ~40 times
    // its size in memory).
    if request.content.trim_ascii_start().first() != Some(&b'{') {
        return Err(RequestError::NotJsonObject);
    }
    let fields: SearchRequest<'_> =
        serde_json::from_slice(&request.content).map_err(|_| RequestError::NotJsonObject)?;
    let action = fields.action.map(RawField);
    let value = fields.value.map(RawField);
    let answer = if action.as_ref().and_then(RawField::as_str).as_deref() == Some("search") {
        let text = value.as_ref().and_then(RawField::as_str);
        // The guide answers "No match" for an empty entry too (`or`).
        match text.as_deref().and_then(|v| table.get(v)) {
            Some(found) if !found.is_empty() => found.to_string(),
            _ => format!("No match for '{}'.", py_str_raw(value.as_ref())),
        }
    } else {
        format!("Error: invalid action '{}'.", py_str_raw(action.as_ref()))
    };
    let content = py_json(&json!({"result": answer}));
    Ok(Message::new(TEXT_JSON, "utf-8", content.into_bytes()))
}

/// The two fields of a JSON request the service reads, unparsed.
#[derive(serde::Deserialize)]
struct SearchRequest<'a> {
    #[serde(borrow)]
    action: Option<&'a serde_json::value::RawValue>,
    #[serde(borrow)]
    value: Option<&'a serde_json::value::RawValue>,
}

/// A request field as it was written.
struct RawField<'a>(&'a serde_json::value::RawValue);

impl RawField<'_> {
    /// The string it holds, if it is one.
    fn as_str(&self) -> Option<String> {
        let text = self.0.get();
        if !text.starts_with('"') {
            return None;
        }
        serde_json::from_str(text).ok()
    }
}

/// A request field as the guide's f-strings show it: a string as it is,
/// other values as Python's `str()` would for the simple ones.
fn py_str_raw(field: Option<&RawField<'_>>) -> String {
    let Some(field) = field else {
        return "None".into();
    };
    if let Some(s) = field.as_str() {
        return s;
    }
    match field.0.get() {
        "null" => "None".into(),
        "true" => "True".into(),
        "false" => "False".into(),
        other => other.to_string(),
    }
}

/// A response, as the client reads it.
#[derive(Clone, Debug, PartialEq)]
pub enum Response {
    /// A `text/json` response: its JSON object.
    Json(serde_json::Map<String, Value>),
    /// Any other type: its bytes.
    Binary(Vec<u8>),
}

impl Response {
    /// Reads a response message; `None` when a `text/json` one is not a JSON object.
    pub fn of(message: &Message) -> Option<Response> {
        if message.header.content_type == TEXT_JSON {
            match message.json()? {
                Value::Object(fields) => Some(Response::Json(fields)),
                _ => None,
            }
        } else {
            Some(Response::Binary(message.content.clone()))
        }
    }

    /// The line the guide's client prints for it.
    pub fn line(&self) -> String {
        match self {
            Response::Json(fields) => format!("Got result: {}", py_str(fields.get("result"))),
            Response::Binary(bytes) => {
                format!("Got response: {}", crate::text::py_bytes_repr(bytes))
            }
        }
    }

    /// What `app-client --json` prints: the server, the message's header,
    /// and the content (`content` for JSON, `content_hex` for bytes).
    pub fn json(&self, header: &Header, server: &Endpoint) -> Value {
        let (key, content) = match self {
            Response::Json(fields) => ("content", Value::Object(fields.clone())),
            Response::Binary(bytes) => (
                "content_hex",
                Value::from(bytes.iter().map(|b| format!("{b:02x}")).collect::<String>()),
            ),
        };
        json!({
            "server": server.to_string(),
            "header": {
                "byteorder": header.byteorder.as_str(),
                "content-type": header.content_type,
                "content-encoding": header.content_encoding,
                "content-length": header.content_length,
            },
            key: content,
        })
    }
}

/// A JSON value as Python's `str()` shows it in the guide's f-strings.
fn py_str(value: Option<&Value>) -> String {
    match value {
        None | Some(Value::Null) => "None".into(),
        Some(Value::String(s)) => s.clone(),
        Some(Value::Bool(true)) => "True".into(),
        Some(Value::Bool(false)) => "False".into(),
        Some(other) => py_json(other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::encode;

    #[test]
    fn the_guides_answers() {
        let table = SearchTable::default();
        let answer = |action: &str, value: &str| {
            let response = respond(&request(action, value), &table).unwrap();
            Response::of(&response).unwrap().line()
        };
        assert_eq!(
            answer("search", "morpheus"),
            "Got result: Follow the white rabbit. 🐰"
        );
        assert_eq!(
            answer("search", "ring"),
            "Got result: In the caves beneath the Misty Mountains. 💍"
        );
        assert_eq!(answer("search", "🐶"), "Got result: 🐾 Playing ball! 🏐");
        assert_eq!(answer("search", "neo"), "Got result: No match for 'neo'.");
        assert_eq!(
            answer("double", "trouble"),
            "Got response: b'First 10 bytes of request: doubletrou'"
        );
        let other_json = Message::new(
            TEXT_JSON,
            "utf-8",
            br#"{"action": "find", "value": "x"}"#.to_vec(),
        );
        let response = respond(&other_json, &table).unwrap();
        assert_eq!(
            Response::of(&response).unwrap().line(),
            "Got result: Error: invalid action 'find'."
        );
    }

    #[test]
    fn json_output_names_binary_content_as_hex() {
        let message = Message::new(SERVER_BINARY, "binary", b"\x00\xffok".to_vec());
        let server: Endpoint = "127.0.0.1:65432".parse().unwrap();
        let v = Response::of(&message)
            .unwrap()
            .json(&message.header, &server);
        assert_eq!(v["content_hex"], "00ff6f6b");
        assert_eq!(v["header"]["content-type"], SERVER_BINARY);
        assert_eq!(v["header"]["content-length"], 4);
        assert_eq!(v["server"], "tcp://127.0.0.1:65432");
        assert!(v.get("content").is_none());
    }

    #[test]
    fn a_binary_request_is_the_action_and_value_bytes() {
        let m = request("double", "trouble");
        assert_eq!(m.header.content_type, CLIENT_BINARY);
        assert_eq!(m.content, b"doubletrouble");
        let bytes = encode(&m).unwrap();
        assert!(bytes.ends_with(b"\"content-length\": 13}doubletrouble"));
    }

    #[test]
    fn a_json_request_that_is_not_an_object_gets_no_answer() {
        let m = Message::new(TEXT_JSON, "utf-8", b"[1]".to_vec());
        assert_eq!(
            respond(&m, &SearchTable::default()),
            Err(RequestError::NotJsonObject)
        );
    }
}
