//! `echokit bench`'s flags.

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

use super::values::{parse_duration, parse_size};
use echokit::Endpoint;
use echokit::bench::compare::Cell;
use echokit::bench::{self, BenchConfig, SizeRange, Stop, Workload};

/// `echokit bench`.
#[derive(Debug, Args)]
pub struct BenchArgs {
    /// The server to load (any endpoint kind); two with --compare
    /// [default: tcp://127.0.0.1:65432]
    #[arg(value_name = "ENDPOINT", num_args = 0..=2)]
    pub endpoints: Vec<Endpoint>,
    /// Concurrent connections (a comma list runs one cell per value)
    #[arg(short = 'c', long, value_name = "N", value_delimiter = ',', default_value = "1", value_parser = clap::value_parser!(u32).range(1..))]
    pub connections: Vec<u32>,
    /// Message size in bytes, or MIN..MAX for sizes drawn at random (K and M
    /// suffixes allowed; a comma list runs one cell per value)
    #[arg(short = 's', long, value_name = "BYTES", value_delimiter = ',', default_value = "64", value_parser = parse_size_range)]
    pub size: Vec<SizeRange>,
    /// Messages in flight per connection, closed loop (1: ping-pong; a comma
    /// list runs one cell per value)
    #[arg(short = 'd', long, value_name = "D", value_delimiter = ',', default_value = "1", value_parser = clap::value_parser!(u32).range(1..=65536))]
    pub depth: Vec<u32>,
    /// How long the measured window lasts
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, default_value = "10s", conflicts_with = "count")]
    pub duration: Duration,
    /// End the window after this many messages instead
    #[arg(short = 'n', long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub count: Option<u64>,
    /// Time to run before the window opens (errors count in it too)
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, default_value = "1s")]
    pub warmup: Duration,
    /// Open loop: send this many messages per second in total, on schedule
    #[arg(long, value_name = "MSG/S", value_parser = parse_rate)]
    pub rate: Option<f64>,
    /// Churn: connect, one echo, close, and again; reports connections/s
    #[arg(long, conflicts_with = "rate")]
    pub churn: bool,
    /// What to send: `echo` bytes, or `app` requests (the guide's
    /// application protocol: one `search` per connection, or many with --keep-alive)
    #[arg(long, value_name = "PROTO", default_value = "echo", value_parser = ["echo", "app"])]
    pub proto: String,
    /// With --proto app: the value to search for
    #[arg(long, value_name = "VALUE", default_value = "morpheus")]
    pub query: String,
    /// With --proto app: many requests per connection (start the server with --keep-alive)
    #[arg(long)]
    pub keep_alive: bool,
    /// New connections per second at most, in total
    #[arg(long, value_name = "CONN/S", value_parser = parse_rate)]
    pub connect_rate: Option<f64>,
    /// The longest a connect may take
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, default_value = "10s")]
    pub connect_timeout: Duration,
    /// A message not echoed within this is an error: timed_out over streams,
    /// lost over datagrams [default: 10s for streams, 1s for datagrams]
    #[arg(short = 'w', long, value_name = "DURATION", value_parser = parse_duration)]
    pub timeout: Option<Duration>,
    /// Source addresses, round-robin: a comma list, or a range such as
    /// 127.0.0.1-127.0.0.8 (each gives another set of ephemeral ports)
    #[arg(long, value_name = "ADDRS", value_parser = parse_addr_list)]
    pub bind: Option<AddrList>,
    /// Engine threads (connections are shared out among them)
    #[arg(short = 'T', long, value_name = "N", default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=1024))]
    pub threads: u32,
    /// Pin the engine threads to these CPUs, round-robin (e.g. 1 or 2,3)
    #[arg(long, value_name = "CPUS", value_delimiter = ',')]
    pub cpu: Vec<usize>,
    /// Over datagrams: the share that may be lost, in percent, before the run fails
    #[arg(long, value_name = "PERCENT", default_value_t = 0.0)]
    pub max_loss: f64,
    /// How often progress is shown (and --ndjson prints an event)
    #[arg(long, alias = "interval", value_name = "DURATION", value_parser = parse_duration, default_value = "1s")]
    pub progress_interval: Duration,
    /// Print the final report as one JSON object
    #[arg(long, conflicts_with = "ndjson")]
    pub json: bool,
    /// Print one JSON object per interval, then the final report (type "summary")
    #[arg(long)]
    pub ndjson: bool,
    /// Also write the report as a self-contained HTML page with charts
    #[arg(long, value_name = "FILE.html")]
    pub report: Option<PathBuf>,
    /// Run the same cells against two endpoints, A B A B ..., and print
    /// medians and ratios
    #[arg(long)]
    pub compare: bool,
    /// With --compare: runs of each cell against each endpoint
    #[arg(long, value_name = "N", default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..))]
    pub reps: u32,
}

impl BenchArgs {
    /// The run these flags ask for against `target`, its cell `cell` (a
    /// `--compare` or a comma list runs each cell in its turn).
    pub fn config(&self, target: &bench::Target, workload: Workload, cell: &Cell) -> BenchConfig {
        BenchConfig {
            target: target.clone(),
            connections: cell.connections,
            sizes: cell.size,
            depth: cell.depth,
            stop: self.count.map_or(Stop::After(self.duration), Stop::Count),
            warmup: self.warmup,
            rate: self.rate,
            churn: self.churn,
            workload,
            connect_rate: self.connect_rate,
            connect_timeout: self.connect_timeout,
            timeout: self.timeout.unwrap_or(if target.is_datagram() {
                bench::DEFAULT_DATAGRAM_TIMEOUT
            } else {
                bench::DEFAULT_STREAM_TIMEOUT
            }),
            bind: self.bind.clone().map(|b| b.0).unwrap_or_default(),
            threads: self.threads,
            cpus: self.cpu.clone(),
            max_loss: self.max_loss,
            interval: self.progress_interval,
        }
    }

    /// What clap cannot check: combinations that depend on the endpoint.
    pub fn check(&self, targets: &[bench::Target], workload: &Workload) -> Result<(), String> {
        let datagram = targets[0].is_datagram();
        if let Workload::App { keep_alive, .. } = workload {
            if datagram {
                return Err("--proto app runs over stream endpoints (tcp://, unix:)".into());
            }
            if self.rate.is_some() && !keep_alive {
                return Err(
                    "--rate with --proto app needs --keep-alive: without it each request \
                 takes a connection of its own (that is --churn's job)"
                        .into(),
                );
            }
        } else if self.keep_alive {
            return Err(
                "--keep-alive is for --proto app (echo connections always stay open)".into(),
            );
        }
        if datagram && self.churn {
            return Err("--churn is for stream endpoints: datagram sockets have no connection to open and close".into());
        }
        if self.progress_interval < Duration::from_millis(10) {
            return Err("--progress-interval must be at least 10ms".into());
        }
        if !datagram && self.size.iter().any(|s| s.min == 0) {
            return Err(
                "--size 0 has nothing to echo over a stream: messages need at least one byte"
                    .into(),
            );
        }
        if !(0.0..=100.0).contains(&self.max_loss) {
            return Err(format!(
                "--max-loss {} is not a percentage from 0 to 100",
                self.max_loss
            ));
        }
        let largest = self.size.iter().map(|s| s.max).max().unwrap_or(0);
        if datagram {
            let limit = match targets[0].ip() {
                Some(a) if a.is_ipv6() => echokit::net::UDP_MAX_V6,
                Some(_) => echokit::net::UDP_MAX_V4,
                None => echokit::net::UNIX_DATAGRAM_MAX,
            };
            if largest > limit {
                return Err(format!(
                    "--size {largest} is more than one datagram can carry here ({limit} bytes)"
                ));
            }
        }
        let sources = self.bind.as_ref().map_or(&[][..], |b| &b.0[..]);
        if targets[0].is_local() && !sources.is_empty() {
            return Err("--bind picks source IP addresses: Unix endpoints have none".into());
        }
        if let Some(ip) = targets[0].ip()
            && sources.iter().any(|s| s.is_ipv6() != ip.is_ipv6())
        {
            return Err(format!("--bind addresses must be of {ip}'s family"));
        }
        Ok(())
    }
}

/// Source addresses for `--bind`.
#[derive(Clone, Debug)]
pub struct AddrList(pub Vec<IpAddr>);

/// `A,B,C` or `A-B` (IPv4, the last octets counting up), or a mix.
fn parse_addr_list(s: &str) -> Result<AddrList, String> {
    let mut out = Vec::new();
    for part in s.split(',') {
        let part = part.trim();
        if let Some((a, b)) = part.split_once('-') {
            let bad =
                || format!("`{part}` is not an address range: expected e.g. 127.0.0.1-127.0.0.8");
            let a: std::net::Ipv4Addr = a.trim().parse().map_err(|_| bad())?;
            let b: std::net::Ipv4Addr = b.trim().parse().map_err(|_| bad())?;
            let (lo, hi) = (u32::from(a), u32::from(b));
            if lo > hi || hi - lo >= 65536 {
                return Err(bad());
            }
            out.extend((lo..=hi).map(|n| IpAddr::V4(n.into())));
        } else {
            out.push(
                part.parse().map_err(|_| {
                    format!("`{part}` is not an IP address (expected e.g. 127.0.0.2)")
                })?,
            );
        }
    }
    Ok(AddrList(out))
}

/// A positive rate.
fn parse_rate(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(r) if r > 0.0 && r.is_finite() => Ok(r),
        _ => Err(format!(
            "`{s}` is not a rate: expected a positive number per second"
        )),
    }
}

/// `64`, `4K`, or `16..1024`.
fn parse_size_range(s: &str) -> Result<SizeRange, String> {
    match s.split_once("..") {
        Some((a, b)) => {
            let (min, max) = (parse_size(a)?, parse_size(b)?);
            if min > max {
                return Err(format!(
                    "`{s}`: the smallest size comes first, e.g. 16..1024"
                ));
            }
            Ok(SizeRange { min, max })
        }
        None => Ok(SizeRange::fixed(parse_size(s)?)),
    }
}
