//! `echokit bench` against real servers: echokit's own, and a Python server
//! that corrupts a byte, closes early or stalls on purpose.

use std::process::Output;

use serde_json::Value;

use crate::render;
use crate::util::{Server, echokit_run, peer, python, refusing, text, unix, unixgram};

/// `echokit bench ARGS --json`, run to completion: (exit code, report).
fn bench_json(args: &[&str]) -> (i32, Value) {
    let mut all = vec!["bench"];
    all.extend_from_slice(args);
    all.push("--json");
    let out = echokit_run(&all);
    let report: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "--json is not one JSON object ({e}); stdout: {} stderr: {}",
            text(&out.stdout),
            text(&out.stderr)
        )
    });
    (out.status.code().expect("exited"), report)
}

fn bench(args: &[&str]) -> Output {
    let mut all = vec!["bench"];
    all.extend_from_slice(args);
    echokit_run(&all)
}

/// The faulty Python server with these flags.
fn faulty(flags: &[&str]) -> Server {
    let mut cmd = python();
    cmd.arg(peer("faulty_echo_server.py")).args(flags);
    Server::spawn(cmd, 1)
}

fn f(v: &Value, path: &[&str]) -> f64 {
    let mut at = v;
    for key in path {
        at = &at[*key];
    }
    at.as_f64()
        .unwrap_or_else(|| panic!("{path:?} is not a number in {v}"))
}

/// A clean run's report: no errors, messages measured, percentiles in order.
fn assert_clean(code: i32, r: &Value) {
    assert_eq!(code, 0, "{r:#}");
    assert_eq!(r["passed"], true, "{r:#}");
    assert_eq!(f(r, &["errors", "total"]), 0.0, "{r:#}");
    assert!(f(r, &["messages"]) > 0.0, "{r:#}");
    assert!(f(r, &["messages_per_second"]) > 0.0, "{r:#}");
    assert!(f(r, &["bytes_per_second", "received"]) > 0.0, "{r:#}");
    let p = |k| f(r, &["latency_us", k]);
    assert!(0.0 < p("p50") && p("p50") <= p("p90") && p("p90") <= p("p99"));
    assert!(p("p99") <= p("p999") && p("p999") <= p("max"), "{r:#}");
    assert!(f(r, &["client_cpu_percent"]) > 0.0, "{r:#}");
}

const SHORT: [&str; 4] = ["--duration", "700ms", "--warmup", "200ms"];

#[test]
fn a_clean_run_over_tcp_reports_every_figure() {
    let server = Server::start(&["127.0.0.1:0"], 1);
    let addr = server.addr().to_string();
    let mut args = vec![addr.as_str(), "-c", "8", "-s", "1..3000", "-d", "3"];
    args.extend(SHORT);
    let (code, r) = bench_json(&args);
    assert_clean(code, &r);
    assert_eq!(r["mode"], "closed");
    assert_eq!(r["connections_established"], 8);
    assert_eq!(r["size"], "1..3000");
    // Both ways carry the same bytes: the echo.
    let (sent, received) = (
        f(&r, &["bytes_per_second", "sent"]),
        f(&r, &["bytes_per_second", "received"]),
    );
    assert!((sent - received).abs() / received < 0.05, "{r:#}");
}

#[test]
fn the_same_run_works_over_unix_udp_and_unixgram() {
    let dir = tempfile::tempdir().unwrap();
    let stream = unix(&dir.path().join("s.sock"));
    let gram = unixgram(&dir.path().join("d.sock"));
    let server = Server::start(&["udp://127.0.0.1:0", &stream, &gram], 3);
    for endpoint in &server.endpoints {
        let mut args = vec![endpoint.as_str(), "-c", "4", "-s", "64", "-d", "2"];
        args.extend(SHORT);
        let (code, r) = bench_json(&args);
        assert_clean(code, &r);
        assert_eq!(r["endpoint"], endpoint.as_str());
        if endpoint.starts_with("unix:") {
            assert!(r["datagrams"].is_null());
        } else {
            assert_eq!(f(&r, &["datagrams", "lost"]), 0.0, "{r:#}");
            assert!(f(&r, &["datagrams", "sent"]) >= f(&r, &["messages"]));
        }
    }
}

#[test]
fn bind_picks_the_targets_address_of_its_family() {
    // `:PORT` stands for 127.0.0.1 and ::1, in that order: with an IPv6
    // --bind the run must go to ::1, as a client's connect would, not fail
    // on the first address's family.
    let server = Server::start(&["[::1]:0"], 1);
    let port = server.addr().port().to_string();
    let target = format!(":{port}");
    let mut args = vec![target.as_str(), "-c", "2", "--bind", "::1"];
    args.extend(SHORT);
    let (code, r) = bench_json(&args);
    assert_clean(code, &r);
    assert_eq!(r["endpoint"], format!("tcp://[::1]:{port}"), "{r:#}");
}

#[test]
fn a_corrupted_byte_fails_the_run() {
    // One connection: the server's byte count is the connection's offset.
    let server = faulty(&["--corrupt-after", "20000"]);
    let addr = server.addr().to_string();
    let mut args = vec![addr.as_str(), "-c", "1"];
    args.extend(SHORT);
    let (code, r) = bench_json(&args);
    assert_eq!(code, 1, "{r:#}");
    assert_eq!(r["passed"], false);
    assert_eq!(f(&r, &["errors", "mismatch"]), 1.0, "{r:#}");
    let first = r["errors"]["first"][0].as_str().unwrap();
    assert!(first.contains("differs at byte 20000"), "{first}");
    // The text report says so too.
    let server = faulty(&["--corrupt-after", "100"]);
    let addr = server.addr().to_string();
    let mut args = vec![addr.as_str()];
    args.extend(SHORT);
    let out = bench(&args);
    assert_eq!(out.status.code(), Some(1));
    let report = text(&out.stdout);
    assert!(report.contains("errors       1: mismatch 1"), "{report}");
}

#[test]
fn an_early_close_fails_the_run_and_the_others_go_on() {
    let server = faulty(&["--close-after", "20000"]);
    let addr = server.addr().to_string();
    let mut args = vec![addr.as_str(), "-c", "3"];
    args.extend(SHORT);
    let (code, r) = bench_json(&args);
    assert_eq!(code, 1, "{r:#}");
    assert_eq!(f(&r, &["errors", "early_close"]), 1.0, "{r:#}");
    assert_eq!(f(&r, &["errors", "total"]), 1.0, "{r:#}");
    // The failed connection was not replaced; the two others kept going.
    assert_eq!(r["connections_established"], 3);
    assert!(f(&r, &["messages"]) > 0.0);
}

#[test]
fn a_server_that_stops_echoing_in_the_window_fails_the_run() {
    // The messages in flight when the window ends are waited for (the
    // echo timeout), and what never comes back is an error, not a quietly
    // smaller number.
    let server = faulty(&["--freeze-at", "0.5"]);
    let addr = server.addr().to_string();
    let (code, r) = bench_json(&[
        &addr,
        "-c",
        "2",
        "--warmup",
        "200ms",
        "--duration",
        "1s",
        "--timeout",
        "2s",
    ]);
    assert_eq!(code, 1, "{r:#}");
    assert_eq!(f(&r, &["errors", "timed_out"]), 2.0, "{r:#}");
    assert!(f(&r, &["messages"]) > 0.0, "{r:#}");
}

#[test]
fn a_count_that_nothing_spends_still_ends() {
    let (_holder, addr) = refusing();
    let addr = addr.to_string();
    let (code, r) = bench_json(&[
        &addr,
        "--churn",
        "--count",
        "100",
        "--warmup",
        "0s",
        "--connect-timeout",
        "300ms",
        "--timeout",
        "300ms",
    ]);
    // Every connect refused: the code of a refused connection, as the
    // clients exit with (issue 17).
    assert_eq!(code, 3, "{r:#}");
    assert_eq!(r["stalled"], true, "{r:#}");
    assert!(f(&r, &["errors", "refused"]) >= 1.0, "{r:#}");
}

#[test]
fn refused_connections_are_counted_not_retried() {
    let (_holder, addr) = refusing();
    let addr = addr.to_string();
    let (code, r) = bench_json(&[&addr, "-c", "3", "--duration", "200ms"]);
    assert_eq!(code, 3, "{r:#}");
    assert_eq!(f(&r, &["errors", "refused"]), 3.0, "{r:#}");
    assert_eq!(r["connections_established"], 0);
    // The text report says why there is nothing to show, and what to check.
    let out = bench(&[&addr, "-c", "3", "--duration", "200ms"]);
    assert_eq!(out.status.code(), Some(3));
    let report = text(&out.stdout);
    assert!(
        report.contains("every connect was refused, so nothing listens there"),
        "{report}"
    );
}

#[test]
fn open_loop_shows_a_stall_that_closed_loop_would_hide() {
    // The server stops for 100 ms once a second.
    let server = faulty(&["--stall-every", "1", "--stall", "0.1"]);
    let addr = server.addr().to_string();
    let (code, r) = bench_json(&[
        &addr,
        "-c",
        "4",
        "--rate",
        "1000",
        "--duration",
        "3s",
        "--warmup",
        "300ms",
    ]);
    assert_clean(code, &r);
    assert_eq!(r["mode"], "open");
    // About 10% of the time is stalled: messages sent then wait up to 100 ms.
    let p99 = f(&r, &["latency_us", "p99"]);
    assert!(p99 >= 50_000.0, "the corrected p99 misses the stall: {r:#}");
    assert!(f(&r, &["latency_uncorrected_us", "p99"]) > 0.0, "{r:#}");
    // The rate asked for is the rate sent.
    let rate = f(&r, &["messages_per_second"]);
    assert!((900.0..1100.0).contains(&rate), "{r:#}");
}

#[test]
fn count_measures_exactly_that_many_messages() {
    let server = Server::start(&["127.0.0.1:0"], 1);
    let addr = server.addr().to_string();
    let (code, r) = bench_json(&[&addr, "-c", "3", "-d", "4", "--count", "1000"]);
    assert_clean(code, &r);
    assert_eq!(r["messages"], 1000, "{r:#}");
}

#[test]
fn churn_and_the_app_protocol_count_connections() {
    let server = Server::start(&["127.0.0.1:0"], 1);
    let addr = server.addr().to_string();
    let mut args = vec![addr.as_str(), "-c", "4", "--churn"];
    args.extend(SHORT);
    let (code, r) = bench_json(&args);
    assert_clean(code, &r);
    assert_eq!(r["mode"], "churn");
    assert!(f(&r, &["connections_per_second"]) > 0.0, "{r:#}");
    assert!(f(&r, &["connect_us", "p50"]) > 0.0, "{r:#}");

    let mut cmd = crate::util::echokit();
    cmd.args(["app-server", "127.0.0.1:0"]);
    let app = Server::spawn(cmd, 1);
    let addr = app.addr().to_string();
    let mut args = vec![addr.as_str(), "--proto", "app", "-c", "2"];
    args.extend(SHORT);
    let (code, r) = bench_json(&args);
    assert_clean(code, &r);
    assert_eq!(r["protocol"], "app");
    // One request per connection, as the guide's server wants.
    assert!(f(&r, &["connections_established"]) >= f(&r, &["messages"]));
    // Keep-alive against a server that closes after one answer: an error
    // that says what to do.
    args.push("--keep-alive");
    let (code, r) = bench_json(&args);
    assert_eq!(code, 1, "{r:#}");
    assert!(f(&r, &["errors", "early_close"]) >= 1.0, "{r:#}");
    let first = r["errors"]["first"][0].as_str().unwrap();
    assert!(first.contains("--keep-alive"), "{first}");
}

#[test]
fn ndjson_prints_intervals_then_the_summary() {
    let server = Server::start(&["127.0.0.1:0"], 1);
    let addr = server.addr().to_string();
    let out = bench(&[
        &addr,
        "--duration",
        "600ms",
        "--warmup",
        "200ms",
        "--progress-interval",
        "100ms",
        "--ndjson",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let lines: Vec<Value> = text(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("each line is JSON"))
        .collect();
    let (last, intervals) = lines.split_last().unwrap();
    assert_eq!(last["type"], "summary");
    assert!(intervals.len() >= 6, "{lines:?}");
    assert!(intervals.iter().all(|l| l["type"] == "interval"));
    assert!(intervals.iter().any(|l| l["phase"] == "measure"));
    // Not a terminal: no progress on stderr.
    assert_eq!(text(&out.stderr), "");
}

#[test]
fn compare_alternates_and_prints_ratios() {
    let a = Server::start(&["127.0.0.1:0"], 1);
    let b = Server::start(&["127.0.0.1:0"], 1);
    let (a, b) = (a.addr().to_string(), b.addr().to_string());
    let out = bench(&[
        "--compare",
        &a,
        &b,
        "-c",
        "1,2",
        "--reps",
        "2",
        "--duration",
        "200ms",
        "--warmup",
        "100ms",
        "--json",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let r: Value = serde_json::from_slice(&out.stdout).unwrap();
    let cells = r["cells"].as_array().unwrap();
    assert_eq!(cells.len(), 2);
    for cell in cells {
        assert_eq!(cell["runs_a"].as_array().unwrap().len(), 2);
        assert_eq!(cell["runs_b"].as_array().unwrap().len(), 2);
        let ratio = f(cell, &["ratio_a_b", "messages_per_second"]);
        assert!(ratio > 0.0, "{cell:#}");
    }
    // The runs went A B A B: the progress lines say so, in order.
    let sides: Vec<char> = text(&out.stderr)
        .lines()
        .filter_map(|l| l.split_whitespace().nth(2)?.chars().next())
        .collect();
    assert_eq!(sides, ['A', 'B', 'A', 'B', 'A', 'B', 'A', 'B']);
}

/// An open-loop run's `--report`: the page, in a directory that lives as
/// long as it is held.
fn html_report() -> (tempfile::TempDir, std::path::PathBuf) {
    let server = Server::start(&["127.0.0.1:0"], 1);
    let addr = server.addr().to_string();
    let dir = tempfile::tempdir().unwrap();
    let page = dir.path().join("report.html");
    let page_arg = page.display().to_string();
    let out = bench(&[
        &addr,
        "-c",
        "2",
        "--rate",
        "2000",
        "--duration",
        "2s",
        "--warmup",
        "500ms",
        "--progress-interval",
        "250ms",
        "--report",
        &page_arg,
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let html = std::fs::read_to_string(&page).unwrap();
    assert!(html.contains("<svg") && !html.contains("NaN"));
    (dir, page)
}

#[test]
fn the_html_report_is_a_page_of_charts() {
    html_report();
}

#[test]
fn bad_usage_exits_2_with_a_reason() {
    let cases: [(&[&str], &str); 7] = [
        (
            &["127.0.0.1:1", "--progress-interval", "0s"],
            "at least 10ms",
        ),
        (&["127.0.0.1:1", "-s", "0..10"], "at least one byte"),
        (&["--compare", "127.0.0.1:1"], "two endpoints"),
        (
            &["udp://127.0.0.1:1", "--churn"],
            "--churn is for stream endpoints",
        ),
        (
            &["udp://127.0.0.1:1", "-s", "70000"],
            "more than one datagram",
        ),
        (&["127.0.0.1:1", "-s", "9..3"], "smallest size comes first"),
        (
            &["unix:/x.sock", "--bind", "127.0.0.2"],
            "Unix endpoints have none",
        ),
    ];
    for (args, why) in cases {
        let out = bench(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let err = text(&out.stderr);
        assert!(err.contains(why), "{args:?}: {err}");
    }
}

/// The report as a browser draws it: headless Chromium, Debian's `chromium`
/// package (`.ci/run` installs it).
mod tools {
    use super::*;

    #[test]
    #[ignore = "needs chromium: cargo test --release -- --ignored tools::"]
    fn the_html_report_renders_its_charts() {
        let (_dir, page) = html_report();
        let shot = render::screenshot(&page, 1000, 2400);
        let near = |c| shot.count_near(c, 40);
        use echokit::bench::html::{CURVE_COLORS, THROUGHPUT_COLOR};
        assert!(near(THROUGHPUT_COLOR) > 100, "no throughput line drawn");
        assert!(
            near(CURVE_COLORS[0]) > 100,
            "no corrected latency curve drawn"
        );
        assert!(
            near(CURVE_COLORS[1]) > 100,
            "no uncorrected latency curve drawn"
        );
    }
}
