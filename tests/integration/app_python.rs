//! The app protocol as the guide's Python speaks it: echokit's app-server
//! answers byte for byte as the guide's server (a Python peer) answers, for
//! every JSON value type and content encoding; app-client prints what the
//! guide's client prints; and echokit's Python formatting (`str`, `repr`,
//! float repr, `isprintable`, codec names) agrees with the real Python.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::process::Stdio;

use echokit::app::pyjson;
use echokit::proto::Encoding;

use crate::util::{self, Server, peer, python, text};

/// The guide's app-server, as a Python peer, on a free port.
fn guides_app_server() -> Server {
    let mut cmd = python();
    cmd.args([peer("app_server.py").as_str(), "127.0.0.1", "0"]);
    Server::spawn(cmd, 1)
}

fn echokit_app_server() -> Server {
    let mut cmd = util::echokit();
    cmd.args(["app-server", "127.0.0.1:0"]);
    Server::spawn(cmd, 1)
}

/// One message as the guide's programs frame it (x86: `little`).
fn frame(content_type: &str, encoding: &str, length: &str, content: &[u8]) -> Vec<u8> {
    let header = format!(
        r#"{{"byteorder": "little", "content-type": "{content_type}", "content-encoding": "{encoding}", "content-length": {length}}}"#
    );
    let mut out = (header.len() as u16).to_be_bytes().to_vec();
    out.extend_from_slice(header.as_bytes());
    out.extend_from_slice(content);
    out
}

fn json_request(encoding: &str, content: &[u8]) -> Vec<u8> {
    frame("text/json", encoding, &content.len().to_string(), content)
}

/// Sends a request on a new connection; all the server sends until it closes.
fn exchange(server: SocketAddr, request: &[u8]) -> Vec<u8> {
    let mut s = util::connect(server);
    s.write_all(request).unwrap();
    let mut all = Vec::new();
    s.read_to_end(&mut all).unwrap();
    all
}

/// The same request to both servers: their answers, byte for byte.
fn assert_answered_as_the_guide(
    ours: &Server,
    guides: &Server,
    request: &[u8],
    what: &str,
) -> Vec<u8> {
    let want = exchange(guides.addr(), request);
    let got = exchange(ours.addr(), request);
    assert!(
        !want.is_empty(),
        "{what}: the guide's server answered nothing"
    );
    assert_eq!(text(&got), text(&want), "{what}");
    assert_eq!(got, want, "{what}");
    got
}

#[test]
fn a_latin_1_cafe_is_answered_as_the_guides_server_answers() {
    // Regression (issue 14): refused as "not a JSON object", and the
    // connection closed with no answer.
    let (ours, guides) = (echokit_app_server(), guides_app_server());
    let content = "{\"action\": \"search\", \"value\": \"caf\u{e9}\"}";
    let latin1: Vec<u8> = content.chars().map(|c| c as u8).collect();
    assert!(latin1.contains(&0xe9), "one byte, not UTF-8");
    let answer = assert_answered_as_the_guide(
        &ours,
        &guides,
        &json_request("latin-1", &latin1),
        "latin-1 café",
    );
    assert!(
        text(&answer).ends_with("{\"result\": \"No match for 'café'.\"}"),
        "{}",
        text(&answer)
    );
}

#[test]
fn search_answers_for_every_json_value_match_the_guides_server_byte_for_byte() {
    let (ours, guides) = (echokit_app_server(), guides_app_server());
    for value in [
        // The issue's.
        "1e2",
        "true",
        "null",
        r#"{"x": 1}"#,
        "[1, 2]",
        // Floats as Python's repr writes them.
        "false",
        "1e16",
        "1e-5",
        "0.0001",
        "123456789012345678.0",
        "-0.0",
        "1E400",
        "5e-324",
        "0.1",
        "NaN",
        "Infinity",
        "-Infinity",
        // Python's ints have no size.
        "-0",
        "123456789012345678901234567890",
        "-98765432109876543210987654321098765432109876543210",
        // Strings: the guide's table, quotes, escapes, what repr escapes.
        r#""morpheus""#,
        r#""\ud83d\udc36""#,
        r#""it's""#,
        r#""\u001b[31mred\u0007""#,
        r#"["it's", "\"q\"", "both ' \"", "\\", "\n\t\r", "\u200b\u00a0\u00ad", "é🐰"]"#,
        r#"{"k": "\ud800", "nested": {"a": [[], {}, [null, true, false]]}, "f": [1.5, 2e300]}"#,
        r#"{"": "", "\u0000": "\u0085\u2028\ue000"}"#,
    ] {
        let content = format!(r#"{{"action": "search", "value": {value}}}"#);
        assert_answered_as_the_guide(
            &ours,
            &guides,
            &json_request("utf-8", content.as_bytes()),
            value,
        );
    }
    // Deep, well within Python's recursion limit and echokit's.
    let deep = format!("{}1{}", r#"{"a": ["#.repeat(200), "]}".repeat(200));
    let content = format!(r#"{{"action": "search", "value": {deep}}}"#);
    assert_answered_as_the_guide(
        &ours,
        &guides,
        &json_request("utf-8", content.as_bytes()),
        "deep",
    );
    // Other actions, and missing fields.
    for content in [
        r#"{"action": "find", "value": "x"}"#,
        r#"{"action": 1e2}"#,
        r#"{"action": {"search": 1}}"#,
        r#"{"value": "morpheus"}"#,
        r#"{"action": "search"}"#,
        r#"  {"action": "search", "value": "ring", "other": [1]}  "#,
    ] {
        assert_answered_as_the_guide(
            &ours,
            &guides,
            &json_request("utf-8", content.as_bytes()),
            content,
        );
    }
}

#[test]
fn each_python_text_encoding_is_decoded_as_the_guides_server_decodes_it() {
    let (ours, guides) = (echokit_app_server(), guides_app_server());
    let content = r#"{"action": "search", "value": "🐶"}"#;
    let utf16le: Vec<u8> = content.encode_utf16().flat_map(u16::to_le_bytes).collect();
    let utf16be: Vec<u8> = content.encode_utf16().flat_map(u16::to_be_bytes).collect();
    let utf32be: Vec<u8> = content
        .chars()
        .flat_map(|c| u32::from(c).to_be_bytes())
        .collect();
    let bom = |mark: &[u8], body: &[u8]| [mark, body].concat();
    for (encoding, bytes) in [
        ("utf-8", content.as_bytes().to_vec()),
        ("UTF8", content.as_bytes().to_vec()),
        ("utf-8-sig", bom(b"\xef\xbb\xbf", content.as_bytes())),
        ("utf-16", bom(b"\xff\xfe", &utf16le)),
        ("utf-16", bom(b"\xfe\xff", &utf16be)),
        // No mark: this machine's order, as Python's.
        (
            "utf-16",
            if cfg!(target_endian = "big") {
                utf16be.clone()
            } else {
                utf16le.clone()
            },
        ),
        ("UTF-16LE", utf16le.clone()),
        ("utf_16_be", utf16be),
        ("utf-32", bom(b"\x00\x00\xfe\xff", &utf32be)),
        ("utf-32-be", utf32be),
    ] {
        assert_answered_as_the_guide(&ours, &guides, &json_request(encoding, &bytes), encoding);
    }
    let ascii = br#"{"action": "search", "value": "\u00e9"}"#;
    for encoding in ["ascii", "us-ascii", "646", "l1", "iso8859-1", "cp819"] {
        assert_answered_as_the_guide(&ours, &guides, &json_request(encoding, ascii), encoding);
    }
}

#[test]
fn a_content_length_of_minus_0_is_0_as_the_guide_takes_it() {
    // Regression (issue 14): `-0` was refused (serde_json reads it as the
    // float -0.0).
    let (ours, guides) = (echokit_app_server(), guides_app_server());
    let request = frame("binary/custom-client-binary-type", "binary", "-0", b"");
    let answer = assert_answered_as_the_guide(&ours, &guides, &request, "-0");
    assert!(text(&answer).ends_with("First 10 bytes of request: "));
}

#[test]
fn each_rejection_names_its_real_cause() {
    // Regressions (issue 14): 2^64 and 1e26 were "not a whole number"; a key
    // twice was "not a JSON object"; a lone surrogate was "unexpected end of
    // hex escape". Each closes the connection unanswered, as the guide's
    // server does (it fails on them), and each log line names the cause.
    let ours = echokit_app_server();
    let search = |value: &str| {
        json_request(
            "utf-8",
            format!(r#"{{"action": "search", "value": {value}}}"#).as_bytes(),
        )
    };
    for (request, logged) in [
        (
            frame("x", "binary", "18446744073709551616", b""),
            "rejected request: a content of 18446744073709551616 bytes is over the limit of 16777216",
        ),
        (
            frame("x", "binary", "1e26", b""),
            "rejected request: a content of 1e26 bytes is over the limit of 16777216",
        ),
        (
            frame("x", "binary", "2.5", b""),
            "rejected request: the header's `content-length` is not a whole number (2.5)",
        ),
        (
            frame("x", "binary", "1.0", b"x"),
            "rejected request: the header's `content-length` is written as a float (1.0), not an integer",
        ),
        (
            json_request(
                "utf-8",
                br#"{"action": "search", "action": "search", "value": "x"}"#,
            ),
            "rejected request: bad text/json content: the key 'action' appears twice in one object (again at character 21)",
        ),
        (
            search(r#""\ud800""#),
            "rejected request: the answer would repeat the request's `value`, which holds the lone surrogate \\ud800 (UTF-8 cannot encode it)",
        ),
        (
            search("[1, 2,]"),
            "rejected request: bad text/json content: expected a value at character 36",
        ),
        (
            json_request("utf-8", b"[1, 2]"),
            "rejected request: the text/json content is an array, not a JSON object",
        ),
        (
            json_request("binary", br#"{"action": "search"}"#),
            "rejected request: the text/json content is in the `binary` encoding, which is not text",
        ),
        (
            json_request("ebcdic", b"{}"),
            "rejected request: the content encoding `ebcdic` is not supported",
        ),
        (
            json_request("ascii", "{\"é\": 1}".as_bytes()),
            "rejected request: the content is not valid ascii: a byte over 0x7f at byte 2",
        ),
    ] {
        assert_eq!(exchange(ours.addr(), &request), b"", "{logged}");
        ours.stderr_line(logged);
    }
}

/// A server that answers each connection with a `text/json` response of
/// this content, then closes.
fn answering(content: &[u8]) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let reply = json_request("utf-8", content);
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { return };
            // The request is not checked here: read some of it, answer.
            let _ = conn.set_read_timeout(Some(std::time::Duration::from_millis(200)));
            let _ = conn.read(&mut [0; 4096]);
            let _ = conn.write_all(&reply);
        }
    });
    addr
}

/// A server that answers one connection with these bytes, then closes.
fn replying(reply: Vec<u8>) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        if let Ok((mut conn, _)) = listener.accept() {
            let _ = conn.set_read_timeout(Some(std::time::Duration::from_millis(200)));
            let _ = conn.read(&mut [0; 4096]);
            let _ = conn.write_all(&reply);
        }
    });
    addr
}

#[test]
fn app_client_errors_escape_the_servers_text_too() {
    // Regression (issue 14): server-chosen text reached the terminal raw,
    // here through the error that names a malformed response.
    for (reply, want) in [
        (
            {
                let h = r#"{"byteorder": "\u001b[2J", "content-type": "x", "content-encoding": "binary", "content-length": 0}"#;
                [&(h.len() as u16).to_be_bytes()[..], h.as_bytes()].concat()
            },
            "the header's `byteorder` is `\\x1b[2J`",
        ),
        (
            json_request(r"\u001b]0;x\u0007", b"{}"),
            "the content encoding `\\x1b]0;x\\x07` is not supported",
        ),
        (
            json_request("utf-8", br#"{"\u001b": 1, "\u001b": 2}"#),
            "bad text/json content: the key '\\x1b' appears twice in one object",
        ),
    ] {
        let addr = replying(reply);
        let out = util::echokit_run(&["app-client", &addr.to_string(), "search", "x"]);
        assert_eq!(out.status.code(), Some(7), "{}", text(&out.stderr));
        util::assert_stderr_has(&out, want);
        assert!(!out.stderr.contains(&0x1b), "{}", text(&out.stderr));
    }
}

fn guides_client(server: SocketAddr) -> Vec<u8> {
    let mut cmd = python();
    cmd.args([peer("app_client.py").as_str(), "127.0.0.1"])
        .arg(server.port().to_string())
        .args(["search", "x"]);
    let out = util::run(cmd, b"");
    assert!(out.status.success(), "{}", text(&out.stderr));
    out.stdout
}

fn app_client(server: SocketAddr, raw: bool) -> Vec<u8> {
    let addr = server.to_string();
    let mut args = vec!["app-client", &addr, "search", "x"];
    if raw {
        args.push("--raw");
    }
    let out = util::echokit_run(&args);
    assert!(out.status.success(), "{}", text(&out.stderr));
    out.stdout
}

#[test]
fn app_client_escapes_what_repr_escapes_and_raw_prints_what_the_guides_client_prints() {
    // Regression (issue 14): a server could send terminal escape sequences
    // to the user's terminal.
    for (result, escaped) in [
        (
            r#""\u001b[2J\u001b]0;owned\u0007gone""#,
            r"Got result: \x1b[2J\x1b]0;owned\x07gone",
        ),
        (
            r#""line\nforged \u200b\u202e it's \"q\" \\ 🐰""#,
            r#"Got result: line\nforged \u200b\u202e it's "q" \ 🐰"#,
        ),
        (
            r#"{"x": [1e2, true, null, "\u001b"]}"#,
            r"Got result: {'x': [100.0, True, None, '\x1b']}",
        ),
        (
            "123456789012345678901234567890",
            "Got result: 123456789012345678901234567890",
        ),
        (
            r#""Follow the white rabbit. 🐰""#,
            "Got result: Follow the white rabbit. 🐰",
        ),
    ] {
        let server = answering(format!(r#"{{"result": {result}}}"#).as_bytes());
        assert_eq!(
            text(&app_client(server, false)),
            format!("{escaped}\n"),
            "{result}"
        );
        let guides = guides_client(server);
        let raw = app_client(server, true);
        assert_eq!(text(&raw), text(&guides), "{result}");
        assert_eq!(raw, guides, "{result}");
    }
}

/// Runs a Python program with `input` on stdin; its stdout.
fn python_says(program: &str, input: &str) -> String {
    let mut child = python()
        .args(["-c", program])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let input = input.to_string();
    // A thread writes, so a full pipe cannot stall the read.
    let writer = std::thread::spawn(move || stdin.write_all(input.as_bytes()));
    let mut out = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut out)
        .unwrap();
    writer.join().unwrap().unwrap();
    assert!(util::wait_bounded(&mut child).success());
    out
}

#[test]
fn json_values_show_as_python_shows_them() {
    // Each line a JSON text; Python prints str(json.loads(line)), escaped
    // the way this test reads it back (as a JSON string).
    let texts = [
        "1e2",
        "true",
        "false",
        "null",
        r#"{"x": 1}"#,
        "[1, 2]",
        "-0",
        "-0.0",
        "0",
        "1.0",
        "1e15",
        "1e16",
        "9999999999999998",
        "1e-4",
        "1e-5",
        "0.00012345",
        "1.7976931348623157e308",
        "2.2250738585072014e-308",
        "4.9e-324",
        "123456789.123456789",
        "-1.5e-7",
        "1E+2",
        "NaN",
        "Infinity",
        "-Infinity",
        "1e400",
        "123456789012345678901234567890",
        r#""plain""#,
        r#""it's""#,
        r#"["it's"]"#,
        r#"["\"", "'\""]"#,
        r#"["\u0000\u001f\u007f\u0080\u009f\u00a0"]"#,
        r#"["\u00ad\u0378\u200b\u2028\u2029\u3000\ue000\ufeff\uffff"]"#,
        r#"["\ud83d\ude00", "\ud800", "\udfff\ud800", "\ud800\u0041", "\udb40\udc01"]"#,
        r#"[[], {}, [[{}]], {"a": {"b": [null]}}]"#,
        r#"{"\n": "\\", "é": "🐰"}"#,
        r#"  [ 1 , 2.5 , "x" ]  "#,
    ];
    let program = r#"
import json, sys
for line in sys.stdin:
    print(json.dumps(str(json.loads(line)), ensure_ascii=True))
"#;
    let python = python_says(program, &(texts.join("\n") + "\n"));
    for (text, line) in texts.iter().zip(python.lines()) {
        let want: String = serde_json::from_str(line).unwrap();
        let mut got = String::new();
        pyjson::parse(text).unwrap().write_py_str(&mut got).unwrap();
        assert_eq!(got, want, "str({text})");
    }
    assert_eq!(python.lines().count(), texts.len());
}

#[test]
fn floats_show_as_pythons_repr_for_random_bits() {
    // xorshift64: the same floats every run.
    let mut state = 0x9e37_79b9_7f4a_7c15_u64;
    let mut floats: Vec<f64> = (0..3000)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            f64::from_bits(state)
        })
        .filter(|x| x.is_finite())
        .collect();
    // Round numbers and the edges of the fixed notation.
    for e in -8..=20 {
        floats.push(10f64.powi(e));
        floats.push(1.5 * 10f64.powi(e));
    }
    // The largest float below 1e16, which Python writes without an exponent.
    floats.push(-(1e16 - 2.0));
    let input: String = floats
        .iter()
        .map(|x| format!("{}\n", x.to_bits()))
        .collect();
    let program = r#"
import struct, sys
for line in sys.stdin:
    print(repr(struct.unpack('<d', struct.pack('<Q', int(line)))[0]))
"#;
    let python = python_says(program, &input);
    let mut n = 0;
    for (x, want) in floats.iter().zip(python.lines()) {
        assert_eq!(pyjson::py_float_repr(*x), want, "{:#x}", x.to_bits());
        n += 1;
    }
    assert_eq!(n, floats.len());
}

#[test]
fn printable_characters_are_pythons_and_strs_show_as_its_repr() {
    // Every code point Python 3.x calls printable or not, against ours.
    // Python's Unicode may be older than ours (16.0): a character it holds
    // unassigned (Cn) that we know is left out, and counted.
    let program = r#"
import sys, unicodedata
print(unicodedata.unidata_version)
for c in range(0x110000):
    ch = chr(c)
    print(1 if ch.isprintable() else 0, 1 if unicodedata.category(ch) == 'Cn' else 0)
"#;
    let python = python_says(program, "");
    let mut lines = python.lines();
    let version = lines.next().unwrap().to_string();
    let mut newer = 0;
    for (code, line) in (0..0x11_0000u32).zip(lines) {
        let Some(c) = char::from_u32(code) else {
            continue;
        };
        let (printable, unassigned) = line.split_once(' ').unwrap();
        let ours = echokit::text::py_printable(c);
        if (printable == "1") != ours {
            assert!(
                unassigned == "1" && ours,
                "U+{code:04X}: Python {version} says printable={printable}, echokit {ours}"
            );
            newer += 1;
        }
    }
    assert!(newer < 20_000, "{newer} characters differ");
    // repr of strings, each on its own line as Python prints it.
    let strings = [
        "plain",
        "it's",
        "\"q\"",
        "it's \"q\"",
        "a\\b",
        "\t\n\r",
        "\u{0}\u{1f}\u{7f}\u{80}\u{a0}\u{ad}",
        "é🐰",
        "\u{200b}\u{202e}\u{2028}\u{3000}\u{e000}\u{f0000}\u{e0001}",
        "",
    ];
    let program = r#"
import json, sys
for line in sys.stdin:
    print(json.dumps(repr(json.loads(line))))
"#;
    let input: String = strings
        .iter()
        .map(|s| serde_json::to_string(s).unwrap() + "\n")
        .collect();
    for (s, line) in strings.iter().zip(python_says(program, &input).lines()) {
        let want: String = serde_json::from_str(line).unwrap();
        assert_eq!(echokit::text::py_str_repr(s), want, "{s:?}");
    }
}

#[test]
fn encoding_names_are_looked_up_as_python_looks_them_up() {
    let names = [
        "utf-8",
        "UTF-8",
        "utf8",
        "utf_8",
        "U8",
        "utf",
        "cp65001",
        " utf-8 ",
        "utf--8",
        "utf.8",
        "utf 8",
        "utf-8-sig",
        "UTF8-sig",
        "latin-1",
        "latin1",
        "Latin 1",
        "l1",
        "iso-8859-1",
        "ISO_8859-1:1987",
        "iso8859",
        "8859",
        "cp819",
        "windows-1252",
        "cp1252",
        "ascii",
        "US-ASCII",
        "646",
        "ANSI_X3.4-1968",
        "iso_646.irv:1991",
        "utf-16",
        "utf16",
        "UTF-16LE",
        "utf16le",
        "utf-16-be",
        "unicodelittleunmarked",
        "utf-32",
        "u32",
        "utf_32be",
        "utf-7",
        "koi8-r",
        "binary",
        "ebcdic",
        "",
        "-",
        "utf\u{e9}8",
    ];
    let program = r#"
import codecs, sys
for line in sys.stdin:
    try:
        print(codecs.lookup(line[:-1]).name)
    except LookupError:
        print('-')
"#;
    let input: String = names.iter().map(|n| format!("{n}\n")).collect();
    let python = python_says(program, &input);
    for (name, want) in names.iter().zip(python.lines()) {
        let ours = Encoding::lookup(name)
            .filter(|e| e.is_text())
            .map(echokit::proto::Encoding::name);
        // Python knows codecs echokit does not read (cp1252, koi8-r, utf-7).
        let known_to_us = [
            "utf-8",
            "utf-8-sig",
            "ascii",
            "iso8859-1",
            "utf-16",
            "utf-16-le",
            "utf-16-be",
            "utf-32",
            "utf-32-le",
            "utf-32-be",
        ];
        let want = Some(want).filter(|w| known_to_us.contains(w));
        assert_eq!(ours, want, "{name:?}");
    }
    assert_eq!(python.lines().count(), names.len());
}
