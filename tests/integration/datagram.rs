//! The datagram echo over UDP (IPv4 and IPv6) and Unix datagram sockets:
//! whole datagrams of every size, the loop-port refusal, the rate limits,
//! answers from the address asked, and the datagram client.

use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use crate::util::{self, LIMIT, Server, assert_stderr_has, pattern, peer, python, text};

/// The largest UDP payloads: 65,535 less the headers.
const UDP_MAX_V4: usize = 65_507;
const UDP_MAX_V6: usize = 65_527;

fn udp_socket(at: &str) -> UdpSocket {
    let socket = UdpSocket::bind(at).expect("bind a client socket");
    socket.set_read_timeout(Some(LIMIT)).expect("read timeout");
    socket
}

/// Sends `payload` from `socket` to `to` again and again, as a UDP client
/// does when its datagram may be lost (here: to a rate limit, or a receive
/// queue full of flood), until an answer comes; bounded by util::LIMIT from
/// `started`. Returns the answer.
fn send_until_answered(
    socket: &UdpSocket,
    payload: &[u8],
    to: SocketAddr,
    started: Instant,
    what: &str,
) -> Vec<u8> {
    socket
        .set_read_timeout(Some(Duration::from_millis(50)))
        .unwrap();
    let mut buf = [0; 64];
    loop {
        socket.send_to(payload, to).unwrap();
        if let Ok((n, _)) = socket.recv_from(&mut buf) {
            return buf[..n].to_vec();
        }
        assert!(started.elapsed() < LIMIT, "{what}");
    }
}

/// How many answers are queued at `socket` now (it is left non-blocking).
fn queued_answers(socket: &UdpSocket) -> u32 {
    socket.set_nonblocking(true).unwrap();
    let mut buf = [0; 64];
    let mut answers = 0;
    while socket.recv_from(&mut buf).is_ok() {
        answers += 1;
    }
    answers
}

/// Checks that the datagrams these sockets sent were not answered. The
/// server answers in order: once a later datagram's echo is back, an answer
/// to the earlier ones would be queued already, so no wait is needed.
pub fn assert_unanswered(server: SocketAddr, refused: &[&UdpSocket]) {
    let ordinary = udp_socket("127.0.0.1:0");
    ordinary.send_to(b"after", server).unwrap();
    let mut buf = [0; 64];
    let (n, _) = ordinary
        .recv_from(&mut buf)
        .expect("the ordinary datagram is answered");
    assert_eq!(&buf[..n], b"after");
    for socket in refused {
        socket.set_nonblocking(true).unwrap();
        let got = socket.recv_from(&mut buf);
        assert!(
            got.as_ref()
                .is_err_and(|e| e.kind() == std::io::ErrorKind::WouldBlock),
            "{:?} got an answer: {got:?}",
            socket.local_addr()
        );
    }
}

#[test]
fn a_python_sendto_recvfrom_client_gets_every_size_back_over_ipv4_and_ipv6() {
    let server = Server::start(&["udp://127.0.0.1:0", "udp://[::1]:0"], 2);
    for (addr, max) in [(server.addrs[0], UDP_MAX_V4), (server.addrs[1], UDP_MAX_V6)] {
        let sizes: Vec<String> = [0, 1, 1472, 1473, 9000, max]
            .iter()
            .map(ToString::to_string)
            .collect();
        let mut cmd = python();
        cmd.args([peer("datagram_client.py").as_str(), "udp"])
            .arg(addr.ip().to_string())
            .arg(addr.port().to_string())
            .args(&sizes);
        let out = util::run(cmd, b"");
        assert!(
            out.status.success(),
            "{addr}: {}{}",
            text(&out.stdout),
            text(&out.stderr)
        );
        let want: String = sizes.iter().map(|s| format!("ok {s}\n")).collect();
        assert_eq!(text(&out.stdout), want, "{addr}");
    }
}

#[test]
fn many_peers_share_one_socket_and_each_gets_its_own_echo() {
    let server = Server::start(&["udp://127.0.0.1:0"], 1);
    let peers: Vec<UdpSocket> = (0..20).map(|_| udp_socket("127.0.0.1:0")).collect();
    for (i, peer) in peers.iter().enumerate() {
        peer.send_to(&pattern(100 + i, i as u32), server.addr())
            .unwrap();
    }
    let mut buf = vec![0; 2048];
    for (i, peer) in peers.iter().enumerate() {
        let (n, from) = peer.recv_from(&mut buf).expect("an echo");
        assert_eq!(from, server.addr());
        assert_eq!(&buf[..n], pattern(100 + i, i as u32).as_slice());
    }
}

#[test]
fn the_client_sends_files_of_every_size_as_one_datagram() {
    let server = Server::start(&["udp://127.0.0.1:0", "udp://[::1]:0"], 2);
    let dir = tempfile::tempdir().unwrap();
    for (endpoint, max) in [
        (&server.endpoints[0], UDP_MAX_V4),
        (&server.endpoints[1], UDP_MAX_V6),
    ] {
        for size in [0, 1, 1472, max] {
            let path = dir.path().join(format!("m{size}"));
            std::fs::write(&path, pattern(size, 3)).unwrap();
            let out = util::client(&[endpoint, "--file", path.to_str().unwrap()]);
            assert!(
                out.status.success(),
                "{endpoint} {size}: {}",
                text(&out.stderr)
            );
            assert_eq!(
                text(&out.stdout),
                format!("Received {size} bytes, identical to {}\n", path.display())
            );
        }
        // One byte more does not fit one datagram: a usage error, nothing sent.
        let path = dir.path().join("too-big");
        std::fs::write(&path, pattern(max + 1, 3)).unwrap();
        let out = util::client(&[endpoint, "--file", path.to_str().unwrap()]);
        assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
        assert_stderr_has(&out, &format!("at most {max} bytes"));
    }
}

#[test]
fn a_total_rate_holds_every_source_together() {
    let server = Server::start(&["udp://127.0.0.1:0", "--udp-rate-total", "50"], 1);
    let sockets: Vec<UdpSocket> = (0..4).map(|_| udp_socket("127.0.0.1:0")).collect();
    let started = Instant::now();
    for _ in 0..100 {
        for s in &sockets {
            s.send_to(b"x", server.addr()).unwrap();
        }
    }
    let last = udp_socket("127.0.0.1:0");
    // The total applies to this one too: try until it gets through.
    let through = send_until_answered(
        &last,
        b"last",
        server.addr(),
        started,
        "the total rate never let one through",
    );
    assert_eq!(through, b"last");
    let elapsed = started.elapsed().as_secs_f64();
    let answers: u32 = sockets.iter().map(queued_answers).sum();
    let most = (50.0 * elapsed) as u32 + 5 + 2;
    assert!(answers <= most, "{answers} answers in {elapsed:.2}s");
}

#[test]
fn a_wildcard_socket_answers_from_the_address_the_datagram_was_sent_to() {
    let server = Server::start(&["udp://0.0.0.0:0"], 1);
    let port = server.addr().port();
    // 127.0.0.2 is this host's too (all of 127/8 is loopback); without
    // IP_PKTINFO the answer would leave from 127.0.0.1.
    let to = SocketAddr::from(([127, 0, 0, 2], port));
    let client = udp_socket("127.0.0.1:0");
    client.send_to(b"which address?", to).unwrap();
    let mut buf = [0; 64];
    let (n, from) = client.recv_from(&mut buf).expect("an echo");
    assert_eq!(&buf[..n], b"which address?");
    assert_eq!(from, to);
    // And the client, whose socket is connected to 127.0.0.2, accepts it.
    let out = util::client(&[&format!("udp://{to}")]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "Received b'Hello, world'\n");
}

#[test]
fn a_count_series_reports_loss_and_round_trips_like_ping() {
    let server = Server::start(&["udp://127.0.0.1:0"], 1);
    let out = util::client(&[&server.endpoints[0], "--count", "5", "--interval", "10ms"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 1 + 5 + 3, "{stdout}");
    for seq in 1..=5 {
        assert!(
            lines
                .iter()
                .any(|l| l.contains(&format!(": seq={seq} time="))),
            "{stdout}"
        );
    }
    assert!(
        stdout.contains("5 sent, 5 received, 0.0% lost, 0 duplicated, 0 mismatched"),
        "{stdout}"
    );
    assert!(stdout.contains("rtt min/avg/max = "), "{stdout}");
}

#[test]
fn a_silent_port_is_lost_after_the_retries_and_a_closed_one_is_refused() {
    // Bound and never read: datagrams vanish without an ICMP error.
    let silent = udp_socket("127.0.0.1:0");
    let endpoint = format!("udp://{}", silent.local_addr().unwrap());
    let started = Instant::now();
    let out = util::client(&[&endpoint, "--reply-timeout", "100ms", "--retries", "2"]);
    assert_eq!(out.status.code(), Some(4), "{}", text(&out.stderr));
    assert_stderr_has(&out, "no echo from udp://127.0.0.1:");
    assert_stderr_has(&out, "after 3 tries, 100 ms each");
    assert!(started.elapsed() >= Duration::from_millis(300));
    // The three tries are all there.
    let mut buf = [0; 64];
    for _ in 0..3 {
        let (n, _) = silent.recv_from(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"Hello, world");
    }
    // Closed: the kernel answers with ICMP port unreachable.
    drop(silent);
    let out = util::client(&[&endpoint, "--reply-timeout", "5s"]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out.stderr));
    assert_stderr_has(&out, "connection refused");
}

#[test]
fn unix_datagrams_are_echoed_to_the_senders_path_whole() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("echo.sock");
    let server = Server::start(&[&util::unixgram(&path)], 1);
    assert_eq!(server.endpoints[0], util::unixgram(&path));
    let client_path = dir.path().join("client.sock");
    let mut cmd = python();
    cmd.args([peer("datagram_client.py").as_str(), "unixgram"])
        .arg(&path)
        .arg(&client_path)
        .args(["0", "1", "65507", "100000", "250000"]);
    let out = util::run(cmd, b"");
    assert!(
        out.status.success(),
        "{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    assert_eq!(
        text(&out.stdout),
        "ok 0\nok 1\nok 65507\nok 100000\nok 250000\n"
    );
    // echokit's own client binds a temporary path, and removes it.
    let tmp = tempfile::tempdir().unwrap();
    let mut cmd = util::echokit();
    cmd.env("TMPDIR", tmp.path()).args([
        "echo-client",
        &server.endpoints[0],
        "-m",
        "one",
        "-m",
        "two",
        "-v",
    ]);
    let out = util::run(cmd, b"");
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "Received b'one'\nReceived b'two'\n");
    assert_stderr_has(&out, &format!("bound {}/echokit-", tmp.path().display()));
    assert_eq!(
        std::fs::read_dir(tmp.path()).unwrap().count(),
        0,
        "the client's path is removed"
    );
}

#[test]
fn an_unbound_unix_sender_is_logged_and_the_server_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("echo.sock");
    let server = Server::start(&[&util::unixgram(&path)], 1);
    let unbound = std::os::unix::net::UnixDatagram::unbound().unwrap();
    unbound.send_to(b"where to?", &path).unwrap();
    let line = server.stderr_line("dropped");
    assert!(line.contains("from an unbound Unix socket"), "{line}");
    let out = util::client(&[&server.endpoints[0]]);
    assert!(out.status.success(), "{}", text(&out.stderr));
}

#[test]
fn abstract_unix_datagram_names_need_no_file() {
    let name = format!("echokit-test-{}", std::process::id());
    let endpoint = format!("unixgram:@{name}");
    let server = Server::start(&[&endpoint], 1);
    assert_eq!(server.endpoints[0], endpoint);
    let out = util::client(&[&endpoint, "--count", "3", "--interval", "1ms"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("3 sent, 3 received"));
}

#[test]
fn one_server_serves_tcp_udp_and_unix_at_once_and_sums_them_up() {
    let dir = tempfile::tempdir().unwrap();
    let stream = util::unix(&dir.path().join("s.sock"));
    let dgram = util::unixgram(&dir.path().join("d.sock"));
    let mut server = Server::start(&["127.0.0.1:0", "udp://127.0.0.1:0", &stream, &dgram], 4);
    for endpoint in server.endpoints.clone() {
        let out = util::client(&[&endpoint, "-m", "mixed"]);
        assert!(out.status.success(), "{endpoint}: {}", text(&out.stderr));
        assert_eq!(text(&out.stdout), "Received b'mixed'\n", "{endpoint}");
    }
    server.signal(libc::SIGTERM);
    let summary = server.summary_after_clean_exit();
    assert!(
        summary.starts_with("served 2 connections and 2 datagrams (0 dropped), echoed 20 bytes"),
        "{summary}"
    );
    assert!(!dir.path().join("s.sock").exists());
    assert!(!dir.path().join("d.sock").exists());
}

#[test]
fn the_multi_connection_client_works_over_udp() {
    let server = Server::start(&["udp://127.0.0.1:0"], 1);
    let out = util::client(&["-c", "20", &server.endpoints[0]]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert_eq!(stdout.matches("echo ok").count(), 20, "{stdout}");
    assert!(
        stdout.contains("20 connections to udp://127.0.0.1:"),
        "{stdout}"
    );
}

/// A UDP peer on loopback that answers each datagram with what `answer`
/// makes of it (any number of replies), until the returned guard is dropped.
struct OddServer {
    addr: SocketAddr,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl OddServer {
    fn start(answer: fn(&[u8]) -> Vec<Vec<u8>>) -> OddServer {
        let socket = udp_socket("127.0.0.1:0");
        socket
            .set_read_timeout(Some(Duration::from_millis(50)))
            .unwrap();
        let addr = socket.local_addr().unwrap();
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut buf = vec![0; 65536];
            while !flag.load(std::sync::atomic::Ordering::Relaxed) {
                if let Ok((n, from)) = socket.recv_from(&mut buf) {
                    for reply in answer(&buf[..n]) {
                        socket.send_to(&reply, from).unwrap();
                    }
                }
            }
        });
        OddServer {
            addr,
            stop,
            thread: Some(thread),
        }
    }

    fn endpoint(&self) -> String {
        format!("udp://{}", self.addr)
    }
}

impl Drop for OddServer {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[test]
fn a_series_counts_duplicated_echoes_and_still_succeeds() {
    let twice = OddServer::start(|d| vec![d.to_vec(), d.to_vec()]);
    let out = util::client(&[&twice.endpoint(), "--count", "3", "--interval", "20ms"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains("3 sent, 3 received, 0.0% lost, 3 duplicated, 0 mismatched"),
        "{stdout}"
    );
}

#[test]
fn a_series_reports_mismatched_answers_and_loss() {
    // Answers every other datagram, and with the wrong bytes.
    let garbled = OddServer::start(|d| {
        if d.ends_with(b"#2") {
            vec![]
        } else {
            vec![d.iter().map(|b| b ^ 0x20).collect()]
        }
    });
    let out = util::client(&[
        &garbled.endpoint(),
        "--count",
        "3",
        "--interval",
        "1ms",
        // Long enough that no wrong answer comes too late to be seen.
        "--reply-timeout",
        "2s",
    ]);
    // Wrong answers are a protocol error (7), as for a single datagram,
    // not a time-out.
    assert_eq!(out.status.code(), Some(7), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains("3 sent, 0 received, 100.0% lost, 0 duplicated, 2 mismatched"),
        "{stdout}"
    );
}

#[test]
fn a_wrong_answer_is_not_taken_for_the_echo() {
    let wrong_then_right = OddServer::start(|d| vec![b"not it".to_vec(), d.to_vec()]);
    let out = util::client(&[&wrong_then_right.endpoint(), "-m", "hello"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "Received b'hello'\n");
    let only_wrong = OddServer::start(|_| vec![b"not it".to_vec()]);
    let out = util::client(&[
        &only_wrong.endpoint(),
        "-m",
        "hello",
        "--reply-timeout",
        "1s",
        "--retries",
        "1",
    ]);
    assert_eq!(out.status.code(), Some(7), "{}", text(&out.stderr));
    assert_stderr_has(
        &out,
        "2 answer(s) came back, but none was the datagram sent",
    );
}

#[test]
fn stdin_streams_over_udp_one_datagram_per_read() {
    let server = Server::start(&["udp://127.0.0.1:0"], 1);
    let input = pattern(200_000, 5);
    let mut cmd = util::echokit();
    cmd.args(["echo-client", &server.endpoints[0], "-"]);
    let out = util::run(cmd, &input);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(out.stdout == input, "the echo differs from the input");
}

#[test]
fn a_datagram_from_the_servers_own_port_gets_no_answer() {
    let server = Server::start(&["udp://127.0.0.1:0"], 1);
    // Another of this host's addresses, the server's port: as a forged
    // datagram from the server itself, or another echo server, would be.
    let same_port = udp_socket(&format!("127.0.0.2:{}", server.addr().port()));
    same_port.send_to(b"loop?", server.addr()).unwrap();
    assert_unanswered(server.addr(), &[&same_port]);
    let line = server.stderr_line("dropped");
    assert!(
        line.contains("from the port this server serves on"),
        "{line}"
    );
}

/// A Unix datagram socket bound at `path`, with a bounded read.
fn unix_dgram(path: &std::path::Path) -> std::os::unix::net::UnixDatagram {
    let s = std::os::unix::net::UnixDatagram::bind(path).unwrap();
    s.set_read_timeout(Some(LIMIT)).unwrap();
    s
}

#[test]
fn unix_echoes_go_to_each_sender_whatever_came_before_in_the_batch() {
    // Regression: reused receive headers kept the previous sender's address
    // length, so after an unbound sender the next one's echo went to the
    // sender before it, and a longer path than before was cut short.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("echo.sock");
    let _server = Server::start(&[&util::unixgram(&path)], 1);
    let a = unix_dgram(&dir.path().join("a.sock"));
    let mut buf = [0; 64];
    for round in 0..3 {
        a.send_to(b"from a", &path).unwrap();
        let n = a.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"from a", "round {round}");
        let unbound = std::os::unix::net::UnixDatagram::unbound().unwrap();
        unbound.send_to(b"unbound", &path).unwrap();
        let b = unix_dgram(&dir.path().join(format!("a-much-longer-name-{round}.sock")));
        b.send_to(b"from b", &path).unwrap();
        let n = b.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"from b", "round {round}");
    }
    // Nothing of b's reached a.
    a.set_nonblocking(true).unwrap();
    assert!(a.recv(&mut buf).is_err());
}

#[test]
fn a_senders_path_that_leads_to_the_server_itself_gets_no_echo() {
    // A sender could point its own path at the server's socket, by a
    // symbolic link or a hard link, and have the server answer itself for
    // ever.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("echo.sock");
    let server = Server::start(&[&util::unixgram(&path)], 1);
    let by_symlink = dir.path().join("symlink.sock");
    let s1 = unix_dgram(&by_symlink);
    std::fs::remove_file(&by_symlink).unwrap();
    std::os::unix::fs::symlink(&path, &by_symlink).unwrap();
    s1.send_to(b"loop", &path).unwrap();
    let by_hard_link = dir.path().join("hardlink.sock");
    let s2 = unix_dgram(&by_hard_link);
    std::fs::remove_file(&by_hard_link).unwrap();
    std::fs::hard_link(&path, &by_hard_link).unwrap();
    s2.send_to(b"loop", &path).unwrap();
    // An honest sender after them is answered: the two before were handled.
    let honest = unix_dgram(&dir.path().join("honest.sock"));
    honest.send_to(b"honest", &path).unwrap();
    let mut buf = [0; 64];
    let n = honest.recv(&mut buf).unwrap();
    assert_eq!(&buf[..n], b"honest");
    let line = server.stderr_line("dropped");
    assert!(line.contains("2 whose sender's path"), "{line}");
    assert!(line.contains("a socket of this server's"), "{line}");
}

#[test]
fn a_senders_path_may_lead_to_another_socket_of_its_own() {
    // The echo goes to the socket the sender's path names when the echo is
    // sent, if the sender owns it: here a symbolic link to another socket
    // of the same user, which the sender could write to itself.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("echo.sock");
    let _server = Server::start(&[&util::unixgram(&path)], 1);
    let other = unix_dgram(&dir.path().join("other.sock"));
    let sender_path = dir.path().join("sender.sock");
    let sender = unix_dgram(&sender_path);
    std::fs::remove_file(&sender_path).unwrap();
    std::os::unix::fs::symlink(dir.path().join("other.sock"), &sender_path).unwrap();
    sender.send_to(b"to my other socket", &path).unwrap();
    let mut buf = [0; 64];
    let n = other.recv(&mut buf).unwrap();
    assert_eq!(&buf[..n], b"to my other socket");
}

#[test]
fn two_unixgram_servers_set_against_each_other_are_stopped_by_the_loop_guard() {
    // A sender of the servers' own user puts a link to server B at its own
    // path and writes to A: A answers B, B answers A, and so on for ever,
    // but for the loop guard.
    let dir = tempfile::tempdir().unwrap();
    let (a_path, b_path) = (dir.path().join("a.sock"), dir.path().join("b.sock"));
    let mut a = Server::start(&[&util::unixgram(&a_path)], 1);
    let mut b = Server::start(&[&util::unixgram(&b_path)], 1);
    let sender_path = dir.path().join("sender.sock");
    let sender = unix_dgram(&sender_path);
    std::fs::remove_file(&sender_path).unwrap();
    std::fs::hard_link(&b_path, &sender_path).unwrap();
    sender.send_to(b"Hello, loop", &a_path).unwrap();
    // B counts A's reflections one datagram ahead of A counting B's (A's
    // first datagram to B was the sender's, fresh to both).
    let line = b.stderr_line("echoes in a row");
    assert!(line.contains("a.sock"), "{line}");
    assert!(line.contains("no answers to it for 1 s"), "{line}");
    let summaries = [&mut a, &mut b].map(|s| {
        s.signal(libc::SIGTERM);
        s.summary_after_clean_exit()
    });
    for summary in &summaries {
        let answered: u64 = summary
            .split_once(" connections and ")
            .and_then(|(_, rest)| rest.split(' ').next())
            .and_then(|n| n.replace(',', "").parse().ok())
            .unwrap_or_else(|| panic!("{summary}"));
        assert!(answered < 2000, "{summary}");
    }
}

#[test]
fn a_unix_datagram_one_byte_over_the_limit_is_dropped_and_the_limit_is_echoed() {
    const LIMIT_BYTES: usize = 256 * 1024;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("echo.sock");
    let server = Server::start(&[&util::unixgram(&path)], 1);
    let client = unix_dgram(&dir.path().join("client.sock"));
    socket2::SockRef::from(&client)
        .set_send_buffer_size(2 * LIMIT_BYTES)
        .unwrap();
    socket2::SockRef::from(&client)
        .set_recv_buffer_size(2 * LIMIT_BYTES)
        .unwrap();
    let big = pattern(LIMIT_BYTES + 1, 7);
    client.send_to(&big, &path).unwrap();
    client.send_to(&big[..LIMIT_BYTES], &path).unwrap();
    let mut buf = vec![0; LIMIT_BYTES + 2];
    let n = client.recv(&mut buf).unwrap();
    assert_eq!(
        n, LIMIT_BYTES,
        "the first echo back is the one at the limit"
    );
    assert!(buf[..n] == big[..LIMIT_BYTES]);
    let line = server.stderr_line("dropped");
    assert!(line.contains("1 larger than the 256 KiB"), "{line}");
}

#[test]
fn a_client_sending_the_same_12_bytes_every_100ms_gets_every_answer() {
    // The loop guard mutes peers that send each echo straight back; a
    // client that repeats itself at a human pace is not one.
    let server = Server::start(&["udp://127.0.0.1:0"], 1);
    let client = udp_socket("127.0.0.1:0");
    client.connect(server.addr()).unwrap();
    let mut buf = [0; 64];
    for i in 0..100 {
        client.send(b"Hello, world").unwrap();
        let n = client
            .recv(&mut buf)
            .unwrap_or_else(|e| panic!("answer {i}: {e}"));
        assert_eq!(&buf[..n], b"Hello, world");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn ctrl_c_removes_a_unixgram_clients_own_socket_file() {
    let dir = tempfile::tempdir().unwrap();
    // A peer that never answers.
    let silent = unix_dgram(&dir.path().join("silent.sock"));
    let tmp = tempfile::tempdir().unwrap();
    let mut cmd = util::echokit();
    cmd.env("TMPDIR", tmp.path()).args([
        "echo-client",
        &util::unixgram(&dir.path().join("silent.sock")),
        "--reply-timeout",
        "20s",
    ]);
    let mut child = cmd
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Its datagram arriving means its socket file exists.
    let mut buf = [0; 64];
    silent.recv(&mut buf).expect("the client's datagram");
    assert_eq!(std::fs::read_dir(tmp.path()).unwrap().count(), 1);
    // SAFETY: kill(2) on a child this test spawned and has not reaped.
    assert_eq!(
        unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGINT) },
        0
    );
    let status = util::wait_bounded(&mut child);
    assert_eq!(status.code(), Some(128 + libc::SIGINT));
    assert_eq!(
        std::fs::read_dir(tmp.path()).unwrap().count(),
        0,
        "its socket file is gone"
    );
}

/// A flood from one source against the rate limit: it needs the machine to
/// itself, one test at a time
/// (`cargo test --release -- --ignored serial:: --test-threads=1`).
mod serial {
    use super::*;

    #[test]
    #[ignore = "needs the machine to itself: cargo test --release -- --ignored serial:: --test-threads=1"]
    fn a_flood_from_one_source_is_held_to_its_rate_while_another_source_is_served() {
        let server = Server::start(&["udp://127.0.0.1:0", "--udp-rate-per-source", "100"], 1);
        let flooder = udp_socket("127.0.0.1:0");
        let started = Instant::now();
        let mut sent = 0;
        // Half a second of flood, in bursts the server's receive buffer holds.
        while started.elapsed() < Duration::from_millis(500) {
            for _ in 0..20 {
                flooder.send_to(b"flood", server.addr()).unwrap();
                sent += 1;
            }
            std::thread::yield_now();
        }
        // A second source, after the flood, is served. Its datagram may find
        // the server's receive queue full of flood and be lost, as any UDP
        // datagram can: it tries again, as a UDP client does.
        let other = udp_socket("127.0.0.2:0");
        let answer = send_until_answered(
            &other,
            b"other",
            server.addr(),
            started,
            "the second source was never served",
        );
        assert_eq!(answer, b"other");
        let elapsed = started.elapsed().as_secs_f64();
        // Every answer to the flood is queued by now: count them.
        let answers = queued_answers(&flooder);
        // 100 a second, plus a burst of a tenth of a second's worth.
        let most = (100.0 * elapsed) as u32 + 10 + 2;
        assert!(sent > 1000, "the flood was too thin to test: {sent}");
        assert!(
            (10..=most).contains(&answers),
            "{answers} answers to {sent} datagrams in {elapsed:.2}s"
        );
        let line = server.stderr_line("dropped");
        assert!(line.contains("over the per-source rate"), "{line}");
    }
}
