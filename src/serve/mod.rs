//! Stream servers: event loops that accept connections and drive them, for
//! any service that speaks over a byte stream (the echo, the application
//! protocol, the metrics scrape). TCP and Unix streams alike. What the servers share lives here
//! too: the error when the loops cannot run, the grace period, the number
//! of loops. `ARCHITECTURE.md` places it among the layers.
//!
//! A service gives each accepted connection a `ServiceConnection`, a
//! sans-IO state machine: the loops own the socket and read and write it
//! through a transport, hand the service the bytes that arrived, send what
//! it gives back, tell it when its timeout has come, and close the
//! connection when it is done. What every service gets from the loops
//! alike: the connection limits, the idle and stall timeouts, the counting
//! for `--metrics`, and closing without loss (FIN, then what the peer still
//! sends is read and dropped for at most [`LINGER`], then `close`; never an
//! abortive close).
//!
//! | file           | role                                                 |
//! |----------------|------------------------------------------------------|
//! | `mod.rs`       | starts the loops                                     |
//! | `service.rs`   | the service traits: what a connection is to the loop |
//! | `transport.rs` | between socket and service: plain bytes now          |
//! | `worker.rs`    | one event loop: read, send, time, close, drain       |
//! | `accept.rs`  | accepting: limits, back-off, the reserve descriptor    |
//! | `limits.rs`  | the limits and timeouts, and how they are found        |
//! | `buffer.rs`  | the scratch buffer and the pool of pending buffers     |

pub(crate) mod accept;
mod admission;
pub(crate) mod buffer;
mod limits;
pub(crate) mod service;
pub(crate) mod transport;
mod worker;

pub use limits::{ConnLimits, DEFAULT_IDLE_TIMEOUT, DEFAULT_STALL_TIMEOUT, WhenFull};
pub(crate) use service::{Cx, Input, Service, ServiceConnection};

use std::io;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, mpsc};
use std::time::Duration;

use socket2::Socket;

use crate::driver::Driver;
use crate::exit::{Classify, ExitCode};
use crate::metrics::Metrics;
use crate::net::{Listener, Peer};
use crate::shutdown::Shutdown;
use accept::Acceptor;
use worker::{ConnOptions, Handoff, Shared, Worker, WorkerStats};

/// How long shutdown waits for open connections to finish before it cuts
/// them off: long enough for an echo in flight on a slow path, short enough
/// for a service manager's stop timeout (systemd's default is 90 s).
pub const DEFAULT_GRACE: Duration = Duration::from_secs(10);

/// The event loops could not run.
#[derive(Debug, thiserror::Error)]
#[error("event loop failed")]
pub struct ServerError(#[from] io::Error);

impl Classify for ServerError {
    fn exit_code(&self) -> ExitCode {
        ExitCode::Failures
    }
}

/// The number of event loops by default: the CPUs this process may run on
/// (its affinity mask and cgroup quota), so `taskset -c 0` gives one loop.
pub fn default_threads() -> usize {
    std::thread::available_parallelism().map_or(1, std::num::NonZero::get)
}

/// How long a connection the server ends reads and drops what its peer
/// still sends, after its FIN: closing a socket with unread input resets
/// the connection, and a reset can destroy data the peer has not read yet
/// (the last response). The peer's own close ends it sooner.
pub const LINGER: Duration = Duration::from_secs(1);

/// How the stream loops run.
#[derive(Clone, Debug)]
pub(crate) struct StreamConfig {
    /// Event loops.
    pub(crate) threads: usize,
    /// Serve one client, then stop accepting.
    pub(crate) once: bool,
    /// TCP keepalive idle time for accepted connections.
    pub(crate) keepalive: Option<Duration>,
    /// How long shutdown waits for open connections.
    pub(crate) grace: Duration,
    /// Connection limits and timeouts.
    pub(crate) limits: ConnLimits,
    /// Where the loops count.
    pub(crate) metrics: Arc<Metrics>,
    /// What the loops serve, as a log line names it (`metrics endpoint`).
    pub(crate) name: &'static str,
    /// Connections come and go at `debug`, not `info` (the metrics
    /// endpoint: a scrape every few seconds is not news).
    pub(crate) quiet: bool,
}

/// What the stream loops served.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct StreamStats {
    /// Connections accepted.
    pub(crate) connections: u64,
    /// Bytes sent to clients.
    pub(crate) bytes: u64,
    /// Connections cut off at the end of the grace period.
    pub(crate) cut_off: u64,
}

/// Serves stream listeners with `service` on event loops until `shutdown`
/// has drained them (or, with `once`, until the first client leaves).
pub(crate) fn run<S: Service>(
    listeners: Vec<Listener>,
    config: &StreamConfig,
    service: Arc<S>,
    shutdown: &Shutdown,
) -> io::Result<StreamStats> {
    // One client at a time needs one loop, and keeps the guide's order of events.
    let threads = if config.once {
        1
    } else {
        config.threads.max(1)
    };
    let per_ip = config.limits.max_per_ip.map(limits::PerIp::new);
    let Loops {
        shared, workers, ..
    } = Loops::new(
        listeners,
        threads,
        config.once,
        per_ip,
        config,
        service,
        shutdown,
    )?;
    if !config.quiet {
        tracing::info!(
            "serving with {threads} event loop{}",
            if threads == 1 { "" } else { "s" }
        );
    }
    let mut workers = workers.into_iter();
    let first = workers.next().expect("there is at least one loop");
    let results: Vec<io::Result<WorkerStats>> = std::thread::scope(|scope| {
        let handles: Vec<_> = workers
            .enumerate()
            .map(|(i, worker)| {
                std::thread::Builder::new()
                    .name(format!("echo-loop-{}", i + 1))
                    .spawn_scoped(scope, move || worker.run())
            })
            .collect();
        let first_result = {
            let _ended = LoopZeroEnded {
                shared: &shared,
                shutdown,
            };
            first.run()
        };
        if first_result.is_err() {
            shutdown.request();
        }
        let mut results = vec![first_result];
        for handle in handles {
            match handle {
                Ok(handle) => results.push(
                    handle
                        .join()
                        .unwrap_or_else(|_| Err(io::Error::other("event loop panicked"))),
                ),
                Err(e) => {
                    shutdown.request();
                    results.push(Err(e));
                }
            }
        }
        results
    });
    let mut stats = StreamStats::default();
    for result in results {
        let s = result?;
        stats.connections += s.connections;
        stats.bytes += s.bytes;
        stats.cut_off += s.cut_off;
    }
    Ok(stats)
}

/// Serves one connection that is already open (`--inetd`: the socket inetd
/// or systemd accepted) with `service` on one event loop, the same code as
/// a connection accepted from a listener, until it closes, or until
/// `shutdown` and the grace period have ended it. `config`'s `threads` and
/// `once` do not apply.
///
/// The loop is loop 0 with no listener and `once` set, so it ends when its
/// one connection does; the connection reaches it as a hand-over does,
/// through its inbox and waker, so the loop itself needs no other entry.
pub(crate) fn run_one<S: Service>(
    stream: Socket,
    peer: Peer,
    config: &StreamConfig,
    service: Arc<S>,
    shutdown: &Shutdown,
) -> io::Result<StreamStats> {
    // The one connection counts in no per-IP table: inetd admitted it.
    let Loops {
        shared,
        mut workers,
        to_first,
    } = Loops::new(Vec::new(), 1, true, None, config, service, shutdown)?;
    let worker = workers.pop().expect("one loop was made");
    // The connection on its way counts, as a hand-over's does.
    shared.loads[0].fetch_add(1, Ordering::Relaxed);
    to_first
        .send((stream, peer))
        .expect("the inbox lives in the worker, which has not run yet");
    shared.wakers[0].wake()?;
    let stats = worker.run()?;
    Ok(StreamStats {
        connections: stats.connections,
        bytes: stats.bytes,
        cut_off: stats.cut_off,
    })
}

/// The event loops of a stream server, set up and not yet running.
struct Loops<S: Service> {
    /// What they share.
    shared: Arc<Shared>,
    /// Loop 0 first: it holds the listeners.
    workers: Vec<Worker<S>>,
    /// Loop 0's inbox, for a connection that is already open.
    to_first: mpsc::Sender<Handoff>,
}

impl<S: Service> Loops<S> {
    /// Makes `threads` loops, each with its poll and its waker (registered
    /// with `shutdown`); loop 0 accepts on `listeners` (with `once`, one
    /// connection) and hands connections to the others through their inboxes.
    fn new(
        listeners: Vec<Listener>,
        threads: usize,
        once: bool,
        per_ip: Option<limits::PerIp>,
        config: &StreamConfig,
        service: Arc<S>,
        shutdown: &Shutdown,
    ) -> io::Result<Loops<S>> {
        let mut drivers = Vec::with_capacity(threads);
        let mut wakers = Vec::with_capacity(threads);
        let mut senders = Vec::with_capacity(threads);
        let mut inboxes = Vec::with_capacity(threads);
        for _ in 0..threads {
            let driver = Driver::new()?;
            let waker = driver.waker(worker::WAKER)?;
            shutdown.register(Arc::clone(&waker));
            let (tx, rx) = mpsc::channel();
            senders.push(tx);
            inboxes.push(rx);
            drivers.push(driver);
            wakers.push(waker);
        }
        let mut senders = senders.into_iter();
        let to_first = senders.next().expect("there is at least one loop");
        // Loop 0 serves what it places on itself without a hand-over.
        let peers = std::iter::once(None).chain(senders.map(Some)).collect();
        let shared = Arc::new(Shared {
            loads: (0..threads).map(|_| AtomicUsize::new(0)).collect(),
            accepting: AtomicBool::new(true),
            wakers,
            per_ip,
            next_conn: AtomicU64::new(1),
        });
        let options = ConnOptions {
            keepalive: config.keepalive,
            grace: config.grace,
            limits: config.limits,
            quiet: config.quiet,
        };
        let acceptor = Acceptor::new(listeners, peers, once, config.limits, config.name);
        let mut acceptor = Some(acceptor);
        let mut workers = Vec::with_capacity(threads);
        for (id, (driver, inbox)) in drivers.into_iter().zip(inboxes).enumerate() {
            workers.push(Worker::new(
                id,
                driver,
                Arc::clone(&service),
                acceptor.take(),
                inbox,
                Arc::clone(&shared),
                shutdown.clone(),
                options,
                config.metrics.shard(),
            )?);
        }
        Ok(Loops {
            shared,
            workers,
            to_first,
        })
    }
}

/// When loop 0 ends, however it ends (a panic included), it accepts no more:
/// the other loops may finish, and after a failure they are asked to.
struct LoopZeroEnded<'a> {
    shared: &'a Shared,
    shutdown: &'a Shutdown,
}

impl Drop for LoopZeroEnded<'_> {
    fn drop(&mut self) {
        self.shared.stop_accepting();
        if std::thread::panicking() {
            self.shutdown.request();
        }
    }
}
