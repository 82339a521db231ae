//! The reliability suite's scenarios for limits and running out: a storm
//! of clients against a full descriptor table, clients that never read,
//! and the connection limits. Each prints its figures as `RELIABILITY`
//! lines for `benches/reliability.sh`; the heavy ones are `#[ignore]`.

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::util::{LIMIT, Server, connect};

/// What became of one connection: served (its byte echoed), or ended by
/// the server without an echo.
#[derive(Debug, PartialEq, Eq)]
enum Knock {
    Served,
    TurnedAway,
    /// Neither within the read timeout.
    Unanswered,
}

fn knock(stream: &mut TcpStream) -> Knock {
    if stream.write_all(b"k").is_err() {
        return Knock::TurnedAway;
    }
    let mut buf = [0; 1];
    match stream.read(&mut buf) {
        Ok(1) => Knock::Served,
        Ok(_) => Knock::TurnedAway,
        Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
            Knock::Unanswered
        }
        Err(_) => Knock::TurnedAway,
    }
}

fn connect_from(local: &str, addr: SocketAddr) -> TcpStream {
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    let local: SocketAddr = format!("{local}:0").parse().unwrap();
    socket.bind(&local.into()).unwrap();
    socket.connect_timeout(&addr.into(), LIMIT).unwrap();
    let stream: TcpStream = socket.into();
    stream.set_read_timeout(Some(LIMIT)).unwrap();
    stream
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[i]
}

fn ms(d: Duration) -> String {
    format!("{:.2}", d.as_secs_f64() * 1000.0)
}

#[test]
#[ignore = "heavy (200 clients for 15 s): run by benches/reliability.sh"]
fn reliability_descriptor_storm() {
    let mut cmd = Command::new("prlimit");
    cmd.arg("--nofile=64")
        .arg(env!("CARGO_BIN_EXE_echokit"))
        .args(["echo-server", "127.0.0.1:0"]);
    let server = Server::spawn(cmd, 1);
    let addr = server.addr();
    // Fill the descriptor table: clients until one is turned away.
    let mut holders = Vec::new();
    loop {
        let mut client = connect(addr);
        match knock(&mut client) {
            Knock::Served => holders.push(client),
            Knock::TurnedAway => break,
            Knock::Unanswered => panic!("a client neither served nor turned away"),
        }
        assert!(holders.len() < 64, "the table never filled");
    }
    // 200 clients knock: connect, send a byte, wait for the echo or the end.
    let stop = Arc::new(AtomicBool::new(false));
    let counts: Arc<[AtomicU64; 4]> = Arc::new(Default::default());
    let knockers: Vec<_> = (0..200)
        .map(|_| {
            let (stop, counts) = (Arc::clone(&stop), Arc::clone(&counts));
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    let Ok(mut s) = TcpStream::connect_timeout(&addr, Duration::from_secs(3))
                    else {
                        counts[3].fetch_add(1, Ordering::Relaxed);
                        continue;
                    };
                    s.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
                    let i = match knock(&mut s) {
                        Knock::Served => 0,
                        Knock::TurnedAway => 1,
                        Knock::Unanswered => 2,
                    };
                    counts[i].fetch_add(1, Ordering::Relaxed);
                    drop(s);
                    // A knock every 50 ms at most per client.
                    std::thread::sleep(Duration::from_millis(50));
                }
            })
        })
        .collect();
    // Two seconds for the back-off to settle, then a 10 s window.
    std::thread::sleep(Duration::from_secs(2));
    let window = Duration::from_secs(10);
    server.stderr_now();
    let cpu0 = server.cpu_time();
    let turned0 = counts[1].load(Ordering::Relaxed);
    let started = Instant::now();
    let mut slowest_holder = Duration::ZERO;
    while started.elapsed() < window {
        // The open connections are served all along.
        for holder in &mut holders {
            let t = Instant::now();
            assert_eq!(
                knock(holder),
                Knock::Served,
                "a held connection was not served"
            );
            slowest_holder = slowest_holder.max(t.elapsed());
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    let took = started.elapsed().as_secs_f64();
    let cpu = (server.cpu_time() - cpu0).as_secs_f64() / took * 100.0;
    let log_lines = server.stderr_now().len() as f64 / took;
    let turned_away = (counts[1].load(Ordering::Relaxed) - turned0) as f64 / took;
    // Descriptors free up: a new client is served within 2 s.
    let held = holders.len();
    drop(holders);
    let freed = Instant::now();
    let recovery = loop {
        let mut client = connect(addr);
        client
            .set_read_timeout(Some(Duration::from_secs(3)))
            .unwrap();
        if knock(&mut client) == Knock::Served {
            break freed.elapsed();
        }
        assert!(freed.elapsed() < LIMIT, "never served again");
    };
    stop.store(true, Ordering::Relaxed);
    for k in knockers {
        k.join().unwrap();
    }
    println!(
        "RELIABILITY descriptor-storm nofile=64 held={held} knockers=200 cpu_percent={cpu:.2} \
         turned_away_per_s={turned_away:.0} log_lines_per_s={log_lines:.2} \
         slowest_held_echo_ms={} recovery_ms={} unanswered={} connect_failures={}",
        ms(slowest_holder),
        ms(recovery),
        counts[2].load(Ordering::Relaxed),
        counts[3].load(Ordering::Relaxed),
    );
    assert!(cpu < 5.0, "{cpu:.2}% CPU while out of descriptors");
    assert!(log_lines <= 2.0, "{log_lines:.2} log lines a second");
    assert!(
        recovery < Duration::from_secs(2),
        "served {recovery:?} after"
    );
    assert_eq!(
        counts[2].load(Ordering::Relaxed),
        0,
        "a knock left unanswered for 3 s"
    );
}

#[test]
#[ignore = "heavy (50 clients fill their buffers): run by benches/reliability.sh"]
fn reliability_never_reading_clients() {
    let server = Server::start(&["127.0.0.1:0", "--stall-timeout", "3s", "-q"], 1);
    let addr = server.addr();
    let (rss0, fds0) = (server.rss_bytes(), server.open_fds());
    // A well-behaved client echoes 64 bytes in a loop throughout.
    let stop = Arc::new(AtomicBool::new(false));
    let good = {
        let stop = Arc::clone(&stop);
        std::thread::spawn(move || {
            let mut client = connect(addr);
            let msg = [0x42u8; 64];
            let mut got = [0u8; 64];
            let mut times = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                let t = Instant::now();
                client.write_all(&msg).unwrap();
                client.read_exact(&mut got).unwrap();
                times.push(t.elapsed());
                assert_eq!(got, msg);
                std::thread::sleep(Duration::from_millis(2));
            }
            times
        })
    };
    // 50 clients send until nothing more is taken, and never read.
    let mut hogs: Vec<(TcpStream, Instant)> = (0..50)
        .map(|_| {
            let s = connect(addr);
            s.set_nonblocking(true).unwrap();
            (s, Instant::now())
        })
        .collect();
    let chunk = vec![0x5a; 65536];
    let filling = Instant::now();
    loop {
        let mut moving = false;
        for (hog, last) in &mut hogs {
            match hog.write(&chunk) {
                Ok(_) => {
                    *last = Instant::now();
                    moving = true;
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => {
                    if last.elapsed() < Duration::from_millis(200) {
                        moving = true;
                    }
                }
                Err(e) => panic!("a client that does not read was cut off early: {e}"),
            }
        }
        if !moving {
            break;
        }
        assert!(filling.elapsed() < LIMIT, "the clients' sends never filled");
        std::thread::yield_now();
    }
    let stalled = hogs.iter().map(|(_, last)| *last).min().unwrap();
    let peak = server.rss_bytes();
    // Closed at the stall timeout: the server's descriptors go back to
    // what it held before, plus the good client.
    let closed_after = loop {
        if server.open_fds() <= fds0 + 1 {
            break stalled.elapsed();
        }
        assert!(
            stalled.elapsed() < LIMIT,
            "the clients that never read were never closed"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    stop.store(true, Ordering::Relaxed);
    let mut times = good.join().expect("the good client was served throughout");
    times.sort();
    let growth = peak.saturating_sub(rss0) as f64 / (1024.0 * 1024.0);
    let (p50, p99, max) = (
        percentile(&times, 0.5),
        percentile(&times, 0.99),
        *times.last().unwrap(),
    );
    println!(
        "RELIABILITY never-reading clients=50 stall_timeout_s=3 rss_growth_mib={growth:.2} \
         closed_after_s={:.2} good_echoes={} good_p50_ms={} good_p99_ms={} good_max_ms={}",
        closed_after.as_secs_f64(),
        times.len(),
        ms(p50),
        ms(p99),
        ms(max),
    );
    assert!(growth < 16.0, "memory grew {growth:.2} MiB");
    assert!(
        closed_after < Duration::from_secs(5),
        "closed {closed_after:?} after they stalled"
    );
    assert!(
        p99 < Duration::from_millis(10),
        "the good client's p99 was {p99:?}"
    );
}

#[test]
fn reliability_connection_limits() {
    let server = Server::start(
        &[
            "127.0.0.1:0",
            "--max-conns",
            "100",
            "--max-conns-per-ip",
            "50",
            "-q",
        ],
        1,
    );
    let addr = server.addr();
    let mut open = Vec::new();
    for from in ["127.0.0.1", "127.0.0.2"] {
        for _ in 0..50 {
            let mut client = connect_from(from, addr);
            assert_eq!(knock(&mut client), Knock::Served, "from {from}");
            open.push(client);
        }
    }
    // Over the per-IP limit (127.0.0.1 has 50), then over the total (100
    // open): each is ended at once.
    let mut rejections = Vec::new();
    for from in ["127.0.0.1", "127.0.0.3"] {
        for _ in 0..100 {
            let t = Instant::now();
            let mut client = connect_from(from, addr);
            assert_eq!(knock(&mut client), Knock::TurnedAway, "from {from}");
            rejections.push(t.elapsed());
        }
    }
    rejections.sort();
    // Those open are served all along; a place freed is taken.
    for client in &mut open {
        assert_eq!(knock(client), Knock::Served);
    }
    for mut client in open.drain(..10) {
        client.shutdown(std::net::Shutdown::Write).unwrap();
        let mut rest = Vec::new();
        client.read_to_end(&mut rest).unwrap();
    }
    let freed = Instant::now();
    let mut taken = 0;
    while taken < 10 {
        let mut client = connect_from("127.0.0.3", addr);
        if knock(&mut client) == Knock::Served {
            taken += 1;
            open.push(client);
        }
        assert!(freed.elapsed() < LIMIT, "freed places were not taken");
    }
    println!(
        "RELIABILITY connection-limits max_conns=100 max_per_ip=50 rejected={} \
         reject_p50_ms={} reject_max_ms={} freed_places_taken={taken}",
        rejections.len(),
        ms(percentile(&rejections, 0.5)),
        ms(*rejections.last().unwrap()),
    );
}
