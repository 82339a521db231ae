//! `echokit probe`: states against real sockets on loopback and in a temp
//! dir, ranges and lists, `--count` statistics, JSON, exit codes, and a
//! scan of ports 1-1024 checked against `ss -ltn`.

use std::collections::BTreeSet;
use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::process::Output;
use std::time::Instant;

use serde_json::Value;

use crate::util::{self, Server, echokit_run, refusing, text};

fn probe(args: &[&str]) -> Output {
    let mut all = vec!["probe"];
    all.extend_from_slice(args);
    echokit_run(&all)
}

/// The text line of the probe of `endpoint` (as echokit writes it).
fn line_of(out: &Output, endpoint: &str) -> String {
    let stdout = text(&out.stdout);
    stdout
        .lines()
        .find(|l| l.split_whitespace().next() == Some(endpoint))
        .unwrap_or_else(|| panic!("no line for {endpoint}:\n{stdout}"))
        .to_string()
}

fn json(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", text(&out.stdout)))
}

/// `endpoint -> state` from a `--json` report.
fn states(report: &Value) -> Vec<(String, String)> {
    report["probes"]
        .as_array()
        .expect("a probes array")
        .iter()
        .map(|p| {
            (
                p["endpoint"].as_str().expect("endpoint").to_string(),
                p["state"].as_str().expect("state").to_string(),
            )
        })
        .collect()
}

fn listener() -> (TcpListener, SocketAddr) {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    let addr = l.local_addr().expect("a bound address");
    (l, addr)
}

#[test]
fn probe_tells_open_from_refused() {
    let (_open, open) = listener();
    let (_holder, closed) = refusing();
    let out = probe(&[&open.to_string(), &closed.to_string()]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    let o = line_of(&out, &format!("tcp://{open}"));
    assert!(
        o.contains(" open ") && o.contains(" ms ") && o.contains("connect_ex returns 0"),
        "{o}"
    );
    let r = line_of(&out, &format!("tcp://{closed}"));
    assert!(
        r.contains("refused") && r.contains("ECONNREFUSED (111)") && r.contains("nothing listens"),
        "{r}"
    );
    assert!(
        text(&out.stdout).contains("2 probes in "),
        "{}",
        text(&out.stdout)
    );

    let only_open = probe(&[&open.to_string()]);
    assert_eq!(
        only_open.status.code(),
        Some(0),
        "{}",
        text(&only_open.stdout)
    );
}

#[test]
fn probe_a_list_and_a_range() {
    let (_a, a) = listener();
    let (_b, b) = listener();
    let (_holder, closed) = refusing();
    let spec = format!("127.0.0.1:{},{},{}", a.port(), closed.port(), b.port());
    let out = probe(&[&spec, "--json"]);
    assert_eq!(out.status.code(), Some(1));
    let got = states(&json(&out));
    let want = [
        (format!("tcp://{a}"), "open"),
        (format!("tcp://{closed}"), "refused"),
        (format!("tcp://{b}"), "open"),
    ];
    let want: Vec<(String, String)> = want
        .iter()
        .map(|(e, s)| (e.clone(), s.to_string()))
        .collect();
    assert_eq!(got, want);

    // A range that is all ours: each port once, in order, the listener
    // open and the ports held after it refused, and no other test's socket
    // in it to disturb.
    let len = 50;
    let (_first, _held, first) = util::owned_range(len);
    let hi = first.port() + (len - 1);
    let range = format!("127.0.0.1:{}-{hi}", first.port());
    let out = probe(&[&range, "--json"]);
    let report = json(&out);
    let got = states(&report);
    let want: Vec<(String, String)> = (first.port()..=hi)
        .map(|p| {
            let state = if p == first.port() { "open" } else { "refused" };
            (format!("tcp://127.0.0.1:{p}"), state.to_string())
        })
        .collect();
    assert_eq!(got, want);
    assert_eq!(report["summary"]["probes"], len);

    // The text lists the open ones and counts the rest.
    let out = probe(&[&range]);
    let stdout = text(&out.stdout);
    assert!(stdout.contains(&format!("tcp://{first}")), "{stdout}");
    assert!(
        stdout.contains(&format!(
            "not shown: {} refused (--all lists every probe)",
            len - 1
        )),
        "{stdout}"
    );
}

#[test]
fn probe_a_wildcard_host_probes_both_loopbacks() {
    // `:PORT` means 127.0.0.1 and ::1: a server on one of them is the trap.
    let (_l, addr) = listener();
    let out = probe(&[&format!(":{}", addr.port())]);
    let stdout = text(&out.stdout);
    assert!(stdout.contains(&format!("tcp://{addr}")), "{stdout}");
    assert!(
        stdout.contains(&format!("tcp://[::1]:{}", addr.port())),
        "{stdout}"
    );
    if !line_of(&out, &format!("tcp://[::1]:{}", addr.port())).contains(" open ") {
        assert!(stdout.contains("note: "), "{stdout}");
        assert_eq!(out.status.code(), Some(1));
    }
}

/// The TCP ports from 1 to 1024 that `ss -ltn` shows listening on an
/// address that 127.0.0.1 reaches.
fn ss_listening_below_1025() -> BTreeSet<u16> {
    let out = std::process::Command::new("ss")
        .args(["-ltnHe"])
        .output()
        .expect("ss from iproute2");
    assert!(out.status.success(), "ss failed: {}", text(&out.stderr));
    let mut ports = BTreeSet::new();
    for line in text(&out.stdout).lines() {
        let Some(local) = line.split_whitespace().nth(3) else {
            continue;
        };
        let Some((host, port)) = local.rsplit_once(':') else {
            continue;
        };
        let Ok(port) = port.parse::<u16>() else {
            continue;
        };
        // `*` is a dual-stack [::] socket; `[::]` is v6-only unless ss says otherwise.
        let reached = match host {
            "127.0.0.1" | "0.0.0.0" | "*" | "[::ffff:127.0.0.1]" => true,
            "[::]" => !line.contains("v6only:1"),
            _ => false,
        };
        if reached && (1..=1024).contains(&port) {
            ports.insert(port);
        }
    }
    ports
}

#[test]
fn probe_ports_1_to_1024_agrees_with_ss() {
    ports_1_to_1024_agree_with_ss(None);
}

/// `probe 127.0.0.1:1-1024` finds open what `ss -ltn` lists, `mine` among
/// them.
fn ports_1_to_1024_agree_with_ss(mine: Option<TcpListener>) {
    let expected = ss_listening_below_1025();
    if let Some(l) = &mine {
        let port = l.local_addr().expect("bound").port();
        assert!(expected.contains(&port), "ss does not show our {port}");
    }
    let started = Instant::now();
    let out = probe(&["127.0.0.1:1-1024", "--json"]);
    let took = started.elapsed();
    eprintln!("echokit probe 127.0.0.1:1-1024 took {took:?} (process start to exit)");
    let report = json(&out);
    let open: BTreeSet<u16> = report["probes"]
        .as_array()
        .expect("probes")
        .iter()
        .filter(|p| p["state"] == "open")
        .map(|p| {
            p["address"]
                .as_str()
                .and_then(|a| a.parse::<SocketAddr>().ok())
                .expect("an address")
                .port()
        })
        .collect();
    assert_eq!(open, expected, "probe vs ss -ltn");
    assert_eq!(report["summary"]["probes"], 1024);
    let exit = if expected.len() == 1024 { 0 } else { 1 };
    assert_eq!(out.status.code(), Some(exit));
}

#[test]
fn probe_udp_open_refused_and_silent() {
    let server = Server::start(&["udp://127.0.0.1:0"], 1);
    let echo = server.addr();
    let free = {
        let s = UdpSocket::bind("127.0.0.1:0").expect("bind udp");
        s.local_addr().expect("bound")
    };
    // Bound, never answering: the datagram arrives and nothing comes back.
    let silent = UdpSocket::bind("127.0.0.1:0").expect("bind udp");
    let silent_addr = silent.local_addr().expect("bound");
    let out = probe(&[
        &format!("udp://{echo}"),
        &format!("udp://{free}"),
        &format!("udp://{silent_addr}"),
        // Long enough for the echo server's answer on a loaded machine.
        "--timeout",
        "2s",
    ]);
    assert_eq!(out.status.code(), Some(1));
    let o = line_of(&out, &format!("udp://{echo}"));
    assert!(
        o.contains(" open ") && o.contains("an answer came back"),
        "{o}"
    );
    let r = line_of(&out, &format!("udp://{free}"));
    assert!(
        r.contains("refused") && r.contains("ECONNREFUSED") && r.contains("ICMP port unreachable"),
        "{r}"
    );
    let s = line_of(&out, &format!("udp://{silent_addr}"));
    assert!(
        s.contains("no reply") && s.contains("open but silent"),
        "{s}"
    );
    let mut buf = [0u8; 64];
    silent.set_nonblocking(true).expect("nonblocking");
    let (n, _) = silent
        .recv_from(&mut buf)
        .expect("the probe's datagram arrived");
    assert_eq!(&buf[..n], b"echokit probe\n");
}

#[test]
fn probe_unix_open_refused_missing_wrong_type() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let live = dir.path().join("live.sock");
    let gram = dir.path().join("gram.sock");
    let _server = Server::start(&[&util::unix(&live), &util::unixgram(&gram)], 2);
    let stale = dir.path().join("stale.sock");
    let holder = socket2::Socket::new(socket2::Domain::UNIX, socket2::Type::STREAM, None)
        .expect("a unix socket");
    holder
        .bind(&socket2::SockAddr::unix(&stale).expect("a path"))
        .expect("bind, not listen");
    let missing = dir.path().join("missing.sock");
    let targets = [
        util::unix(&live),
        util::unixgram(&gram),
        util::unix(&stale),
        util::unix(&missing),
        util::unix(&gram),
    ];
    let args: Vec<&str> = targets.iter().map(String::as_str).collect();
    let out = probe(&args);
    assert_eq!(out.status.code(), Some(1));
    let want = [
        ("open", "a server accepts connections"),
        ("open", "a datagram socket is bound here"),
        ("refused", "nothing listens on it"),
        ("missing", "ENOENT"),
        ("wrong type", "probe unixgram:PATH"),
    ];
    for (target, (state, words)) in targets.iter().zip(want) {
        let line = line_of(&out, target);
        assert!(
            line.contains(&format!(" {state} ")) && line.contains(words),
            "{line}"
        );
    }
}

#[test]
fn probe_count_prints_tries_and_statistics() {
    let (_l, open) = listener();
    let out = probe(&[&open.to_string(), "--count", "3", "--interval", "10ms"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    for seq in 1..=3 {
        let want = format!("connect to tcp://{open}: seq={seq} open time=");
        assert!(stdout.contains(&want), "{stdout}");
    }
    assert!(
        stdout.contains(&format!("--- tcp://{open} connect statistics ---")),
        "{stdout}"
    );
    assert!(stdout.contains("3 tries, 3 open, 0.0% failed"), "{stdout}");
    assert!(stdout.contains("connect min/avg/max/p99 = "), "{stdout}");

    let (_holder, closed) = refusing();
    let out = probe(&[&closed.to_string(), "-n", "3", "-i", "10ms"]);
    assert_eq!(
        out.status.code(),
        Some(3),
        "one target refused exits 3, as a client does"
    );
    let stdout = text(&out.stdout);
    for seq in 1..=3 {
        let want = format!("connect to tcp://{closed}: seq={seq} refused ECONNREFUSED (111) time=");
        assert!(stdout.contains(&want), "{stdout}");
    }
    assert!(
        stdout.contains("3 tries, 0 open, 100.0% failed"),
        "{stdout}"
    );
    assert!(
        stdout.contains("3 refused ECONNREFUSED (111): nothing listens"),
        "{stdout}"
    );
    assert!(!stdout.contains("min/avg/max"), "{stdout}");
}

#[test]
fn probe_json_agrees_with_the_text() {
    let (_l, open) = listener();
    let (_holder, closed) = refusing();
    let args = [
        open.to_string(),
        closed.to_string(),
        "nosuch.invalid:80".to_string(),
    ];
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let plain = probe(&args);
    let mut with_json = args.clone();
    with_json.push("--json");
    let out = probe(&with_json);
    assert_eq!(out.status.code(), plain.status.code());
    let report = json(&out);
    for p in report["probes"].as_array().expect("probes") {
        let endpoint = p["endpoint"].as_str().expect("endpoint");
        let state = p["state"].as_str().expect("state").replace('_', " ");
        let line = line_of(&plain, endpoint);
        assert!(
            line.contains(&format!(" {state} ")) || line.ends_with(&state),
            "{line} vs {p}"
        );
        if let Some(errno) = p["errno"].as_str() {
            assert!(line.contains(errno), "{line} vs {p}");
        }
    }
    assert_eq!(report["probes"][2]["state"], "unresolved");
    assert_eq!(report["summary"]["states"]["open"], 1);
    assert_eq!(report["summary"]["all_open"], false);

    let counted = probe(&[&open.to_string(), "--count", "2", "-i", "10ms", "--json"]);
    let report = json(&counted);
    assert_eq!(
        report["probes"][0]["tries"].as_array().map(Vec::len),
        Some(2)
    );
    assert_eq!(report["probes"][0]["stats"]["open"], 2);
    assert!(report["probes"][0]["stats"]["p99_ms"].as_f64().is_some());
}

#[test]
fn probe_bad_usage_exits_2() {
    for args in [
        &["127.0.0.1:9000-8000"][..],
        &["127.0.0.1:0"],
        &["127.0.0.1:1-99999"],
        &["unix:/tmp/x.sock", "--bind", "127.0.0.1"],
        &["[::1]:80", "--bind", "127.0.0.1"],
        &["127.0.0.1:80", "--interval", "1s"],
        &["127.0.0.1:80", "--timeout", "0"],
        &[],
    ] {
        let out = probe(args);
        assert_eq!(
            out.status.code(),
            Some(2),
            "{args:?}: {}",
            text(&out.stderr)
        );
        assert!(out.stdout.is_empty(), "{args:?}");
    }
}

#[test]
fn probe_a_silent_port_times_out() {
    let (_held, addr) = crate::util::silent();
    let out = probe(&[&addr.to_string(), "--timeout", "300ms"]);
    assert_eq!(out.status.code(), Some(4), "one target timed out exits 4");
    let line = line_of(&out, &format!("tcp://{addr}"));
    assert!(
        line.contains("timed out") && line.contains("firewall"),
        "{line}"
    );
}

/// A listener of our own below 1024, which only root may bind.
mod root {
    use super::*;

    #[test]
    #[ignore = "needs root: cargo test --release -- --ignored root::"]
    fn probe_ports_1_to_1024_agrees_with_ss_and_finds_our_own_listener() {
        // The comparison means something on a machine that listens on no
        // port below 1025: one of ours, found by trying.
        let mine = (900..1024)
            .find_map(|p| TcpListener::bind(("127.0.0.1", p)).ok())
            .expect("a port from 900 to 1023 bound (needs root)");
        ports_1_to_1024_agree_with_ss(Some(mine));
    }
}
