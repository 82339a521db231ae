//! `--metrics`: the servers' counters scraped over HTTP and checked with
//! Prometheus's own `promtool`; `--log-format json` read line by line.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::os::unix::net::UnixDatagram;
use std::process::{Command, Stdio};

use wait_timeout::ChildExt;

use crate::util::{self, LIMIT, Server, text};

/// The address of a `metrics on http://ADDR/metrics` line.
pub fn metrics_addr(line: &str) -> SocketAddr {
    line.strip_prefix("metrics on http://")
        .and_then(|rest| rest.strip_suffix("/metrics"))
        .unwrap_or_else(|| panic!("not a metrics line: {line:?}"))
        .parse()
        .unwrap_or_else(|e| panic!("{line:?}: {e}"))
}

/// `GET /metrics` over a plain TCP connection; returns the body of a 200
/// answer in the Prometheus text format.
pub fn scrape(addr: SocketAddr) -> String {
    let mut s = util::connect(addr);
    write!(s, "GET /metrics HTTP/1.1\r\nHost: {addr}\r\n\r\n").expect("send the request");
    let mut response = String::new();
    s.read_to_string(&mut response).expect("read the response");
    let (head, body) = response
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("no end of head in {response:?}"));
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
    assert!(
        head.contains("Content-Type: text/plain; version=0.0.4"),
        "{head}"
    );
    body.to_string()
}

/// Runs `promtool check metrics` on an exposition: its exit status and what
/// it said.
fn promtool(exposition: &str) -> (std::process::ExitStatus, String) {
    let spawned = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    let mut child = match spawned {
        Ok(child) => child,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => panic!(
            "promtool is not installed: it comes with Debian's `prometheus` package \
             (apt-get install prometheus; .ci/run installs it)"
        ),
        Err(e) => panic!("cannot run promtool: {e}"),
    };
    let mut stdin = child.stdin.take().expect("stdin is piped");
    stdin
        .write_all(exposition.as_bytes())
        .expect("write to promtool");
    drop(stdin);
    let Some(status) = child.wait_timeout(LIMIT).expect("wait for promtool") else {
        let _ = child.kill();
        panic!("promtool did not finish within {LIMIT:?}");
    };
    let mut said = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut said)
        .unwrap();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut said)
        .unwrap();
    (status, said)
}

/// Panics with what `promtool check metrics` said of an exposition unless
/// it found nothing to say (no error, no lint warning).
pub fn promtool_check(exposition: &str) {
    let (status, said) = promtool(exposition);
    assert!(
        status.success() && said.trim().is_empty(),
        "promtool check metrics: {status}: {said}\n--- exposition ---\n{exposition}"
    );
}

/// The value of the sample written exactly `sample` (a name, with its
/// labels if it has some).
pub fn value(exposition: &str, sample: &str) -> f64 {
    exposition
        .lines()
        .find_map(|l| l.strip_prefix(sample)?.strip_prefix(' '))
        .unwrap_or_else(|| panic!("no sample {sample} in\n{exposition}"))
        .parse()
        .unwrap_or_else(|e| panic!("{sample}: {e}"))
}

#[test]
fn echo_server_metrics_count_datagrams() {
    echo_server_metrics(|_| {});
}

/// An echo server on TCP, UDP and unixgram, its counters before and after
/// it serves each; `check` is given each exposition.
fn echo_server_metrics(check: fn(&str)) {
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("echo.sock");
    let server = Server::start(
        &[
            "127.0.0.1:0",
            "udp://127.0.0.1:0",
            &util::unixgram(&sock),
            "--metrics",
            "127.0.0.1:0",
        ],
        3,
    );
    let metrics = metrics_addr(&server.stdout_line());
    let (tcp, udp) = (server.addrs[0], server.addrs[1]);

    // Nothing served yet: every counter is there, at zero.
    let before = scrape(metrics);
    check(&before);
    assert_eq!(value(&before, "echokit_datagrams_received_total"), 0.0);
    assert_eq!(value(&before, "echokit_connections_active"), 0.0);
    assert!(
        before.contains("echokit_server_info{server=\"echo\","),
        "{before}"
    );
    assert!(!before.contains("echokit_app_"), "{before}");

    // A UDP echo of 5 bytes.
    let client = UdpSocket::bind("127.0.0.1:0").unwrap();
    client.set_read_timeout(Some(LIMIT)).unwrap();
    client.send_to(b"hello", udp).unwrap();
    let mut buf = [0; 64];
    assert_eq!(client.recv_from(&mut buf).unwrap().0, 5);
    // A Unix datagram from an unbound socket has nowhere to go back to: dropped.
    UnixDatagram::unbound()
        .unwrap()
        .send_to(b"lost", &sock)
        .unwrap();
    // A bound one is answered; the loop answers in order, so the dropped
    // one has been counted once this echo is back.
    let bound = UnixDatagram::bind(dir.path().join("client.sock")).unwrap();
    bound.set_read_timeout(Some(LIMIT)).unwrap();
    bound.send_to(b"back", &sock).unwrap();
    assert_eq!(bound.recv(&mut buf).unwrap(), 4);
    // A TCP echo of 7 bytes, finished before the scrape.
    let mut stream = util::connect(tcp);
    stream.write_all(b"stream!").unwrap();
    stream.shutdown(std::net::Shutdown::Write).unwrap();
    assert_eq!(util::read_to_end(&mut stream), b"stream!");

    // The server closes its side right after its FIN: scrape until the
    // connection is no longer open.
    let started = std::time::Instant::now();
    let after = loop {
        let after = scrape(metrics);
        if value(&after, "echokit_connections_active") == 0.0 {
            break after;
        }
        assert!(
            started.elapsed() < LIMIT,
            "the connection stays active: {after}"
        );
    };
    check(&after);
    assert_eq!(value(&after, "echokit_datagrams_received_total"), 3.0);
    assert_eq!(value(&after, "echokit_datagrams_sent_total"), 2.0);
    assert_eq!(value(&after, "echokit_datagrams_dropped_total"), 1.0);
    assert_eq!(value(&after, "echokit_connections_accepted_total"), 1.0);
    // The stream's 7 bytes each way beside the datagrams' 13 in and 9 out.
    assert_eq!(value(&after, "echokit_received_bytes_total"), 20.0);
    assert_eq!(value(&after, "echokit_sent_bytes_total"), 16.0);
}

#[test]
fn app_server_metrics_have_the_latency_histogram() {
    app_server_metrics(|_| {});
}

/// An app server's exposition after one request; `check` is given it.
fn app_server_metrics(check: fn(&str)) {
    let mut cmd = util::echokit();
    cmd.args([
        "app-server",
        "127.0.0.1:0",
        "--metrics",
        "tcp://127.0.0.1:0",
    ]);
    let server = Server::spawn(cmd, 1);
    let metrics = metrics_addr(&server.stdout_line());
    let out = util::echokit_run(&[
        "app-client",
        &server.addr().to_string(),
        "search",
        "morpheus",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));

    let exposition = scrape(metrics);
    check(&exposition);
    assert!(exposition.contains("echokit_server_info{server=\"app\","));
    assert!(!exposition.contains("echokit_datagrams_"), "{exposition}");
    let buckets: Vec<&str> = exposition
        .lines()
        .filter(|l| l.starts_with("echokit_app_request_duration_seconds_bucket{"))
        .collect();
    assert_eq!(
        buckets.len(),
        echokit::metrics::LATENCY_BOUNDS.len() + 1,
        "{exposition}"
    );
    assert!(
        buckets[buckets.len() - 1]
            .starts_with("echokit_app_request_duration_seconds_bucket{le=\"+Inf\"} ")
    );
    let count = value(&exposition, "echokit_app_request_duration_seconds_count");
    let inf = value(
        &exposition,
        "echokit_app_request_duration_seconds_bucket{le=\"+Inf\"}",
    );
    assert_eq!(count, inf);
    value(&exposition, "echokit_app_request_duration_seconds_sum");
    assert_eq!(value(&exposition, "echokit_app_requests_total"), 1.0);
    assert_eq!(count, 1.0);
}

#[test]
fn metrics_stop_with_the_server() {
    let mut server = Server::start(&["127.0.0.1:0", "--metrics", "127.0.0.1:0"], 1);
    let metrics = metrics_addr(&server.stdout_line());
    scrape(metrics);
    server.signal(libc::SIGTERM);
    server.summary_after_clean_exit();
    assert!(
        TcpStream::connect_timeout(&metrics, LIMIT).is_err(),
        "the metrics port still answers after the server exited"
    );
}

#[test]
fn metrics_on_an_address_in_use_fails_before_serving() {
    let holder = TcpListener::bind("127.0.0.1:0").unwrap();
    let taken = holder.local_addr().unwrap().to_string();
    let out = util::echokit_run(&["echo-server", "127.0.0.1:0", "--metrics", &taken]);
    assert_eq!(out.status.code(), Some(6), "{}", text(&out.stderr));
    assert!(out.stdout.is_empty(), "{}", text(&out.stdout));
    util::assert_stderr_has(&out, "cannot serve --metrics");
    util::assert_stderr_has(&out, "address in use");
}

/// Checks that every line is one JSON object with a timestamp, a level and
/// a message; returns the objects.
fn json_lines(lines: &[String]) -> Vec<serde_json::Map<String, serde_json::Value>> {
    lines
        .iter()
        .map(|line| {
            let value: serde_json::Value =
                serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
            let serde_json::Value::Object(object) = value else {
                panic!("not an object: {line}");
            };
            let timestamp = object["timestamp"].as_str().unwrap_or_default();
            assert!(
                humantime::parse_rfc3339(timestamp).is_ok(),
                "no RFC 3339 timestamp: {line}"
            );
            let level = object["level"].as_str().unwrap_or_default();
            assert!(
                ["TRACE", "DEBUG", "INFO", "WARN", "ERROR"].contains(&level),
                "no level: {line}"
            );
            assert!(object["message"].is_string(), "no message: {line}");
            object
        })
        .collect()
}

#[test]
fn log_format_json_writes_one_object_a_line() {
    let mut server = Server::start(&["--log-format", "json", "127.0.0.1:0"], 1);
    let out = util::client(&[&server.addr().to_string()]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    // A connection left open keeps the server draining after SIGTERM, so
    // that a second interrupt has something to cut short.
    let mut open = util::connect(server.addr());
    open.write_all(b"x").unwrap();
    let mut echo = [0; 1];
    open.read_exact(&mut echo).unwrap();
    server.signal(libc::SIGTERM);
    // The signal thread logs this, then asks for shutdown, then takes the
    // next signal: the SIGINT below is the second interrupt.
    let mut lines = server.stderr_until("SIGTERM");
    server.signal(libc::SIGINT);
    assert_eq!(
        server.wait().code(),
        Some(130),
        "a second interrupt exits at once"
    );
    lines.extend(server.rest_of_stderr());
    let objects = json_lines(&lines);
    let messages: Vec<&str> = objects
        .iter()
        .filter_map(|o| o["message"].as_str())
        .collect();
    for needle in ["SIGTERM", "second interrupt"] {
        assert!(
            messages.iter().any(|m| m.contains(needle)),
            "no {needle:?} in {lines:#?}"
        );
    }
    // The peer and the connection's number are fields of their own, not
    // words in the message.
    assert!(
        objects.iter().any(|o| o["message"] == "connected"
            && o["peer"]
                .as_str()
                .is_some_and(|p| p.starts_with("127.0.0.1:"))
            && o["conn"].as_u64().is_some_and(|n| n >= 1)),
        "no connected line with peer and conn fields in {lines:#?}"
    );
}

#[test]
fn log_format_json_writes_the_last_error_as_an_object_too() {
    let holder = TcpListener::bind("127.0.0.1:0").unwrap();
    let taken = holder.local_addr().unwrap().to_string();
    let out = util::echokit_run(&["--log-format", "json", "echo-server", &taken]);
    assert_eq!(out.status.code(), Some(6), "{}", text(&out.stderr));
    let lines: Vec<String> = text(&out.stderr).lines().map(String::from).collect();
    let objects = json_lines(&lines);
    let last = objects.last().expect("an error line");
    assert_eq!(last["level"], "ERROR");
    assert!(
        last["message"].as_str().unwrap().contains("address in use"),
        "{lines:#?}"
    );
}

#[test]
fn a_scrape_queued_while_descriptors_ran_out_is_answered_once_they_free_up() {
    // Few descriptors: slow scrapers that have sent half a request (so
    // they keep their places, 8 from each of 5 loopback addresses) fill the
    // descriptor table; the last scrape, whole, waits in the endpoint's
    // listen queue.
    let mut cmd = util::echokit_with_nofile(32);
    cmd.args(["echo-server", "127.0.0.1:0", "--threads", "1"])
        .args(["--metrics", "127.0.0.1:0"]);
    let server = Server::spawn(cmd, 1);
    let metrics = metrics_addr(&server.stdout_line());
    let slow: Vec<TcpStream> = (2..7u8)
        .flat_map(|host| (0..8).map(move |_| host))
        .map(|host| {
            let s = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)
                .expect("a socket");
            s.bind(&SocketAddr::from(([127, 0, 0, host], 0)).into())
                .expect("bind a loopback address");
            s.connect_timeout(&metrics.into(), LIMIT).expect("connect");
            let mut s = TcpStream::from(s);
            s.write_all(b"GET /metr").expect("half a request");
            s
        })
        .collect();
    let mut last = util::connect(metrics);
    write!(last, "GET /metrics HTTP/1.1\r\n\r\n").unwrap();
    // The slow ones leave: the endpoint closes them, and has descriptors
    // to spare again.
    drop(slow);
    // The last one, queued all along, is answered now, not only when
    // another scraper connects.
    let mut answer = String::new();
    let read = last.read_to_string(&mut answer);
    assert!(
        read.is_ok() && answer.starts_with("HTTP/1.1 200 OK\r\n"),
        "the queued scrape got no answer within {LIMIT:?} of descriptors freeing up: \
         {read:?} {answer:?}"
    );
}

#[test]
fn a_place_taken_from_an_answered_scrape_is_no_eviction() {
    // An answered scrape whose client has not closed lingers on its place
    // (for up to serve::LINGER, 1 s). A newcomer from an address at its
    // limit may take that place, but the crowd line counts only the
    // evictions of connections that sent nothing; it counted these too.
    let server = Server::start(&["127.0.0.1:0", "--metrics", "127.0.0.1:0"], 1);
    let metrics = metrics_addr(&server.stdout_line());
    let scrape = |s: &mut TcpStream| {
        write!(s, "GET /metrics HTTP/1.1\r\n\r\n").unwrap();
        let mut answer = String::new();
        s.read_to_string(&mut answer)
            .expect("the answer, then its end");
        assert!(answer.starts_with("HTTP/1.1 200 OK\r\n"), "{answer:?}");
    };
    let begun = || {
        let mut s = util::connect(metrics);
        s.write_all(b"GET /metr").expect("half a request");
        s
    };
    let mut answered = util::connect(metrics);
    scrape(&mut answered);
    // With the answered one, 127.0.0.1's 8 places (MAX_PER_SOURCE) are taken.
    let mut held: Vec<TcpStream> = (1..8).map(|_| begun()).collect();
    // A scrape takes the answered one's place, is answered, and lingers in turn.
    let mut second = util::connect(metrics);
    scrape(&mut second);
    // Half a request takes that place; now every place is mid-request, and
    // a newcomer is turned away.
    held.push(begun());
    let mut newcomer = util::connect(metrics);
    write!(newcomer, "GET /metrics HTTP/1.1\r\n\r\n").unwrap();
    let mut rest = Vec::new();
    let _ = newcomer.read_to_end(&mut rest);
    assert!(rest.is_empty(), "turned away without an answer: {rest:?}");
    let line = server.stderr_line("metrics endpoint full");
    assert!(
        line.contains("evicted 0 connections") && line.contains("turned away 1 "),
        "{line}"
    );
    drop((answered, second, held));
}

/// Idle connections the test holds open against the endpoint, the issue's
/// attack: 500 is many times the endpoint's table, so the old endpoint was
/// blind while they stood.
const IDLE_HOLDERS: usize = 500;

/// Scrapes that must all succeed while the holders stand.
const SCRAPES: usize = 10;

/// How often the scrapes come, as the did (24 in 12 s): 10 of them
/// span the 3 s for which the kernel holds back connections that send
/// nothing, so that some meet the holders as they are handed over in a
/// crowd.
const SCRAPE_EVERY: std::time::Duration = std::time::Duration::from_millis(500);

/// How long one scrape may take before the test calls it failed: the
/// issue's bar is 1 s, but a loaded machine can break a 1 s wall-clock
/// bound; 10 s (the endpoint's own deadline) cannot be met by a scrape
/// that waits out a held place. The real latencies are printed.
const SCRAPE_LIMIT: std::time::Duration = std::time::Duration::from_secs(10);

/// A connection of the test's that sends nothing, non-blocking so that
/// one thread can watch hundreds.
fn idle_holder(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect_timeout(&addr, LIMIT).expect("connect an idle holder");
    s.set_nonblocking(true).expect("non-blocking");
    s
}

/// Whether the endpoint has closed a holder's connection (an end of stream
/// or a reset), without waiting.
fn closed_by_the_endpoint(s: &TcpStream) -> bool {
    let mut byte = [0; 1];
    match s.peek(&mut byte) {
        Ok(0) => true,
        Ok(_) => false,
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => false,
        Err(_) => true,
    }
}

/// One scrape, with every wait bounded by [`SCRAPE_LIMIT`]: how long it
/// took, or what went wrong.
fn timed_scrape(addr: SocketAddr) -> Result<std::time::Duration, String> {
    let started = std::time::Instant::now();
    let mut s =
        TcpStream::connect_timeout(&addr, SCRAPE_LIMIT).map_err(|e| format!("connect: {e}"))?;
    s.set_read_timeout(Some(SCRAPE_LIMIT)).unwrap();
    s.set_write_timeout(Some(SCRAPE_LIMIT)).unwrap();
    write!(s, "GET /metrics HTTP/1.1\r\nHost: {addr}\r\n\r\n").map_err(|e| format!("send: {e}"))?;
    let mut response = String::new();
    s.read_to_string(&mut response)
        .map_err(|e| format!("read: {e} after {response:?}"))?;
    let took = started.elapsed();
    if !response.starts_with("HTTP/1.1 200 OK\r\n")
        || !response.contains("\nechokit_connections_active ")
    {
        return Err(format!("not the exposition: {response:?}"));
    }
    Ok(took)
}

/// Prometheus's own `promtool check metrics` on each exposition: Debian's
/// `prometheus` package (`.ci/run` installs it).
mod tools {
    use super::*;

    #[test]
    #[ignore = "needs promtool: cargo test --release -- --ignored tools::"]
    fn promtool_finds_fault_with_a_bad_exposition() {
        // The checks below are only worth something if promtool can fail.
        let bad = "# TYPE echokit_requests counter\nechokit_requests 1\n";
        let (status, said) = promtool(bad);
        assert!(
            !status.success() && said.contains("echokit_requests"),
            "promtool passed a counter without _total or help: {status}: {said}"
        );
    }

    #[test]
    #[ignore = "needs promtool: cargo test --release -- --ignored tools::"]
    fn echo_server_metrics_pass_promtool() {
        echo_server_metrics(promtool_check);
    }

    #[test]
    #[ignore = "needs promtool: cargo test --release -- --ignored tools::"]
    fn app_server_metrics_pass_promtool() {
        app_server_metrics(promtool_check);
    }
}

/// 500 idle connections held against the endpoint while it is scraped: the
/// test process's descriptors and a busy reopener, with scrapes that must
/// each get through, so it needs the machine to itself, one test at a time
/// (`cargo test --release -- --ignored serial:: --test-threads=1`).
mod serial {
    use super::*;

    #[test]
    #[ignore = "needs the machine to itself: cargo test --release -- --ignored serial:: --test-threads=1"]
    fn idle_connections_do_not_blind_the_metrics_endpoint() {
        // Issue 14: 64 connections that sent nothing held every place of the
        // endpoint for 10 s, and a client that kept reopening them kept every
        // scrape out. Here the holders and the scraper share one address
        // (127.0.0.1), so the per-address limit alone cannot let the scrape
        // in: the endpoint must evict a holder for it.
        //
        // Descriptors: this process holds 500 sockets and a few more (ulimit -n
        // is far above; the test does not change it); the server holds at most
        // the endpoint's table, whatever the holders do.
        let started = std::time::Instant::now();
        let server = Server::start(&["127.0.0.1:0", "--metrics", "127.0.0.1:0"], 1);
        let metrics = metrics_addr(&server.stdout_line());
        let holders: Vec<TcpStream> = (0..IDLE_HOLDERS).map(|_| idle_holder(metrics)).collect();

        // The attacker: each holder the endpoint closes is opened again at
        // once, until the scrapes are done (or the test's limit has passed). It
        // says when it has reopened as many as it holds, so that the scrapes
        // meet it in full swing, not only its first burst.
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (swinging, in_swing) = std::sync::mpsc::channel();
        let reopener = {
            let stop = std::sync::Arc::clone(&stop);
            std::thread::spawn(move || {
                let mut holders = holders;
                let mut reopened = 0;
                let until = std::time::Instant::now() + 2 * LIMIT;
                while !stop.load(std::sync::atomic::Ordering::Acquire)
                    && std::time::Instant::now() < until
                {
                    for h in &mut holders {
                        if closed_by_the_endpoint(h) {
                            *h = idle_holder(metrics);
                            reopened += 1;
                            if reopened == IDLE_HOLDERS {
                                let _ = swinging.send(());
                            }
                        }
                    }
                }
                reopened
            })
        };
        let swung = in_swing.recv_timeout(LIMIT);

        let results: Vec<_> = (0..SCRAPES)
            .map(|i| {
                if i > 0 {
                    std::thread::sleep(SCRAPE_EVERY);
                }
                timed_scrape(metrics)
            })
            .collect();
        stop.store(true, std::sync::atomic::Ordering::Release);
        let reopened = reopener.join().expect("the reopening thread");
        assert!(
            swung.is_ok(),
            "the endpoint closed fewer than {IDLE_HOLDERS} holders within {LIMIT:?} ({reopened} in all)"
        );
        let latencies: Vec<String> = results
            .iter()
            .map(|r| match r {
                Ok(took) => format!("{:.1} ms", took.as_secs_f64() * 1e3),
                Err(e) => format!("failed: {e}"),
            })
            .collect();
        eprintln!(
            "{SCRAPES} scrapes against {IDLE_HOLDERS} idle holders ({reopened} reopened): {latencies:#?}"
        );
        assert!(
            results.iter().all(Result::is_ok),
            "not every scrape got through: {latencies:#?}"
        );
        // The endpoint tells of the crowd at the default level, with counts,
        // at most once a second: never a line per connection.
        let mut lines = vec![server.stderr_line("metrics endpoint full")];
        lines.extend(
            server
                .stderr_now()
                .into_iter()
                .filter(|l| l.contains("metrics endpoint full")),
        );
        eprintln!("{lines:#?}");
        assert!(
            lines
                .iter()
                .all(|l| l.contains(" WARN ") && l.contains("127.0.0.1")),
            "{lines:#?}"
        );
        let seconds = started.elapsed().as_secs() as usize;
        assert!(
            lines.len() <= seconds + 1,
            "{} lines in {seconds} s: {lines:#?}",
            lines.len()
        );
        assert!(
            lines
                .iter()
                .any(|l| !l.contains("evicted 0 ") && !l.contains("evicted 1 ")),
            "no line counts more than one eviction: {lines:#?}"
        );
    }
}
