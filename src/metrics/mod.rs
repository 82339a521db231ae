//! What the servers count, for `--metrics`: connections accepted, open,
//! rejected and timed out, bytes, errors by class, accept back-offs,
//! datagrams, and the app server's request latencies.
//!
//! Counting must cost nothing measurable on the data path, so each event
//! loop counts into a [`Shard`] of its own (its own cache lines, written by
//! that loop only, with plain loads and stores); a scrape sums the shards.
//! Nothing is shared between loops per message.
//!
//! | file        | role                                                       |
//! |-------------|------------------------------------------------------------|
//! | `mod.rs`    | the counters: [`Metrics`], its [`Shard`]s, the labels      |
//! | `render.rs` | the exposition: every metric's name, in the Prometheus text format |
//! | `http.rs`   | the `--metrics` endpoint: binds, and runs `serve` on a thread of its own |
//! | `endpoint.rs` | the scrape: `GET /metrics` as a sans-IO service          |

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

pub(crate) mod endpoint;
pub mod http;
pub mod render;

/// Why a connection was accepted and closed at once.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rejected {
    /// `--max-conns` connections were open.
    MaxConns,
    /// `--max-conns-per-ip` connections from its address were open.
    MaxConnsPerIp,
    /// The descriptor table was full: closed with the reserve descriptor.
    NoDescriptors,
}

impl Rejected {
    /// Every reason, in the order they are shown.
    pub const ALL: [Rejected; 3] = [
        Rejected::MaxConns,
        Rejected::MaxConnsPerIp,
        Rejected::NoDescriptors,
    ];

    /// The label value.
    pub const fn label(self) -> &'static str {
        match self {
            Rejected::MaxConns => "max_conns",
            Rejected::MaxConnsPerIp => "max_conns_per_ip",
            Rejected::NoDescriptors => "no_descriptors",
        }
    }
}

/// Why the server closed a connection that had not finished.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TimedOut {
    /// Nothing came or went for `--idle-timeout`.
    Idle,
    /// The client did not read its echo for `--stall-timeout`.
    Stall,
    /// An app request's header was not whole in time.
    Header,
    /// An app request was not whole in time.
    Request,
    /// Still open at the end of the shutdown grace period.
    Grace,
}

impl TimedOut {
    /// Every reason, in the order they are shown.
    pub const ALL: [TimedOut; 5] = [
        TimedOut::Idle,
        TimedOut::Stall,
        TimedOut::Header,
        TimedOut::Request,
        TimedOut::Grace,
    ];

    /// The label value.
    pub const fn label(self) -> &'static str {
        match self {
            TimedOut::Idle => "idle",
            TimedOut::Stall => "stall",
            TimedOut::Header => "header",
            TimedOut::Request => "request",
            TimedOut::Grace => "grace",
        }
    }
}

/// The class of an error the server met.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorClass {
    /// A connection reset by its peer (ECONNRESET).
    Reset,
    /// A write to a peer that had gone (EPIPE).
    BrokenPipe,
    /// Any other error on a connection.
    Connection,
    /// `accept` found the descriptor table full (EMFILE, ENFILE).
    AcceptDescriptors,
    /// `accept` found the kernel short of memory (ENOBUFS, ENOMEM).
    AcceptMemory,
    /// Any other `accept` error that stopped accepting for a while.
    Accept,
    /// A rejected app request (malformed, over a limit).
    BadRequest,
}

impl ErrorClass {
    /// Every class, in the order they are shown.
    pub const ALL: [ErrorClass; 7] = [
        ErrorClass::Reset,
        ErrorClass::BrokenPipe,
        ErrorClass::Connection,
        ErrorClass::AcceptDescriptors,
        ErrorClass::AcceptMemory,
        ErrorClass::Accept,
        ErrorClass::BadRequest,
    ];

    /// The label value.
    pub const fn label(self) -> &'static str {
        match self {
            ErrorClass::Reset => "reset",
            ErrorClass::BrokenPipe => "broken_pipe",
            ErrorClass::Connection => "connection",
            ErrorClass::AcceptDescriptors => "accept_descriptors",
            ErrorClass::AcceptMemory => "accept_memory",
            ErrorClass::Accept => "accept",
            ErrorClass::BadRequest => "bad_request",
        }
    }

    /// The class of a connection's I/O error.
    pub fn of_connection(e: &std::io::Error) -> ErrorClass {
        match e.raw_os_error() {
            Some(libc::ECONNRESET) => ErrorClass::Reset,
            Some(libc::EPIPE) => ErrorClass::BrokenPipe,
            _ => ErrorClass::Connection,
        }
    }

    /// The class of an `accept` error that makes the loop back off.
    pub fn of_accept(e: &std::io::Error) -> ErrorClass {
        match e.raw_os_error() {
            Some(libc::EMFILE | libc::ENFILE) => ErrorClass::AcceptDescriptors,
            Some(libc::ENOBUFS | libc::ENOMEM) => ErrorClass::AcceptMemory,
            _ => ErrorClass::Accept,
        }
    }
}

/// The upper bounds of the request latency histogram's buckets, in seconds
/// (Prometheus's `le`), from 50 us to 10 s; the last bucket is `+Inf`.
pub const LATENCY_BOUNDS: [f64; 16] = [
    0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
    2.5, 10.0,
];

/// A counter written by one thread only: a load and a store, no locked
/// instruction; readers on other threads see whole values.
#[derive(Debug, Default)]
pub struct Counter(AtomicU64);

impl Counter {
    /// Adds `n` (from the shard's own loop only).
    #[inline]
    pub fn add(&self, n: u64) {
        let c = &self.0;
        // Release (a plain store on x86): a reader that sees this count sees
        // the shard's earlier counts too (a close after its accept).
        c.store(c.load(Ordering::Relaxed).wrapping_add(n), Ordering::Release);
    }

    /// Adds one.
    #[inline]
    pub fn inc(&self) {
        self.add(1);
    }

    /// The count so far.
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Acquire)
    }
}

/// What one event loop counts. Aligned so that two loops' shards never
/// share a cache line.
#[derive(Debug, Default)]
#[repr(align(128))]
pub struct Shard {
    /// Connections accepted and served.
    pub accepted: Counter,
    /// Connections closed (so open = accepted - closed, summed over shards:
    /// a connection may be accepted by one loop and closed by another).
    pub closed: Counter,
    /// Connections accepted and closed at once, by [`Rejected`] reason.
    pub rejected: [Counter; Rejected::ALL.len()],
    /// Connections the server closed, by [`TimedOut`] reason.
    pub timed_out: [Counter; TimedOut::ALL.len()],
    /// Errors, by [`ErrorClass`].
    pub errors: [Counter; ErrorClass::ALL.len()],
    /// Times `accept` failed and the loop waited before trying again.
    pub accept_backoffs: Counter,
    /// Bytes read from clients (streams and datagrams).
    pub bytes_in: Counter,
    /// Bytes sent to clients (streams and datagrams).
    pub bytes_out: Counter,
    /// Datagrams received.
    pub datagrams_in: Counter,
    /// Datagrams echoed.
    pub datagrams_out: Counter,
    /// Datagrams not answered (over a rate, refused, not sendable).
    pub datagrams_dropped: Counter,
    /// App requests answered.
    pub requests: Counter,
    /// App request latencies (first byte of the request to the response
    /// queued), per [`LATENCY_BOUNDS`] bucket, not cumulative; the last is
    /// over every bound.
    pub latency_buckets: [Counter; LATENCY_BOUNDS.len() + 1],
    /// Sum of the app request latencies, in nanoseconds.
    pub latency_sum_ns: Counter,
}

impl Shard {
    /// Counts a rejected connection.
    pub fn reject(&self, why: Rejected) {
        self.rejected[why as usize].inc();
    }

    /// Counts a connection the server closed for `why`.
    pub fn time_out(&self, why: TimedOut) {
        self.timed_out[why as usize].inc();
    }

    /// Counts an error.
    pub fn error(&self, class: ErrorClass) {
        self.errors[class as usize].inc();
    }

    /// Counts an answered app request that took `took`.
    pub fn request(&self, took: Duration) {
        let secs = took.as_secs_f64();
        let bucket = LATENCY_BOUNDS
            .iter()
            .position(|&bound| secs <= bound)
            .unwrap_or(LATENCY_BOUNDS.len());
        self.requests.inc();
        self.latency_buckets[bucket].inc();
        self.latency_sum_ns
            .add(u64::try_from(took.as_nanos()).unwrap_or(u64::MAX));
    }
}

/// Which server the counters are for: its metric names say so.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ServerKind {
    /// `echo-server`.
    Echo,
    /// `app-server`.
    App,
}

/// A server's counters: one shard per loop.
#[derive(Debug)]
pub struct Metrics {
    kind: ServerKind,
    started: SystemTime,
    shards: Mutex<Vec<Arc<Shard>>>,
}

impl Metrics {
    /// No counts yet.
    pub fn new(kind: ServerKind) -> Arc<Metrics> {
        Arc::new(Metrics {
            kind,
            started: SystemTime::now(),
            shards: Mutex::new(Vec::new()),
        })
    }

    /// Which server counts.
    pub fn kind(&self) -> ServerKind {
        self.kind
    }

    /// When counting started (the exposition's start time: a restart shows).
    pub fn started(&self) -> SystemTime {
        self.started
    }

    /// A new shard, for one loop to count into.
    pub fn shard(&self) -> Arc<Shard> {
        let shard = Arc::new(Shard::default());
        self.lock().push(Arc::clone(&shard));
        shard
    }

    /// The shards' counts summed: what a scrape shows.
    pub fn totals(&self) -> Totals {
        let mut t = Totals::default();
        for s in self.lock().iter() {
            // Closed first: a connection closed between the two reads is
            // then counted accepted, never closed and not accepted.
            t.closed += s.closed.get();
            t.accepted += s.accepted.get();
            add_all(&mut t.rejected, &s.rejected);
            add_all(&mut t.timed_out, &s.timed_out);
            add_all(&mut t.errors, &s.errors);
            t.accept_backoffs += s.accept_backoffs.get();
            t.bytes_in += s.bytes_in.get();
            t.bytes_out += s.bytes_out.get();
            t.datagrams_in += s.datagrams_in.get();
            t.datagrams_out += s.datagrams_out.get();
            t.datagrams_dropped += s.datagrams_dropped.get();
            t.requests += s.requests.get();
            add_all(&mut t.latency_buckets, &s.latency_buckets);
            t.latency_sum_ns += s.latency_sum_ns.get();
        }
        t
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Arc<Shard>>> {
        self.shards
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

fn add_all<const N: usize>(into: &mut [u64; N], from: &[Counter; N]) {
    for (t, c) in into.iter_mut().zip(from) {
        *t += c.get();
    }
}

/// Every shard's counts summed (the fields of [`Shard`], as numbers).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Totals {
    /// Connections accepted.
    pub accepted: u64,
    /// Connections closed.
    pub closed: u64,
    /// Connections turned away, by [`Rejected`] reason.
    pub rejected: [u64; Rejected::ALL.len()],
    /// Connections closed by a timeout, by [`TimedOut`] kind.
    pub timed_out: [u64; TimedOut::ALL.len()],
    /// Connection errors, by [`ErrorClass`].
    pub errors: [u64; ErrorClass::ALL.len()],
    /// Times `accept` failed and the loop waited before trying again.
    pub accept_backoffs: u64,
    /// Bytes received.
    pub bytes_in: u64,
    /// Bytes sent.
    pub bytes_out: u64,
    /// Datagrams received.
    pub datagrams_in: u64,
    /// Datagrams sent.
    pub datagrams_out: u64,
    /// Datagrams not answered (over a rate, refused, not sendable).
    pub datagrams_dropped: u64,
    /// Requests answered (app-server).
    pub requests: u64,
    /// Request durations, one count per bucket of [`LATENCY_BOUNDS`] and
    /// one over the last.
    pub latency_buckets: [u64; LATENCY_BOUNDS.len() + 1],
    /// The sum of request durations, in nanoseconds.
    pub latency_sum_ns: u64,
}

impl Totals {
    /// Connections open now.
    pub fn active(&self) -> u64 {
        self.accepted.saturating_sub(self.closed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_sum_and_latencies_fall_in_their_bucket() {
        let metrics = Metrics::new(ServerKind::App);
        let (a, b) = (metrics.shard(), metrics.shard());
        a.accepted.add(3);
        b.closed.inc();
        b.reject(Rejected::MaxConnsPerIp);
        a.request(Duration::from_micros(50));
        b.request(Duration::from_micros(51));
        b.request(Duration::from_secs(11));
        let t = metrics.totals();
        assert_eq!(t.active(), 2);
        assert_eq!(t.rejected, [0, 1, 0]);
        assert_eq!(t.requests, 3);
        assert_eq!(t.latency_buckets[0], 1, "50 us is within le=0.00005");
        assert_eq!(t.latency_buckets[1], 1);
        assert_eq!(t.latency_buckets[LATENCY_BOUNDS.len()], 1, "+Inf");
        assert_eq!(t.latency_sum_ns, 50_000 + 51_000 + 11_000_000_000);
    }
}
