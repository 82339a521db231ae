//! Requests and responses as the guide's programs build them. No I/O.
//!
//! - A `search` request is `text/json` in `utf-8`:
//!   `{"action": "search", "value": VALUE}`; any other action is
//!   `binary/custom-client-binary-type` in `binary`: the UTF-8 bytes of
//!   ACTION followed by VALUE.
//! - A JSON request is read as the guide's server reads it: its content
//!   decoded with its `content-encoding` (`latin-1`, `utf-16`, ...), then
//!   parsed as Python's `json.loads` parses it ([`super::pyjson`]).
//! - The answer to a JSON request is `text/json` in `utf-8`:
//!   `{"result": ANSWER}`, the table's entry for VALUE,
//!   `No match for 'VALUE'.`, or for another action
//!   `Error: invalid action 'ACTION'.`, VALUE and ACTION as Python's `str()`
//!   shows them (`100.0`, `True`, `None`, `{'x': 1}`); the answer to a binary
//!   request is `binary/custom-server-binary-type`:
//!   `First 10 bytes of request: ` and the request's first 10 bytes.

use std::borrow::Cow;

use serde_json::{Value, json};

use super::pyjson::{self, Json, JsonError, Kind};
use super::table::SearchTable;
use crate::Endpoint;
use crate::proto::{DecodeError, Encoding, Header, Message, py_json};

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

/// Why `text/json` content is not what the guide's programs read: a
/// request the server answers, or a response the client prints. Each names
/// its cause.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ContentError {
    /// `text/json` in the `binary` encoding: not text (Python has no such
    /// codec: the guide's server fails on it).
    #[error("the text/json content is in the `{0}` encoding, which is not text")]
    NotText(String),
    /// The content does not decode with its encoding (the codec checks
    /// this before; a message built by hand may not be checked).
    #[error(transparent)]
    Encoding(DecodeError),
    /// The text is not JSON as Python reads it, or has a key twice.
    #[error("bad text/json content: {0}")]
    Json(#[from] JsonError),
    /// JSON, but not an object (the guide calls `.get` on it).
    #[error("the text/json content is {0}, not a JSON object")]
    NotObject(&'static str),
    /// The answer would repeat a field that cannot be written as UTF-8 (the
    /// guide's server fails the same way, and answers nothing).
    #[error("the answer would repeat the request's `{field}`, which holds {source}")]
    Unencodable {
        /// `action` or `value`.
        field: &'static str,
        /// Why it cannot be written.
        source: JsonError,
    },
}

/// The content of a `text/json` message as text, decoded with its
/// encoding as the guide's Python decodes it.
fn content_text(message: &Message) -> Result<Cow<'_, str>, ContentError> {
    let encoding = &message.header.content_encoding;
    if Encoding::lookup(encoding).is_some_and(|e| !e.is_text()) {
        return Err(ContentError::NotText(crate::text::py_escape_unprintable(
            encoding,
        )));
    }
    message.text().map_err(ContentError::Encoding)
}

/// The text read as the guide's Python reads it: one JSON object.
fn object(text: &str) -> Result<Json<'_>, ContentError> {
    let value = pyjson::parse(text)?;
    match value.kind() {
        Kind::Object => Ok(value),
        other => Err(ContentError::NotObject(other.name())),
    }
}

/// The guide's server's answer to a request.
///
/// The content is decoded with its declared encoding, read as Python's
/// `json.loads` reads it, and answered with the guide's f-strings, each
/// value shown as Python's `str()` shows it (`100.0`, `True`, `None`,
/// `{'x': 1}`). Where the guide's `dict.get` raises for a dict or list
/// value (unhashable), echokit answers `No match for '...'` with its repr.
/// Only `action` and `value` are shown: the request never becomes a tree.
pub fn respond(request: &Message, table: &SearchTable) -> Result<Message, ContentError> {
    if request.header.content_type != TEXT_JSON {
        let mut content = BINARY_PREFIX.to_vec();
        content.extend_from_slice(&request.content[..request.content.len().min(10)]);
        return Ok(Message::new(SERVER_BINARY, "binary", content));
    }
    let text = content_text(request)?;
    let fields = object(&text)?;
    let action = fields.get("action");
    let value = fields.get("value");
    // Room for the value's str() (a repr adds `, ` to a JSON array's `,`),
    // so that a large one is written without a copy as the answer grows.
    let shown = value.or(action).map_or(0, |v| v.raw().len());
    let mut answer = String::with_capacity(shown.saturating_add(shown / 2).saturating_add(64));
    if action.and_then(|a| a.as_str()).as_deref() == Some("search") {
        // The guide answers "No match" for an empty entry too (`or`).
        match value
            .and_then(|v| v.as_str())
            .and_then(|v| table.get(&v).map(str::to_string))
        {
            Some(found) if !found.is_empty() => answer = found,
            _ => {
                answer.push_str("No match for '");
                push_py_str(&mut answer, value, "value")?;
                answer.push_str("'.");
            }
        }
    } else {
        answer.push_str("Error: invalid action '");
        push_py_str(&mut answer, action, "action")?;
        answer.push_str("'.");
    }
    // `{"result": ANSWER}` as Python's json.dumps writes it: serde_json
    // escapes a string as Python does (ensure_ascii=False), and the room is
    // the answer's, so a large answer is not copied twice.
    let mut content = Vec::with_capacity(answer.len().saturating_add(16));
    content.extend_from_slice(b"{\"result\": ");
    serde_json::to_writer(&mut content, &answer).expect("a string serialises into a Vec");
    content.push(b'}');
    Ok(Message::new(TEXT_JSON, "utf-8", content))
}

/// Appends a request field as the guide's f-strings show it (`None` when
/// it is missing, as `dict.get` gives).
fn push_py_str(
    out: &mut String,
    field: Option<Json<'_>>,
    name: &'static str,
) -> Result<(), ContentError> {
    match field {
        None => {
            out.push_str("None");
            Ok(())
        }
        Some(value) => value
            .write_py_str(out)
            .map_err(|source| ContentError::Unencodable {
                field: name,
                source,
            }),
    }
}

/// A response, as the client reads it.
#[derive(Clone, Debug, PartialEq)]
pub enum Response {
    /// A `text/json` response: its content decoded, a JSON object as
    /// Python reads it.
    Json(String),
    /// Any other type: its bytes.
    Binary(Vec<u8>),
}

impl Response {
    /// Reads a response message: a `text/json` one must be a JSON object
    /// in a text encoding.
    pub fn of(message: &Message) -> Result<Response, ContentError> {
        if message.header.content_type == TEXT_JSON {
            let text = content_text(message)?;
            object(&text)?;
            Ok(Response::Json(text.into_owned()))
        } else {
            Ok(Response::Binary(message.content.clone()))
        }
    }

    /// The `result` of a `text/json` response, if it has one.
    fn result(&self) -> Option<Json<'_>> {
        match self {
            Response::Json(text) => pyjson::parse(text)
                .expect("checked by Response::of")
                .get("result"),
            Response::Binary(_) => None,
        }
    }

    /// Whether it is a `text/json` response with a `result`.
    pub fn has_result(&self) -> bool {
        self.result().is_some()
    }

    /// The line the guide's client prints for it: `Got result: RESULT` with
    /// RESULT as Python's `str()` shows it, or `Got response: b'...'`.
    ///
    /// The server chose RESULT: what Python's `repr` would escape in it
    /// (control characters, terminal escape sequences, invisible
    /// characters) is escaped the same way, unless `raw`, where it is as it
    /// came (a lone surrogate, which no UTF-8 can hold, is still escaped).
    pub fn line(&self, raw: bool) -> String {
        match self {
            Response::Json(_) => {
                let shown = match self.result() {
                    None => "None".into(),
                    Some(result) if raw => result.py_str_lossless(),
                    Some(result) => result.py_str_escaped(),
                };
                format!("Got result: {shown}")
            }
            Response::Binary(bytes) => {
                format!("Got response: {}", crate::text::py_bytes_repr(bytes))
            }
        }
    }

    /// What `app-client --json` prints: the server, the message's header,
    /// and the content (`content` for JSON, `content_hex` for bytes;
    /// `content_text` for JSON that only Python reads, with `NaN` or a lone
    /// surrogate).
    pub fn json(&self, header: &Header, server: &Endpoint) -> Value {
        let (key, content) = match self {
            Response::Json(text) => match serde_json::from_str::<Value>(text) {
                Ok(value) => ("content", value),
                Err(_) => ("content_text", Value::from(text.as_str())),
            },
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::encode;

    #[test]
    fn the_guides_answers() {
        let table = SearchTable::default();
        let answer = |action: &str, value: &str| {
            let response = respond(&request(action, value), &table).unwrap();
            Response::of(&response).unwrap().line(false)
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
            Response::of(&response).unwrap().line(false),
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

    fn json_request(encoding: &str, content: &[u8]) -> Message {
        Message::new(TEXT_JSON, encoding, content.to_vec())
    }

    /// The answer's `result`, or the rejection.
    fn result(request: &Message) -> Result<String, ContentError> {
        let response = respond(request, &SearchTable::default())?;
        let value: Value = serde_json::from_slice(&response.content).unwrap();
        Ok(value["result"].as_str().unwrap().to_string())
    }

    #[test]
    fn a_latin_1_request_is_decoded_before_it_is_read() {
        // Regression (issue 14): latin-1 `café` was refused as "not a JSON
        // object" and the connection closed unanswered.
        let cafe = b"{\"action\": \"search\", \"value\": \"caf\xe9\"}";
        for name in ["latin-1", "iso-8859-1", "L1", "cp819"] {
            assert_eq!(
                result(&json_request(name, cafe)).as_deref(),
                Ok("No match for 'caf\u{e9}'."),
                "{name}"
            );
        }
        let mut table = std::collections::HashMap::new();
        table.insert("caf\u{e9}".to_string(), "Espresso.".to_string());
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.json");
        std::fs::write(&path, serde_json::to_string(&table).unwrap()).unwrap();
        let table = SearchTable::from_file(&path).unwrap();
        let response = respond(&json_request("latin-1", cafe), &table).unwrap();
        assert_eq!(
            Response::of(&response).unwrap().line(false),
            "Got result: Espresso."
        );
        // UTF-16 with its byte order mark, as Python writes it.
        let utf16: Vec<u8> = b"\xff\xfe"
            .iter()
            .copied()
            .chain(
                r#"{"action": "search", "value": "🐶"}"#
                    .encode_utf16()
                    .flat_map(u16::to_le_bytes),
            )
            .collect();
        assert_eq!(
            result(&json_request("utf-16", &utf16)).as_deref(),
            Ok("🐾 Playing ball! 🏐")
        );
    }

    #[test]
    fn values_are_answered_as_pythons_str_shows_them() {
        for (value, want) in [
            ("1e2", "100.0"),
            ("true", "True"),
            ("null", "None"),
            (r#"{"x": 1}"#, "{'x': 1}"),
            ("[1, 2]", "[1, 2]"),
            (
                "123456789012345678901234567890",
                "123456789012345678901234567890",
            ),
            ("NaN", "nan"),
            (r#"{"k": "\ud800"}"#, r"{'k': '\ud800'}"),
        ] {
            let content = format!(r#"{{"action": "search", "value": {value}}}"#);
            assert_eq!(
                result(&json_request("utf-8", content.as_bytes())),
                Ok(format!("No match for '{want}'.")),
                "{value}"
            );
        }
        // A value that is missing is None, as `dict.get` gives.
        assert_eq!(
            result(&json_request("utf-8", br#"{"action": "search"}"#)).as_deref(),
            Ok("No match for 'None'.")
        );
        assert_eq!(
            result(&json_request("utf-8", br#"{"action": 1.5}"#)).as_deref(),
            Ok("Error: invalid action '1.5'.")
        );
    }

    #[test]
    fn a_json_request_that_is_not_an_object_gets_no_answer() {
        let m = json_request("utf-8", b"[1]");
        assert_eq!(
            respond(&m, &SearchTable::default()),
            Err(ContentError::NotObject("an array"))
        );
    }

    #[test]
    fn a_duplicate_key_in_the_content_is_named_not_called_not_an_object() {
        // Regression (issue 14): "a text/json request whose content is not a
        // JSON object".
        let m = json_request(
            "utf-8",
            br#"{"action": "search", "value": "a", "value": "b"}"#,
        );
        let e = respond(&m, &SearchTable::default()).unwrap_err();
        assert_eq!(
            e.to_string(),
            "bad text/json content: the key 'value' appears twice in one object (again at character 35)"
        );
    }

    #[test]
    fn a_lone_surrogate_is_named_not_called_an_end_of_hex_escape() {
        // Regression (issue 14): "unexpected end of hex escape". Python
        // reads the escape; the answer, which repeats it, cannot be UTF-8.
        let m = json_request("utf-8", br#"{"action": "search", "value": "\ud800"}"#);
        let e = respond(&m, &SearchTable::default()).unwrap_err();
        assert_eq!(
            e.to_string(),
            "the answer would repeat the request's `value`, which holds the lone \
             surrogate \\ud800 (UTF-8 cannot encode it)"
        );
        let m = json_request("utf-8", br#"{"action": "\udfff"}"#);
        assert!(matches!(
            respond(&m, &SearchTable::default()),
            Err(ContentError::Unencodable {
                field: "action",
                ..
            })
        ));
    }

    #[test]
    fn text_json_in_binary_is_not_text() {
        let m = json_request("binary", br#"{"action": "search", "value": "x"}"#);
        assert_eq!(
            respond(&m, &SearchTable::default())
                .unwrap_err()
                .to_string(),
            "the text/json content is in the `binary` encoding, which is not text"
        );
    }

    proptest::proptest! {
        /// Any content, in any encoding the codec reads, is answered or
        /// rejected without a panic; an answer is a message its client
        /// reads, and the client's line holds no control character.
        #[test]
        fn any_request_is_answered_or_rejected_and_answers_print_safely(
            value in "[\\[\\]{}\",:0-9eE.+\\-a-zINu\\\\ \\PC\\x00-\\x1f]{0,30}",
            encoding in proptest::sample::select(vec!["utf-8", "latin-1", "ascii", "utf-16", "utf-32-be", "binary"]),
            raw in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..40),
            use_raw in proptest::prelude::any::<bool>(),
        ) {
            let content = if use_raw {
                raw
            } else {
                format!(r#"{{"action": "search", "value": {value}}}"#).into_bytes()
            };
            let request = json_request(encoding, &content);
            if let Ok(answer) = respond(&request, &SearchTable::default()) {
                crate::proto::encode(&answer).unwrap();
                let line = Response::of(&answer).unwrap().line(false);
                proptest::prop_assert!(!line.chars().any(char::is_control), "{:?}", line);
            }
        }
    }

    #[test]
    fn the_client_escapes_what_repr_escapes_unless_raw() {
        let response = json_request(
            "utf-8",
            br#"{"result": "\u001b[2Jgone\u0007 it's \"\\\" \u200b\ud800"}"#,
        );
        let r = Response::of(&response).unwrap();
        assert_eq!(
            r.line(false),
            r#"Got result: \x1b[2Jgone\x07 it's "\" \u200b\ud800"#
        );
        assert_eq!(
            r.line(true),
            "Got result: \u{1b}[2Jgone\u{7} it's \"\\\" \u{200b}\\ud800"
        );
        let dict = Response::of(&json_request("utf-8", br#"{"result": {"x": [1e2]}}"#)).unwrap();
        assert_eq!(dict.line(false), "Got result: {'x': [100.0]}");
        let none = Response::of(&json_request("utf-8", br#"{"other": 1}"#)).unwrap();
        assert_eq!(none.line(false), "Got result: None");
        assert!(!none.has_result());
    }
}
