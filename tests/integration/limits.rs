//! Limits and timeouts of the stream servers: a connection over a limit is
//! closed at once, idle and stalled ones at their timeout, and a full
//! descriptor table neither spins the server nor locks new clients out.

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use crate::metrics::{metrics_addr, scrape, value};
use crate::util::{LIMIT, Server, connect, pattern};

/// Sends `msg` and reads its echo.
fn echo(stream: &mut TcpStream, msg: &[u8]) {
    stream.write_all(msg).expect("send");
    let mut got = vec![0; msg.len()];
    stream.read_exact(&mut got).expect("the echo");
    assert_eq!(got, msg);
}

/// Whether the server ended the connection without serving it: end of
/// stream (or a reset) on the first read, nothing echoed.
fn closed_at_once(stream: &mut TcpStream) -> bool {
    let _ = stream.write_all(b"x");
    let mut buf = [0; 1];
    match stream.read(&mut buf) {
        Ok(0) => true,
        Err(e) if e.kind() == ErrorKind::ConnectionReset => true,
        Ok(_) => false,
        Err(e) => panic!("neither served nor closed: {e}"),
    }
}

/// Connects until a connection is served (the server frees a place as it
/// sees a client leave); bounded by util::LIMIT.
fn served_again(addr: SocketAddr) -> TcpStream {
    let started = Instant::now();
    loop {
        let mut stream = connect(addr);
        if !closed_at_once(&mut stream) {
            return stream;
        }
        assert!(started.elapsed() < LIMIT, "not served within {LIMIT:?}");
    }
}

#[test]
fn over_max_conns_a_connection_is_closed_at_once_and_counted() {
    let server = Server::start(
        &[
            "127.0.0.1:0",
            "--max-conns",
            "2",
            "--metrics",
            "127.0.0.1:0",
        ],
        1,
    );
    let metrics = metrics_addr(&server.stdout_line());
    let mut a = connect(server.addr());
    echo(&mut a, b"a");
    let mut b = connect(server.addr());
    echo(&mut b, b"b");
    let mut c = connect(server.addr());
    assert!(
        closed_at_once(&mut c),
        "the third is closed, not left waiting"
    );
    let line = server.stderr_line("over --max-conns");
    assert!(line.contains("(2 open); closed at once"), "{line}");
    let counts = scrape(metrics);
    let rejected = r#"echokit_connections_rejected_total{reason="max_conns"}"#;
    assert_eq!(value(&counts, rejected), 1.0);
    assert_eq!(value(&counts, "echokit_connections_active"), 2.0);
    // The first two are served still, and a place that frees up is taken.
    echo(&mut b, b"still");
    drop(a);
    let mut d = served_again(server.addr());
    echo(&mut d, b"d");
}

#[test]
fn over_max_conns_per_ip_only_that_address_is_turned_away() {
    let server = Server::start(
        &[
            "tcp://127.0.0.1:0",
            "tcp://[::1]:0",
            "--max-conns-per-ip",
            "1",
        ],
        2,
    );
    let (v4, v6) = (server.addrs[0], server.addrs[1]);
    let mut first = connect(v4);
    echo(&mut first, b"one");
    let mut second = connect(v4);
    assert!(closed_at_once(&mut second));
    server.stderr_line("over --max-conns-per-ip (1 open from its address)");
    // Another address has its own count.
    let mut other = connect(v6);
    echo(&mut other, b"other");
}

#[test]
fn an_idle_connection_is_closed_at_the_idle_timeout_and_a_busy_one_is_not() {
    let server = Server::start(&["127.0.0.1:0", "--idle-timeout", "1s"], 1);
    let started = Instant::now();
    let mut quiet = connect(server.addr());
    let mut busy = connect(server.addr());
    echo(&mut busy, b"hello");
    // The busy client echoes every 100 ms for well past the timeout: a gap
    // ten times that would be needed to close it.
    let pacer = std::thread::spawn(move || {
        for _ in 0..20 {
            std::thread::sleep(Duration::from_millis(100));
            echo(&mut busy, b"tick");
        }
        busy
    });
    let mut buf = [0; 1];
    assert_eq!(quiet.read(&mut buf).expect("an orderly end"), 0);
    let took = started.elapsed();
    assert!(
        took >= Duration::from_secs(1),
        "closed after {took:?}, before its timeout"
    );
    server.stderr_line("nothing sent or received for 1 s (--idle-timeout); closing");
    let mut busy = pacer.join().expect("the busy client was served throughout");
    echo(&mut busy, b"and after");
}

#[test]
fn a_client_that_does_not_read_is_closed_at_the_stall_timeout_and_keeps_what_was_sent() {
    let server = Server::start(
        &[
            "127.0.0.1:0",
            "--stall-timeout",
            "500ms",
            "--threads",
            "1",
            "--metrics",
            "127.0.0.1:0",
        ],
        1,
    );
    let metrics = metrics_addr(&server.stdout_line());
    let mut hog = connect(server.addr());
    hog.set_nonblocking(true).unwrap();
    // Send until nothing more is taken: the server has stopped reading,
    // its echo waiting for a client that does not read.
    let stream = pattern(64 * 1024 * 1024, 7);
    let mut sent = 0;
    let deadline = Instant::now() + LIMIT;
    let mut stuck_since: Option<Instant> = None;
    while sent < stream.len() {
        match hog.write(&stream[sent..(sent + 65536).min(stream.len())]) {
            Ok(n) => {
                sent += n;
                stuck_since = None;
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => {
                // Taken nothing for 100 ms in a row: the pipe is full.
                let since = *stuck_since.get_or_insert_with(Instant::now);
                if since.elapsed() > Duration::from_millis(100) {
                    break;
                }
                std::thread::yield_now();
            }
            Err(e) => panic!("send: {e}"),
        }
        assert!(
            Instant::now() < deadline,
            "the server never stopped reading"
        );
    }
    assert!(
        sent < stream.len(),
        "the server read 64 MiB it could not echo"
    );
    // Meanwhile another client is served.
    let mut good = connect(server.addr());
    echo(&mut good, b"Hello, world");
    // Closed (within util::LIMIT: so not never) for its stall.
    let line = server.stderr_line("--stall-timeout); closing");
    assert!(
        line.contains("has not read what it was sent for 500 ms"),
        "{line}"
    );
    // What the server had sent arrives whole, then an orderly end: a
    // prefix of the stream, byte for byte.
    hog.set_nonblocking(false).unwrap();
    let mut got = Vec::new();
    hog.read_to_end(&mut got)
        .expect("the echo so far, then end of stream");
    assert!(!got.is_empty() && got.len() <= sent);
    assert!(
        got == stream[..got.len()],
        "the echo is the stream's prefix"
    );
    echo(&mut good, b"still served");
    let counts = scrape(metrics);
    let stalled = r#"echokit_connections_timed_out_total{reason="stall"}"#;
    assert_eq!(value(&counts, stalled), 1.0);
}

#[test]
fn out_of_descriptors_the_server_closes_the_queue_and_serves_again_once_they_free_up() {
    // Few descriptors: the server runs out after a couple of dozen clients.
    let mut cmd = crate::util::echokit_with_nofile(40);
    cmd.args(["echo-server", "127.0.0.1:0", "--threads", "1"])
        .args(["--metrics", "127.0.0.1:0"]);
    let server = Server::spawn(cmd, 1);
    let addr = server.addr();
    let metrics = metrics_addr(&server.stdout_line());
    let clients: Vec<TcpStream> = (0..60).map(|_| connect(addr)).collect();
    let (mut served, mut closed) = (Vec::new(), 0);
    for mut client in clients {
        if closed_at_once(&mut client) {
            closed += 1;
        } else {
            served.push(client);
        }
    }
    assert!(served.len() >= 20, "served only {}", served.len());
    assert!(
        closed >= 1,
        "none closed: the descriptor table never filled"
    );
    // The first time the table is full, the queue may be empty (the server
    // kept up with the connects): Linux fails `accept` with EMFILE before it
    // looks at the queue, and the line says the reserve found nothing.
    let line = server.stderr_line("accept: EMFILE");
    assert!(
        line.contains("queued connection") && line.contains("with the reserve descriptor")
            || line.contains("nothing was queued for the reserve descriptor to close"),
        "{line}"
    );
    assert!(line.contains("accepting again in"), "{line}");
    // The connections it has are served all along.
    for client in &mut served {
        echo(client, b"still here");
    }
    let counts = scrape(metrics);
    let no_fds = r#"echokit_connections_rejected_total{reason="no_descriptors"}"#;
    assert_eq!(value(&counts, no_fds), f64::from(closed));
    assert!(value(&counts, "echokit_accept_backoffs_total") >= 1.0);
    let emfile = r#"echokit_errors_total{class="accept_descriptors"}"#;
    assert!(value(&counts, emfile) >= 1.0);
    // Descriptors free up: a new client is served (the server retries
    // `accept` on a backoff of its own; benches/reliability.sh measures
    // how soon).
    for client in &mut served {
        client.shutdown(std::net::Shutdown::Write).unwrap();
        let mut rest = Vec::new();
        client.read_to_end(&mut rest).unwrap();
    }
    drop(served);
    let mut late = served_again(addr);
    echo(&mut late, b"Hello, world");
}

#[test]
fn out_of_descriptors_the_queue_of_every_listener_is_closed_not_only_the_first() {
    // Regression: the reserve descriptor closed only the queue of the
    // listener whose `accept` failed, and with no descriptor left every
    // `accept` fails (EMFILE comes before the queue is looked at), the
    // first listener's first: a client of the second waited for ever.
    let mut cmd = crate::util::echokit_with_nofile(40);
    cmd.args(["echo-server", "tcp://127.0.0.1:0", "tcp://127.0.0.1:0"])
        .args(["--threads", "1"]);
    let server = Server::spawn(cmd, 2);
    let (first, second) = (server.addrs[0], server.addrs[1]);
    // Fill the descriptor table through the first listener.
    let mut served = Vec::new();
    loop {
        let mut client = connect(first);
        if closed_at_once(&mut client) {
            break;
        }
        served.push(client);
        assert!(served.len() < 40, "the descriptor table never filled");
    }
    server.stderr_line("accept: EMFILE");
    // A client of the second listener gets an end at once too, not a wait.
    let mut late = connect(second);
    let _ = late.write_all(b"x");
    let mut buf = [0; 1];
    match late.read(&mut buf) {
        Ok(0) => {}
        Err(e) if e.kind() == ErrorKind::ConnectionReset => {}
        other => panic!("the second listener's client was left waiting: {other:?}"),
    }
    for client in &mut served {
        echo(client, b"still here");
    }
}
