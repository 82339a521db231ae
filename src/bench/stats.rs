//! What a run counts: errors by class, the latency histograms, and the
//! counters the engine threads share with the coordinator.

use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU8, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use serde::Serialize;

use crate::stats::histogram;

/// Why a message or connection failed. The first group is the server's (or
/// the network's) doing, the second this client's own limits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorClass {
    /// The connect was refused: nothing listens (`ECONNREFUSED`).
    Refused,
    /// The server reset the connection (`ECONNRESET`, `EPIPE`).
    Reset,
    /// A connect or an echo did not finish within its timeout.
    TimedOut,
    /// The echo differed from what was sent, or held bytes never sent.
    Mismatch,
    /// The server closed the connection while the run still used it.
    EarlyClose,
    /// A datagram whose echo never came back.
    Lost,
    /// Any other failure on the way to the server (unreachable, ...).
    Other,
    /// No local address or port was left (`EADDRNOTAVAIL`): client side.
    AddrNotAvailable,
    /// This process ran out of descriptors (`EMFILE`, `ENFILE`): client side.
    TooManyOpenFiles,
}

impl ErrorClass {
    /// Every class, in report order.
    pub const ALL: [ErrorClass; 9] = [
        ErrorClass::Refused,
        ErrorClass::Reset,
        ErrorClass::TimedOut,
        ErrorClass::Mismatch,
        ErrorClass::EarlyClose,
        ErrorClass::Lost,
        ErrorClass::Other,
        ErrorClass::AddrNotAvailable,
        ErrorClass::TooManyOpenFiles,
    ];

    /// The class's name in reports and JSON.
    pub fn name(self) -> &'static str {
        match self {
            ErrorClass::Refused => "refused",
            ErrorClass::Reset => "reset",
            ErrorClass::TimedOut => "timed_out",
            ErrorClass::Mismatch => "mismatch",
            ErrorClass::EarlyClose => "early_close",
            ErrorClass::Lost => "lost",
            ErrorClass::Other => "other",
            ErrorClass::AddrNotAvailable => "addr_not_available",
            ErrorClass::TooManyOpenFiles => "too_many_open_files",
        }
    }

    /// Whether the cause is this client's own limit rather than the server.
    pub fn is_client_side(self) -> bool {
        matches!(
            self,
            ErrorClass::AddrNotAvailable | ErrorClass::TooManyOpenFiles
        )
    }

    /// The class of an I/O error.
    pub fn of(e: &io::Error) -> ErrorClass {
        match e.raw_os_error() {
            Some(libc::ECONNREFUSED | libc::ENOENT) => ErrorClass::Refused,
            Some(libc::ECONNRESET | libc::EPIPE | libc::ECONNABORTED) => ErrorClass::Reset,
            Some(libc::ETIMEDOUT) => ErrorClass::TimedOut,
            Some(libc::EADDRNOTAVAIL | libc::EADDRINUSE) => ErrorClass::AddrNotAvailable,
            Some(libc::EMFILE | libc::ENFILE) => ErrorClass::TooManyOpenFiles,
            _ => ErrorClass::Other,
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// Errors counted by class, with the first message of each.
#[derive(Clone, Debug, Default)]
pub struct Errors {
    counts: [u64; ErrorClass::ALL.len()],
    first: Vec<(ErrorClass, String)>,
}

impl Errors {
    /// Counts one error; keeps its text if it is the first of its class.
    pub fn add(&mut self, class: ErrorClass, what: impl FnOnce() -> String) {
        self.add_n(class, 1, what);
    }

    /// Counts `n` errors of one class; keeps the text if they are the first.
    pub fn add_n(&mut self, class: ErrorClass, n: u64, what: impl FnOnce() -> String) {
        if n == 0 {
            return;
        }
        let first = self.counts[class.index()] == 0;
        self.counts[class.index()] += n;
        if first {
            self.first.push((class, what()));
        }
    }

    /// How many of `class`.
    pub fn count(&self, class: ErrorClass) -> u64 {
        self.counts[class.index()]
    }

    /// All errors.
    pub fn total(&self) -> u64 {
        self.counts.iter().sum()
    }

    /// The first error of each class that had one, in the order they happened.
    pub fn first(&self) -> &[(ErrorClass, String)] {
        &self.first
    }

    /// Adds another thread's errors.
    pub fn merge(&mut self, other: &Errors) {
        for class in ErrorClass::ALL {
            let before = self.count(class);
            self.counts[class.index()] += other.count(class);
            if before == 0
                && let Some((_, text)) = other.first.iter().find(|(c, _)| *c == class)
            {
                self.first.push((class, text.clone()));
            }
        }
    }
}

/// Latency percentiles in microseconds.
#[derive(Clone, Copy, Debug, Default, Serialize)]
pub struct Percentiles {
    /// Median.
    pub p50: f64,
    /// 90th percentile.
    pub p90: f64,
    /// 99th percentile.
    pub p99: f64,
    /// 99.9th percentile.
    pub p999: f64,
    /// The slowest.
    pub max: f64,
    /// The mean.
    pub mean: f64,
}

impl Percentiles {
    /// The percentiles of a histogram of nanoseconds.
    pub fn of(h: &Histogram<u64>) -> Percentiles {
        let us = |ns: u64| ns as f64 / 1000.0;
        if h.is_empty() {
            return Percentiles::default();
        }
        Percentiles {
            p50: us(h.value_at_quantile(0.50)),
            p90: us(h.value_at_quantile(0.90)),
            p99: us(h.value_at_quantile(0.99)),
            p999: us(h.value_at_quantile(0.999)),
            max: us(h.max()),
            mean: h.mean() / 1000.0,
        }
    }
}

/// The percentile curve of a histogram of nanoseconds, for the HTML report:
/// (percentile, microseconds) points from the median to the maximum, spaced
/// evenly in "nines".
pub fn curve(h: &Histogram<u64>) -> Vec<(f64, f64)> {
    if h.is_empty() {
        return Vec::new();
    }
    let mut points = Vec::new();
    // Ten steps per nine, up to the nines the sample count supports.
    let nines = (h.len() as f64).log10().clamp(1.0, 6.0);
    let steps = (nines * 10.0) as u32;
    for i in 0..=steps {
        let q = 1.0 - 10f64.powf(-f64::from(i) / 10.0);
        points.push((q * 100.0, h.value_at_quantile(q) as f64 / 1000.0));
    }
    points.push((100.0, h.max() as f64 / 1000.0));
    points
}

/// Where the run is. Engine threads read it once per loop turn.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
#[repr(u8)]
pub enum Phase {
    /// Connecting and warming up: errors count, latencies do not.
    Warmup = 0,
    /// The measured window.
    Measure = 1,
    /// Stop sending, let what is in flight come back, close.
    Stop = 2,
}

/// What the coordinator tells the engine threads.
pub struct Control {
    phase: AtomicU8,
    /// Messages left to send in the measured window (`--count`), or `None`.
    budget: Option<AtomicI64>,
    wakers: std::sync::Mutex<Vec<Arc<mio::Waker>>>,
    /// The run's time origin: engine timestamps are nanoseconds since it.
    pub base: Instant,
}

impl Control {
    /// A run in warm-up, with an optional message budget.
    pub fn new(count: Option<u64>) -> Control {
        Control {
            phase: AtomicU8::new(Phase::Warmup as u8),
            budget: count.map(|n| AtomicI64::new(i64::try_from(n).unwrap_or(i64::MAX))),
            wakers: std::sync::Mutex::new(Vec::new()),
            base: Instant::now(),
        }
    }

    /// The phase now.
    #[inline]
    pub fn phase(&self) -> Phase {
        match self.phase.load(Ordering::Acquire) {
            0 => Phase::Warmup,
            1 => Phase::Measure,
            _ => Phase::Stop,
        }
    }

    /// Moves to `phase` and wakes every thread.
    pub fn set(&self, phase: Phase) {
        self.phase.store(phase as u8, Ordering::Release);
        for waker in self
            .wakers
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .iter()
        {
            let _ = waker.wake();
        }
    }

    /// Registers a thread's waker.
    pub fn register(&self, waker: Arc<mio::Waker>) {
        self.wakers
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(waker);
    }

    /// Takes one message from the budget; `false` once it is spent. Without
    /// a budget, always `true`.
    #[inline]
    pub fn take(&self) -> bool {
        match &self.budget {
            None => true,
            Some(left) => left.fetch_sub(1, Ordering::Relaxed) > 0,
        }
    }

    /// Whether a budget was given and is spent.
    pub fn spent(&self) -> bool {
        self.budget
            .as_ref()
            .is_some_and(|left| left.load(Ordering::Relaxed) <= 0)
    }

    /// Nanoseconds since the run's origin.
    #[inline]
    pub fn now(&self) -> u64 {
        self.base.elapsed().as_nanos() as u64
    }
}

/// Running totals a thread publishes for progress lines (all phases).
#[derive(Debug, Default)]
pub struct Live {
    /// Messages echoed.
    pub messages: AtomicU64,
    /// Bytes written.
    pub sent: AtomicU64,
    /// Bytes read.
    pub received: AtomicU64,
    /// Errors of every class.
    pub errors: AtomicU64,
    /// Connections that have echoed once, or failed first (settled).
    pub settled: AtomicU64,
    /// Connections open now.
    pub open: AtomicU64,
    /// Connections completed in churn mode.
    pub cycles: AtomicU64,
    /// The thread has ended.
    pub done: AtomicBool,
}

/// A thread's local totals, published to [`Live`] once per loop turn.
#[derive(Clone, Copy, Debug, Default)]
pub struct Totals {
    /// Messages echoed.
    pub messages: u64,
    /// Messages whose latency was recorded (the window's messages).
    pub recorded: u64,
    /// Bytes written.
    pub sent: u64,
    /// Bytes read.
    pub received: u64,
    /// Connections completed (churn).
    pub cycles: u64,
}

impl Totals {
    /// `self - earlier`.
    pub fn since(&self, earlier: &Totals) -> Totals {
        Totals {
            messages: self.messages - earlier.messages,
            recorded: self.recorded - earlier.recorded,
            sent: self.sent - earlier.sent,
            received: self.received - earlier.received,
            cycles: self.cycles - earlier.cycles,
        }
    }
}

/// A thread's view of the measured window: opened when it first sees
/// [`Phase::Measure`], closed when it stops.
#[derive(Debug, Default)]
struct Window {
    start: Option<(u64, Totals, Duration)>,
    end: Option<(u64, Totals, Duration)>,
}

impl Window {
    /// Opens the window (once).
    fn open(&mut self, now: u64, totals: Totals) {
        if self.start.is_none() {
            self.start = Some((now, totals, thread_cpu()));
        }
    }

    /// Closes an open window (once).
    fn close(&mut self, now: u64, totals: Totals) {
        if self.start.is_some() && self.end.is_none() {
            self.end = Some((now, totals, thread_cpu()));
        }
    }

    /// Totals, wall time and CPU time within the window.
    fn measured(&self) -> (Totals, Duration, Duration) {
        match (self.start, self.end) {
            (Some((t0, base, cpu0)), Some((t1, totals, cpu1))) => (
                totals.since(&base),
                Duration::from_nanos(t1.saturating_sub(t0)),
                cpu1.saturating_sub(cpu0),
            ),
            _ => (Totals::default(), Duration::ZERO, Duration::ZERO),
        }
    }
}

/// One engine thread's measurements and where it is in the run. Both
/// engines keep one and tell it what happens: a message issued, echoed or
/// given up, a connect, an error. It follows the coordinator's phase,
/// times the thread's window, keeps the `--count` budget's books, and
/// records a latency only for messages that belong to the window.
pub struct Meter {
    measuring: bool,
    stopping: bool,
    window: Window,
    drain_until: u64,
    /// `--count`: the window holds exactly the budget's messages.
    count_mode: bool,
    counted_in_flight: u64,
    open_loop: bool,
    /// Running totals (all phases).
    pub totals: Totals,
    latency: Histogram<u64>,
    uncorrected: Histogram<u64>,
    connect: Histogram<u64>,
    /// Errors of every phase.
    pub errors: Errors,
    behind_max: u64,
}

impl Meter {
    /// A meter for a run with (`count_mode`) or without a message budget,
    /// in the open (`open_loop`) or closed loop.
    pub fn new(count_mode: bool, open_loop: bool) -> Meter {
        Meter {
            measuring: false,
            stopping: false,
            window: Window::default(),
            drain_until: u64::MAX,
            count_mode,
            counted_in_flight: 0,
            open_loop,
            totals: Totals::default(),
            latency: histogram(),
            uncorrected: histogram(),
            connect: histogram(),
            errors: Errors::default(),
            behind_max: 0,
        }
    }

    /// Follows the coordinator's phase, once per loop turn. When the run
    /// stops (or the budget is spent and nothing counted is in flight), the
    /// window closes and in-flight messages get `drain` to come back.
    pub fn step(&mut self, control: &Control, now: u64, drain: Duration) {
        let phase = control.phase();
        if phase >= Phase::Measure && !self.stopping {
            self.window.open(now, self.totals);
            self.measuring = true;
        }
        let budget_done =
            self.count_mode && self.measuring && control.spent() && self.counted_in_flight == 0;
        if (phase == Phase::Stop || budget_done) && !self.stopping {
            self.stopping = true;
            self.measuring = false;
            self.window.close(now, self.totals);
            self.drain_until = now + drain.as_nanos() as u64;
        }
    }

    /// In the measured window.
    #[inline]
    pub fn measuring(&self) -> bool {
        self.measuring
    }

    /// No more messages are issued.
    #[inline]
    pub fn stopping(&self) -> bool {
        self.stopping
    }

    /// When the drain gives up, ns.
    pub fn drain_until(&self) -> u64 {
        self.drain_until
    }

    /// The thread has nothing left to run (every connection failed): its
    /// window ends now.
    pub fn end(&mut self, now: u64) {
        self.window.close(now, self.totals);
    }

    /// May one more message be issued? `None`: no (stopping, or the budget
    /// is spent); `Some(counted)`: yes, and whether it counts against the budget.
    #[inline]
    pub fn admit(&mut self, control: &Control) -> Option<bool> {
        if self.stopping {
            return None;
        }
        let counted = self.count_mode && self.measuring;
        if counted {
            if !control.take() {
                return None;
            }
            self.counted_in_flight += 1;
        }
        Some(counted)
    }

    /// A message came back whole at `now`: due (or scheduled) at `due`,
    /// last byte sent at `sent`.
    #[inline]
    pub fn echoed(&mut self, now: u64, due: u64, sent: u64, counted: bool) {
        self.totals.messages += 1;
        if counted {
            self.counted_in_flight -= 1;
        }
        let record = if self.count_mode {
            counted
        } else {
            self.measuring
        };
        if record {
            self.totals.recorded += 1;
            self.latency
                .saturating_record(now.saturating_sub(due).max(1));
            if self.open_loop {
                self.uncorrected
                    .saturating_record(now.saturating_sub(sent).max(1));
            }
        }
    }

    /// A message was given up (its connection failed, or it was lost).
    pub fn abandoned(&mut self, counted: bool) {
        if counted {
            self.counted_in_flight -= 1;
        }
    }

    /// A connect finished after `took` ns.
    pub fn connected(&mut self, took: u64) {
        if self.measuring {
            self.connect.saturating_record(took.max(1));
        }
    }

    /// The open-loop sender was `late` ns behind its schedule.
    #[inline]
    pub fn behind(&mut self, late: u64) {
        self.behind_max = self.behind_max.max(late);
    }

    /// Publishes the running totals for progress lines.
    pub fn publish(&self, live: &Live, open: u64) {
        live.messages.store(self.totals.messages, Ordering::Relaxed);
        live.sent.store(self.totals.sent, Ordering::Relaxed);
        live.received.store(self.totals.received, Ordering::Relaxed);
        live.cycles.store(self.totals.cycles, Ordering::Relaxed);
        live.errors.store(self.errors.total(), Ordering::Relaxed);
        live.open.store(open, Ordering::Relaxed);
    }

    /// The thread's result; tells the coordinator this thread is done.
    pub fn finish(
        self,
        live: &Live,
        open: u64,
        established: u64,
        datagrams: Datagrams,
    ) -> ThreadResult {
        self.publish(live, open);
        live.done.store(true, Ordering::Release);
        let (window, elapsed, cpu) = self.window.measured();
        ThreadResult {
            window,
            elapsed,
            cpu,
            latency: self.latency,
            uncorrected: self.uncorrected,
            connect: self.connect,
            errors: self.errors,
            established,
            datagrams,
            behind_max: self.behind_max,
        }
    }
}

/// What a thread measured.
pub struct ThreadResult {
    /// Totals within the measured window.
    pub window: Totals,
    /// The window as this thread saw it.
    pub elapsed: Duration,
    /// This thread's CPU time within the window.
    pub cpu: Duration,
    /// Latency from the (scheduled) send to the last byte back, ns.
    pub latency: Histogram<u64>,
    /// Latency from the actual send (open loop), ns.
    pub uncorrected: Histogram<u64>,
    /// Connect times, ns.
    pub connect: Histogram<u64>,
    /// Errors of every phase.
    pub errors: Errors,
    /// Connections established (every cycle in churn mode).
    pub established: u64,
    /// Datagrams: sent, lost, late and duplicate echoes (all phases).
    pub datagrams: Datagrams,
    /// Messages the open-loop schedule could not send on time, at their worst (ns behind).
    pub behind_max: u64,
}

/// Datagram tallies.
#[derive(Clone, Copy, Debug, Default, Serialize)]
pub struct Datagrams {
    /// Sent (all phases).
    pub sent: u64,
    /// Given up on after the timeout (all phases).
    pub lost: u64,
    /// Echoes that came after their datagram was counted lost.
    pub late: u64,
    /// Second echoes of one datagram.
    pub duplicated: u64,
}

impl Datagrams {
    /// Adds another thread's tallies.
    pub fn merge(&mut self, o: &Datagrams) {
        self.sent += o.sent;
        self.lost += o.lost;
        self.late += o.late;
        self.duplicated += o.duplicated;
    }
}

/// CPU time this thread has used (user + system).
pub fn thread_cpu() -> Duration {
    use nix::sys::resource::{UsageWho, getrusage};
    match getrusage(UsageWho::RUSAGE_THREAD) {
        Ok(u) => {
            let tv = |t: nix::sys::time::TimeVal| {
                Duration::new(t.tv_sec() as u64, t.tv_usec() as u32 * 1000)
            };
            tv(u.user_time()) + tv(u.system_time())
        }
        Err(_) => Duration::ZERO,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_keep_the_first_of_each_class_across_merges() {
        let mut a = Errors::default();
        a.add(ErrorClass::Reset, || "reset 1".into());
        a.add(ErrorClass::Reset, || "reset 2".into());
        let mut b = Errors::default();
        b.add(ErrorClass::Mismatch, || "mismatch 1".into());
        b.add(ErrorClass::Reset, || "reset 3".into());
        a.merge(&b);
        assert_eq!(a.total(), 4);
        assert_eq!(a.count(ErrorClass::Reset), 3);
        let firsts: Vec<&str> = a.first().iter().map(|(_, t)| t.as_str()).collect();
        assert_eq!(firsts, ["reset 1", "mismatch 1"]);
    }

    #[test]
    fn budget_runs_out() {
        let c = Control::new(Some(2));
        assert!(c.take() && c.take());
        assert!(!c.take());
        assert!(c.spent());
        assert!(Control::new(None).take());
    }

    #[test]
    fn io_errors_fall_in_their_class() {
        let e = |n| io::Error::from_raw_os_error(n);
        assert_eq!(ErrorClass::of(&e(libc::ECONNREFUSED)), ErrorClass::Refused);
        assert_eq!(ErrorClass::of(&e(libc::EPIPE)), ErrorClass::Reset);
        assert_eq!(
            ErrorClass::of(&e(libc::EMFILE)),
            ErrorClass::TooManyOpenFiles
        );
        assert!(ErrorClass::of(&e(libc::EADDRNOTAVAIL)).is_client_side());
        assert!(!ErrorClass::Mismatch.is_client_side());
    }
}
