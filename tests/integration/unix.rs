//! Unix stream sockets: the TCP echo's behaviour over a path or an abstract
//! name, and the socket file's life (mode, stale files, non-sockets,
//! removal at shutdown).

use std::fs::File;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::os::unix::net::UnixListener;
use std::process::Stdio;

use crate::util::{self, Server, assert_stderr_has, pattern, peer, python, text, unix};

fn mode_of(path: &std::path::Path) -> u32 {
    std::fs::symlink_metadata(path)
        .unwrap()
        .permissions()
        .mode()
        & 0o777
}

#[test]
fn a_100_mib_file_streams_through_a_0600_socket_that_is_gone_after_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("x.sock");
    let mut server = Server::start(&[&unix(&path)], 1);
    let meta = std::fs::symlink_metadata(&path).unwrap();
    assert!(meta.file_type().is_socket());
    assert_eq!(mode_of(&path), 0o600);

    let input = dir.path().join("big.bin");
    std::fs::write(&input, pattern(100 << 20, 9)).unwrap();
    let output = dir.path().join("copy.bin");
    let mut cmd = util::echokit();
    cmd.args(["echo-client", &unix(&path), "-"])
        .stdin(File::open(&input).unwrap())
        .stdout(File::create(&output).unwrap())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    let (status, err) = util::wait_with_stderr(&mut child);
    assert!(status.success(), "{err}");
    assert!(
        std::fs::read(&input).unwrap() == std::fs::read(&output).unwrap(),
        "the copy differs"
    );

    server.signal(libc::SIGTERM);
    let summary = server.summary_after_clean_exit();
    assert!(
        summary.contains("echoed 104,857,600 bytes (100.0 MiB)"),
        "{summary}"
    );
    assert!(!path.exists(), "the socket file is removed at shutdown");
}

#[test]
fn the_guides_client_over_af_unix_and_the_multi_connection_client() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("echo.sock");
    let server = Server::start(&[&unix(&path)], 1);
    let mut cmd = python();
    cmd.args([
        peer("unix_client.py").as_str(),
        path.to_str().unwrap(),
        "Hello, ",
        "world",
    ]);
    let out = util::run(cmd, b"");
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "Received b'Hello, world'\n");
    let out = util::client(&["-c", "50", &server.endpoints[0]]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(stdout.contains("50 connections to unix:"), "{stdout}");
    assert!(stdout.contains("50 ok, 0 failed"), "{stdout}");
    let line = server.stderr_line("connected peer=pid");
    assert!(line.contains("(uid "), "{line}");
}

#[test]
fn a_stale_socket_file_is_replaced_after_its_connect_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("stale.sock");
    // A server that died leaves its file; nobody listens on it now.
    drop(UnixListener::bind(&path).unwrap());
    assert!(path.exists());
    let server = Server::start(&[&unix(&path)], 1);
    let line = server.stderr_line("stale");
    assert!(line.contains("replaced stale socket file"), "{line}");
    let out = util::client(&[&server.endpoints[0]]);
    assert!(out.status.success(), "{}", text(&out.stderr));
}

#[test]
fn a_live_socket_is_never_replaced() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("live.sock");
    let _live = UnixListener::bind(&path).unwrap();
    let out = util::echokit_run(&["echo-server", &unix(&path)]);
    assert_eq!(out.status.code(), Some(6), "{}", text(&out.stderr));
    assert_stderr_has(&out, "address in use: unix:");
    assert_stderr_has(&out, &format!("pid {}", std::process::id()));
    assert!(path.exists());
}

#[test]
fn a_path_that_is_not_a_socket_is_never_removed() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("precious.txt");
    std::fs::write(&path, b"keep me").unwrap();
    let out = util::echokit_run(&["echo-server", &unix(&path)]);
    assert_eq!(out.status.code(), Some(6), "{}", text(&out.stderr));
    assert_stderr_has(&out, "exists and is not a socket: echokit never removes it");
    assert_eq!(std::fs::read(&path).unwrap(), b"keep me");
}

#[test]
fn a_path_longer_than_sun_path_is_a_usage_error() {
    let long = format!("unix:/tmp/{}", "d".repeat(120));
    let out = util::echokit_run(&["echo-server", &long]);
    assert_eq!(out.status.code(), Some(2));
    assert_stderr_has(&out, "a Unix socket path may have at most 107");
}

#[test]
fn mode_sets_the_socket_files_permissions() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("group.sock");
    let _server = Server::start(&[&unix(&path), "--mode", "0660"], 1);
    assert_eq!(mode_of(&path), 0o660);
}

#[test]
fn abstract_names_serve_without_a_file() {
    let name = format!("echokit-stream-test-{}", std::process::id());
    let endpoint = format!("unix:@{name}");
    let server = Server::start(&[&endpoint], 1);
    assert_eq!(server.endpoints[0], endpoint);
    let out = util::client(&[&endpoint, "-m", "abstract"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "Received b'abstract'\n");
}

#[test]
fn a_client_to_a_path_through_a_file_says_there_is_no_socket_file() {
    // A path whose directory is a regular file: ENOTDIR, not ENOENT.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("plain");
    std::fs::write(&file, b"").unwrap();
    let out = util::client(&[&unix(&file.join("echo.sock"))]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out.stderr));
    assert_stderr_has(&out, "no such socket file");
}

#[test]
fn a_client_to_a_missing_socket_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let out = util::client(&[&unix(&dir.path().join("none.sock"))]);
    assert_eq!(out.status.code(), Some(3));
    assert_stderr_has(&out, "no such socket file");
}

#[test]
fn a_live_server_with_a_full_backlog_is_in_use_at_once() {
    // Regression: the stale-file probe was a blocking connect, which waits
    // for room in a live server's full backlog, for ever if it is stopped.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("busy.sock");
    let addr = socket2::SockAddr::unix(&path).unwrap();
    let listener =
        socket2::Socket::new(socket2::Domain::UNIX, socket2::Type::STREAM, None).unwrap();
    listener.bind(&addr).unwrap();
    listener.listen(1).unwrap();
    let mut fillers = Vec::new();
    loop {
        let s = socket2::Socket::new(socket2::Domain::UNIX, socket2::Type::STREAM, None).unwrap();
        s.set_nonblocking(true).unwrap();
        if s.connect(&addr).is_err() {
            break;
        }
        fillers.push(s);
        assert!(fillers.len() < 64, "the backlog never filled");
    }
    let out = util::echokit_run(&["echo-server", &unix(&path)]);
    assert_eq!(out.status.code(), Some(6), "{}", text(&out.stderr));
    assert_stderr_has(&out, "address in use");
}
