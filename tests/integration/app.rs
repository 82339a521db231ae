//! `app-client`: the guide's application protocol against the guide's
//! server (a Python peer), its bytes on the wire, and its failures.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};

use echokit::proto::{Decoder, Limits};

use crate::util::{self, LIMIT, Server, assert_stderr_has, peer, python, text};

fn app_client(args: &[&str]) -> std::process::Output {
    util::echokit_run(&[&["app-client"], args].concat())
}

/// The guide's app-server, as a Python peer, on a free port.
fn guides_app_server() -> Server {
    let mut cmd = python();
    cmd.args([peer("app_server.py").as_str(), "127.0.0.1", "0"]);
    Server::spawn(cmd, 1)
}

#[test]
fn app_client_against_an_echo_server_says_so_and_exits_7() {
    // Issue 17: it decoded its own request, echoed back, printed
    // `Got result: None` and exited 0.
    let server = Server::start(&["127.0.0.1:0"], 1);
    let out = app_client(&[&server.addr().to_string(), "search", "morpheus"]);
    assert_eq!(out.status.code(), Some(7), "{}", text(&out.stderr));
    assert!(out.stdout.is_empty(), "{}", text(&out.stdout));
    assert_stderr_has(
        &out,
        "sent the request back unchanged: it looks like an echo server",
    );
    assert_stderr_has(&out, "echokit app-server");
}

#[test]
fn echo_client_against_an_app_server_asks_whether_it_is_an_echo_server() {
    // Issue 17: it only said "closed after echoing 0 of 12 bytes".
    let server = app_server(&["127.0.0.1:0"]);
    let out = util::client(&[&server.addr().to_string()]);
    assert_eq!(out.status.code(), Some(7), "{}", text(&out.stderr));
    assert_stderr_has(&out, "after echoing 0 of 12 bytes");
    assert_stderr_has(&out, "is it an echo server? an app-server, for one");
}

#[test]
fn echokit_app_client_gets_the_guides_answers_from_the_guides_server() {
    let server = guides_app_server();
    let endpoint = server.addr().to_string();
    for (args, want) in [
        (
            ["search", "morpheus"],
            "Got result: Follow the white rabbit. 🐰\n",
        ),
        (
            ["search", "ring"],
            "Got result: In the caves beneath the Misty Mountains. 💍\n",
        ),
        (["search", "🐶"], "Got result: 🐾 Playing ball! 🏐\n"),
        (["search", "neo"], "Got result: No match for 'neo'.\n"),
        (
            ["double", "trouble"],
            "Got response: b'First 10 bytes of request: doubletrou'\n",
        ),
    ] {
        let out = app_client(&[&endpoint, args[0], args[1]]);
        assert!(out.status.success(), "{args:?}: {}", text(&out.stderr));
        assert_eq!(text(&out.stdout), want, "{args:?}");
    }
}

/// One request as the client sent it: read one whole message, answer
/// nothing, and return its bytes.
fn capture_one_request(listener: &TcpListener) -> Vec<u8> {
    let (mut conn, _) = listener.accept().unwrap();
    conn.set_read_timeout(Some(LIMIT)).unwrap();
    let mut decoder = Decoder::new(Limits::default());
    let mut all = Vec::new();
    let mut buf = [0; 4096];
    loop {
        let n = conn.read(&mut buf).unwrap();
        assert!(n > 0, "the client closed before its request was whole");
        all.extend_from_slice(&buf[..n]);
        let mut rest = &buf[..n];
        while !rest.is_empty() {
            let decoded = decoder.decode(rest).unwrap();
            if decoded.message.is_some() {
                return all;
            }
            rest = &rest[decoded.consumed..];
        }
    }
}

#[test]
fn echokit_sends_the_guides_bytes_for_search_morpheus() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    for action in [["search", "morpheus"], ["double", "trouble"]] {
        let mut python_client = python();
        python_client
            .args([peer("app_client.py").as_str(), "127.0.0.1"])
            .arg(addr.port().to_string())
            .args(action);
        let mut ours = util::echokit();
        ours.args([
            "app-client",
            &addr.to_string(),
            action[0],
            action[1],
            "--timeout",
            "5s",
        ]);
        let mut sent = Vec::new();
        for mut cmd in [python_client, ours] {
            let mut child = cmd
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .spawn()
                .unwrap();
            sent.push(capture_one_request(&listener));
            // Unanswered, each client fails; only its bytes matter here.
            util::wait_bounded(&mut child);
        }
        assert_eq!(
            text(&sent[1]),
            text(&sent[0]),
            "{action:?}: echokit's request differs from the guide's"
        );
        assert_eq!(sent[1], sent[0]);
    }
}

/// A server that answers any connection with `reply`, then closes.
fn answering(reply: &'static [u8]) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        if let Ok((mut conn, _)) = listener.accept() {
            let _ = capture_rest(&mut conn);
            let _ = conn.write_all(reply);
        }
    });
    addr
}

/// Reads a little of the request (it is not checked here).
fn capture_rest(conn: &mut TcpStream) -> std::io::Result<usize> {
    conn.set_read_timeout(Some(std::time::Duration::from_millis(200)))?;
    conn.read(&mut [0; 4096])
}

#[test]
fn a_malformed_response_exits_7_and_says_why() {
    let cases: [(&'static [u8], &str); 4] = [
        (b"\x00\x09{not json", "the header is not valid JSON"),
        (
            b"\x00\x68{\"byteorder\": \"big\", \"content-type\": \"x\", \"content-encoding\": \"binary\", \"content-length\": 1000000000000}",
            "a content of 1000000000000 bytes is over the limit",
        ),
        (
            b"\x00\x5c{\"byteorder\": \"big\", \"content-type\": \"x\", \"content-encoding\": \"binary\", \"content-length\": 5}ab",
            "the stream ended inside a message: 2 of 5 bytes of its content",
        ),
        (b"", "the stream ended inside a message: 0 of 2 bytes"),
    ];
    for (reply, want) in cases {
        let addr = answering(reply);
        let out = app_client(&[&addr.to_string(), "search", "x"]);
        assert_eq!(out.status.code(), Some(7), "{want}: {}", text(&out.stderr));
        assert_stderr_has(&out, "malformed response from tcp://127.0.0.1:");
        assert_stderr_has(&out, want);
    }
}

#[test]
fn refused_exits_3_and_silence_exits_4() {
    let (_holder, closed) = util::refusing();
    let out = app_client(&[&closed.to_string(), "search", "x"]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out.stderr));

    // Accepts (the kernel does, from the backlog) and never answers.
    let silent = TcpListener::bind("127.0.0.1:0").unwrap();
    let out = app_client(&[
        &silent.local_addr().unwrap().to_string(),
        "search",
        "x",
        "--timeout",
        "300ms",
    ]);
    assert_eq!(out.status.code(), Some(4), "{}", text(&out.stderr));
    assert_stderr_has(&out, "timed out after 300 ms waiting for the response");
}

#[test]
fn json_output_shows_header_and_content() {
    let server = guides_app_server();
    let out = app_client(&[&server.addr().to_string(), "search", "ring", "--json"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["header"]["content-type"], "text/json");
    assert_eq!(
        v["content"]["result"],
        "In the caves beneath the Misty Mountains. 💍"
    );
}

fn app_server(args: &[&str]) -> Server {
    let mut cmd = util::echokit();
    cmd.arg("app-server").args(args);
    Server::spawn(cmd, 1)
}

fn guides_client(server: SocketAddr, action: &str, value: &str) -> std::process::Output {
    let mut cmd = python();
    cmd.args([peer("app_client.py").as_str(), "127.0.0.1"])
        .arg(server.port().to_string())
        .args([action, value]);
    util::run(cmd, b"")
}

#[test]
fn the_guides_client_gets_the_guides_answers_from_echokit() {
    let server = app_server(&["127.0.0.1:0"]);
    for (action, value, want) in [
        (
            "search",
            "morpheus",
            "Got result: Follow the white rabbit. 🐰\n",
        ),
        ("search", "🐶", "Got result: 🐾 Playing ball! 🏐\n"),
        ("search", "neo", "Got result: No match for 'neo'.\n"),
        (
            "double",
            "trouble",
            "Got response: b'First 10 bytes of request: doubletrou'\n",
        ),
    ] {
        let out = guides_client(server.addr(), action, value);
        assert!(
            out.status.success(),
            "{action} {value}: {}",
            text(&out.stderr)
        );
        assert_eq!(text(&out.stdout), want);
    }
    // And echokit's own client, over a Unix socket too.
    let dir = tempfile::tempdir().unwrap();
    let path = util::unix(&dir.path().join("app.sock"));
    let _unix = app_server(&[&path]);
    let out = app_client(&[&path, "search", "ring"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stdout),
        "Got result: In the caves beneath the Misty Mountains. 💍\n"
    );
}

/// Reads until the server closes; the bytes, or the error that ended it.
fn read_to_close(s: &mut TcpStream) -> std::io::Result<Vec<u8>> {
    let mut all = Vec::new();
    s.read_to_end(&mut all)?;
    Ok(all)
}

#[test]
fn hostile_requests_are_rejected_in_time_with_memory_flat_while_others_are_served() {
    let server = app_server(&["127.0.0.1:0", "--header-timeout", "2s"]);
    let addr = server.addr();
    let before = server.rss_bytes();
    let started = std::time::Instant::now();
    // A content length of 10^12.
    let mut huge = util::connect(addr);
    let h = br#"{"byteorder": "big", "content-type": "x", "content-encoding": "binary", "content-length": 1000000000000}"#;
    huge.write_all(&(h.len() as u16).to_be_bytes()).unwrap();
    huge.write_all(h).unwrap();
    // A header of invalid JSON.
    let mut garbled = util::connect(addr);
    garbled.write_all(b"\x00\x09{not json").unwrap();
    // A header one byte at a time, never finished in time.
    let mut trickle = util::connect(addr);
    trickle.write_all(b"\x00\x60{").unwrap();
    // Meanwhile the guide's client is served.
    let out = guides_client(addr, "search", "morpheus");
    assert_eq!(
        text(&out.stdout),
        "Got result: Follow the white rabbit. 🐰\n"
    );
    // The first two are closed at once, without an answer.
    assert_eq!(read_to_close(&mut huge).unwrap(), b"");
    assert_eq!(read_to_close(&mut garbled).unwrap(), b"");
    // For what they are, not at the header deadline: the server says why,
    // before the trickler's deadline (below) comes.
    server.stderr_lines(&["over the limit of 16777216", "the header is not valid JSON"]);
    // The trickler keeps sending, a byte now and then, and is cut off at
    // the header deadline all the same.
    let mut sent = 0;
    let cut = loop {
        std::thread::sleep(std::time::Duration::from_millis(250));
        if trickle.write_all(b" ").is_err() {
            break started.elapsed();
        }
        sent += 1;
        trickle
            .set_read_timeout(Some(std::time::Duration::from_millis(1)))
            .unwrap();
        let mut b = [0; 1];
        if matches!(trickle.read(&mut b), Ok(0)) {
            break started.elapsed();
        }
        assert!(started.elapsed() < LIMIT, "the trickler was never cut off");
    };
    assert!(sent >= 4, "sent {sent}");
    assert!(
        cut >= std::time::Duration::from_secs(2),
        "cut early: {cut:?}"
    );
    server.stderr_line("the header was not whole within 2 s");
    let after = server.peak_rss_bytes();
    assert!(
        after < before + (4 << 20),
        "memory grew from {before} to {after} bytes"
    );
}

#[test]
fn keep_alive_carries_many_requests_and_a_close_loses_no_answer() {
    let server = app_server(&["127.0.0.1:0", "--keep-alive"]);
    let request = |action: &str, value: &str| {
        echokit::proto::encode(&echokit::app::request(action, value)).unwrap()
    };
    let mut s = util::connect(server.addr());
    // Two requests at once, then the write side closed.
    let mut both = request("search", "morpheus");
    both.extend(request("search", "ring"));
    s.write_all(&both).unwrap();
    s.shutdown(std::net::Shutdown::Write).unwrap();
    let all = read_to_close(&mut s).unwrap();
    assert_morpheus_then_ring(&all);

    // A good request, then a bad one, then more: the good one is answered
    // before the connection closes.
    let mut s = util::connect(server.addr());
    let mut mixed = request("search", "morpheus");
    mixed.extend_from_slice(b"\x00\x09{not json");
    mixed.extend(request("search", "ring"));
    s.write_all(&mixed).unwrap();
    let all = read_to_close(&mut s).unwrap();
    let mut d = Decoder::new(Limits::default());
    let got = d.decode(&all).unwrap();
    assert_eq!(got.consumed, all.len(), "one answer only");
    assert_eq!(
        answer_line(got.message),
        "Got result: Follow the white rabbit. 🐰"
    );

    // Without keep-alive: bytes after the request are dropped, the answer
    // arrives whole, and the close is a FIN, not a reset.
    let plain = app_server(&["127.0.0.1:0"]);
    let mut s = util::connect(plain.addr());
    let mut req = request("search", "morpheus");
    req.extend(vec![b'x'; 100_000]);
    s.write_all(&req).unwrap();
    let all = read_to_close(&mut s).expect("a clean close, not a reset");
    let mut d = Decoder::new(Limits::default());
    let got = d.decode(&all).unwrap();
    assert_eq!(
        answer_line(got.message),
        "Got result: Follow the white rabbit. 🐰"
    );
}

#[test]
fn data_replaces_the_search_table() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("table.json");
    std::fs::write(&data, r#"{"neo": "The One."}"#).unwrap();
    let server = app_server(&["127.0.0.1:0", "--data", data.to_str().unwrap()]);
    let out = app_client(&[&server.addr().to_string(), "search", "neo"]);
    assert_eq!(text(&out.stdout), "Got result: The One.\n");
    let out = app_client(&[&server.addr().to_string(), "search", "morpheus"]);
    assert_eq!(text(&out.stdout), "Got result: No match for 'morpheus'.\n");
}

#[test]
fn an_idle_keep_alive_connection_is_closed_at_the_header_deadline() {
    // Each request moves the deadline later; the timer set for the first
    // must find the later one and fire at it, not before and not never.
    let server = app_server(&["127.0.0.1:0", "--keep-alive", "--header-timeout", "2s"]);
    let mut s = util::connect(server.addr());
    let req = echokit::proto::encode(&echokit::app::request("search", "ring")).unwrap();
    let started = std::time::Instant::now();
    let mut last_answer = started;
    // Requests for 2.5 s, past the first deadline, 100 ms apart: a gap 20
    // times that would be needed to close the connection early.
    while started.elapsed() < std::time::Duration::from_millis(2500) {
        s.write_all(&req).unwrap();
        let mut d = Decoder::new(Limits::default());
        let mut buf = [0; 4096];
        loop {
            let n = s.read(&mut buf).unwrap();
            assert!(n > 0, "closed while requests kept coming");
            if d.decode(&buf[..n]).unwrap().message.is_some() {
                break;
            }
        }
        last_answer = std::time::Instant::now();
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    // Closed (within util::LIMIT, the read timeout: so not never), and not
    // before the deadline.
    assert_eq!(read_to_close(&mut s).unwrap(), b"");
    let idle = last_answer.elapsed();
    assert!(
        idle >= std::time::Duration::from_millis(1900),
        "closed {idle:?} after the last answer"
    );
    server.stderr_line("no request came within 2 s");
}

#[test]
fn a_large_json_value_costs_its_size_not_a_tree() {
    // Regression: the request was parsed into a JSON tree, some 40 times its
    // size in memory (a 16 MiB array of zeros took 680 MB).
    let server = app_server(&["127.0.0.1:0"]);
    let before = server.rss_bytes();
    let zeros = vec!["0"; 4 << 20].join(",");
    let content = format!(r#"{{"action": "search", "value": [{zeros}]}}"#);
    let message = echokit::proto::Message::new("text/json", "utf-8", content.into_bytes());
    let mut s = util::connect(server.addr());
    s.write_all(&echokit::proto::encode(&message).unwrap())
        .unwrap();
    let all = read_to_close(&mut s).unwrap();
    let mut d = Decoder::new(Limits {
        max_content: 64 << 20,
        ..Limits::default()
    });
    // The peak, not the memory after: a tree built and freed would not show.
    let grown = server.peak_rss_bytes().saturating_sub(before);
    assert!(
        grown < 64 << 20,
        "memory grew by {grown} bytes for an 8 MiB request"
    );
    let answer = d.decode(&all).unwrap().message.unwrap();
    assert!(
        answer
            .content
            .starts_with(b"{\"result\": \"No match for '[0, 0, 0")
    );
}

/// A connection that sends the header of a 1 MiB binary request and the
/// first `sent` bytes of its content, then stops.
fn unfinished_request(server: SocketAddr, sent: usize) -> TcpStream {
    let h = br#"{"byteorder": "big", "content-type": "x", "content-encoding": "binary", "content-length": 1048576}"#;
    let mut c = util::connect(server);
    c.write_all(&(h.len() as u16).to_be_bytes()).unwrap();
    c.write_all(h).unwrap();
    c.write_all(&vec![b'x'; sent]).unwrap();
    c
}

#[test]
fn unfinished_requests_together_are_held_to_a_budget() {
    let server = app_server(&["127.0.0.1:0", "--max-buffered", "1M"]);
    // Three clients each send 600 KiB of a 1 MiB request and stop: together
    // they pass the budget, and one whose request grows past it is rejected
    // and closed.
    let clients: Vec<TcpStream> = (0..3)
        .map(|_| unfinished_request(server.addr(), 600 << 10))
        .collect();
    server.stderr_line("over its budget (--max-buffered)");
    // A rejected one reads the end of stream (within the bounded wait).
    let started = std::time::Instant::now();
    let closed = loop {
        let closed = clients
            .iter()
            .filter(|&(mut c)| {
                c.set_read_timeout(Some(std::time::Duration::from_millis(20)))
                    .unwrap();
                matches!(c.read(&mut [0; 1]), Ok(0))
            })
            .count();
        if closed > 0 || started.elapsed() > LIMIT {
            break closed;
        }
    };
    assert!(closed >= 1, "no client was closed");
    // Others are still served.
    let out = guides_client(server.addr(), "search", "morpheus");
    assert_eq!(
        text(&out.stdout),
        "Got result: Follow the white rabbit. 🐰\n"
    );
}

#[test]
fn a_rejected_request_gives_its_budget_back_at_once() {
    // Regression: a connection rejected over the budget kept its unfinished
    // request, and its share of the budget, for the whole linger after its
    // FIN (the peer not closing): a request that fits beside the one left
    // waiting was rejected too.
    let server = app_server(&["127.0.0.1:0", "--max-buffered", "1M"]);
    let waiting: Vec<TcpStream> = (0..2)
        .map(|_| unfinished_request(server.addr(), 700 << 10))
        .collect();
    // One of the two (together 1400 KiB) is rejected; the other holds at
    // most 700 KiB, and a request of 200 KiB fits beside it.
    server.stderr_line("over its budget (--max-buffered)");
    let message = echokit::proto::Message::new(
        "binary/custom-client-binary-type",
        "binary",
        vec![b'y'; 200 << 10],
    );
    let mut s = util::connect(server.addr());
    s.write_all(&echokit::proto::encode(&message).unwrap())
        .unwrap();
    let all = read_to_close(&mut s).unwrap();
    let mut d = Decoder::new(Limits::default());
    let answer = d.decode(&all).unwrap().message.expect("an answer");
    assert_eq!(answer.content, b"First 10 bytes of request: yyyyyyyyyy");
    drop(waiting);
}

/// The answers to `search morpheus` then `search ring`, one after the other
/// on one connection (keep-alive), and nothing else.
pub fn assert_morpheus_then_ring(all: &[u8]) {
    let mut d = Decoder::new(Limits::default());
    let first = d.decode(all).unwrap();
    let second = d.decode(&all[first.consumed..]).unwrap();
    assert_eq!(first.consumed + second.consumed, all.len(), "nothing else");
    assert_eq!(
        answer_line(first.message),
        "Got result: Follow the white rabbit. 🐰"
    );
    assert_eq!(
        answer_line(second.message),
        "Got result: In the caves beneath the Misty Mountains. 💍"
    );
}

/// The client's line for a decoded response.
fn answer_line(m: Option<echokit::proto::Message>) -> String {
    echokit::app::Response::of(&m.expect("a whole response"))
        .unwrap()
        .line(false)
}
