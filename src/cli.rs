//! The command line: one subcommand per role, each with its own arguments.
//! Raw flags live here; `main` turns them into the library's configs.

use std::net::IpAddr;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

use echokit::Endpoint;
use echokit::bench::{self, SizeRange, Workload};
use echokit::echo::datagram_client::{DEFAULT_REPLY_TIMEOUT, DEFAULT_RETRIES};
use echokit::endpoint::{HostPort, SocketType};
use echokit::exit::ExitCode;
use echokit::net::connect::DEFAULT_CONNECT_TIMEOUT;
use echokit::net::listen::DEFAULT_BACKLOG;
use echokit::probe::{DEFAULT_CONCURRENCY, DEFAULT_TIMEOUT as DEFAULT_PROBE_TIMEOUT};
use echokit::resolve::{self, Name};
use echokit::serve::{
    ConnLimits, DEFAULT_GRACE, DEFAULT_IDLE_TIMEOUT, DEFAULT_STALL_TIMEOUT, WhenFull,
};
use echokit::sockets::{Filter, Kind, State};

/// The socket guide's echo server and clients, made real (fast, safe against
/// bad peers, clear about every failure), and tools that show what sockets do.
#[derive(Debug, Parser)]
#[command(name = "echokit", version, after_help = ExitCode::help_table(), after_long_help = exit_help())]
pub struct Cli {
    /// More logs on stderr: -v for debug, -vv for trace (RUST_LOG overrides).
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,
    /// Only errors on stderr.
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    pub quiet: bool,
    /// How log lines on stderr are written: `text` for people, `json` for
    /// log collectors (one object a line: timestamp, level, message, fields)
    #[arg(long, value_name = "FORMAT", value_enum, global = true, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    /// What to run.
    #[command(subcommand)]
    pub command: Command,
}

/// `--log-format`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// One readable line per event.
    Text,
    /// One JSON object per line.
    Json,
}

fn exit_help() -> String {
    format!(
        "{}\nEndpoints: tcp://HOST:PORT, HOST:PORT, [IPv6]:PORT, :PORT (every interface) or PORT \
         (127.0.0.1:PORT); udp://HOST:PORT; unix:PATH and unixgram:PATH (Unix stream and datagram \
         sockets), unix:@NAME (Linux abstract names). Port 0 picks a free port.",
        ExitCode::help_table()
    )
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Echo every byte back to its sender, to many clients at once.
    ///
    /// Prints `listening on ENDPOINT` on stdout for each bound address (with
    /// the real port when port 0 was asked), then logs each client on stderr.
    /// SIGTERM or Ctrl-C stops accepting and lets open connections finish
    /// within --grace; a second Ctrl-C exits at once. Started by systemd's
    /// socket activation (LISTEN_FDS), it serves the sockets passed instead
    /// of binding.
    #[command(after_help = ExitCode::help_table())]
    EchoServer(EchoServerArgs),
    /// Send messages to an echo server and check that they come back.
    ///
    /// With no arguments it does what the socket guide's client does: connects
    /// to 127.0.0.1:65432, sends `Hello, world` and prints
    /// `Received b'Hello, world'`. A lone `-` streams stdin to the server and
    /// the echo to stdout instead.
    #[command(after_help = ExitCode::help_table(), override_usage = "echokit echo-client [OPTIONS] [ENDPOINT] [-]")]
    EchoClient(EchoClientArgs),
    /// The guide's application client: one request, one response.
    ///
    /// `search VALUE` sends `{"action": "search", "value": VALUE}` as text/json
    /// and prints `Got result: ...`; any other ACTION sends ACTION and VALUE as
    /// binary content and prints `Got response: b'...'`, as the guide's
    /// app-client.py does, byte for byte on the wire. The endpoint may be
    /// left out: the guide's 127.0.0.1:65432.
    #[command(after_help = ExitCode::help_table(), override_usage = "echokit app-client [OPTIONS] [ENDPOINT] ACTION VALUE")]
    AppClient(AppClientArgs),
    /// The guide's application server: answers framed requests, many clients at once.
    ///
    /// Prints `listening on ENDPOINT` for each bound address, then logs each
    /// request and its answer on stderr. `search` requests are answered from
    /// the guide's table (or --data), binary requests with their first 10
    /// bytes. A request whose header is not whole within --header-timeout, or
    /// that is not whole within --request-timeout, malformed or over a limit,
    /// is logged and its connection closed. Started by systemd's socket
    /// activation (LISTEN_FDS), it serves the sockets passed instead of
    /// binding.
    #[command(after_help = ExitCode::help_table())]
    AppServer(AppServerArgs),
    /// Load-test a server: messages/s, latency percentiles, errors by class.
    ///
    /// Opens --connections connections (sockets, over udp:// and unixgram:)
    /// and keeps --depth messages in flight on each (closed loop), or sends
    /// --rate messages/s on a schedule whatever comes back (open loop, the
    /// latency counted from the scheduled send so that a stalled server
    /// cannot hide its stall). Every echoed byte is checked; a short read is
    /// normal, a wrong byte, a reset or an early close is an error. The
    /// measured window opens once every connection has echoed once and
    /// --warmup is over. Exit 0 when the run had no errors, 1 when it had
    /// some (or lost more datagrams than --max-loss), 2 on bad usage.
    #[command(
        after_help = ExitCode::help_table(),
        override_usage = "echokit bench [OPTIONS] [ENDPOINT]\n       echokit bench --compare [OPTIONS] ENDPOINT_A ENDPOINT_B"
    )]
    Bench(BenchArgs),
    /// List sockets with their state and process, as netstat and lsof do, explained.
    ///
    /// Every TCP, UDP and Unix socket of this host, IPv4 and IPv6: protocol,
    /// Recv-Q and Send-Q, local and foreign address, state, and the PID and
    /// program holding it. Addresses stay numeric, so it never waits on DNS.
    /// A LISTEN row shows its accept queue (connections the kernel has
    /// completed that accept() has not taken yet) against its backlog and
    /// net.core.somaxconn; the summary counts connections that full accept
    /// queues turned away since boot. --explain says what each state means
    /// for the program (CLOSE_WAIT: the peer closed and this program has
    /// not). Other users' processes are only named when run as root.
    #[command(after_help = ExitCode::help_table())]
    Sockets(SocketsArgs),
    /// Is anything listening? Connect to each TARGET as the guide's
    /// connect_ex does, and say what happened and why.
    ///
    /// One line per probe: the endpoint, `open`, `refused`, `timed out` or
    /// `unreachable`, the errno connect_ex would return (ECONNREFUSED is 111)
    /// and what it means. A host name is probed on each of its addresses
    /// (localhost is ::1 and 127.0.0.1: a server may listen on one only).
    /// TARGET takes any endpoint, and a port range or list:
    /// 127.0.0.1:8000-8100, localhost:22,80,443, udp://HOST:53, unix:PATH.
    /// With more than 24 probes, the open ones are listed and the rest
    /// counted (--all lists every one). UDP sends one datagram: an answer is
    /// open, an ICMP port unreachable is refused, silence is `no reply` and
    /// proves nothing. Unix sockets may also be `missing`, `denied` or of
    /// the `wrong type`. --count N tries each target N times, --interval
    /// apart, and prints each connect time and min/avg/max/p99, as ping
    /// does. Exit 0 when every try found its target open, 1 when any did
    /// not, 2 on bad usage.
    #[command(
        after_help = ExitCode::help_table(),
        override_usage = "echokit probe [OPTIONS] TARGET..."
    )]
    Probe(ProbeArgs),
    /// Show what the system resolver answers for names, as Python's socket calls see it.
    ///
    /// For each NAME: gethostbyname's answer (the first IPv4 address), the
    /// whole getaddrinfo list in the resolver's order (family, socket type,
    /// protocol, address: what socket() and connect() take), the canonical
    /// name, and where the answer comes from; first this host's own name
    /// (gethostname), last why a name can resolve differently on another host
    /// or in another run (/etc/nsswitch.conf, /etc/hosts, /etc/resolv.conf,
    /// /etc/gai.conf). A NAME is HOST, HOST:SERVICE (a port, or a name from
    /// /etc/services: localhost:http is port 80), an IP address, or
    /// [IPv6]:SERVICE. Exit 0 when every NAME resolved, else the first
    /// failure's code; with --reverse, an IP address without a name fails.
    #[command(after_help = ExitCode::help_table())]
    Resolve(ResolveArgs),
}

impl Command {
    /// Whether `--trace-calls` was given.
    pub fn traces_calls(&self) -> bool {
        match self {
            Command::EchoServer(a) => a.trace_calls,
            Command::EchoClient(a) => a.trace_calls,
            Command::AppServer(a) => a.trace_calls,
            Command::AppClient(a) => a.trace_calls,
            _ => false,
        }
    }
}

/// `echokit sockets`.
#[derive(Debug, Args)]
pub struct SocketsArgs {
    /// Only sockets with this local or foreign port
    #[arg(long, value_name = "PORT")]
    pub port: Option<u16>,
    /// Only sockets in these states (a comma list: listen, established,
    /// time-wait, close-wait, syn-sent, unconn, ...)
    #[arg(long, value_name = "STATE", value_delimiter = ',', value_parser = parse_state)]
    pub state: Vec<State>,
    /// Only sockets this process holds
    #[arg(long, value_name = "PID")]
    pub pid: Option<u32>,
    /// Only listeners, and bound datagram sockets that are not connected
    #[arg(short = 'l', long)]
    pub listening: bool,
    /// TCP sockets (with --udp and --unix: any of them; none of the three: all)
    #[arg(short = 't', long)]
    pub tcp: bool,
    /// UDP sockets
    #[arg(short = 'u', long)]
    pub udp: bool,
    /// Unix sockets
    #[arg(short = 'x', long)]
    pub unix: bool,
    /// IPv4 sockets only
    #[arg(short = '4', long, conflicts_with_all = ["ipv6", "unix"])]
    pub ipv4: bool,
    /// IPv6 sockets only
    #[arg(short = '6', long, conflicts_with = "unix")]
    pub ipv6: bool,
    /// Show the table again every INTERVAL until Ctrl-C, and flag send
    /// queues that grow (a peer that does not read)
    #[arg(long, value_name = "INTERVAL", num_args = 0..=1, default_missing_value = "1s", value_parser = parse_duration)]
    pub watch: Option<Duration>,
    /// With --watch: stop after this many tables
    #[arg(long, value_name = "N", requires = "watch", value_parser = clap::value_parser!(u64).range(1..))]
    pub count: Option<u64>,
    /// Say what each state and queue means for the program
    #[arg(long)]
    pub explain: bool,
    /// Print one JSON object (one per refresh with --watch)
    #[arg(long)]
    pub json: bool,
}

impl SocketsArgs {
    /// The kinds of socket to read.
    pub fn kinds(&self) -> Vec<Kind> {
        let ip_only = self.ipv4 || self.ipv6;
        if !(self.tcp || self.udp || self.unix) {
            return if ip_only {
                vec![Kind::Tcp, Kind::Udp]
            } else {
                Kind::ALL.to_vec()
            };
        }
        Kind::ALL
            .into_iter()
            .filter(|k| match k {
                Kind::Tcp => self.tcp,
                Kind::Udp => self.udp,
                _ => self.unix,
            })
            .collect()
    }

    /// Which of them to show.
    pub fn filter(&self) -> Filter {
        Filter {
            port: self.port,
            states: self.state.clone(),
            pid: self.pid,
            listening: self.listening,
            ipv4: match (self.ipv4, self.ipv6) {
                (true, _) => Some(true),
                (_, true) => Some(false),
                _ => None,
            },
        }
    }
}

fn parse_state(s: &str) -> Result<State, String> {
    State::parse(s).ok_or_else(|| {
        format!(
            "`{s}` is not a socket state: expected listen, established, syn-sent, syn-recv, \
             fin-wait1, fin-wait2, time-wait, close-wait, last-ack, closing or unconn"
        )
    })
}

/// `echokit resolve`.
#[derive(Debug, Args)]
pub struct ResolveArgs {
    /// HOST, HOST:SERVICE, an IP address, or [IPv6]:SERVICE (several may be given)
    #[arg(value_name = "NAME", required = true)]
    pub names: Vec<Name>,
    /// Also look up the name of each address (getnameinfo: a PTR record in
    /// DNS or a line in /etc/hosts), as Python's socket.gethostbyaddr
    #[arg(long)]
    pub reverse: bool,
    /// The longest each NAME may take: a DNS server that does not answer is
    /// given up on after this
    #[arg(long, value_name = "DURATION", value_parser = parse_timeout, default_value = humantime::format_duration(resolve::DEFAULT_TIMEOUT).to_string())]
    pub timeout: Duration,
    /// Print one JSON object instead
    #[arg(long)]
    pub json: bool,
}

/// `echokit probe`.
#[derive(Debug, Args)]
pub struct ProbeArgs {
    /// What to probe: HOST:PORT, HOST:8000-8100, HOST:22,80,443, PORT,
    /// [IPv6]:PORT, udp://HOST:PORT(S), unix:PATH, unixgram:PATH
    #[arg(value_name = "TARGET", required = true)]
    pub targets: Vec<String>,
    /// How long a try waits for an answer (a SYN is sent again after 1s)
    #[arg(short = 't', long, value_name = "DURATION", value_parser = parse_timeout, default_value = humantime::format_duration(DEFAULT_PROBE_TIMEOUT).to_string())]
    pub timeout: Duration,
    /// Tries in flight at once, at most (each holds a socket)
    #[arg(short = 'C', long, value_name = "N", default_value_t = DEFAULT_CONCURRENCY as u32, value_parser = clap::value_parser!(u32).range(1..=65536))]
    pub concurrency: u32,
    /// Try each target N times and print connect times and statistics, as ping does
    #[arg(short = 'c', long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub count: Option<u32>,
    /// With --count: the time from one round of tries to the next [default: 1s]
    #[arg(short = 'i', long, value_name = "DURATION", value_parser = parse_duration, requires = "count")]
    pub interval: Option<Duration>,
    /// The local address to connect from
    #[arg(long, value_name = "ADDR")]
    pub bind: Option<IpAddr>,
    /// The local port to connect from (firewall rules are often per port); a
    /// TCP try from it closes with a reset, so the next one can reuse it
    #[arg(long, value_name = "PORT", value_parser = clap::value_parser!(u16).range(1..))]
    pub source_port: Option<u16>,
    /// List every probe, not only the open ones, when there are many
    #[arg(long)]
    pub all: bool,
    /// Print one JSON object with every probe and the summary instead
    #[arg(long)]
    pub json: bool,
}

impl ProbeArgs {
    /// The time between rounds of tries.
    pub fn interval(&self) -> Duration {
        self.interval.unwrap_or(Duration::from_secs(1))
    }
}

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
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
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
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
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
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, default_value = "1s")]
    pub interval: Duration,
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
        if self.interval < Duration::from_millis(10) {
            return Err("--interval must be at least 10ms".into());
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
        if let Ok(allowed) = nix::sched::sched_getaffinity(nix::unistd::Pid::from_raw(0)) {
            let usable = |c: usize| allowed.is_set(c).unwrap_or(false);
            if let Some(bad) = self.cpu.iter().find(|&&c| !usable(c)) {
                let list: Vec<String> = (0..nix::sched::CpuSet::count())
                    .filter(|&c| usable(c))
                    .map(|c| c.to_string())
                    .collect();
                return Err(format!(
                    "--cpu {bad}: this process may run on CPUs {} only",
                    list.join(",")
                ));
            }
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

/// `echokit app-server`.
#[derive(Debug, Args)]
pub struct AppServerArgs {
    /// Where to listen (stream endpoints: tcp://, unix:); several may be
    /// given [default: tcp://127.0.0.1:65432]
    #[arg(value_name = "ENDPOINT")]
    pub endpoints: Vec<Endpoint>,
    /// A JSON object of search terms and answers, instead of the guide's table
    #[arg(long, value_name = "FILE.json")]
    pub data: Option<PathBuf>,
    /// The longest a request's header may take to arrive
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, default_value = "10s")]
    pub header_timeout: Duration,
    /// The longest a whole request may take to arrive
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, default_value = "30s")]
    pub request_timeout: Duration,
    /// Let one connection carry many requests (the guide's server closes after one)
    #[arg(long)]
    pub keep_alive: bool,
    /// The largest request content accepted, in bytes (K and M suffixes allowed)
    #[arg(long, value_name = "BYTES", value_parser = parse_size, default_value = "16M")]
    pub max_content: usize,
    /// The longest request header accepted, in bytes (at most 65535, the protocol's)
    #[arg(long, value_name = "BYTES", value_parser = parse_header_limit, default_value = "16K")]
    pub max_header: usize,
    /// The most bytes of unfinished requests all clients together may make the
    /// server hold; past it, a growing request is rejected
    #[arg(long, value_name = "BYTES", value_parser = parse_size, default_value = "256M")]
    pub max_buffered: usize,
    #[command(flatten)]
    pub limits: LimitArgs,
    /// Event loops [default: one per CPU this process may run on]
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=1024))]
    pub threads: Option<u16>,
    /// On SIGTERM or Ctrl-C, how long open connections may take to finish
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, default_value = humantime::format_duration(DEFAULT_GRACE).to_string())]
    pub grace: Duration,
    /// The listen() backlog
    #[arg(long, value_name = "N", default_value_t = DEFAULT_BACKLOG)]
    pub backlog: u32,
    /// Permissions of a Unix socket file, in octal
    #[arg(long, value_name = "MODE", value_parser = parse_mode, default_value = "0600")]
    pub mode: u32,
    /// Print each socket call on stderr as it happens (socket, bind, listen,
    /// accept, connect, recv, send, close), with its arguments and result
    #[arg(long)]
    pub trace_calls: bool,
    /// Under a service manager (inetd, systemd), and watched (`--metrics`).
    #[command(flatten)]
    pub service: ServiceArgs,
}

/// `echokit app-client`.
#[derive(Debug, Args)]
pub struct AppClientArgs {
    /// `[ENDPOINT] ACTION VALUE`: where the app-server listens
    /// (tcp://HOST:PORT, HOST:PORT or unix:PATH) [default:
    /// tcp://127.0.0.1:65432]; `search`, or any other word for a binary
    /// request; what to search for, or the binary request's text
    #[arg(value_name = "ARGS", num_args = 2..=3, required = true)]
    pub args: Vec<String>,
    /// The longest the whole exchange may take, the connect included
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, default_value = "30s")]
    pub timeout: Duration,
    /// The longest a connect may take
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, default_value = humantime::format_duration(DEFAULT_CONNECT_TIMEOUT).to_string())]
    pub connect_timeout: Duration,
    /// The largest response content accepted, in bytes (K and M suffixes allowed)
    #[arg(long, value_name = "BYTES", value_parser = parse_size, default_value = "16M")]
    pub max_content: usize,
    /// The longest response header accepted, in bytes (at most 65535, the protocol's)
    #[arg(long, value_name = "BYTES", value_parser = parse_header_limit, default_value = "16K")]
    pub max_header: usize,
    /// Print the response's header and content as JSON instead
    #[arg(long)]
    pub json: bool,
    /// Print the server's text as it came, control characters and escape
    /// sequences included, as the guide's client does (by default what
    /// Python's repr would escape is escaped: `\x1b`, `\n`, `\u200b`)
    #[arg(long, conflicts_with = "json")]
    pub raw: bool,
    /// Print each socket call on stderr as it happens (socket, bind, listen,
    /// accept, connect, recv, send, close), with its arguments and result
    #[arg(long)]
    pub trace_calls: bool,
}

/// Connection limits and timeouts, the same on every stream server.
#[derive(Debug, Args)]
pub struct LimitArgs {
    /// Connections open at once; more are accepted and closed at once
    /// [default: the descriptor limit, so a full descriptor table is the limit]
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub max_conns: Option<u64>,
    /// Connections open at once from one IP address (an IPv4-mapped IPv6
    /// client counts as its IPv4 address); more are accepted and closed at
    /// once [default: no limit]
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub max_conns_per_ip: Option<u64>,
    /// Close a connection that sends and receives nothing for this long; 0 for never
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, default_value = humantime::format_duration(DEFAULT_IDLE_TIMEOUT).to_string())]
    pub idle_timeout: Duration,
    /// Close a connection whose client does not read what it is sent for
    /// this long (its echo or response waits, unread); 0 for never
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, default_value = humantime::format_duration(DEFAULT_STALL_TIMEOUT).to_string())]
    pub stall_timeout: Duration,
}

impl LimitArgs {
    /// The limits, with `--max-conns` defaulting to `fd_limit` (the
    /// descriptor limit, if known).
    pub fn limits(&self, fd_limit: Option<u64>) -> ConnLimits {
        let to_usize = |n: u64| usize::try_from(n).unwrap_or(usize::MAX);
        let max_conns = self.max_conns.or(fd_limit).map_or(usize::MAX, to_usize);
        ConnLimits {
            max_conns,
            max_per_ip: self.max_conns_per_ip.map(to_usize),
            idle_timeout: Some(self.idle_timeout).filter(|d| !d.is_zero()),
            stall_timeout: Some(self.stall_timeout).filter(|d| !d.is_zero()),
            when_full: WhenFull::TurnAway,
        }
    }
}

/// `echokit echo-server`.
#[derive(Debug, Args)]
pub struct EchoServerArgs {
    /// Where to listen; several may be given [default: tcp://127.0.0.1:65432]
    #[arg(value_name = "ENDPOINT")]
    pub endpoints: Vec<Endpoint>,
    /// The listen() backlog: connections the kernel completes before accept().
    /// The kernel caps it at net.core.somaxconn.
    #[arg(long, value_name = "N", default_value_t = DEFAULT_BACKLOG)]
    pub backlog: u32,
    /// Event loops [default: one per CPU this process may run on]
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=1024))]
    pub threads: Option<u16>,
    /// On SIGTERM or Ctrl-C, how long open connections may take to finish
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, default_value = humantime::format_duration(DEFAULT_GRACE).to_string())]
    pub grace: Duration,
    /// Serve one client, then exit (the socket guide's server).
    #[arg(long)]
    pub once: bool,
    /// Turn on TCP keepalive, probing after this much idle time (e.g. 60s)
    #[arg(long, value_name = "DURATION", value_parser = parse_keepalive)]
    pub keepalive: Option<Duration>,
    /// SO_SNDBUF for each connection, in bytes (K and M suffixes allowed)
    #[arg(long, value_name = "BYTES", value_parser = parse_size)]
    pub sndbuf: Option<usize>,
    /// SO_RCVBUF for each connection, in bytes (K and M suffixes allowed)
    #[arg(long, value_name = "BYTES", value_parser = parse_size)]
    pub rcvbuf: Option<usize>,
    /// Permissions of a Unix socket file, in octal (0600: only its owner may connect)
    #[arg(long, value_name = "MODE", value_parser = parse_mode, default_value = "0600")]
    pub mode: u32,
    /// UDP answers per second to each source address; 0 for no limit
    /// [default: 1000 for sources off this host, none on loopback; a value
    /// given here applies to loopback too]
    #[arg(long, value_name = "PPS")]
    pub udp_rate_per_source: Option<u32>,
    /// UDP answers per second to all sources together; 0 for no limit
    #[arg(long, value_name = "PPS", default_value_t = 0)]
    pub udp_rate_total: u32,
    /// Answer datagram peers that send every echo straight back. By default
    /// such a peer (another echo server: an endless loop) is muted after
    /// 1,000 in a row for 1 s, doubling if it goes on; turn this off only
    /// for a client that re-sends one message the instant its echo arrives
    #[arg(long)]
    pub no_loop_guard: bool,
    #[command(flatten)]
    pub limits: LimitArgs,
    /// Print each socket call on stderr as it happens (socket, bind, listen,
    /// accept, connect, recv, send, close), with its arguments and result
    #[arg(long)]
    pub trace_calls: bool,
    /// Under a service manager (inetd, systemd), and watched (`--metrics`).
    #[command(flatten)]
    pub service: ServiceArgs,
}

/// The servers' flags for running as a service: under a service manager
/// (socket activation, systemd's `LISTEN_FDS`, needs none: it is read from
/// the environment), and watched through `--metrics`.
#[derive(Debug, Args)]
#[command(next_help_heading = "Running as a service (inetd, systemd, metrics)")]
pub struct ServiceArgs {
    /// Serve the one connection on stdin and stdout, as inetd (nowait) and
    /// systemd's Accept=yes with StandardInput=socket pass it; a listening
    /// or datagram socket on stdin (inetd's wait) is served as a listener.
    /// Nothing is printed on stdout; logs stay on stderr (dropped if stderr
    /// is the connection too)
    #[arg(long, conflicts_with = "endpoints")]
    pub inetd: bool,
    /// Once the sockets are bound (or taken from systemd or inetd), run as
    /// this user: its groups, its group, its uid, for good. Needs root; for
    /// a port below 1024 such as the echo's 7
    #[arg(long, value_name = "NAME")]
    pub user: Option<String>,
    /// Serve counters in the Prometheus text format at http://ADDR/metrics
    /// (e.g. 127.0.0.1:9100; port 0 picks one; the URL is printed after the
    /// `listening on` lines)
    #[arg(long, value_name = "ADDR", value_parser = parse_metrics_addr, conflicts_with = "inetd")]
    pub metrics: Option<HostPort>,
}

impl EchoServerArgs {
    /// Checks what clap cannot: flags that need a kind of endpoint.
    pub fn check(&self, endpoints: &[Endpoint]) -> Result<(), String> {
        if self.once
            && !endpoints
                .iter()
                .any(|e| e.socket_type() == SocketType::Stream)
        {
            return Err(
                "--once serves one connection: it needs a stream endpoint (tcp:// or unix:)".into(),
            );
        }
        Ok(())
    }
}

/// A positional argument of `echo-client`: an endpoint, or `-` for stdin.
#[derive(Clone, Debug)]
pub enum Target {
    /// Where to connect.
    Endpoint(Endpoint),
    /// Stream stdin.
    Stdin,
}

impl FromStr for Target {
    type Err = echokit::endpoint::ParseError;

    fn from_str(s: &str) -> Result<Target, Self::Err> {
        if s == "-" {
            Ok(Target::Stdin)
        } else {
            s.parse().map(Target::Endpoint)
        }
    }
}

/// `echokit echo-client`.
#[derive(Debug, Args)]
pub struct EchoClientArgs {
    /// `[ENDPOINT] [-]`: where to connect [default: tcp://127.0.0.1:65432],
    /// and `-` to stream stdin instead of sending messages
    #[arg(value_name = "ENDPOINT", num_args = 0..=2)]
    pub targets: Vec<Target>,
    /// A message to send (repeatable; default `Hello, world`)
    #[arg(short, long = "message", value_name = "TEXT")]
    pub messages: Vec<String>,
    /// Send this file's content as one message
    #[arg(long, value_name = "PATH", conflicts_with = "messages")]
    pub file: Option<PathBuf>,
    /// The echo is always checked now (exit 1 if it differs); kept so that
    /// scripts written for it still run
    #[arg(long, hide = true)]
    pub expect: bool,
    /// Concurrent connections, each sending the messages (default: the guide's
    /// `Message 1 from client.` and `Message 2 from client.`) and checking its echo
    #[arg(short = 'c', long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub connections: Option<u32>,
    /// The longest a connect may take
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, default_value = humantime::format_duration(DEFAULT_CONNECT_TIMEOUT).to_string())]
    pub connect_timeout: Duration,
    /// The longest the whole exchange may take over a stream [default: 30s;
    /// none when streaming stdin]; datagrams use --reply-timeout and --retries
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub timeout: Option<Duration>,
    /// The local address to connect from
    #[arg(long, value_name = "ADDR")]
    pub bind: Option<IpAddr>,
    /// The local port to connect from (firewall rules are often per port)
    #[arg(long, value_name = "PORT")]
    pub source_port: Option<u16>,
    /// Datagrams: how long to wait for each echo before sending again [default: 1s]
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub reply_timeout: Option<Duration>,
    /// Datagrams: how many times to send a datagram again when its echo does not come [default: 2]
    #[arg(long, value_name = "N")]
    pub retries: Option<u32>,
    /// Datagrams: send a numbered series of N datagrams and report loss and
    /// round-trip times, as ping does
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..=u32::MAX as u64))]
    pub count: Option<u64>,
    /// Datagrams: the time between two datagrams of a --count series [default: 1s]
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, requires = "count")]
    pub interval: Option<Duration>,
    /// Print each socket call on stderr as it happens (socket, bind, listen,
    /// accept, connect, recv, send, close), with its arguments and result
    #[arg(long)]
    pub trace_calls: bool,
}

/// What `echo-client`'s positional arguments ask for.
#[derive(Debug)]
pub struct ClientTarget {
    /// Where to connect.
    pub endpoint: Endpoint,
    /// Stream stdin rather than send messages.
    pub stream: bool,
}

impl AppClientArgs {
    /// Interprets `[ENDPOINT] ACTION VALUE`: the endpoint, the action, the value.
    pub fn request(&self) -> Result<(Endpoint, &str, &str), String> {
        match self.args.as_slice() {
            // An endpoint with one word after it is a request cut short,
            // not an action named like an address.
            [first, _] if first.contains(':') && first.parse::<Endpoint>().is_ok() => Err(format!(
                "`{first}` is an endpoint: ACTION and VALUE follow it \
                 (app-client [ENDPOINT] ACTION VALUE, as `app-client {first} search morpheus`)"
            )),
            [action, value] => Ok((Endpoint::default_tcp(), action, value)),
            [endpoint, action, value] => {
                let endpoint = endpoint.parse::<Endpoint>().map_err(|e| e.to_string())?;
                Ok((endpoint, action, value))
            }
            _ => Err("app-client takes [ENDPOINT] ACTION VALUE".into()),
        }
    }
}

impl EchoClientArgs {
    /// Interprets `[ENDPOINT] [-]`.
    pub fn target(&self) -> Result<ClientTarget, String> {
        let (endpoint, stream) = match self.targets.as_slice() {
            [] => (Endpoint::default_tcp(), false),
            [Target::Stdin] => (Endpoint::default_tcp(), true),
            [Target::Endpoint(ep)] => (ep.clone(), false),
            [Target::Endpoint(ep), Target::Stdin] => (ep.clone(), true),
            [Target::Stdin, _] => {
                return Err("`-` comes after the endpoint: echo-client ENDPOINT -".into());
            }
            [_, Target::Endpoint(ep)] => {
                return Err(format!(
                    "one endpoint at a time (got a second one, {ep}); after the endpoint only `-` may follow"
                ));
            }
            _ => return Err("at most two arguments: [ENDPOINT] [-]".into()),
        };
        if stream
            && (!self.messages.is_empty() || self.file.is_some() || self.connections.is_some())
        {
            return Err(
                "`-` streams stdin: it does not go with --message, --file or --connections".into(),
            );
        }
        match endpoint.socket_type() {
            SocketType::Stream => {
                let datagram_only = [
                    ("--reply-timeout", self.reply_timeout.is_some()),
                    ("--retries", self.retries.is_some()),
                    ("--count", self.count.is_some()),
                ];
                if let Some((flag, _)) = datagram_only.iter().find(|(_, given)| *given) {
                    return Err(format!(
                        "{flag} is for datagrams: it needs a udp:// or unixgram: endpoint, not {endpoint}"
                    ));
                }
            }
            SocketType::Datagram => {
                if self.reply_timeout.is_some_and(|t| t.is_zero()) {
                    return Err(
                        "--reply-timeout must be more than 0: it is how long an echo may take"
                            .into(),
                    );
                }
                if self.count.is_some() && (stream || self.connections.is_some()) {
                    return Err(
                        "--count sends one series: it does not go with `-` or --connections".into(),
                    );
                }
                if self.count.is_some() && self.retries.is_some() {
                    return Err(
                        "--count measures loss, which --retries would hide: use one or the other"
                            .into(),
                    );
                }
            }
        }
        if endpoint.local_name().is_some() && (self.bind.is_some() || self.source_port.is_some()) {
            return Err(format!(
                "--bind and --source-port are for IP endpoints; {endpoint} is a Unix socket"
            ));
        }
        if let (Some(port), Some(n @ 2..)) = (self.source_port, self.connections) {
            return Err(format!(
                "--source-port {port} can carry one connection to a server, not {n}: \
                 leave it out with --connections, or use --bind for the address alone"
            ));
        }
        Ok(ClientTarget { endpoint, stream })
    }
}

/// The datagram client's waiting rules, with their defaults.
impl EchoClientArgs {
    /// How long each datagram waits for its echo.
    pub fn reply_timeout(&self) -> Duration {
        self.reply_timeout.unwrap_or(DEFAULT_REPLY_TIMEOUT)
    }

    /// Tries after the first.
    pub fn retries(&self) -> u32 {
        self.retries.unwrap_or(DEFAULT_RETRIES)
    }

    /// The time between datagrams of a series.
    pub fn interval(&self) -> Duration {
        self.interval.unwrap_or(Duration::from_secs(1))
    }
}

/// `--metrics`: a TCP address in the endpoint syntax (`HOST:PORT`,
/// `tcp://HOST:PORT`, `:PORT`, `PORT`).
fn parse_metrics_addr(s: &str) -> Result<HostPort, String> {
    match s.parse::<Endpoint>().map_err(|e| e.to_string())? {
        Endpoint::Tcp(hp) => Ok(hp),
        other => Err(format!(
            "metrics are served over HTTP, so over TCP: give HOST:PORT (e.g. 127.0.0.1:9100), not {other}"
        )),
    }
}

/// A file mode in octal, as chmod takes it: `600`, `0600`, `0o660`.
fn parse_mode(s: &str) -> Result<u32, String> {
    let digits = s.strip_prefix("0o").unwrap_or(s);
    match u32::from_str_radix(digits, 8) {
        Ok(mode) if mode <= 0o777 => Ok(mode),
        _ => Err(format!(
            "`{s}` is not a mode: expected octal permissions such as 0600 or 0660"
        )),
    }
}

/// A header limit: a size that the protocol's 2-byte length can reach.
fn parse_header_limit(s: &str) -> Result<usize, String> {
    let n = parse_size(s)?;
    if n > usize::from(u16::MAX) {
        return Err(format!(
            "`{s}` is more than a header can be: the protocol's 2-byte length allows 65535 at most"
        ));
    }
    Ok(n)
}

/// Durations as people write them: `10s`, `500ms`, `1m30s`; a bare number is seconds.
fn parse_duration(s: &str) -> Result<Duration, String> {
    if let Ok(secs) = s.parse::<f64>() {
        return Duration::try_from_secs_f64(secs)
            .map_err(|_| format!("`{s}` is not a duration: expected e.g. 10s or 500ms"));
    }
    humantime::parse_duration(s)
        .map_err(|_| format!("`{s}` is not a duration: expected e.g. 10s, 500ms or 1m30s"))
}

/// A timeout: a duration of more than 0.
fn parse_timeout(s: &str) -> Result<Duration, String> {
    let d = parse_duration(s)?;
    if d.is_zero() {
        return Err(format!(
            "`{s}` is no time at all: give a timeout such as 5s"
        ));
    }
    Ok(d)
}

/// A keepalive idle time: the kernel takes whole seconds from 1 to 32767
/// (TCP_KEEPIDLE), and would refuse anything else on every connection.
fn parse_keepalive(s: &str) -> Result<Duration, String> {
    let d = parse_duration(s)?;
    if d.subsec_nanos() != 0 || !(1..=32767).contains(&d.as_secs()) {
        return Err(format!(
            "`{s}` is not a keepalive time: expected whole seconds from 1s to 32767s"
        ));
    }
    Ok(d)
}

/// Sizes in bytes with an optional `K`/`KiB`/`M`/`MiB` suffix (powers of 1024).
fn parse_size(s: &str) -> Result<usize, String> {
    let bad = || format!("`{s}` is not a size: expected bytes, e.g. 262144, 256K or 4M");
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (digits, unit) = t.split_at(split);
    let n: usize = digits.parse().map_err(|_| bad())?;
    let scale = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        _ => return Err(bad()),
    };
    n.checked_mul(scale).ok_or_else(bad)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;
    use echokit::echo::limit::DEFAULT_PER_SOURCE;

    #[test]
    fn cli_is_well_formed() {
        Cli::command().debug_assert();
    }

    #[test]
    fn app_client_without_an_endpoint_goes_to_the_guides_address() {
        let request = |args: &[&str]| {
            let cli =
                Cli::try_parse_from([&["echokit", "app-client"], args].concat()).expect("parses");
            let Command::AppClient(a) = cli.command else {
                panic!("not app-client")
            };
            a.request()
                .map(|(e, action, value)| (e.to_string(), action.to_string(), value.to_string()))
        };
        let guide = (
            "tcp://127.0.0.1:65432".to_string(),
            "search".into(),
            "morpheus".into(),
        );
        assert_eq!(request(&["search", "morpheus"]), Ok(guide.clone()));
        assert_eq!(
            request(&["127.0.0.1:65432", "search", "morpheus"]),
            Ok(guide)
        );
        assert_eq!(
            request(&["unix:/tmp/app.sock", "search", "x"]).map(|r| r.0),
            Ok("unix:/tmp/app.sock".to_string())
        );
        assert!(request(&["127.0.0.1:99999", "search", "x"]).is_err());
        // An endpoint and one word: the value is missing, not the endpoint.
        let cut = request(&["127.0.0.1:1", "search"]).unwrap_err();
        assert!(
            cut.contains("is an endpoint: ACTION and VALUE follow it"),
            "{cut}"
        );
        // One argument, or four, is clap's usage error.
        let parse =
            |args: &[&str]| Cli::try_parse_from([&["echokit", "app-client"], args].concat());
        assert!(parse(&["search"]).is_err());
        assert!(parse(&["a", "b", "c", "d"]).is_err());
    }

    #[test]
    fn help_texts_state_the_real_defaults() {
        // These help texts say the defaults in words, not from the constants.
        assert_eq!(
            echokit::echo::client::DEFAULT_TIMEOUT,
            Duration::from_secs(30)
        );
        assert_eq!(DEFAULT_REPLY_TIMEOUT, Duration::from_secs(1));
        assert_eq!(
            echokit::bench::DEFAULT_STREAM_TIMEOUT,
            Duration::from_secs(10)
        );
        assert_eq!(
            echokit::bench::DEFAULT_DATAGRAM_TIMEOUT,
            Duration::from_secs(1)
        );
        assert_eq!(DEFAULT_RETRIES, 2);
        assert_eq!(DEFAULT_PER_SOURCE, 1000);
        assert_eq!(
            echokit::app::client::DEFAULT_TIMEOUT,
            Duration::from_secs(30)
        );
        assert_eq!(
            echokit::app::server::DEFAULT_HEADER_TIMEOUT,
            Duration::from_secs(10)
        );
        assert_eq!(
            echokit::app::server::DEFAULT_REQUEST_TIMEOUT,
            Duration::from_secs(30)
        );
        assert_eq!(
            echokit::proto::DEFAULT_MAX_CONTENT,
            parse_size("16M").unwrap() as u64
        );
        assert_eq!(
            echokit::proto::DEFAULT_MAX_HEADER,
            parse_header_limit("16K").unwrap()
        );
        assert!(parse_header_limit("64K").is_err());
        assert_eq!(
            echokit::app::conn::DEFAULT_MAX_BUFFERED,
            parse_size("256M").unwrap() as u64
        );
    }

    #[test]
    fn durations_and_sizes() {
        assert_eq!(parse_duration("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("1.5"), Ok(Duration::from_millis(1500)));
        assert!(parse_duration("soon").is_err());
        assert_eq!(parse_keepalive("60s"), Ok(Duration::from_secs(60)));
        for bad in ["0", "500ms", "1e19", "1.5"] {
            assert!(parse_keepalive(bad).is_err(), "{bad}");
        }
        assert_eq!(parse_size("4096"), Ok(4096));
        assert_eq!(parse_size("256K"), Ok(256 << 10));
        assert_eq!(parse_size("4MiB"), Ok(4 << 20));
        assert!(parse_size("4 parsecs").is_err());
        assert!(parse_timeout("0s").is_err());
        assert_eq!(parse_timeout("2s"), Ok(Duration::from_secs(2)));
        assert_eq!(parse_mode("0600"), Ok(0o600));
        assert_eq!(parse_mode("660"), Ok(0o660));
        assert!(parse_mode("0800").is_err());
        assert!(parse_mode("01777").is_err());
        assert_eq!(
            parse_metrics_addr("127.0.0.1:9100").map(|hp| hp.to_string()),
            Ok("127.0.0.1:9100".to_string())
        );
        assert!(parse_metrics_addr("tcp://[::1]:0").is_ok());
        assert!(parse_metrics_addr(":9100").is_ok());
        let udp = parse_metrics_addr("udp://127.0.0.1:9100").unwrap_err();
        assert!(udp.contains("over TCP"), "{udp}");
        assert!(parse_metrics_addr("unix:/tmp/m.sock").is_err());
    }
}
