//! What `echokit probe` prints: one line per probe (or the open ones and
//! counts, for a range), ping-style lines and statistics with `--count`, and
//! the same as one JSON object. Pure: tested on made-up outcomes.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

use serde_json::{Value, json};

use super::{Outcome, Probe, Report, State, Try};
use crate::endpoint::SocketType;

/// More probes than this, and text output shows the open ones and counts
/// the rest (as nmap's "Not shown: 1021 closed ports"), unless `--all`: a
/// screenful of lines is still read, a thousand are not.
pub const SHOW_ALL_UP_TO: usize = 24;

/// Milliseconds with microseconds, as ping prints them.
fn ms(d: Duration) -> String {
    format!("{:.3}", d.as_secs_f64() * 1000.0)
}

/// `ECONNREFUSED (111)`: the errno's name and the number `connect_ex` returns.
fn errno_text(t: &Try) -> Option<String> {
    Some(format!("{} ({})", t.errno_name()?, t.errno?))
}

/// One `--count` try, as ping prints a reply:
/// `connect to tcp://127.0.0.1:8080: seq=1 open time=0.081 ms`.
pub fn try_line(probe: &Probe, t: &Try) -> String {
    let mut line = format!(
        "{} to {}: seq={} {}",
        if is_datagram(probe) {
            "datagram"
        } else {
            "connect"
        },
        probe.shown(),
        t.seq,
        t.state.as_str()
    );
    if t.state != State::Open
        && let Some(errno) = errno_text(t)
    {
        let _ = write!(line, " {errno}");
    }
    if let Some(time) = t.time {
        let _ = write!(line, " time={} ms", ms(time));
    }
    line
}

/// The text report, line by line: each probe (or the open ones and counts
/// when there are many and `all` is false), notes on names whose addresses
/// disagree, then the summary. With `--count`, each probe's statistics
/// instead (the tries were printed as they came).
pub fn text(report: &Report, all: bool) -> Vec<String> {
    let mut lines = Vec::new();
    let tried: Vec<&Outcome> = report
        .outcomes
        .iter()
        .filter(|o| !o.tries.is_empty())
        .collect();
    if report.repeated {
        for o in &tried {
            lines.extend(statistics(o));
        }
    } else {
        let collapse = !all && tried.len() > SHOW_ALL_UP_TO;
        let shown: Vec<&Outcome> = tried
            .iter()
            .copied()
            .filter(|o| !collapse || o.state() == Some(State::Open))
            .collect();
        let width = shown.iter().map(|o| label(o).len()).max().unwrap_or(0);
        for o in &shown {
            lines.push(row(o, width));
        }
        if collapse {
            let hidden: Vec<String> = report
                .counts()
                .into_iter()
                .filter(|(s, _)| *s != State::Open)
                .map(|(s, n)| format!("{n} {}", s.as_str()))
                .collect();
            if !hidden.is_empty() {
                lines.push(format!(
                    "not shown: {} (--all lists every probe)",
                    hidden.join(", ")
                ));
            }
        }
    }
    lines.extend(disagreements(&tried));
    lines.push(summary(report));
    lines
}

/// `tcp://127.0.0.1:22  refused  ECONNREFUSED (111)  nothing listens ...`.
fn row(o: &Outcome, width: usize) -> String {
    let Some(t) = o.tries.last() else {
        return o.probe.shown();
    };
    let middle = match (t.state, t.time) {
        (State::Open, Some(time)) => format!("{} ms", ms(time)),
        _ => errno_text(t).unwrap_or_default(),
    };
    format!(
        "{:<width$}  {:<12}{middle:<21}{}",
        label(o),
        t.state.as_str(),
        t.hint(o.probe.proto())
    )
    .trim_end()
    .to_string()
}

/// The probed endpoint, and the name it was resolved from.
fn label(o: &Outcome) -> String {
    match (o.probe.name(), &o.probe.address) {
        (Some(name), super::Address::Ip(_)) => format!("{} ({name})", o.probe.shown()),
        _ => o.probe.shown(),
    }
}

/// The connect times of the tries that found the target open, and how many did.
fn open_times(o: &Outcome) -> (Vec<Duration>, usize) {
    let times: Vec<Duration> = o
        .tries
        .iter()
        .filter(|t| t.state == State::Open)
        .filter_map(|t| t.time)
        .collect();
    let open = o.tries.iter().filter(|t| t.state == State::Open).count();
    (times, open)
}

/// Whether a probe's tries are datagrams and their answers, not connects.
fn is_datagram(probe: &Probe) -> bool {
    probe.endpoint.socket_type() == SocketType::Datagram
}

/// ping's closing lines for one probe's tries.
fn statistics(o: &Outcome) -> Vec<String> {
    // A datagram's time is its round trip: no connect was made.
    let timed = if is_datagram(&o.probe) {
        "round-trip"
    } else {
        "connect"
    };
    let tries = o.tries.len();
    let (times, open) = open_times(o);
    let failed = failed_percent(tries, open);
    let mut lines = vec![
        format!("--- {} {timed} statistics ---", o.probe.shown()),
        format!(
            "{tries} tr{}, {open} open, {failed:.1}% failed",
            if tries == 1 { "y" } else { "ies" }
        ),
    ];
    if let Some(stats) = Stats::of(&times) {
        lines.push(format!(
            "{timed} min/avg/max/p99 = {}/{}/{}/{} ms",
            ms(stats.min),
            ms(stats.avg),
            ms(stats.max),
            ms(stats.p99)
        ));
    }
    // Each kind of failure (a state and its errno) once, with what it means,
    // in the words of its first try.
    let mut failures: BTreeMap<(State, Option<i32>), (usize, &Try)> = BTreeMap::new();
    for t in o.tries.iter().filter(|t| t.state != State::Open) {
        failures.entry((t.state, t.errno)).or_insert((0, t)).0 += 1;
    }
    for (n, t) in failures.values() {
        let errno = errno_text(t).map(|e| format!(" {e}")).unwrap_or_default();
        lines.push(format!(
            "{n} {}{errno}: {}",
            t.state.as_str(),
            t.hint(o.probe.proto())
        ));
    }
    lines
}

/// The share of tries that did not find the target open, in percent, to a tenth.
fn failed_percent(tries: usize, open: usize) -> f64 {
    if tries == 0 {
        return 0.0;
    }
    (1000.0 * (tries - open) as f64 / tries as f64).round() / 10.0
}

/// min/avg/max/p99 of connect times.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Stats {
    /// The fastest.
    pub min: Duration,
    /// The mean.
    pub avg: Duration,
    /// The slowest.
    pub max: Duration,
    /// The 99th percentile (hdrhistogram, 3 significant digits).
    pub p99: Duration,
}

impl Stats {
    /// The statistics of `times`; `None` when there are none.
    pub fn of(times: &[Duration]) -> Option<Stats> {
        let min = *times.iter().min()?;
        let max = *times.iter().max()?;
        let total: Duration = times.iter().sum();
        let mut h = crate::stats::histogram();
        for t in times {
            let ns = u64::try_from(t.as_nanos()).unwrap_or(u64::MAX).max(1);
            h.saturating_record(ns);
        }
        let p99 = Duration::from_nanos(h.value_at_quantile(0.99)).clamp(min, max);
        Some(Stats {
            min,
            avg: total / u32::try_from(times.len()).unwrap_or(u32::MAX),
            max,
            p99,
        })
    }
}

/// Notes for names whose addresses answered differently: the learner's
/// trap of a server on 127.0.0.1 probed as `localhost`, which tries ::1 too.
fn disagreements(outcomes: &[&Outcome]) -> Vec<String> {
    let mut by_target: BTreeMap<String, Vec<&Outcome>> = BTreeMap::new();
    for o in outcomes {
        // A name, or `:PORT` (both loopbacks): one target, several addresses.
        let several = o
            .probe
            .endpoint
            .host_port()
            .is_some_and(|hp| !matches!(hp.host, crate::endpoint::Host::Ip(_)));
        if several {
            by_target
                .entry(o.probe.endpoint.to_string())
                .or_default()
                .push(o);
        }
    }
    let mut notes = Vec::new();
    for (endpoint, group) in by_target {
        let open: Vec<String> = group
            .iter()
            .filter(|o| o.state() == Some(State::Open))
            .map(|o| o.probe.shown())
            .collect();
        if open.is_empty() || open.len() == group.len() {
            continue;
        }
        notes.push(format!(
            "note: {endpoint} has {} addresses and only {} answered: a server \
             listening on one address is not reached on the others (bind it to each, or \
             connect to the one it listens on)",
            group.len(),
            open.join(", ")
        ));
    }
    notes
}

/// `1024 probes in 12.3 ms: 3 open, 1021 refused`.
fn summary(report: &Report) -> String {
    let tries: usize = report.outcomes.iter().map(|o| o.tries.len()).sum();
    let counts: Vec<String> = report
        .counts()
        .into_iter()
        .map(|(s, n)| format!("{n} {}", s.as_str()))
        .collect();
    let what = if report.repeated {
        format!(
            "{} probe{}, {tries} tr{}",
            report.outcomes.len(),
            if report.outcomes.len() == 1 { "" } else { "s" },
            if tries == 1 { "y" } else { "ies" }
        )
    } else {
        format!("{tries} probe{}", if tries == 1 { "" } else { "s" })
    };
    let mut line = format!(
        "{what} in {}: {}",
        crate::text::duration(report.elapsed),
        if counts.is_empty() {
            "none made".to_string()
        } else {
            counts.join(", ")
        }
    );
    if report.interrupted {
        line.push_str(" (interrupted)");
    }
    line
}

/// The whole report as one JSON object (the README documents its shape).
pub fn json(report: &Report) -> Value {
    let probes: Vec<Value> = report
        .outcomes
        .iter()
        .map(|o| probe_json(o, report.repeated))
        .collect();
    let mut states = serde_json::Map::new();
    for (s, n) in report.counts() {
        states.insert(s.key().into(), n.into());
    }
    json!({
        "probes": probes,
        "summary": {
            "probes": report.outcomes.len(),
            "tries": report.outcomes.iter().map(|o| o.tries.len()).sum::<usize>(),
            "all_open": report.exit_code() == crate::ExitCode::Success,
            "states": states,
            "elapsed_ms": time_ms(Some(report.elapsed)),
            "interrupted": report.interrupted,
        },
    })
}

/// Milliseconds to the microsecond: finer is noise, and keeps the numbers short.
fn time_ms(d: Option<Duration>) -> Value {
    d.map_or(Value::Null, |d| json!(d.as_micros() as f64 / 1000.0))
}

fn try_json(o: &Outcome, t: &Try) -> Value {
    json!({
        "seq": t.seq,
        "state": t.state.key(),
        "errno": t.errno_name(),
        "errno_code": t.errno,
        "hint": t.hint(o.probe.proto()),
        "time_ms": time_ms(t.time),
    })
}

fn probe_json(o: &Outcome, repeated: bool) -> Value {
    let p = &o.probe;
    let address = match &p.address {
        super::Address::Ip(addr) => Value::from(addr.to_string()),
        super::Address::Local => Value::from(
            p.endpoint
                .local_name()
                .map(std::string::ToString::to_string),
        ),
        super::Address::Unresolved(_) => Value::Null,
    };
    let last = o.tries.last();
    let mut value = json!({
        "target": p.spec,
        "endpoint": p.shown(),
        "proto": p.proto().as_str(),
        "address": address,
        "state": last.map(|t| t.state.key()),
        "errno": last.and_then(Try::errno_name),
        "errno_code": last.and_then(|t| t.errno),
        "hint": last.map(|t| t.hint(p.proto())),
        "time_ms": time_ms(last.and_then(|t| t.time)),
    });
    if repeated && let Some(obj) = value.as_object_mut() {
        let (times, open) = open_times(o);
        let stats = Stats::of(&times);
        let ms_of = |f: fn(&Stats) -> Duration| time_ms(stats.as_ref().map(f));
        obj.insert(
            "tries".into(),
            o.tries.iter().map(|t| try_json(o, t)).collect(),
        );
        obj.insert(
            "stats".into(),
            json!({
                "tries": o.tries.len(),
                "open": open,
                "failed_percent": failed_percent(o.tries.len(), open),
                "min_ms": ms_of(|s| s.min),
                "avg_ms": ms_of(|s| s.avg),
                "max_ms": ms_of(|s| s.max),
                "p99_ms": ms_of(|s| s.p99),
            }),
        );
    }
    value
}

#[cfg(test)]
mod tests {
    use super::super::{Address, Probe, Try};
    use super::*;

    fn probe(spec: &str, addr: &str) -> Probe {
        named(spec, addr, addr)
    }

    fn named(spec: &str, endpoint: &str, addr: &str) -> Probe {
        let endpoint: crate::Endpoint = endpoint.parse().unwrap();
        Probe {
            spec: spec.into(),
            endpoint,
            address: Address::Ip(addr.parse().unwrap()),
        }
    }

    fn tried(state: State, errno: Option<i32>, us: Option<u64>) -> Try {
        Try {
            errno,
            time: us.map(Duration::from_micros),
            ..Try::of(1, state)
        }
    }

    fn report(outcomes: Vec<Outcome>, repeated: bool) -> Report {
        Report {
            outcomes,
            elapsed: Duration::from_millis(12),
            interrupted: false,
            repeated,
        }
    }

    #[test]
    fn a_few_probes_get_a_line_each() {
        let r = report(
            vec![
                Outcome {
                    probe: probe("127.0.0.1:22,8080", "127.0.0.1:22"),
                    tries: vec![tried(State::Refused, Some(libc::ECONNREFUSED), Some(40))],
                },
                Outcome {
                    probe: probe("127.0.0.1:22,8080", "127.0.0.1:8080"),
                    tries: vec![tried(State::Open, None, Some(81))],
                },
            ],
            false,
        );
        let lines = text(&r, false);
        assert_eq!(lines.len(), 3, "{lines:#?}");
        assert!(lines[0].starts_with("tcp://127.0.0.1:22    refused     ECONNREFUSED (111)"));
        assert!(
            lines[0]
                .ends_with("nothing listens on this port (the host answered the SYN with a reset)")
        );
        assert!(
            lines[1].starts_with("tcp://127.0.0.1:8080  open        0.081 ms"),
            "{}",
            lines[1]
        );
        assert_eq!(lines[2], "2 probes in 12 ms: 1 open, 1 refused");
        assert_eq!(r.exit_code(), crate::ExitCode::Failures);
    }

    #[test]
    fn many_probes_show_the_open_ones_and_count_the_rest() {
        let mut outcomes: Vec<Outcome> = (1..=100)
            .map(|p| Outcome {
                probe: probe("127.0.0.1:1-100", &format!("127.0.0.1:{p}")),
                tries: vec![tried(State::Refused, Some(libc::ECONNREFUSED), None)],
            })
            .collect();
        outcomes[21].tries = vec![tried(State::Open, None, Some(30))];
        outcomes[50].tries = vec![tried(State::TimedOut, None, None)];
        let r = report(outcomes, false);
        let lines = text(&r, false);
        assert_eq!(lines.len(), 3, "{lines:#?}");
        assert!(lines[0].starts_with("tcp://127.0.0.1:22  open"));
        assert_eq!(
            lines[1],
            "not shown: 98 refused, 1 timed out (--all lists every probe)"
        );
        assert_eq!(
            lines[2],
            "100 probes in 12 ms: 1 open, 98 refused, 1 timed out"
        );
        assert_eq!(text(&r, true).len(), 101);
    }

    #[test]
    fn a_name_whose_addresses_disagree_gets_a_note() {
        let r = report(
            vec![
                Outcome {
                    probe: named("localhost:8080", "localhost:8080", "[::1]:8080"),
                    tries: vec![tried(State::Refused, Some(libc::ECONNREFUSED), None)],
                },
                Outcome {
                    probe: named("localhost:8080", "localhost:8080", "127.0.0.1:8080"),
                    tries: vec![tried(State::Open, None, Some(50))],
                },
            ],
            false,
        );
        let lines = text(&r, false);
        assert!(
            lines[0].starts_with("tcp://[::1]:8080 (localhost)"),
            "{lines:#?}"
        );
        assert!(
            lines[2].starts_with(
                "note: tcp://localhost:8080 has 2 addresses and only tcp://127.0.0.1:8080 answered"
            ),
            "{lines:#?}"
        );
    }

    #[test]
    fn count_statistics_like_ping() {
        let open = Outcome {
            probe: probe("127.0.0.1:8080", "127.0.0.1:8080"),
            tries: [50, 70, 90]
                .iter()
                .enumerate()
                .map(|(i, us)| Try {
                    seq: i as u32 + 1,
                    ..tried(State::Open, None, Some(*us))
                })
                .collect(),
        };
        assert_eq!(
            try_line(&open.probe, &open.tries[0]),
            "connect to tcp://127.0.0.1:8080: seq=1 open time=0.050 ms"
        );
        let refused = Outcome {
            probe: probe("127.0.0.1:9", "127.0.0.1:9"),
            tries: vec![tried(State::Refused, Some(libc::ECONNREFUSED), Some(20)); 2],
        };
        assert_eq!(
            try_line(&refused.probe, &refused.tries[0]),
            "connect to tcp://127.0.0.1:9: seq=1 refused ECONNREFUSED (111) time=0.020 ms"
        );
        let r = report(vec![open, refused], true);
        let lines = text(&r, false);
        assert_eq!(
            lines,
            [
                "--- tcp://127.0.0.1:8080 connect statistics ---",
                "3 tries, 3 open, 0.0% failed",
                "connect min/avg/max/p99 = 0.050/0.070/0.090/0.090 ms",
                "--- tcp://127.0.0.1:9 connect statistics ---",
                "2 tries, 0 open, 100.0% failed",
                "2 refused ECONNREFUSED (111): nothing listens on this port (the host answered the SYN with a reset)",
                "2 probes, 5 tries in 12 ms: 3 open, 2 refused",
            ]
        );
        let j = json(&r);
        assert_eq!(j["probes"][0]["stats"]["open"], 3);
        assert_eq!(j["probes"][0]["stats"]["min_ms"], 0.05);
        assert_eq!(j["probes"][1]["stats"]["failed_percent"], 100.0);
        assert_eq!(j["probes"][1]["stats"]["p99_ms"], Value::Null);
        assert_eq!(j["probes"][1]["tries"][1]["errno"], "ECONNREFUSED");
        assert_eq!(j["summary"]["states"]["refused"], 2);
        assert_eq!(j["summary"]["all_open"], false);
    }

    #[test]
    fn json_has_every_probe_and_the_summary() {
        let r = report(
            vec![Outcome {
                probe: probe("127.0.0.1:22", "127.0.0.1:22"),
                tries: vec![tried(State::Refused, Some(libc::ECONNREFUSED), None)],
            }],
            false,
        );
        let j = json(&r);
        let p = &j["probes"][0];
        assert_eq!(p["target"], "127.0.0.1:22");
        assert_eq!(p["endpoint"], "tcp://127.0.0.1:22");
        assert_eq!(p["address"], "127.0.0.1:22");
        assert_eq!(p["proto"], "tcp");
        assert_eq!(p["state"], "refused");
        assert_eq!(p["errno"], "ECONNREFUSED");
        assert_eq!(p["errno_code"], 111);
        assert!(p.get("tries").is_none());
        assert_eq!(j["summary"]["probes"], 1);
        assert_eq!(j["summary"]["states"]["refused"], 1);
    }

    #[test]
    fn statistics_name_each_failures_own_errno() {
        // Regression: each (state, errno) group printed the errno of the
        // first try in that state, so an ENETUNREACH line read EHOSTUNREACH.
        let o = Outcome {
            probe: probe("10.0.0.1:80", "10.0.0.1:80"),
            tries: vec![
                tried(State::Unreachable, Some(libc::EHOSTUNREACH), None),
                tried(State::Unreachable, Some(libc::ENETUNREACH), None),
                tried(State::Unreachable, Some(libc::EHOSTUNREACH), None),
            ],
        };
        let lines = statistics(&o);
        assert_eq!(
            lines[2..],
            [
                "1 unreachable ENETUNREACH (101): no route to that network: check the address \
                 and the routing table (ip route)",
                "2 unreachable EHOSTUNREACH (113): no route to the host: it is down or not on \
                 this network (an ICMP host unreachable, or no ARP answer)",
            ]
        );
    }

    #[test]
    fn p99_of_a_hundred() {
        let times: Vec<Duration> = (1..=100).map(Duration::from_micros).collect();
        let s = Stats::of(&times).unwrap();
        assert_eq!(s.min, Duration::from_micros(1));
        assert_eq!(s.max, Duration::from_micros(100));
        // hdrhistogram keeps 3 significant digits: 99 us, give or take 0.1%.
        assert!(s.p99.abs_diff(Duration::from_micros(99)) < Duration::from_nanos(100));
        assert!(Stats::of(&[]).is_none());
    }
}
