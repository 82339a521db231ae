//! `echokit bench`: a load generator that tells the truth.
//!
//! | module       | role                                                           |
//! |--------------|----------------------------------------------------------------|
//! | [`pattern`]  | the checkable byte stream each connection sends, message sizes |
//! | `stream`     | the engine for TCP and `unix:` (one mio loop per thread)        |
//! | `datagram`   | the engine for `udp://` and `unixgram:`                         |
//! | [`stats`]    | error classes, histograms, what threads share with [`run`]     |
//! | [`report`]   | the final report: figures, text and JSON                       |
//! | [`html`]     | the report as one HTML page with SVG charts                    |
//! | [`preflight`]| descriptors and ephemeral ports, checked before a run          |
//! | [`compare`]  | A B A B runs, medians and ratios                               |
//!
//! [`run`] is the coordinator: it starts the engine threads, waits until
//! every connection is up and has echoed once and the warm-up is over,
//! opens the measured window, closes it after `--duration` (or when the
//! `--count` budget is spent), and merges what the threads measured. The
//! window is timed by each thread itself, from the moment it sees the phase
//! change, so a thread that runs late does not stretch a nominal duration.

pub mod compare;
mod datagram;
pub mod html;
pub mod pattern;
pub mod preflight;
mod reactor;
pub mod report;
mod schedule;
mod session;
pub mod stats;
mod stream;

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use serde::Serialize;
use socket2::{Domain, Protocol, SockAddr, Socket, Type};

use crate::endpoint::{Endpoint, LocalName, Purpose, ResolveError};
use crate::exit::{Classify, ExitCode};
use crate::net::{ConnectOptions, connect};
use crate::shutdown::Shutdown;
pub use pattern::SizeRange;
pub use report::Report;
use stats::{Control, Live, Phase, ThreadResult};

/// How long a stream echo may take when no `--timeout` is given: past a
/// retransmission or two, and a server stalled this long is broken.
pub const DEFAULT_STREAM_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a datagram's echo may take when no `--timeout` is given: a
/// lost datagram is never sent again, so waiting longer only delays the count.
pub const DEFAULT_DATAGRAM_TIMEOUT: Duration = Duration::from_secs(1);

/// What a run sends, and how.
#[derive(Clone, Debug)]
pub struct BenchConfig {
    /// Where to.
    pub target: Target,
    /// Connections (sockets, over datagrams).
    pub connections: u32,
    /// Message sizes.
    pub sizes: SizeRange,
    /// Messages in flight per connection (closed loop).
    pub depth: u32,
    /// When the measured window ends.
    pub stop: Stop,
    /// Time before the window opens.
    pub warmup: Duration,
    /// Open loop: messages per second in total.
    pub rate: Option<f64>,
    /// Connect, one exchange, close, again.
    pub churn: bool,
    /// What is exchanged.
    pub workload: Workload,
    /// New connections per second in total.
    pub connect_rate: Option<f64>,
    /// The longest a connect may take.
    pub connect_timeout: Duration,
    /// The longest an echo may take: past it, timed out (streams) or lost (datagrams).
    pub timeout: Duration,
    /// Local addresses to connect from, round-robin.
    pub bind: Vec<IpAddr>,
    /// Engine threads.
    pub threads: u32,
    /// CPUs to pin the threads to, round-robin.
    pub cpus: Vec<usize>,
    /// The share of datagrams that may be lost, in percent.
    pub max_loss: f64,
    /// Progress interval.
    pub interval: Duration,
}

impl BenchConfig {
    /// Whether each connection carries one exchange.
    pub fn churns(&self) -> bool {
        self.churn
            || matches!(
                self.workload,
                Workload::App {
                    keep_alive: false,
                    ..
                }
            )
    }

    /// The loop's name: closed, open or churn.
    pub fn mode(&self) -> &'static str {
        if self.churns() {
            "churn"
        } else if self.rate.is_some() {
            "open"
        } else {
            "closed"
        }
    }
}

/// What the messages are.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Workload {
    /// Bytes to echo, checked against the connection's stream.
    Echo,
    /// The guide's application protocol: `search` requests.
    App {
        /// The value searched for.
        query: String,
        /// Many requests per connection (the server must allow it).
        keep_alive: bool,
    },
}

/// When the measured window ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stop {
    /// After this long.
    After(Duration),
    /// After this many messages.
    Count(u64),
}

/// Where a run connects: the endpoint resolved to one socket address.
#[derive(Clone, Debug)]
pub struct Target {
    /// As given, with the address used.
    pub endpoint: Endpoint,
    addr: SockAddr,
    domain: Domain,
    ty: Type,
}

/// Why a run could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BenchError {
    /// The options do not make a run.
    #[error("{0}")]
    Usage(String),
    /// The host name did not resolve.
    #[error(transparent)]
    Resolve(#[from] ResolveError),
    /// This machine's limits would fail the run.
    #[error("{0}")]
    Limits(String),
    /// An engine thread failed.
    #[error("load generator: {0}")]
    Io(#[from] io::Error),
}

impl Classify for BenchError {
    fn exit_code(&self) -> ExitCode {
        match self {
            BenchError::Usage(_) | BenchError::Limits(_) => ExitCode::Usage,
            BenchError::Resolve(e) => e.exit_code(),
            BenchError::Io(_) => ExitCode::Failures,
        }
    }
}

impl Target {
    /// Resolves `endpoint`. An IP endpoint gets the address a client would
    /// try first ([`connect::candidates`]): of `--bind`'s family when `bind`
    /// has addresses, else the resolver's first.
    pub fn resolve(endpoint: &Endpoint, bind: &[IpAddr]) -> Result<Target, BenchError> {
        let ty = endpoint.socket_type().socket2();
        if let Some(name) = endpoint.local_name() {
            let addr = crate::net::unix::sock_addr(name).map_err(|e| {
                BenchError::Usage(format!("{endpoint}: not a Unix socket address: {e}"))
            })?;
            return Ok(Target {
                endpoint: endpoint.clone(),
                addr,
                domain: Domain::UNIX,
                ty,
            });
        }
        let hp = endpoint
            .host_port()
            .expect("an endpoint is either local or host:port");
        let addrs = hp.resolve(Purpose::Connect)?;
        let opts = ConnectOptions {
            bind: bind.first().copied(),
            ..ConnectOptions::default()
        };
        // A family mismatch is the only error, and it is the user's.
        let ordered =
            connect::candidates(&addrs, &opts).map_err(|e| BenchError::Usage(e.to_string()))?;
        // `resolve` returns at least one address or an error, and
        // `candidates` at least one of them or an error.
        let first = ordered[0];
        Ok(Target {
            endpoint: endpoint.with_addr(first),
            addr: first.into(),
            domain: Domain::for_address(first),
            ty,
        })
    }

    /// Whether this is a Unix socket.
    pub fn is_local(&self) -> bool {
        self.domain == Domain::UNIX
    }

    /// Whether this is a datagram endpoint.
    pub fn is_datagram(&self) -> bool {
        self.ty == Type::DGRAM
    }

    /// The IP address and port, for IP endpoints.
    pub fn ip(&self) -> Option<SocketAddr> {
        self.addr.as_socket()
    }

    /// A new non-blocking socket for connection `id`, bound to its source
    /// address if `bind` has any (the port is left to connect, which can then
    /// reuse one port towards different servers).
    fn socket(&self, id: u64, bind: &[IpAddr]) -> io::Result<Socket> {
        let protocol = match (self.is_local(), self.is_datagram()) {
            (true, _) => None,
            (false, false) => Some(Protocol::TCP),
            (false, true) => Some(Protocol::UDP),
        };
        let socket = Socket::new(self.domain, self.ty, protocol)?;
        socket.set_nonblocking(true)?;
        if !self.is_local() && !self.is_datagram() {
            socket.set_tcp_nodelay(true)?;
        }
        if !self.is_local() && !bind.is_empty() {
            let ip = bind[(id % bind.len() as u64) as usize];
            if !self.is_datagram() {
                use nix::sys::socket::{setsockopt, sockopt::IpBindAddressNoPort};
                setsockopt(&socket, IpBindAddressNoPort, &true).map_err(io::Error::from)?;
            }
            socket.bind(&SocketAddr::new(ip, 0).into())?;
        }
        if self.is_local() && self.is_datagram() {
            // The server answers to the sender's address: an abstract name,
            // which needs no file and vanishes with the socket.
            let name = LocalName::Abstract(format!("echokit-bench-{}-{id}", std::process::id()));
            socket.bind(&crate::net::unix::sock_addr(&name)?)?;
            crate::net::unix::room_for_largest_datagram(&socket)?;
        }
        Ok(socket)
    }
}

/// One engine thread's share of the run, for either engine.
struct Job {
    cfg: Arc<BenchConfig>,
    /// The global numbers of this thread's connections.
    ids: Vec<u64>,
    control: Arc<Control>,
    live: Arc<Live>,
    /// This thread's share of `--rate`, messages/s.
    rate: Option<f64>,
    /// This thread's share of `--connect-rate`, connects/s.
    connect_rate: Option<f64>,
}

/// One progress interval.
#[derive(Clone, Debug, Serialize)]
pub struct Interval {
    /// Seconds since the run started, at the interval's end.
    pub t: f64,
    /// `warmup` or `measure`.
    pub phase: &'static str,
    /// Echoes completed per second in the interval.
    pub messages_per_second: f64,
    /// Bytes written and read per second in the interval.
    pub bytes_per_second: report::Bytes,
    /// Connections completed per second (churn).
    pub connections_per_second: f64,
    /// Connections open at the interval's end.
    pub open_connections: u64,
    /// Errors so far.
    pub errors: u64,
}

/// Runs a benchmark. `on_interval` sees each progress interval as it ends.
pub fn run(
    cfg: &BenchConfig,
    shutdown: &Shutdown,
    on_interval: &mut dyn FnMut(&Interval),
) -> Result<Report, BenchError> {
    let cfg = Arc::new(cfg.clone());
    let threads = cfg.threads.clamp(1, cfg.connections.max(1)) as usize;
    let control = Arc::new(Control::new(match cfg.stop {
        Stop::Count(n) => Some(n),
        Stop::After(_) => None,
    }));
    let mut lives = Vec::new();
    let mut handles = Vec::new();
    for t in 0..threads {
        let ids: Vec<u64> = (t as u64..u64::from(cfg.connections))
            .step_by(threads)
            .collect();
        let share = ids.len() as f64 / f64::from(cfg.connections);
        let live = Arc::new(Live::default());
        lives.push(live.clone());
        let job = Job {
            cfg: cfg.clone(),
            ids,
            control: control.clone(),
            live,
            rate: cfg.rate.map(|r| r * share),
            connect_rate: cfg.connect_rate.map(|r| r * share),
        };
        let cpu = (!cfg.cpus.is_empty()).then(|| cfg.cpus[t % cfg.cpus.len()]);
        let datagram = cfg.target.is_datagram();
        let handle = std::thread::Builder::new()
            .name(format!("bench-{t}"))
            .spawn(move || {
                if let Some(cpu) = cpu {
                    pin(cpu)?;
                }
                if datagram {
                    datagram::run(job)
                } else {
                    stream::run(job)
                }
            })?;
        handles.push(handle);
    }

    let total = u64::from(cfg.connections);
    // Every connection is up (or failed) by then, however slow the server.
    let ramp = cfg.connect_rate.map_or(Duration::ZERO, |r| {
        Duration::from_secs_f64(total as f64 / r)
    });
    let warmup_limit =
        cfg.warmup + ramp + cfg.connect_timeout + cfg.timeout + Duration::from_secs(1);
    let mut intervals = Vec::new();
    let mut measure_start: Option<Instant> = None;
    let mut coordinator_cpu = (Duration::ZERO, None);
    let mut last_tick = control.base;
    let mut next_tick = control.base + cfg.interval;
    let mut prev = (0u64, 0u64, 0u64, 0u64);
    let mut progress = (0u64, Instant::now());
    let mut interrupted = false;
    let mut not_ready = false;
    let mut stalled = false;
    let sum = |f: fn(&Live) -> u64| lives.iter().map(|l| f(l)).sum::<u64>();
    let stop = |control: &Control, cpu: &mut (Duration, Option<Duration>)| {
        if control.phase() != Phase::Stop {
            control.set(Phase::Stop);
            cpu.1 = Some(stats::thread_cpu());
        }
    };
    loop {
        std::thread::sleep(Duration::from_millis(5).min(cfg.interval));
        let now = Instant::now();
        if handles.iter().all(std::thread::JoinHandle::is_finished) {
            break;
        }
        // A thread that ended without saying so failed: stop the others.
        if handles
            .iter()
            .zip(&lives)
            .any(|(h, l)| h.is_finished() && !l.done.load(Ordering::Acquire))
        {
            stop(&control, &mut coordinator_cpu);
        }
        if shutdown.is_requested() && control.phase() != Phase::Stop {
            interrupted = true;
            stop(&control, &mut coordinator_cpu);
        }
        let elapsed = now - control.base;
        if control.phase() == Phase::Warmup && elapsed >= cfg.warmup {
            let settled = sum(|l| l.settled.load(Ordering::Relaxed));
            if settled >= total || elapsed >= warmup_limit {
                not_ready = settled < total;
                measure_start = Some(now);
                coordinator_cpu.0 = stats::thread_cpu();
                control.set(Phase::Measure);
            }
        }
        if control.phase() == Phase::Measure {
            let done = sum(|l| l.messages.load(Ordering::Relaxed));
            if done != progress.0 {
                progress = (done, now);
            }
            match (measure_start, cfg.stop) {
                (Some(start), Stop::After(d)) if now - start >= d => {
                    stop(&control, &mut coordinator_cpu);
                }
                // A budget that nothing spends (a dead server) must not
                // keep the run going for ever.
                (Some(_), Stop::Count(_))
                    if now - progress.1 > cfg.connect_timeout + cfg.timeout =>
                {
                    stalled = true;
                    stop(&control, &mut coordinator_cpu);
                }
                _ => {}
            }
        }
        if now >= next_tick {
            let secs = (now - last_tick).as_secs_f64();
            let cur = (
                sum(|l| l.messages.load(Ordering::Relaxed)),
                sum(|l| l.sent.load(Ordering::Relaxed)),
                sum(|l| l.received.load(Ordering::Relaxed)),
                sum(|l| l.cycles.load(Ordering::Relaxed)),
            );
            let interval = Interval {
                t: (now - control.base).as_secs_f64(),
                phase: if control.phase() == Phase::Warmup {
                    "warmup"
                } else {
                    "measure"
                },
                messages_per_second: (cur.0 - prev.0) as f64 / secs,
                bytes_per_second: report::Bytes {
                    sent: (cur.1 - prev.1) as f64 / secs,
                    received: (cur.2 - prev.2) as f64 / secs,
                },
                connections_per_second: (cur.3 - prev.3) as f64 / secs,
                open_connections: sum(|l| l.open.load(Ordering::Relaxed)),
                errors: sum(|l| l.errors.load(Ordering::Relaxed)),
            };
            prev = cur;
            last_tick = now;
            on_interval(&interval);
            intervals.push(interval);
            next_tick += cfg.interval;
            if next_tick < now {
                next_tick = now + cfg.interval;
            }
        }
    }
    let coordinator_cpu = coordinator_cpu
        .1
        .unwrap_or_else(stats::thread_cpu)
        .saturating_sub(coordinator_cpu.0);
    let mut results: Vec<ThreadResult> = Vec::new();
    for handle in handles {
        match handle.join() {
            Ok(result) => results.push(result?),
            Err(_) => {
                return Err(BenchError::Io(io::Error::other(
                    "an engine thread panicked",
                )));
            }
        }
    }
    let notes = report::Notes {
        interrupted,
        not_all_ready: not_ready,
        stalled,
        coordinator_cpu,
        window_opened_s: measure_start.map(|at| (at - control.base).as_secs_f64()),
    };
    Ok(Report::new(&cfg, results, intervals, notes))
}

/// Pins the calling thread to one CPU.
fn pin(cpu: usize) -> io::Result<()> {
    let mut set = nix::sched::CpuSet::new();
    set.set(cpu).map_err(io::Error::from)?;
    nix::sched::sched_setaffinity(nix::unistd::Pid::from_raw(0), &set).map_err(io::Error::from)
}
