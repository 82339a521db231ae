//! The exposition: a server's counters in the Prometheus text format 0.0.4,
//! what `GET /metrics` answers. Pure: counts in, text out, no I/O.
//!
//! Every metric is listed once, in [`FAMILIES`] (name, type, labels, help,
//! which server has it); the README's table is checked against it.
//!
//! The encoding is the `prometheus` crate's `TextEncoder` (HELP and TYPE
//! lines, label escaping, cumulative `le` buckets and `+Inf`), fed with
//! metric families built here from [`Totals`] at each scrape: the counters
//! stay this crate's own per-loop shards, which cost the data path a plain
//! store, and the crate only writes them out. It is used without its
//! `protobuf` feature, so it brings no code generator. `prometheus-client`
//! was not taken: it writes OpenMetrics (a `# EOF` line, counters typed
//! under their name without `_total`), which `promtool check metrics` reads
//! as the 0.0.4 format and flags.

use std::time::{SystemTime, UNIX_EPOCH};

use prometheus::proto::{
    Bucket, Counter, Gauge, Histogram, LabelPair, Metric, MetricFamily, MetricType,
};

use super::{ErrorClass, LATENCY_BOUNDS, Metrics, Rejected, ServerKind, TimedOut, Totals};

/// The `Content-Type` of the exposition.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// What a scrape shows: a server's counters at one moment.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Snapshot {
    /// Which server counts.
    pub kind: ServerKind,
    /// The counts, summed over the loops.
    pub totals: Totals,
    /// When the server's counters started.
    pub started: SystemTime,
}

impl Metrics {
    /// The counts now, for [`render`].
    pub fn snapshot(&self) -> Snapshot {
        Snapshot {
            kind: self.kind(),
            totals: self.totals(),
            started: self.started(),
        }
    }
}

/// A metric's Prometheus type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Type {
    /// Only goes up (until the server restarts).
    Counter,
    /// Goes up and down.
    Gauge,
    /// Cumulative `_bucket{le=...}` counts, `_sum` and `_count`.
    Histogram,
}

impl Type {
    /// As the TYPE line writes it.
    pub fn as_str(self) -> &'static str {
        match self {
            Type::Counter => "counter",
            Type::Gauge => "gauge",
            Type::Histogram => "histogram",
        }
    }
}

/// Which servers show a metric.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Servers {
    /// `echo-server` and `app-server`.
    Both,
    /// `echo-server` only (datagrams).
    Echo,
    /// `app-server` only (requests).
    App,
}

impl Servers {
    /// Whether `kind` shows it.
    pub fn include(self, kind: ServerKind) -> bool {
        match self {
            Servers::Both => true,
            Servers::Echo => kind == ServerKind::Echo,
            Servers::App => kind == ServerKind::App,
        }
    }
}

/// One metric: what the README's table shows, and where its value comes from.
#[derive(Clone, Copy, Debug)]
pub struct Family {
    /// The metric's name.
    pub name: &'static str,
    /// Its type.
    pub kind: Type,
    /// Its label and the label's values, if it has one.
    pub label: Option<(&'static str, &'static [&'static str])>,
    /// The HELP line.
    pub help: &'static str,
    /// Which servers show it.
    pub servers: Servers,
    value: fn(&Snapshot) -> Value,
}

/// A family's samples.
enum Value {
    /// One number.
    One(f64),
    /// One number per value of the family's label, in its order.
    ByLabel(Vec<u64>),
    /// One gauge set to 1 with these labels: facts about the server.
    Info(Vec<(&'static str, String)>),
    /// The app's latency histogram.
    Latency,
}

/// The label values of an enum with `ALL` and a `const fn label`, in order.
macro_rules! label_values {
    ($t:ty) => {{
        let mut out = [""; <$t>::ALL.len()];
        let mut i = 0;
        while i < out.len() {
            out[i] = <$t>::ALL[i].label();
            i += 1;
        }
        out
    }};
}

const REJECTED: [&str; Rejected::ALL.len()] = label_values!(Rejected);
const TIMED_OUT: [&str; TimedOut::ALL.len()] = label_values!(TimedOut);
const ERRORS: [&str; ErrorClass::ALL.len()] = label_values!(ErrorClass);

/// Every metric, in the order a scrape shows them. The names are stable:
/// dashboards and alerts are written against them.
pub const FAMILIES: &[Family] = &[
    Family {
        name: "echokit_server_info",
        kind: Type::Gauge,
        label: None,
        help: "Always 1; the labels say which server runs (echo or app) and its version.",
        servers: Servers::Both,
        value: |s| {
            Value::Info(vec![
                ("server", server_label(s.kind).to_string()),
                ("version", env!("CARGO_PKG_VERSION").to_string()),
            ])
        },
    },
    Family {
        name: "echokit_start_time_seconds",
        kind: Type::Gauge,
        label: None,
        help: "When the server started counting, in seconds since the Unix epoch.",
        servers: Servers::Both,
        value: |s| {
            let secs = s
                .started
                .duration_since(UNIX_EPOCH)
                .map_or(0.0, |d| d.as_secs_f64());
            Value::One(secs)
        },
    },
    Family {
        name: "echokit_connections_accepted_total",
        kind: Type::Counter,
        label: None,
        help: "Connections accepted and served (rejected ones are not counted here).",
        servers: Servers::Both,
        value: |s| Value::One(s.totals.accepted as f64),
    },
    Family {
        name: "echokit_connections_active",
        kind: Type::Gauge,
        label: None,
        help: "Connections open now.",
        servers: Servers::Both,
        value: |s| Value::One(s.totals.active() as f64),
    },
    Family {
        name: "echokit_connections_rejected_total",
        kind: Type::Counter,
        label: Some(("reason", &REJECTED)),
        help: "Connections accepted and closed at once, by reason: a connection limit was reached, or no file descriptor was left.",
        servers: Servers::Both,
        value: |s| Value::ByLabel(s.totals.rejected.to_vec()),
    },
    Family {
        name: "echokit_connections_timed_out_total",
        kind: Type::Counter,
        label: Some(("reason", &TIMED_OUT)),
        help: "Connections the server closed because a deadline passed, by reason.",
        servers: Servers::Both,
        value: |s| Value::ByLabel(s.totals.timed_out.to_vec()),
    },
    Family {
        name: "echokit_received_bytes_total",
        kind: Type::Counter,
        label: None,
        help: "Bytes read from clients, over connections and in datagrams.",
        servers: Servers::Both,
        value: |s| Value::One(s.totals.bytes_in as f64),
    },
    Family {
        name: "echokit_sent_bytes_total",
        kind: Type::Counter,
        label: None,
        help: "Bytes sent to clients, over connections and in datagrams.",
        servers: Servers::Both,
        value: |s| Value::One(s.totals.bytes_out as f64),
    },
    Family {
        name: "echokit_errors_total",
        kind: Type::Counter,
        label: Some(("class", &ERRORS)),
        help: "Errors the server met, by class.",
        servers: Servers::Both,
        value: |s| Value::ByLabel(s.totals.errors.to_vec()),
    },
    Family {
        name: "echokit_accept_backoffs_total",
        kind: Type::Counter,
        label: None,
        help: "Times accept failed (out of descriptors or memory) and the server waited before accepting again.",
        servers: Servers::Both,
        value: |s| Value::One(s.totals.accept_backoffs as f64),
    },
    Family {
        name: "echokit_datagrams_received_total",
        kind: Type::Counter,
        label: None,
        help: "Datagrams received (UDP and Unix datagram sockets).",
        servers: Servers::Echo,
        value: |s| Value::One(s.totals.datagrams_in as f64),
    },
    Family {
        name: "echokit_datagrams_sent_total",
        kind: Type::Counter,
        label: None,
        help: "Datagrams echoed back to their sender.",
        servers: Servers::Echo,
        value: |s| Value::One(s.totals.datagrams_out as f64),
    },
    Family {
        name: "echokit_datagrams_dropped_total",
        kind: Type::Counter,
        label: None,
        help: "Datagrams not answered: over a rate limit, from a refused source or an unsafe return path, too large, or not sendable.",
        servers: Servers::Echo,
        value: |s| Value::One(s.totals.datagrams_dropped as f64),
    },
    Family {
        name: "echokit_app_requests_total",
        kind: Type::Counter,
        label: None,
        help: "App requests answered.",
        servers: Servers::App,
        value: |s| Value::One(s.totals.requests as f64),
    },
    Family {
        name: "echokit_app_request_duration_seconds",
        kind: Type::Histogram,
        label: None,
        help: "Time from the event-loop turn that read an app request's first byte to the turn that queued its response, in seconds.",
        servers: Servers::App,
        value: |_| Value::Latency,
    },
];

/// The label value of a server kind.
fn server_label(kind: ServerKind) -> &'static str {
    match kind {
        ServerKind::Echo => "echo",
        ServerKind::App => "app",
    }
}

/// The exposition of a snapshot: what `GET /metrics` answers.
pub fn render(snapshot: &Snapshot) -> String {
    let families: Vec<MetricFamily> = FAMILIES
        .iter()
        .filter(|f| f.servers.include(snapshot.kind))
        .map(|f| family(f, snapshot))
        .collect();
    prometheus::TextEncoder::new()
        .encode_to_string(&families)
        .expect("every family has a name and at least one sample")
}

fn family(f: &Family, snapshot: &Snapshot) -> MetricFamily {
    let metrics = match (f.value)(snapshot) {
        Value::One(v) => vec![sample(f.kind, v, Vec::new())],
        Value::ByLabel(counts) => {
            let (name, values) = f.label.expect("a family counted by label has a label");
            values
                .iter()
                .zip(counts)
                .map(|(value, n)| sample(f.kind, n as f64, vec![label(name, value)]))
                .collect()
        }
        Value::Info(labels) => {
            let labels = labels.iter().map(|(k, v)| label(k, v)).collect();
            vec![sample(Type::Gauge, 1.0, labels)]
        }
        Value::Latency => vec![latency(&snapshot.totals)],
    };
    let mut mf = MetricFamily::default();
    mf.set_name(f.name.to_string());
    mf.set_help(f.help.to_string());
    mf.set_field_type(match f.kind {
        Type::Counter => MetricType::COUNTER,
        Type::Gauge => MetricType::GAUGE,
        Type::Histogram => MetricType::HISTOGRAM,
    });
    mf.set_metric(metrics);
    mf
}

fn label(name: &str, value: &str) -> LabelPair {
    let mut pair = LabelPair::default();
    pair.set_name(name.to_string());
    pair.set_value(value.to_string());
    pair
}

fn sample(kind: Type, value: f64, labels: Vec<LabelPair>) -> Metric {
    let mut m = Metric::from_label(labels);
    match kind {
        Type::Counter => {
            let mut c = Counter::default();
            c.set_value(value);
            m.set_counter(c);
        }
        Type::Gauge | Type::Histogram => {
            let mut g = Gauge::default();
            g.set_value(value);
            m.set_gauge(g);
        }
    }
    m
}

/// The latency histogram: the shards count per bucket, Prometheus wants
/// each bucket to count everything at or below its bound. The count is the
/// buckets' sum (the encoder writes it as `+Inf` too), so the histogram is
/// consistent in itself even when a scrape reads the counters mid-update.
fn latency(t: &Totals) -> Metric {
    let mut cumulative = 0;
    let buckets = LATENCY_BOUNDS
        .iter()
        .zip(&t.latency_buckets)
        .map(|(&bound, &n)| {
            cumulative += n;
            let mut b = Bucket::default();
            b.set_upper_bound(bound);
            b.set_cumulative_count(cumulative);
            b
        })
        .collect();
    let mut h = Histogram::default();
    h.set_bucket(buckets);
    h.set_sample_count(t.latency_buckets.iter().sum());
    h.set_sample_sum(t.latency_sum_ns as f64 / 1e9);
    let mut m = Metric::default();
    m.set_histogram(h);
    m
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn snapshot(kind: ServerKind) -> Snapshot {
        Snapshot {
            kind,
            totals: Totals::default(),
            started: UNIX_EPOCH + Duration::from_secs(1_700_000_000),
        }
    }

    /// The sample lines of a metric (those that start with its name and a
    /// space or a brace).
    fn samples<'a>(text: &'a str, name: &str) -> Vec<&'a str> {
        text.lines()
            .filter(|l| {
                l.strip_prefix(name)
                    .is_some_and(|rest| rest.starts_with([' ', '{']))
            })
            .collect()
    }

    #[test]
    fn every_family_has_help_and_type_and_a_lawful_name() {
        for kind in [ServerKind::Echo, ServerKind::App] {
            let text = render(&snapshot(kind));
            for f in FAMILIES.iter().filter(|f| f.servers.include(kind)) {
                assert!(
                    text.contains(&format!("# HELP {} {}\n", f.name, f.help)),
                    "{}",
                    f.name
                );
                assert!(text.contains(&format!("# TYPE {} {}\n", f.name, f.kind.as_str())));
                assert!(f.name.starts_with("echokit_"));
                assert!(
                    f.name
                        .bytes()
                        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_'),
                    "{}",
                    f.name
                );
                assert_eq!(
                    f.name.ends_with("_total"),
                    f.kind == Type::Counter,
                    "only counters end in _total: {}",
                    f.name
                );
            }
        }
    }

    #[test]
    fn names_are_unique() {
        let mut names: Vec<&str> = FAMILIES.iter().map(|f| f.name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), FAMILIES.len());
    }

    #[test]
    fn each_server_shows_its_own_metrics() {
        let echo = render(&snapshot(ServerKind::Echo));
        let app = render(&snapshot(ServerKind::App));
        assert!(echo.contains("echokit_datagrams_received_total 0\n"));
        assert!(!echo.contains("echokit_app_"));
        assert!(app.contains("echokit_app_requests_total 0\n"));
        assert!(!app.contains("echokit_datagrams_"));
        assert!(echo.contains("echokit_server_info{server=\"echo\",version=\""));
        assert!(app.contains("echokit_server_info{server=\"app\",version=\""));
        assert!(echo.contains("echokit_start_time_seconds 1700000000\n"));
    }

    #[test]
    fn counts_appear_under_their_names_and_labels() {
        let mut s = snapshot(ServerKind::Echo);
        let t = &mut s.totals;
        t.accepted = 7;
        t.closed = 3;
        t.rejected[Rejected::MaxConnsPerIp as usize] = 2;
        t.timed_out[TimedOut::Stall as usize] = 5;
        t.errors[ErrorClass::BrokenPipe as usize] = 11;
        t.accept_backoffs = 1;
        t.bytes_in = 1 << 40;
        t.bytes_out = 123;
        t.datagrams_in = 9;
        t.datagrams_out = 8;
        t.datagrams_dropped = 1;
        let text = render(&s);
        let has = |line: &str| {
            assert!(
                text.lines().any(|l| l == line),
                "no line {line:?} in\n{text}"
            );
        };
        has("echokit_connections_accepted_total 7");
        has("echokit_connections_active 4");
        has("echokit_connections_rejected_total{reason=\"max_conns\"} 0");
        has("echokit_connections_rejected_total{reason=\"max_conns_per_ip\"} 2");
        has("echokit_connections_rejected_total{reason=\"no_descriptors\"} 0");
        has("echokit_connections_timed_out_total{reason=\"stall\"} 5");
        has("echokit_errors_total{class=\"broken_pipe\"} 11");
        has("echokit_accept_backoffs_total 1");
        has("echokit_received_bytes_total 1099511627776");
        has("echokit_sent_bytes_total 123");
        has("echokit_datagrams_received_total 9");
        has("echokit_datagrams_sent_total 8");
        has("echokit_datagrams_dropped_total 1");
        // Every label value is shown, zero or not, so that a rate over it
        // starts from the first scrape.
        assert_eq!(
            samples(&text, "echokit_connections_timed_out_total").len(),
            TimedOut::ALL.len()
        );
        assert_eq!(
            samples(&text, "echokit_errors_total").len(),
            ErrorClass::ALL.len()
        );
    }

    #[test]
    fn the_latency_histogram_is_cumulative_and_ends_with_inf() {
        let metrics = Metrics::new(ServerKind::App);
        let shard = metrics.shard();
        shard.request(Duration::from_micros(40)); // le=0.00005
        shard.request(Duration::from_micros(300)); // le=0.0005
        shard.request(Duration::from_millis(2)); // le=0.0025
        shard.request(Duration::from_secs(20)); // over every bound
        let text = render(&metrics.snapshot());
        let buckets = samples(&text, "echokit_app_request_duration_seconds_bucket");
        assert_eq!(buckets.len(), LATENCY_BOUNDS.len() + 1, "{text}");
        let counts: Vec<u64> = buckets
            .iter()
            .map(|l| l.rsplit(' ').next().unwrap().parse().unwrap())
            .collect();
        assert!(counts.windows(2).all(|w| w[0] <= w[1]), "{counts:?}");
        assert_eq!(
            buckets[0],
            "echokit_app_request_duration_seconds_bucket{le=\"0.00005\"} 1"
        );
        assert_eq!(
            buckets[3],
            "echokit_app_request_duration_seconds_bucket{le=\"0.0005\"} 2"
        );
        assert_eq!(
            buckets[LATENCY_BOUNDS.len() - 1],
            "echokit_app_request_duration_seconds_bucket{le=\"10\"} 3"
        );
        assert_eq!(
            buckets[LATENCY_BOUNDS.len()],
            "echokit_app_request_duration_seconds_bucket{le=\"+Inf\"} 4"
        );
        let sum = samples(&text, "echokit_app_request_duration_seconds_sum");
        assert_eq!(sum, ["echokit_app_request_duration_seconds_sum 20.00234"]);
        let count = samples(&text, "echokit_app_request_duration_seconds_count");
        assert_eq!(count, ["echokit_app_request_duration_seconds_count 4"]);
        assert!(text.contains("echokit_app_requests_total 4\n"));
    }

    #[test]
    fn the_text_is_lines_of_comments_and_samples() {
        let text = render(&snapshot(ServerKind::App));
        assert!(text.ends_with('\n'));
        for line in text.lines() {
            if line.starts_with('#') {
                assert!(
                    line.starts_with("# HELP ") || line.starts_with("# TYPE "),
                    "{line}"
                );
                continue;
            }
            let (_, value) = line.rsplit_once(' ').expect("a sample has a value");
            value
                .parse::<f64>()
                .unwrap_or_else(|_| panic!("{line}: not a number"));
        }
        assert!(!text.contains("# EOF"), "the 0.0.4 format has no EOF line");
    }
}
