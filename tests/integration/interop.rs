//! Interoperability with the socket guide's programs, as Python peers written
//! for the project (`tests/peers/`, standard library only).

use std::process::Command;

use crate::util::{self, Server, peer, python, text};

#[test]
fn the_guides_echo_client_against_echokit() {
    let server = Server::start(&["127.0.0.1:0"], 1);
    let port = server.addr().port().to_string();
    let mut cmd = python();
    cmd.args([peer("echo_client.py").as_str(), "127.0.0.1", &port]);
    let out = util::run(cmd, b"");
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "Received b'Hello, world'\n");
}

#[test]
fn the_guides_multiconn_client_with_100_connections_against_echokit() {
    let server = Server::start(&["127.0.0.1:0"], 1);
    let port = server.addr().port().to_string();
    let mut cmd = python();
    cmd.args([
        peer("multiconn_client.py").as_str(),
        "127.0.0.1",
        &port,
        "100",
    ]);
    let out = util::run(cmd, b"");
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", text(&out.stderr));
    assert_eq!(stdout.matches("Closing connection").count(), 100);
    assert!(!stdout.contains("echo differs"));
}

/// The guide's echo server on a free port, and its `HOST:PORT`.
fn guides_echo_server() -> (Server, String) {
    let mut cmd = python();
    cmd.args([peer("echo_server.py").as_str(), "127.0.0.1", "0"]);
    let server = Server::spawn(cmd, 0);
    let line = server.stdout_line();
    let addr = line
        .strip_prefix("listening on ")
        .expect("the peer's first line");
    let addr = addr.to_string();
    (server, addr)
}

#[test]
fn echokits_client_against_the_guides_echo_server() {
    let (mut server, addr) = guides_echo_server();
    let out = util::client(&[&addr]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "Received b'Hello, world'\n");
    // The guide's server serves one client and exits when it closes.
    assert_eq!(server.wait().code(), Some(0));
    assert!(
        server
            .rest_of_stdout()
            .iter()
            .any(|l| l.starts_with("Connected by ('127.0.0.1'"))
    );
}

#[test]
fn echokits_client_streams_through_the_guides_echo_server() {
    let (mut server, addr) = guides_echo_server();
    let data = util::pattern(1 << 20, 21);
    let mut client = Command::new(env!("CARGO_BIN_EXE_echokit"));
    client.args(["echo-client", &addr, "-"]);
    let out = util::run(client, &data);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(out.stdout == data);
    assert_eq!(server.wait().code(), Some(0));
}
