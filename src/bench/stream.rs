//! The engine for stream endpoints (TCP and `unix:`): one mio loop per
//! thread, driving that thread's connections.
//!
//! A connection keeps a queue of messages in flight. Each message is a range
//! of the connection's byte stream ([`Stream`]) for the echo protocol, or one
//! copy of the encoded request for the application protocol. Bytes are
//! written straight from the pattern table or the request, and read into one
//! buffer per thread: no allocation per message.
//!
//! Each connection is a [`client::Link`](crate::client::Link) (its socket
//! and stream offsets, and the read and write loops) and a session
//! (`session.rs`), the same parts the echo client is made of; this engine
//! adds what measuring needs: the messages in flight and their times, the
//! pacing and the churn.
//!
//! Echoed bytes are checked as a byte stream: a read may end anywhere, and a
//! message is done when the stream has come back past its last byte. In the
//! closed loop a done message is replaced at once (`depth` in flight); in the
//! open loop a thread-wide schedule issues messages round-robin over the
//! connections whatever comes back. In churn mode a connection closes after
//! one exchange and a new one takes its place.
//!
//! Linux specifics: the sockets are edge-triggered (mio); how a read pass
//! stops is the link's.

use std::collections::VecDeque;
use std::io;
use std::os::fd::AsRawFd;
use std::sync::atomic::Ordering;

use super::reactor::Reactor;
use super::schedule::{OpenLoop, Schedule, next_due};
use super::session::{App, BenchSession, Echo};
use super::stats::{Control, Datagrams, ErrorClass, Meter, ThreadResult};
use super::{BenchConfig, Job, Workload};
use crate::client::{Link, ReadEnd};
use crate::text::os_error;

/// One read buffer per thread.
const READ_BUF: usize = 64 * 1024;
/// Connects in progress at once, per thread.
const MAX_CONNECTING: usize = 256;
/// How often connect and echo timeouts are checked.
const SWEEP_NS: u64 = 50_000_000;
/// After a failed cycle in churn mode, the slot waits this long.
const RETRY_NS: u64 = 10_000_000;
/// A Unix connect that finds the listen backlog full is retried after this.
const BACKLOG_RETRY_NS: u64 = 1_000_000;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// Waiting for its turn to connect, not before `at`; `first` is when the
    /// slot first tried (for the connect timeout across backlog retries).
    Idle {
        at: u64,
        first: Option<u64>,
    },
    Connecting {
        since: u64,
    },
    Open,
    /// Failed (persistent mode) or finished.
    Dead,
}

/// A message in flight.
#[derive(Clone, Copy, Debug)]
struct Msg {
    /// The stream offset just past its last byte.
    end: u64,
    /// When it was due (scheduled or issued), ns.
    due: u64,
    /// When its last byte was written, ns.
    sent: u64,
    /// Issued in the window against the `--count` budget.
    counted: bool,
}

struct Conn<S> {
    id: u64,
    /// Its socket, and its stream's bytes issued, written and read back.
    link: Link,
    state: State,
    /// What it says and expects.
    session: S,
    flight: VecDeque<Msg>,
    /// Index in `flight` of the first message not wholly written.
    unsent: usize,
    /// Counted in `settled` (first echo, or failed first).
    settled: bool,
    want_write: bool,
    /// When this cycle's connect started.
    connect_started: u64,
}

/// The thread's engine, for connections of one workload.
struct Engine<'a, S: BenchSession> {
    job: &'a Job,
    cfg: &'a BenchConfig,
    control: &'a Control,
    reactor: Reactor,
    conns: Vec<Conn<S>>,
    queue: VecDeque<usize>,
    connecting: usize,
    open: u64,
    next_connect: u64,
    connect_gap: u64,
    rbuf: Box<[u8]>,
    /// What the thread's sessions share.
    shared: S::Shared,
    meter: Meter,
    /// Connections that failed for good.
    dead: usize,
    established: u64,
    /// Open loop: when the next message is due, and where it goes.
    schedule: Option<Schedule>,
}

/// Runs one thread's connections until the run stops.
pub(super) fn run(job: Job) -> io::Result<ThreadResult> {
    match job.cfg.workload {
        Workload::Echo => run_with::<Echo>(job),
        Workload::App { .. } => run_with::<App>(job),
    }
}

fn run_with<S: BenchSession>(job: Job) -> io::Result<ThreadResult> {
    let reactor = Reactor::new(&job.control)?;
    let cfg = &*job.cfg;
    let depth = match cfg.rate {
        Some(_) => 64,
        None => cfg.depth as usize,
    };
    let conns = job
        .ids
        .iter()
        .map(|&id| Conn {
            id,
            link: Link::default(),
            state: State::Idle { at: 0, first: None },
            session: S::new(id, cfg),
            flight: VecDeque::with_capacity(depth),
            unsent: 0,
            settled: false,
            want_write: false,
            connect_started: 0,
        })
        .collect::<Vec<_>>();
    let engine = Engine {
        job: &job,
        cfg,
        control: &job.control,
        reactor,
        queue: (0..conns.len()).collect(),
        conns,
        connecting: 0,
        open: 0,
        next_connect: 0,
        connect_gap: job.connect_rate.map_or(0, |r| (1e9 / r) as u64),
        rbuf: vec![0; READ_BUF].into_boxed_slice(),
        shared: S::shared(cfg)?,
        meter: Meter::new(
            matches!(cfg.stop, super::Stop::Count(_)),
            cfg.rate.is_some(),
        ),
        dead: 0,
        established: 0,
        schedule: None,
    };
    engine.run()
}

impl<S: BenchSession> Engine<'_, S> {
    fn run(mut self) -> io::Result<ThreadResult> {
        let mut next_sweep = 0;
        loop {
            let now = self.control.now();
            self.meter.step(self.control, now, self.cfg.timeout);
            let drain_until = self.meter.drain_until();
            if self.stopping() && (self.drained() || now >= drain_until) {
                break;
            }
            if !self.stopping() && self.all_dead() {
                self.meter.end(now);
                break;
            }
            if !self.stopping() {
                self.start_connects(now);
                self.issue_scheduled(now);
            }
            if now >= next_sweep {
                self.sweep(now);
                next_sweep = now + SWEEP_NS;
            }
            self.meter.publish(&self.job.live, self.open);
            let due = self
                .schedule
                .as_ref()
                .filter(|_| !self.stopping())
                .map(Schedule::due);
            let until = self.wait_until(next_sweep.min(drain_until));
            self.reactor.wait(now, until, due)?;
            // One clock read for the batch: every event in it was there
            // when the wait returned, and a read per event would add the
            // handling of the events before it to each echo's latency.
            let now = self.control.now();
            let ready = std::mem::take(&mut self.reactor.ready);
            for event in &ready {
                let i = event.slot;
                match self.conns[i].state {
                    State::Connecting { .. } => {
                        if event.writable || event.error || event.write_closed {
                            self.finish_connect(i, now);
                        }
                    }
                    State::Open => {
                        let closed = event.read_closed || event.error;
                        if event.readable || closed {
                            self.read(i, now, closed);
                        }
                        if event.writable && self.conns[i].want_write {
                            self.flush(i, now);
                        }
                    }
                    State::Idle { .. } | State::Dead => {}
                }
            }
            self.reactor.ready = ready;
        }
        // What never came back, even after the drain, is the server's failure.
        for c in &self.conns {
            if c.state == State::Open && !c.flight.is_empty() {
                let (id, n) = (c.id, c.flight.len());
                let timeout = self.cfg.timeout;
                self.meter.errors.add(ErrorClass::TimedOut, || {
                    format!(
                        "connection {id}: {n} message(s) never echoed, {} after the run ended",
                        crate::text::duration(timeout)
                    )
                });
            }
        }
        for i in 0..self.conns.len() {
            self.close(i);
        }
        Ok(self.meter.finish(
            &self.job.live,
            self.open,
            self.established,
            Datagrams::default(),
        ))
    }

    fn stopping(&self) -> bool {
        self.meter.stopping()
    }

    /// The earliest moment the loop must wake for its own reasons.
    fn wait_until(&self, limit: u64) -> u64 {
        let mut until = limit;
        if !self.stopping()
            && let Some(&i) = self.queue.front()
            && self.connecting < MAX_CONNECTING
            && let State::Idle { at, .. } = self.conns[i].state
        {
            until = until.min(at.max(self.next_connect));
        }
        until
    }

    fn all_dead(&self) -> bool {
        self.dead == self.conns.len()
    }

    fn drained(&self) -> bool {
        self.conns.iter().all(|c| match c.state {
            State::Open => c.flight.is_empty(),
            State::Connecting { .. } => false,
            State::Idle { .. } | State::Dead => true,
        })
    }

    fn churn(&self) -> bool {
        self.cfg.churns()
    }

    // ---- connecting ----

    fn start_connects(&mut self, now: u64) {
        while self.connecting < MAX_CONNECTING && self.next_connect <= now {
            let Some(&i) = self.queue.front() else { break };
            let State::Idle { at, first } = self.conns[i].state else {
                self.queue.pop_front();
                continue;
            };
            if at > now {
                break;
            }
            self.queue.pop_front();
            self.next_connect = now.max(self.next_connect) + self.connect_gap;
            self.start_connect(i, now, first);
        }
    }

    fn start_connect(&mut self, i: usize, now: u64, first: Option<u64>) {
        let target = &self.cfg.target;
        let id = self.conns[i].id;
        let socket = match target.socket(id, &self.cfg.bind) {
            Ok(s) => s,
            Err(e) => return self.fail(i, now, ErrorClass::of(&e), &e.to_string()),
        };
        let first = first.unwrap_or(now);
        self.conns[i].connect_started = first;
        match socket.connect(&target.addr) {
            Ok(()) => {}
            Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock && target.is_local() => {
                // A Unix listener's backlog is full: try again shortly.
                if now - first > self.cfg.connect_timeout.as_nanos() as u64 {
                    return self.fail(
                        i,
                        now,
                        ErrorClass::TimedOut,
                        "connect timed out (the listen backlog stayed full)",
                    );
                }
                self.conns[i].state = State::Idle {
                    at: now + BACKLOG_RETRY_NS,
                    first: Some(first),
                };
                self.queue.push_back(i);
                return;
            }
            Err(e) => {
                let what = format!("connect: {}", os_error(&e));
                return self.fail(i, now, ErrorClass::of(&e), &what);
            }
        }
        let fd = socket.as_raw_fd();
        if let Err(e) = self.reactor.register(fd, i) {
            return self.fail(i, now, ErrorClass::of(&e), &e.to_string());
        }
        self.conns[i].link = Link::new(socket);
        self.conns[i].state = State::Connecting { since: first };
        self.connecting += 1;
        if target.is_local() {
            // A Unix connect completes (or fails) in the call itself.
            self.finish_connect(i, now);
        }
    }

    fn finish_connect(&mut self, i: usize, now: u64) {
        let socket = self.conns[i]
            .link
            .socket
            .as_ref()
            .expect("a connecting slot has a socket");
        match crate::net::connect::finished(socket) {
            Ok(false) => {}
            Ok(true) => {
                self.connecting -= 1;
                self.open += 1;
                self.established += 1;
                let c = &mut self.conns[i];
                c.state = State::Open;
                let took = now.saturating_sub(c.connect_started);
                self.meter.connected(took);
                self.opened(i, now);
            }
            Err(e) => {
                let what = format!("connect: {}", os_error(&e));
                self.fail(i, now, ErrorClass::of(&e), &what);
            }
        }
    }

    /// A connection is up: the closed loop fills its depth.
    fn opened(&mut self, i: usize, now: u64) {
        if self.cfg.rate.is_some() {
            self.maybe_start_schedule(now);
            return;
        }
        let depth = if self.churn() { 1 } else { self.cfg.depth };
        for _ in 0..depth {
            if !self.issue(i, now) {
                break;
            }
        }
        self.flush(i, now);
    }

    /// Open loop: the schedule starts once every connection is up or failed.
    fn maybe_start_schedule(&mut self, now: u64) {
        if self.cfg.rate.is_some()
            && self.schedule.is_none()
            && self.open > 0
            && self.open as usize + self.dead == self.conns.len()
        {
            self.start_schedule(now);
        }
    }

    fn start_schedule(&mut self, now: u64) {
        self.schedule = Some(Schedule::new(now, self.job.rate.unwrap_or(1.0)));
    }

    // ---- receiving (sending is the `OpenLoop` impl below) ----

    /// Reads what has arrived (a pass of the link's), then completes the
    /// messages that came back whole. Anything wrong fails the connection
    /// before its messages complete: what came may not be trusted.
    fn read(&mut self, i: usize, now: u64, closed: bool) {
        let c = &mut self.conns[i];
        let pass = c
            .link
            .read(&mut c.session, &mut self.shared, &mut self.rbuf, closed);
        self.meter.totals.received += pass.bytes;
        match pass.end {
            ReadEnd::Drained | ReadEnd::Closed => {}
            ReadEnd::Wrong(what) => return self.fail(i, now, ErrorClass::Mismatch, &what),
            ReadEnd::Failed(e) => {
                let what = format!("recv: {}", os_error(&e));
                return self.fail(i, now, ErrorClass::of(&e), &what);
            }
        }
        if pass.bytes > 0 {
            self.complete(i, now);
        }
        if matches!(pass.end, ReadEnd::Closed) && self.conns[i].state == State::Open {
            let c = &self.conns[i];
            let hint = match self.cfg.workload {
                Workload::App {
                    keep_alive: true, ..
                } => {
                    " (does the server take many requests per connection? \
                       echokit app-server needs --keep-alive for that)"
                }
                _ => "",
            };
            let what = format!(
                "the server closed the connection with {} message(s) in flight, \
                 after echoing {} bytes{hint}",
                c.flight.len(),
                c.link.received
            );
            self.fail(i, now, ErrorClass::EarlyClose, &what);
        }
    }

    /// Pops the messages that came back whole and replaces them.
    fn complete(&mut self, i: usize, now: u64) {
        let mut done = 0;
        loop {
            let c = &mut self.conns[i];
            let Some(front) = c.flight.front() else { break };
            if front.end > c.link.received {
                break;
            }
            let msg = *front;
            c.flight.pop_front();
            c.unsent = c.unsent.saturating_sub(1);
            done += 1;
            self.meter.echoed(now, msg.due, msg.sent, msg.counted);
            if !c.settled {
                c.settled = true;
                self.job.live.settled.fetch_add(1, Ordering::Relaxed);
            }
        }
        if done == 0 {
            return;
        }
        if self.churn() {
            if self.conns[i].flight.is_empty() {
                self.meter.totals.cycles += 1;
                self.close(i);
                self.requeue(i, now);
            }
            return;
        }
        if self.cfg.rate.is_none() {
            for _ in 0..done {
                if !self.issue(i, now) {
                    break;
                }
            }
            self.flush(i, now);
        }
    }

    // ---- timeouts, failures, closing ----

    fn sweep(&mut self, now: u64) {
        let connect_limit = self.cfg.connect_timeout.as_nanos() as u64;
        let echo_limit = self.cfg.timeout.as_nanos() as u64;
        for i in 0..self.conns.len() {
            match self.conns[i].state {
                State::Connecting { since } if now - since > connect_limit => {
                    let what = format!(
                        "connect timed out after {}",
                        crate::text::duration(self.cfg.connect_timeout)
                    );
                    self.fail(i, now, ErrorClass::TimedOut, &what);
                }
                State::Open => {
                    if let Some(front) = self.conns[i].flight.front()
                        && now.saturating_sub(front.due) > echo_limit
                        && !self.stopping()
                    {
                        let what = format!(
                            "no echo within {} ({} message(s) in flight)",
                            crate::text::duration(self.cfg.timeout),
                            self.conns[i].flight.len()
                        );
                        self.fail(i, now, ErrorClass::TimedOut, &what);
                    }
                }
                _ => {}
            }
        }
    }

    fn fail(&mut self, i: usize, now: u64, class: ErrorClass, what: &str) {
        let c = &self.conns[i];
        let id = c.id;
        self.meter
            .errors
            .add(class, || format!("connection {id}: {what}"));
        if !c.settled {
            self.conns[i].settled = true;
            self.job.live.settled.fetch_add(1, Ordering::Relaxed);
        }
        for msg in self.conns[i].flight.drain(..) {
            self.meter.abandoned(msg.counted);
        }
        self.conns[i].unsent = 0;
        self.close(i);
        if self.churn() && !self.stopping() {
            self.requeue(i, now + RETRY_NS);
        } else {
            self.conns[i].state = State::Dead;
            self.dead += 1;
            self.maybe_start_schedule(now);
        }
    }

    /// Closes the socket: the write side first, so the server sees a FIN.
    fn close(&mut self, i: usize) {
        let c = &mut self.conns[i];
        match c.state {
            State::Open => self.open -= 1,
            State::Connecting { .. } => self.connecting -= 1,
            _ => {}
        }
        let _ = c.link.finish_sending();
        let reactor = &self.reactor;
        c.link
            .close(|socket| reactor.deregister(socket.as_raw_fd()));
        c.state = State::Dead;
    }

    /// Churn: the slot connects again (a new connection), not before `at`.
    fn requeue(&mut self, i: usize, at: u64) {
        let c = &mut self.conns[i];
        c.link.reset();
        c.flight.clear();
        c.unsent = 0;
        c.want_write = false;
        c.session.restart();
        c.state = State::Idle { at, first: None };
        self.queue.push_back(i);
    }
}

/// Sending: the closed loop fills each connection's depth, the open loop
/// issues on the schedule.
impl<S: BenchSession> OpenLoop for Engine<'_, S> {
    fn next_due(&mut self, now: u64) -> Option<(u64, usize)> {
        let conns = &self.conns;
        let usable = |k: usize| conns[k].state == State::Open;
        next_due(
            &mut self.schedule,
            &mut self.meter,
            now,
            conns.len(),
            usable,
        )
    }

    /// Issues one more message on connection `i` (not yet written).
    fn issue(&mut self, i: usize, due: u64) -> bool {
        let Some(counted) = self.meter.admit(self.control) else {
            return false;
        };
        let c = &mut self.conns[i];
        let len = c.session.next_len(&self.shared);
        c.link.issued += len;
        c.flight.push_back(Msg {
            end: c.link.issued,
            due,
            sent: 0,
            counted,
        });
        true
    }

    /// Writes what is issued and not yet written, until the socket is full.
    fn flush(&mut self, i: usize, now: u64) {
        let c = &mut self.conns[i];
        let (flight, unsent, totals) = (&mut c.flight, &mut c.unsent, &mut self.meter.totals);
        let flushed = c.link.flush(&c.session, &self.shared, |n, written| {
            totals.sent += n;
            while *unsent < flight.len() && flight[*unsent].end <= written {
                flight[*unsent].sent = now;
                *unsent += 1;
            }
        });
        match flushed {
            Ok(all) => c.want_write = !all,
            Err(e) => {
                let what = format!("send: {}", os_error(&e));
                self.fail(i, now, ErrorClass::of(&e), &what);
            }
        }
    }
}
