//! The final report: what the threads measured, merged, with the text and
//! JSON forms and the HTML page built from it.

use std::fmt::Write as _;

use serde::Serialize;
use serde::ser::{SerializeMap, Serializer};

use super::stats::{self, Datagrams, ErrorClass, Errors, Percentiles, ThreadResult};
use super::{BenchConfig, Interval, Stop, html};
use crate::exit::ExitCode;
use crate::text::micros as us;

/// Bytes per second each way.
#[derive(Clone, Copy, Debug, Default, Serialize)]
pub struct Bytes {
    /// Written to the server.
    pub sent: f64,
    /// Read back.
    pub received: f64,
}

/// What the coordinator saw, beside the threads' figures.
#[derive(Clone, Copy, Debug, Default)]
pub struct Notes {
    /// Ctrl-C ended the run early.
    pub interrupted: bool,
    /// The window opened before every connection was up or failed.
    pub not_all_ready: bool,
    /// `--count`: nothing completed for a connect and an echo timeout.
    pub stalled: bool,
    /// The coordinator thread's CPU time in the window.
    pub coordinator_cpu: std::time::Duration,
    /// Seconds from the start to the window's opening (the warm-up's end),
    /// if it opened.
    pub window_opened_s: Option<f64>,
}

/// A run's figures. Serialized, this is the `--json` object.
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    /// The endpoint, with the address used.
    pub endpoint: String,
    /// `echo` or `app`.
    pub protocol: &'static str,
    /// `closed`, `open` or `churn`.
    pub mode: &'static str,
    /// Connections asked for.
    pub connections: u32,
    /// Connections made (every cycle, in churn mode).
    pub connections_established: u64,
    /// Message size in bytes (`MIN..MAX` when drawn from a range).
    pub size: String,
    /// Messages in flight per connection (closed loop).
    pub depth: u32,
    /// Messages per second asked for (open loop).
    pub rate: Option<f64>,
    /// Engine threads.
    pub threads: u32,
    /// The warm-up asked for, seconds.
    pub warmup_s: f64,
    /// Seconds from the start to the measured window's opening: the warm-up
    /// and the wait for every connection to echo once (none if it never
    /// opened).
    pub window_opened_s: Option<f64>,
    /// The measured window, seconds.
    pub duration_s: f64,
    /// Echoes completed in the window.
    pub messages: u64,
    /// Echoes per second in the window.
    pub messages_per_second: f64,
    /// Payload bytes per second each way in the window.
    pub bytes_per_second: Bytes,
    /// Connections completed per second (churn).
    pub connections_per_second: Option<f64>,
    /// Latency, in microseconds: from the scheduled send in the open loop
    /// (corrected for coordinated omission), from the send otherwise.
    pub latency_us: Percentiles,
    /// Open loop: latency from the actual send, as an uncorrected tool shows it.
    pub latency_uncorrected_us: Option<Percentiles>,
    /// Churn: connect times in microseconds.
    pub connect_us: Option<Percentiles>,
    /// Open loop: how far the sender fell behind its schedule at worst, µs.
    pub schedule_behind_max_us: Option<f64>,
    /// Datagram endpoints: sent, lost, late, duplicated, and the loss.
    pub datagrams: Option<DatagramReport>,
    /// Errors of the whole run (warm-up included), by class.
    pub errors: ErrorReport,
    /// CPU this client used in the window: 100 is one core.
    pub client_cpu_percent: f64,
    /// CPU this client used per message, microseconds.
    pub client_cpu_us_per_message: f64,
    /// Ctrl-C ended the run early.
    pub interrupted: bool,
    /// Some connections were neither up nor failed when the window opened.
    pub not_all_ready: bool,
    /// `--count`: no message completed for a connect and an echo timeout.
    pub stalled: bool,
    /// No errors, loss within `--max-loss`, and messages measured.
    pub passed: bool,
    /// Per-interval throughput (HTML report, `--ndjson`).
    #[serde(skip)]
    pub intervals: Vec<Interval>,
    /// Latency curves: corrected (or the only one) and uncorrected.
    #[serde(skip)]
    pub curves: Vec<(&'static str, Vec<(f64, f64)>)>,
}

/// Datagram tallies and the loss.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct DatagramReport {
    /// Sent, lost, late and duplicated.
    #[serde(flatten)]
    pub counts: Datagrams,
    /// Lost, in percent of sent.
    pub loss_percent: f64,
    /// The most allowed (`--max-loss`).
    pub max_loss_percent: f64,
}

/// Errors by class, serialized as `{total, refused, reset, ...}` with the
/// first message of each class under `first`.
#[derive(Clone, Debug, Default)]
pub struct ErrorReport(pub Errors);

impl Serialize for ErrorReport {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(None)?;
        map.serialize_entry("total", &self.0.total())?;
        for class in ErrorClass::ALL {
            map.serialize_entry(class.name(), &self.0.count(class))?;
        }
        let first: Vec<String> = self.0.first().iter().map(|(_, t)| t.clone()).collect();
        map.serialize_entry("first", &first)?;
        map.end()
    }
}

impl Report {
    /// Merges the threads' results.
    pub(super) fn new(
        cfg: &BenchConfig,
        results: Vec<ThreadResult>,
        intervals: Vec<Interval>,
        notes: Notes,
    ) -> Report {
        let mut latency = crate::stats::histogram();
        let mut uncorrected = crate::stats::histogram();
        let mut connect = crate::stats::histogram();
        let mut errors = Errors::default();
        let mut tally = Datagrams::default();
        let (mut messages, mut completed, mut sent, mut received, mut cycles) =
            (0u64, 0u64, 0u64, 0u64, 0u64);
        let mut cpu = notes.coordinator_cpu.as_secs_f64();
        let mut longest = 0f64;
        let mut established = 0;
        let mut behind = 0u64;
        for r in &results {
            let _ = latency.add(&r.latency);
            let _ = uncorrected.add(&r.uncorrected);
            let _ = connect.add(&r.connect);
            errors.merge(&r.errors);
            tally.merge(&r.datagrams);
            established += r.established;
            behind = behind.max(r.behind_max);
            let secs = r.elapsed.as_secs_f64();
            messages += r.window.recorded;
            completed += r.window.messages;
            sent += r.window.sent;
            received += r.window.received;
            cycles += r.window.cycles;
            longest = longest.max(secs);
            cpu += r.cpu.as_secs_f64();
        }
        // Rates over the longest thread window: a thread whose connections
        // all died early does not count its short window as a whole one.
        // Every completion in the window counts towards the rate (with
        // --count, those of messages sent in the warm-up too: they took
        // window time), and towards the CPU per message.
        let per_sec = |n: u64| {
            if longest > 0.0 {
                n as f64 / longest
            } else {
                0.0
            }
        };
        let rate = per_sec(completed);
        let open = cfg.rate.is_some();
        let datagrams = cfg.target.is_datagram().then(|| DatagramReport {
            counts: tally,
            loss_percent: if tally.sent == 0 {
                0.0
            } else {
                tally.lost as f64 * 100.0 / tally.sent as f64
            },
            max_loss_percent: cfg.max_loss,
        });
        let hard_errors = errors.total() - errors.count(ErrorClass::Lost);
        let loss_ok = datagrams.is_none_or(|d| d.loss_percent <= cfg.max_loss);
        let mut curves = vec![(
            if open { "corrected" } else { "latency" },
            stats::curve(&latency),
        )];
        if open {
            curves.push(("uncorrected", stats::curve(&uncorrected)));
        }
        Report {
            endpoint: cfg.target.endpoint.to_string(),
            protocol: match cfg.workload {
                super::Workload::Echo => "echo",
                super::Workload::App { .. } => "app",
            },
            mode: cfg.mode(),
            connections: cfg.connections,
            connections_established: established,
            size: cfg.sizes.to_string(),
            depth: cfg.depth,
            rate: cfg.rate,
            threads: results.len() as u32,
            warmup_s: cfg.warmup.as_secs_f64(),
            window_opened_s: notes.window_opened_s,
            duration_s: longest,
            messages,
            messages_per_second: rate,
            bytes_per_second: Bytes {
                sent: per_sec(sent),
                received: per_sec(received),
            },
            connections_per_second: cfg.churns().then_some(per_sec(cycles)),
            latency_us: Percentiles::of(&latency),
            latency_uncorrected_us: open.then(|| Percentiles::of(&uncorrected)),
            connect_us: cfg.churns().then(|| Percentiles::of(&connect)),
            schedule_behind_max_us: open.then_some(behind as f64 / 1000.0),
            datagrams,
            passed: hard_errors == 0 && loss_ok && messages > 0 && !notes.not_all_ready,
            errors: ErrorReport(errors),
            client_cpu_percent: if longest > 0.0 {
                cpu * 100.0 / longest
            } else {
                0.0
            },
            client_cpu_us_per_message: if completed > 0 {
                cpu * 1e6 / completed as f64
            } else {
                0.0
            },
            interrupted: notes.interrupted,
            not_all_ready: notes.not_all_ready,
            stalled: notes.stalled,
            intervals,
            curves,
        }
    }

    /// The errors, by class.
    pub fn errors(&self) -> &Errors {
        &self.errors.0
    }

    /// The exit code: success when it passed; when no connection was ever
    /// established and every error was one failure to connect (all refused,
    /// or all timed out), that failure's code, as a client's; otherwise
    /// "ran, but found failures".
    pub fn exit_code(&self) -> ExitCode {
        if self.passed {
            return ExitCode::Success;
        }
        let errors = self.errors();
        let only = |class| errors.total() > 0 && errors.count(class) == errors.total();
        if self.connections_established > 0 {
            ExitCode::Failures
        } else if only(ErrorClass::Refused) {
            ExitCode::Refused
        } else if only(ErrorClass::TimedOut) {
            ExitCode::TimedOut
        } else {
            ExitCode::Failures
        }
    }

    /// The report for a person: one figure per line.
    pub fn text(&self, cfg: &BenchConfig) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "{}", self.headline(cfg));
        for (label, value) in self.facts() {
            let _ = writeln!(out, "  {label:<12} {value}");
        }
        out
    }

    /// What was run, in one line.
    pub fn headline(&self, cfg: &BenchConfig) -> String {
        let what = match cfg.workload {
            super::Workload::Echo => format!("{} B messages", self.size),
            super::Workload::App {
                ref query,
                keep_alive,
            } => format!(
                "app protocol, search {query:?}{}",
                if keep_alive { ", keep-alive" } else { "" }
            ),
        };
        let load = match (self.mode, self.rate) {
            ("open", Some(r)) => format!("open loop at {} msg/s", count(r)),
            ("churn", _) => "churn (connect, one exchange, close)".into(),
            _ => format!("closed loop, depth {}", self.depth),
        };
        let stop = match cfg.stop {
            Stop::After(d) => crate::text::duration(d),
            Stop::Count(n) => format!("{} messages", crate::text::count(n)),
        };
        format!(
            "echokit bench {}: {} connection{}, {what}, {load}, {stop} after {} warm-up, {} thread{}",
            self.endpoint,
            count(f64::from(self.connections)),
            if self.connections == 1 { "" } else { "s" },
            crate::text::duration(cfg.warmup),
            self.threads,
            if self.threads == 1 { "" } else { "s" },
        )
    }

    /// (label, value) lines of the report.
    pub fn facts(&self) -> Vec<(String, String)> {
        let mut f: Vec<(String, String)> = Vec::new();
        let mut push = |l: &str, v: String| f.push((l.to_string(), v));
        push(
            "messages",
            format!(
                "{} in {}: {} msg/s",
                count(self.messages as f64),
                us(self.duration_s * 1e6),
                count(self.messages_per_second)
            ),
        );
        push(
            "throughput",
            format!(
                "sent {}, received {}",
                mb(self.bytes_per_second.sent),
                mb(self.bytes_per_second.received)
            ),
        );
        push("latency", percentiles(&self.latency_us));
        if let Some(u) = &self.latency_uncorrected_us {
            push(
                "uncorrected",
                format!(
                    "{} (from the actual send; the line above counts from the scheduled send)",
                    percentiles(u)
                ),
            );
        }
        if let Some(behind) = self.schedule_behind_max_us {
            push(
                "schedule",
                format!("sends were at most {} behind schedule", us(behind)),
            );
        }
        if let Some(c) = &self.connect_us {
            push("connect", percentiles(c));
        }
        if let Some(d) = &self.datagrams {
            push(
                "datagrams",
                format!(
                    "{} sent, {} lost ({:.3}%, at most {}% allowed), {} late, {} duplicated",
                    count(d.counts.sent as f64),
                    count(d.counts.lost as f64),
                    d.loss_percent,
                    d.max_loss_percent,
                    count(d.counts.late as f64),
                    count(d.counts.duplicated as f64)
                ),
            );
        }
        // One row: under churn the rate of new connections, else how many
        // of those asked for were made.
        let established = count(self.connections_established as f64);
        let asked = count(f64::from(self.connections));
        push(
            "connections",
            match self.connections_per_second {
                Some(rate) => format!(
                    "{} conn/s: {established} established, {asked} at a time",
                    count(rate)
                ),
                None => format!("{asked} asked, {established} established"),
            },
        );
        push("errors", self.error_line());
        for (class, text) in self.errors().first() {
            push(&format!("  first {}", class.name()), text.clone());
        }
        push(
            "client CPU",
            format!(
                "{:.1}% of one core, {} per message",
                self.client_cpu_percent,
                us(self.client_cpu_us_per_message)
            ),
        );
        if self.not_all_ready {
            push(
                "note",
                "not every connection was up and echoing when the window opened: \
                 the figures are not of the run asked for (see --connect-rate, --warmup)"
                    .into(),
            );
        }
        if self.stalled {
            push(
                "note",
                "stopped: nothing was echoed for a connect and an echo timeout".into(),
            );
        }
        if self.interrupted {
            push("note", "interrupted: the window ended early".into());
        }
        // Refused or timed out as a whole: no connection was made.
        match self.exit_code() {
            ExitCode::Refused => push(
                "note",
                "no connection was made: every connect was refused, so nothing listens \
                 there (is the server running, on this address and port?)"
                    .into(),
            ),
            ExitCode::TimedOut => push(
                "note",
                "no connection was made: every connect timed out (is the host up? a \
                 firewall that drops packets looks like this)"
                    .into(),
            ),
            _ if self.messages == 0 => push(
                "note",
                "no message was echoed in the measured window".into(),
            ),
            _ => {}
        }
        f
    }

    fn error_line(&self) -> String {
        let e = self.errors();
        if e.total() == 0 {
            return "none".into();
        }
        let parts: Vec<String> = ErrorClass::ALL
            .iter()
            .filter(|c| e.count(**c) > 0)
            .map(|c| {
                format!(
                    "{} {}{}",
                    c.name(),
                    e.count(*c),
                    if c.is_client_side() {
                        " (client side)"
                    } else {
                        ""
                    }
                )
            })
            .collect();
        format!("{}: {}", e.total(), parts.join(", "))
    }

    /// The report as one self-contained HTML page.
    pub fn html(&self, cfg: &BenchConfig, provenance: &html::Provenance) -> String {
        let samples: Vec<html::Sample> = self
            .intervals
            .iter()
            .map(|i| html::Sample {
                t: i.t,
                messages_per_second: i.messages_per_second,
                measured: i.phase == "measure",
            })
            .collect();
        let curves: Vec<html::Curve> = self
            .curves
            .iter()
            .map(|(label, points)| html::Curve { label, points })
            .collect();
        let mut facts = vec![("run".to_string(), self.headline(cfg))];
        facts.extend(self.facts());
        html::render(&html::Page {
            title: &format!("echokit bench {}", self.endpoint),
            provenance,
            window_opens: self.window_opened_s,
            facts: &facts,
            throughput: &samples,
            curves: &curves,
        })
    }
}

fn percentiles(p: &Percentiles) -> String {
    format!(
        "p50 {}  p90 {}  p99 {}  p99.9 {}  max {}",
        us(p.p50),
        us(p.p90),
        us(p.p99),
        us(p.p999),
        us(p.max)
    )
}

/// Bytes per second as MB/s (10^6).
pub fn mb(v: f64) -> String {
    format!("{:.2} MB/s", v / 1e6)
}

/// A count with thousands separators ([`crate::text::count`]).
pub fn count(v: f64) -> String {
    crate::text::count(v.round() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_read_well() {
        assert_eq!(count(1_234_567.4), "1,234,567");
        assert_eq!(count(12.0), "12");
        assert_eq!(us(431.12), "431 µs");
        assert_eq!(us(4968.4), "4.97 ms");
        assert_eq!(us(2_500_000.0), "2.5 s");
        assert_eq!(mb(4_648_000.0), "4.65 MB/s");
    }
}
