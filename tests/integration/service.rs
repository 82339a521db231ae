//! The servers under a service manager: systemd's socket activation (the
//! sockets bound by `tests/peers/socket_activate.py`, which execs echokit
//! with `LISTEN_FDS` and `LISTEN_PID` as systemd sets them), inetd's
//! connection on stdin and stdout, `--user`, and the sample units of
//! `contrib/`.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::os::fd::OwnedFd;
use std::os::unix::fs::FileTypeExt;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};

use echokit::proto::{Decoder, Limits};

use crate::util::{self, Server, client, connect, pattern, peer, python, read_to_end, text};

/// `socket_activate.py SPEC... -- echokit ARGS...`: echokit finds the
/// sockets at descriptors 3, 4, ...
fn activated(specs: &[&str], args: &[&str]) -> Command {
    let mut cmd = python();
    cmd.arg(peer("socket_activate.py"))
        .args(specs)
        .arg("--")
        .arg(env!("CARGO_BIN_EXE_echokit"))
        .args(args);
    cmd
}

#[test]
fn socket_activation_serves_tcp_udp_and_unix_sockets_and_leaves_their_files() {
    let dir = tempfile::tempdir().unwrap();
    let stream_path = dir.path().join("s.sock");
    let gram_path = dir.path().join("g.sock");
    let specs = [
        "tcp:127.0.0.1".to_string(),
        "udp:127.0.0.1".to_string(),
        util::unix(&stream_path),
        util::unixgram(&gram_path),
    ];
    let specs: Vec<&str> = specs.iter().map(String::as_str).collect();
    let mut server = Server::spawn(activated(&specs, &["echo-server"]), 4);
    // The sockets the harness bound, announced as echokit's own are.
    assert!(server.endpoints[0].starts_with("tcp://127.0.0.1:"));
    assert!(server.endpoints[1].starts_with("udp://127.0.0.1:"));
    assert_eq!(server.endpoints[2], util::unix(&stream_path));
    assert_eq!(server.endpoints[3], util::unixgram(&gram_path));
    for endpoint in &server.endpoints {
        let out = client(&[endpoint]);
        assert!(out.status.success(), "{endpoint}: {}", text(&out.stderr));
        assert_eq!(
            text(&out.stdout),
            "Received b'Hello, world'\n",
            "{endpoint}"
        );
    }
    // Urgent data stays in the stream: the inherited listener got SO_OOBINLINE.
    let mut s = connect(server.addrs[0]);
    s.write_all(b"ab").unwrap();
    socket2::SockRef::from(&s).send_out_of_band(b"!").unwrap();
    s.write_all(b"cd").unwrap();
    s.shutdown(Shutdown::Write).unwrap();
    assert_eq!(read_to_end(&mut s), b"ab!cd");

    server.signal(libc::SIGTERM);
    let summary = server.summary_after_clean_exit();
    assert!(summary.contains("served 3 connections"), "{summary}");
    // The socket files are systemd's, not echokit's: still there.
    for path in [&stream_path, &gram_path] {
        let meta = std::fs::symlink_metadata(path)
            .unwrap_or_else(|e| panic!("{} was removed: {e}", path.display()));
        assert!(meta.file_type().is_socket());
    }
}

#[test]
fn app_server_serves_an_activated_socket_and_refuses_a_datagram_one() {
    let mut server = Server::spawn(activated(&["tcp:127.0.0.1"], &["app-server"]), 1);
    let out = util::echokit_run(&[
        "app-client",
        &server.addr().to_string(),
        "search",
        "morpheus",
    ]);
    assert_eq!(
        text(&out.stdout),
        "Got result: Follow the white rabbit. 🐰\n",
        "{}",
        text(&out.stderr)
    );
    server.signal(libc::SIGTERM);
    assert_eq!(server.wait().code(), Some(0));

    let out = util::run(activated(&["udp:127.0.0.1"], &["app-server"]), b"");
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    util::assert_stderr_has(&out, "app-server speaks over a stream");
}

#[test]
fn app_server_sigterm_answers_the_request_in_flight_then_exits_zero() {
    let mut cmd = util::echokit();
    cmd.args(["app-server", "127.0.0.1:0", "--keep-alive"]);
    let mut server = Server::spawn(cmd, 1);
    let request = echokit::proto::encode(&echokit::app::request("search", "morpheus")).unwrap();
    let mut s = connect(server.addr());
    // Half a request is in when the signal comes.
    s.write_all(&request[..5]).unwrap();
    server.stderr_line("connected peer=");
    server.signal(libc::SIGTERM);
    server.stderr_line("stopped accepting");
    let refused = TcpStream::connect(server.addr()).unwrap_err();
    assert_eq!(refused.kind(), std::io::ErrorKind::ConnectionRefused);
    s.write_all(&request[5..]).unwrap();
    s.shutdown(Shutdown::Write).unwrap();
    let all = read_to_end(&mut s);
    let answer = Decoder::new(Limits::default())
        .decode(&all)
        .unwrap()
        .message;
    assert_eq!(
        echokit::app::Response::of(&answer.unwrap())
            .unwrap()
            .line(false),
        "Got result: Follow the white rabbit. 🐰"
    );
    let summary = server.summary_after_clean_exit();
    assert!(summary.contains("served 1 connection"), "{summary}");
}

#[test]
fn socket_activation_says_what_it_cannot_serve() {
    for (specs, args, says) in [
        (
            &["tcp:127.0.0.1"][..],
            &["echo-server", "127.0.0.1:0"][..],
            "not both",
        ),
        (&["pipe:"], &["echo-server"], "descriptor 3 is not a socket"),
        (&["connected:"], &["echo-server"], "Accept=yes"),
        (
            &["udp:127.0.0.1"],
            &["echo-server", "--once"],
            "--once serves one connection",
        ),
    ] {
        let out = util::run(activated(specs, args), b"");
        assert_eq!(
            out.status.code(),
            Some(2),
            "{specs:?}: {}",
            text(&out.stderr)
        );
        util::assert_stderr_has(&out, says);
        assert_eq!(text(&out.stdout), "", "{specs:?}: nothing listens");
    }
}

#[test]
fn a_malformed_activation_environment_is_named_once() {
    // LISTEN_PID is echokit's own (the shell execs it), LISTEN_FDS garbage.
    for (fds, says) in [("x", "invalid LISTEN_FDS"), ("1", "Bad file descriptor")] {
        let mut cmd = Command::new("sh");
        cmd.args(["-c", r#"LISTEN_PID=$$ exec "$0" echo-server 3<&-"#])
            .arg(env!("CARGO_BIN_EXE_echokit"))
            .env("LISTEN_FDS", fds);
        let out = util::run(cmd, b"");
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{stderr}");
        assert_eq!(stderr.matches(says).count(), 1, "said twice: {stderr}");
    }
}

#[test]
fn sockets_passed_to_another_process_are_left_alone() {
    // LISTEN_PID names someone else (a parent that exec'd us without
    // clearing it): echokit binds its endpoint as usual.
    let mut cmd = util::echokit();
    cmd.args(["echo-server", "127.0.0.1:0"])
        .env("LISTEN_PID", "1")
        .env("LISTEN_FDS", "1");
    let mut server = Server::spawn(cmd, 1);
    let out = client(&[&server.addr().to_string()]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    server.signal(libc::SIGTERM);
    assert_eq!(server.wait().code(), Some(0));
}

/// A connection as inetd hands it over: accepted here, given to echokit
/// as stdin and stdout. Returns the client's end.
fn inetd(args: &[&str]) -> (Server, TcpStream) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let client = connect(listener.local_addr().unwrap());
    let (accepted, _) = listener.accept().unwrap();
    let mut cmd = util::echokit();
    cmd.args(args)
        .arg("--inetd")
        .stdin(Stdio::from(OwnedFd::from(accepted.try_clone().unwrap())))
        .stdout(Stdio::from(OwnedFd::from(accepted)));
    let server = Server::spawn_with_stdio(cmd);
    // `cmd` is gone: the child holds the only descriptors of its end.
    (server, client)
}

#[test]
fn inetd_echoes_the_connection_on_stdin_then_half_closes() {
    let (mut server, mut client) = inetd(&["echo-server"]);
    client.write_all(b"Hello, world").unwrap();
    client.shutdown(Shutdown::Write).unwrap();
    assert_eq!(read_to_end(&mut client), b"Hello, world");
    assert_eq!(server.wait().code(), Some(0));
    let log = server.rest_of_stderr().join("\n");
    assert!(log.contains("connected peer=127.0.0.1:"), "{log}");
    assert!(
        log.contains("served 1 connection, echoed 12 bytes"),
        "{log}"
    );

    // Bulk, through back-pressure: every byte, in order.
    let (mut server, mut client) = inetd(&["echo-server"]);
    let data = pattern(4 << 20, 9);
    let mut writer = client.try_clone().unwrap();
    let payload = data.clone();
    let sender = std::thread::spawn(move || {
        writer.write_all(&payload).unwrap();
        writer.shutdown(Shutdown::Write).unwrap();
    });
    let echo = read_to_end(&mut client);
    sender.join().unwrap();
    assert!(
        echo == data,
        "echo of {} bytes, {} back",
        data.len(),
        echo.len()
    );
    assert_eq!(server.wait().code(), Some(0));
}

#[test]
fn inetd_under_accept_yes_takes_stdin_and_its_copy_at_descriptor_3() {
    // systemd's Accept=yes passes the connection as stdin and stdout, and
    // as descriptor 3 (LISTEN_FDS=1) too.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let spec = format!("accept-yes:{}", listener.local_addr().unwrap());
    let mut cmd = activated(&[&spec], &["echo-server", "--inetd"]);
    cmd.stdin(Stdio::null()).stdout(Stdio::null());
    let mut server = Server::spawn_with_stdio(cmd);
    let (mut client, _) = listener.accept().unwrap();
    client.set_read_timeout(Some(util::LIMIT)).unwrap();
    client.write_all(b"Hello, world").unwrap();
    client.shutdown(Shutdown::Write).unwrap();
    assert_eq!(read_to_end(&mut client), b"Hello, world");
    assert_eq!(server.wait().code(), Some(0));

    // Another socket besides stdin would go unserved: a usage error.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let spec = format!("accept-yes:{}", listener.local_addr().unwrap());
    let mut cmd = activated(&[&spec, "tcp:127.0.0.1"], &["echo-server", "--inetd"]);
    cmd.stdin(Stdio::null()).stdout(Stdio::null());
    let mut server = Server::spawn_with_stdio(cmd);
    let (mut client, _) = listener.accept().unwrap();
    client.set_read_timeout(Some(util::LIMIT)).unwrap();
    server.stderr_line("socket activation also passed descriptor 4 (harness1), another socket");
    assert_eq!(server.wait().code(), Some(2));
    assert_eq!(read_to_end(&mut client), b"", "closed unserved");
}

#[test]
fn inetd_logs_never_reach_the_client_when_stderr_is_the_connection_too() {
    // Classic inetd gives the socket as descriptors 0, 1 and 2: with every
    // log and every socket call traced, the client still gets its echo only.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let mut client = connect(listener.local_addr().unwrap());
    let (accepted, _) = listener.accept().unwrap();
    let fd = |s: &TcpStream| Stdio::from(OwnedFd::from(s.try_clone().unwrap()));
    let mut cmd = util::echokit();
    cmd.args(["echo-server", "--inetd", "-vv", "--trace-calls"])
        .stdin(fd(&accepted))
        .stdout(fd(&accepted))
        .stderr(fd(&accepted));
    let mut child = cmd.spawn().unwrap();
    drop((cmd, accepted));
    client.write_all(b"Hello, world").unwrap();
    client.shutdown(Shutdown::Write).unwrap();
    assert_eq!(text(&read_to_end(&mut client)), "Hello, world");
    assert_eq!(util::wait_bounded(&mut child).code(), Some(0));
}

#[test]
fn inetd_sigterm_lets_the_connection_finish_and_a_second_sigint_exits_at_once() {
    let (mut server, mut client) = inetd(&["echo-server"]);
    server.stderr_line("connected peer=");
    server.signal(libc::SIGTERM);
    server.stderr_line("SIGTERM: shutting down gracefully");
    // Still served after the signal, until the client is done.
    client.write_all(b"after").unwrap();
    client.shutdown(Shutdown::Write).unwrap();
    assert_eq!(read_to_end(&mut client), b"after");
    assert_eq!(server.wait().code(), Some(0));

    let (mut server, _client) = inetd(&["echo-server", "--grace", "1h"]);
    server.stderr_line("connected peer=");
    server.interrupt_twice();
}

#[test]
fn inetd_app_server_answers_the_guides_client_and_keeps_alive_when_asked() {
    // echokit's own app-client connects to a listener here; the accepted
    // connection goes to `app-server --inetd`, as inetd would pass it.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    // Its --timeout bounds the exchange.
    let app_client = util::spawn_piped(&[
        "app-client",
        &addr.to_string(),
        "search",
        "morpheus",
        "--timeout",
        "10s",
    ]);
    let (accepted, _) = listener.accept().unwrap();
    let mut cmd = util::echokit();
    cmd.args(["app-server", "--inetd"])
        .stdin(Stdio::from(OwnedFd::from(accepted.try_clone().unwrap())))
        .stdout(Stdio::from(OwnedFd::from(accepted)));
    let mut server = Server::spawn_with_stdio(cmd);
    let out = app_client.wait_with_output().unwrap();
    assert_eq!(
        text(&out.stdout),
        "Got result: Follow the white rabbit. 🐰\n",
        "{}",
        text(&out.stderr)
    );
    assert_eq!(server.wait().code(), Some(0));

    // With --keep-alive, one connection carries two requests.
    let (mut server, mut client) = inetd(&["app-server", "--keep-alive"]);
    let request = |action: &str, value: &str| {
        echokit::proto::encode(&echokit::app::request(action, value)).unwrap()
    };
    let mut both = request("search", "morpheus");
    both.extend(request("search", "ring"));
    client.write_all(&both).unwrap();
    client.shutdown(Shutdown::Write).unwrap();
    let mut all = Vec::new();
    client.read_to_end(&mut all).unwrap();
    crate::app::assert_morpheus_then_ring(&all);
    assert_eq!(server.wait().code(), Some(0));
}

#[test]
fn inetd_app_server_cuts_off_a_slow_request_at_its_deadline() {
    let (mut server, mut client) = inetd(&["app-server", "--header-timeout", "200ms"]);
    client.write_all(&[0]).unwrap();
    // Half a length prefix, then silence: closed at the header deadline.
    assert_eq!(read_to_end(&mut client), b"");
    assert_eq!(server.wait().code(), Some(0));
    let log = server.rest_of_stderr().join("\n");
    assert!(
        log.contains("the header was not whole within 200 ms"),
        "{log}"
    );
}

#[test]
fn inetd_on_a_pipe_copies_stdin_for_the_echo_and_is_refused_by_the_app_server() {
    let data = pattern(300_000, 4);
    let mut cmd = util::echokit();
    cmd.args(["echo-server", "--inetd"]);
    let out = util::run(cmd, &data);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(
        out.stdout == data,
        "{} bytes back of {}",
        out.stdout.len(),
        data.len()
    );

    let mut cmd = util::echokit();
    cmd.args(["app-server", "--inetd"]);
    let out = util::run(cmd, b"hi");
    assert_eq!(out.status.code(), Some(2));
    util::assert_stderr_has(&out, "app-server --inetd serves a socket on stdin");
    assert_eq!(text(&out.stdout), "");
}

fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// A `/proc/PID/status` line's ids (`Uid:`, `Gid:`, `Groups:`).
fn status_ids(pid: u32, field: &str) -> Vec<u32> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .unwrap_or_else(|| panic!("no {field} in /proc/{pid}/status"))
        .split_whitespace()
        .map(|id| id.parse().unwrap())
        .collect()
}

#[test]
fn user_errors_say_why() {
    let out = util::echokit_run(&[
        "echo-server",
        "127.0.0.1:0",
        "--user",
        "no-such-user-echokit",
    ]);
    assert_eq!(out.status.code(), Some(2));
    util::assert_stderr_has(&out, "no user named no-such-user-echokit");
    assert_eq!(text(&out.stdout), "", "no listening line before the drop");

    // Not root: run the binary as nobody (from where nobody may run it).
    let dir = tempfile::tempdir().unwrap();
    let bin = dir.path().join("echokit");
    std::fs::copy(env!("CARGO_BIN_EXE_echokit"), &bin).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let mut cmd = Command::new(&bin);
    cmd.args(["app-server", "127.0.0.1:0", "--user", "nobody"]);
    if is_root() {
        cmd.uid(65534).gid(65534);
    }
    let out = util::run(cmd, b"");
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    util::assert_stderr_has(&out, "--user nobody needs root");
}

/// The `ExecStart=` command lines of a unit file, as words.
fn exec_starts(unit: &Path) -> Vec<Vec<String>> {
    std::fs::read_to_string(unit)
        .unwrap()
        .lines()
        .filter_map(|l| l.strip_prefix("ExecStart="))
        .map(|l| l.split_whitespace().map(String::from).collect())
        .collect()
}

fn contrib(name: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("contrib")
        .join(name)
}

/// The sample units of `contrib/`.
const UNITS: [&str; 4] = [
    "echokit.socket",
    "echokit.service",
    "echokit-inetd.socket",
    "echokit-inetd@.service",
];

#[test]
fn the_contrib_units_commands_parse() {
    // Each ExecStart is echokit's, with flags its parser takes.
    for unit in UNITS.iter().filter(|u| u.ends_with(".service")) {
        let starts = exec_starts(&contrib(unit));
        assert_eq!(starts.len(), 1, "{unit}");
        assert!(
            starts[0][0].ends_with("/echokit"),
            "{unit}: {:?}",
            starts[0]
        );
        let mut args: Vec<&str> = starts[0][1..].iter().map(String::as_str).collect();
        args.push("--help");
        let out = util::echokit_run(&args);
        assert!(out.status.success(), "{unit}: {}", text(&out.stderr));
    }
}

#[test]
fn the_contrib_service_serves_what_its_socket_unit_passes() {
    // echokit.socket's ListenStream=7 and ListenDatagram=7, on port 0 of
    // loopback here, passed to echokit.service's command.
    let socket_unit = std::fs::read_to_string(contrib("echokit.socket")).unwrap();
    let mut specs = Vec::new();
    for line in socket_unit.lines() {
        if line.starts_with("ListenStream=") {
            specs.push("tcp:127.0.0.1");
        } else if line.starts_with("ListenDatagram=") {
            specs.push("udp:127.0.0.1");
        }
    }
    assert_eq!(specs, ["tcp:127.0.0.1", "udp:127.0.0.1"]);
    let start = &exec_starts(&contrib("echokit.service"))[0];
    let args: Vec<&str> = start[1..].iter().map(String::as_str).collect();
    let mut server = Server::spawn(activated(&specs, &args), 2);
    for endpoint in &server.endpoints {
        let out = client(&[endpoint]);
        assert_eq!(
            text(&out.stdout),
            "Received b'Hello, world'\n",
            "{endpoint}"
        );
    }
    server.signal(libc::SIGTERM);
    assert_eq!(server.wait().code(), Some(0));
}

/// systemd's own check of the sample units, on copies that run the binary
/// under test: `systemd-analyze`, from Debian's `systemd` package (`.ci/run`
/// installs it; nothing is started).
mod tools {
    use super::*;

    #[test]
    #[ignore = "needs systemd-analyze: cargo test --release -- --ignored tools::"]
    fn the_contrib_units_pass_systemd_analyze_verify() {
        let dir = tempfile::tempdir().unwrap();
        for unit in UNITS {
            let content = std::fs::read_to_string(contrib(unit))
                .unwrap()
                .replace("/usr/local/bin/echokit", env!("CARGO_BIN_EXE_echokit"));
            std::fs::write(dir.path().join(unit), content).unwrap();
        }
        let mut verify = Command::new("systemd-analyze");
        verify
            .args(["verify", "--man=no"])
            .args(UNITS.iter().map(|u| dir.path().join(u)))
            .arg(dir.path().join("echokit-inetd@1.service"));
        let out = util::run(verify, b"");
        assert!(out.status.success(), "{}", text(&out.stderr));
        assert_eq!(text(&out.stderr), "", "systemd-analyze warns");
    }
}

/// `--user`: the drop itself, which only root can make.
mod root {
    use super::*;

    #[test]
    #[ignore = "needs root: cargo test --release -- --ignored root::"]
    fn user_drops_root_once_bound_and_still_echoes() {
        assert!(is_root(), "needs root");
        let nobody = nix::unistd::User::from_name("nobody")
            .unwrap()
            .expect("the nobody user exists");
        let (uid, gid) = (nobody.uid.as_raw(), nobody.gid.as_raw());
        let mut server = Server::start(&["127.0.0.1:0", "--user", "nobody"], 1);
        // Real, effective, saved and file-system ids: all nobody's, by the
        // time the listening line is out.
        assert_eq!(status_ids(server.pid(), "Uid:"), [uid; 4]);
        assert_eq!(status_ids(server.pid(), "Gid:"), [gid; 4]);
        assert!(
            !status_ids(server.pid(), "Groups:").contains(&0),
            "root's group is gone"
        );
        let out = client(&[&server.addr().to_string()]);
        assert_eq!(text(&out.stdout), "Received b'Hello, world'\n");
        server.signal(libc::SIGTERM);
        assert_eq!(server.wait().code(), Some(0));
    }
}
