//! One event loop of a stream server (echo, app, the metrics scrape): an epoll
//! instance (through `crate::driver`), the
//! connections it owns, its scratch buffer and buffer pool.
//!
//! Why mio and epoll: a readiness loop lets every connection share one read
//! buffer, so an idle connection costs a slab entry (under 100 bytes) and no
//! buffer; io_uring's completion model needs a buffer per outstanding read (or
//! provided-buffer rings, which are not everywhere: containers often disable
//! io_uring), and on this hardware the kernel's TCP path, not the syscall
//! interface, is the cost (4.5-5.4 us per echoed message). tokio's
//! task-per-connection model costs about 5 KB per idle connection and its
//! work-stealing scheduler adds tail latency. mio is epoll without the
//! boilerplate, and is what tokio itself is built on.
//!
//! Loop 0 also owns the listening sockets. It accepts (`accept.rs`) and
//! hands each new connection to the loop with the fewest connections,
//! through a channel and the loop's waker: one listening socket, no
//! `SO_REUSEPORT`, so another process can never join the port. Nothing is
//! shared on the data path but a per-loop connection count that changes
//! only on connect and close (and, with a per-IP limit, a table touched at
//! the same moments).
//!
//! Each connection has one entry in the loop's slab, open or closing, and
//! at most one live timer: its next deadline, the earliest of its idle and
//! stall timeouts (`limits.rs`), its service's own, and the end of its
//! linger. The clock is read once per turn, not per message.

use std::io;
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::Receiver;
use std::time::{Duration, Instant};

use mio::{Events, Interest, Token, Waker};
use slab::Slab;
use socket2::Socket;

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use super::LINGER;
use super::accept::{Accepted, Acceptor};
use super::admission::{self, Admission};
use super::buffer::{BUF_SIZE, BufPool};
use super::limits::{ConnLimits, Expired, PerIp, Watch};
use super::service::{ConnId, Cx, Input, Service, ServiceConnection};
use super::transport::{Plain, Transport};
use crate::driver::Driver;
use crate::metrics::{ErrorClass, Shard, TimedOut};
use crate::net::Peer;
use crate::shutdown::Shutdown;
use crate::text;

/// The token of a loop's waker (shutdown and hand-overs).
pub(crate) const WAKER: Token = Token(usize::MAX);
/// Listener `i` has token `LISTENER_BASE - i`; connections use their slab key.
const LISTENER_BASE: usize = usize::MAX - 1;
/// Events taken per `epoll_wait`: enough that 1000 busy connections need only
/// a couple of calls per round.
const EVENTS_PER_POLL: usize = 1024;
/// Connections accepted per listener event before the loop serves its other
/// sockets; the rest are accepted next turn.
const ACCEPTS_PER_TURN: usize = 256;
/// Reads per turn before a busy connection yields to the others (and per
/// turn of a closing connection's drain): 16 x 64 KiB is 1 MiB, a few
/// hundred microseconds of copying, so a bulk sender cannot starve the
/// loop's other connections.
pub(crate) const READ_BUDGET: usize = 16;

/// What a connection waits for while it is read from: data and end of
/// stream (EPOLLIN, EPOLLRDHUP), and urgent data (EPOLLPRI).
const READ_INTEREST: Interest = Interest::READABLE.add(Interest::PRIORITY);

/// What the loop does next with a connection.
#[derive(Debug)]
enum Progress {
    /// Nothing to do until the socket's next event.
    Wait,
    /// The read budget is spent and data may remain: drive again next turn.
    Yield,
    /// The connection has done its part and its peer may still send: the
    /// loop sends FIN (if it was not sent), reads and drops what comes for
    /// at most [`LINGER`], then closes.
    Linger,
    /// The connection is over and nothing is left to read: close it.
    Close(Ended),
}

/// How a connection ended.
#[derive(Debug)]
enum Ended {
    /// The peer closed its side and got everything it was sent.
    Finished,
    /// The socket failed (reset by the peer, broken pipe...).
    Failed(io::Error),
}

/// A connection on its way from the accepting loop to its owner.
pub(crate) type Handoff = (Socket, Peer);

/// What a loop counts, summed into the server's statistics at exit.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct WorkerStats {
    pub(crate) connections: u64,
    pub(crate) bytes: u64,
    pub(crate) cut_off: u64,
}

/// What the loops share. Nothing here is touched per message: the loads
/// change on connect and close, the flag once.
pub(crate) struct Shared {
    /// Connections per loop (including those on their way), for placing new ones.
    pub(crate) loads: Box<[AtomicUsize]>,
    /// Loop 0 still accepts, so hand-overs may still arrive.
    pub(crate) accepting: AtomicBool,
    /// Every loop's waker, by loop id.
    pub(crate) wakers: Vec<Arc<Waker>>,
    /// Open connections per IP address, with a per-IP limit.
    pub(crate) per_ip: Option<PerIp>,
    /// The number the next connection taken up gets ([`ConnId`]).
    pub(crate) next_conn: AtomicU64,
}

impl Shared {
    /// Connections open now on every loop (and on their way to one).
    pub(crate) fn open(&self) -> usize {
        self.loads.iter().map(|l| l.load(Ordering::Relaxed)).sum()
    }

    /// A connection placed on loop `id` is gone: its place in the counts
    /// that limits read is free.
    fn forget(&self, id: usize, peer: Peer) {
        self.loads[id].fetch_sub(1, Ordering::Relaxed);
        if let (Some(per_ip), Some(ip)) = (&self.per_ip, peer.ip()) {
            per_ip.release(ip);
        }
    }

    /// Loop 0 has accepted its last connection: every hand-over it made is
    /// in a channel by now, and the other loops may finish once they have
    /// taken theirs.
    pub(crate) fn stop_accepting(&self) {
        self.accepting.store(false, Ordering::Release);
        for waker in &self.wakers {
            if let Err(e) = waker.wake() {
                tracing::warn!("cannot wake an event loop: {}", crate::text::os_error(&e));
            }
        }
    }
}

/// Options that apply to every accepted connection.
#[derive(Clone, Copy, Debug)]
pub(crate) struct ConnOptions {
    pub(crate) keepalive: Option<Duration>,
    pub(crate) grace: Duration,
    pub(crate) limits: ConnLimits,
    /// Connections come and go at `debug`, not `info`.
    pub(crate) quiet: bool,
}

/// A connection's place in the loop, and the one timer the loop holds for it.
struct Entry<C, T> {
    state: State<C, T>,
    /// When its timer fires; a timer in the heap at another time is stale.
    armed: Option<Instant>,
}

enum State<C, T> {
    /// Being served: the service's state, the loop's, and its traffic.
    Open {
        conn: C,
        link: Link<T>,
        watch: Watch,
    },
    /// Done: FIN sent, what the peer still sends is read and dropped until
    /// it closes or `until`, then the socket is closed.
    Closing {
        socket: Socket,
        peer: Peer,
        until: Instant,
    },
    /// For the moment of the change from one to the other.
    Changing,
}

/// What the loop holds of an open connection besides its service's state:
/// the socket and its transport, who is at the other end, since when, the
/// bytes each way, and what its events said.
struct Link<T> {
    socket: Socket,
    transport: T,
    peer: Peer,
    /// Its number, for log lines.
    id: ConnId,
    /// When it was accepted.
    since: Instant,
    /// Bytes read from the peer so far.
    received: u64,
    /// Bytes sent to the peer so far.
    sent: u64,
    /// The peer has shut down its write side (EPOLLRDHUP seen); sticky.
    peer_closed: bool,
    /// Urgent data was reported (EPOLLPRI) and reading has not yet reached
    /// `EAGAIN` since: a short read may be the urgent mark, not the end.
    urgent: bool,
    /// End of stream was read.
    eof: bool,
    /// Write interest is registered: the service has bytes unsent.
    writing: bool,
}

/// One event loop, for connections of one service over one transport.
pub(crate) struct Worker<S: Service, T: Transport = Plain> {
    id: usize,
    driver: Driver,
    service: Arc<S>,
    conns: Slab<Entry<S::Conn, T>>,
    /// Connection timers, earliest first: (when, key), one live per
    /// connection (its `armed` time).
    timers: BinaryHeap<Reverse<(Instant, usize)>>,
    scratch: Box<[u8]>,
    pool: BufPool,
    /// Connections to drive again (their read budget ran out).
    ready: ReadyList,
    /// The ready list being driven this turn.
    running: Vec<usize>,
    acceptor: Option<Acceptor>,
    inbox: Receiver<Handoff>,
    shared: Arc<Shared>,
    shutdown: Shutdown,
    options: ConnOptions,
    /// The clock, read once per turn of the loop.
    now: Instant,
    /// When the loop started: arrivals count from here.
    started: Instant,
    /// When the last connection was adopted: each one's `since` is later
    /// than the one before, so it orders them by arrival.
    last_arrival: Instant,
    /// Set when shutdown begins: connections still open then are cut off.
    deadline: Option<Instant>,
    metrics: Arc<Shard>,
    stats: WorkerStats,
}

impl<S: Service, T: Transport> Worker<S, T> {
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        id: usize,
        driver: Driver,
        service: Arc<S>,
        acceptor: Option<Acceptor>,
        inbox: Receiver<Handoff>,
        shared: Arc<Shared>,
        shutdown: Shutdown,
        options: ConnOptions,
        metrics: Arc<Shard>,
    ) -> io::Result<Worker<S, T>> {
        let mut worker = Worker {
            id,
            driver,
            service,
            conns: Slab::new(),
            timers: BinaryHeap::new(),
            scratch: vec![0; BUF_SIZE].into_boxed_slice(),
            pool: BufPool::new(),
            ready: ReadyList::default(),
            running: Vec::new(),
            acceptor,
            inbox,
            shared,
            shutdown,
            options,
            now: Instant::now(),
            started: Instant::now(),
            last_arrival: Instant::now(),
            deadline: None,
            metrics,
            stats: WorkerStats::default(),
        };
        if let Some(acceptor) = &mut worker.acceptor {
            for (i, listener) in acceptor.listeners.iter().enumerate() {
                worker.driver.watch(
                    listener.socket().as_raw_fd(),
                    Token(LISTENER_BASE - i),
                    Interest::READABLE,
                )?;
            }
        }
        Ok(worker)
    }

    /// Runs until shutdown has drained the loop (or `--once` has served its
    /// client), and returns what it counted.
    pub(crate) fn run(mut self) -> io::Result<WorkerStats> {
        let mut events = Events::with_capacity(EVENTS_PER_POLL);
        loop {
            let wake_at = self.wake_at();
            self.driver.wait_until(&mut events, wake_at)?;
            self.now = Instant::now();
            // What was listed before this turn's events is driven after them,
            // once: a connection gets one read budget per turn.
            self.ready.start_turn(&mut self.running);
            for event in &events {
                match event.token() {
                    WAKER => self.take_handoffs(),
                    Token(t) if t > LISTENER_BASE - self.listener_count() => {
                        // Paused after an error: what arrives waits for the pause to end.
                        if !self
                            .acceptor
                            .as_ref()
                            .is_some_and(|a| a.is_paused(self.now))
                        {
                            self.accept();
                        }
                    }
                    Token(key) => {
                        let peer_closed = event.is_read_closed() || event.is_error();
                        self.drive(key, peer_closed, event.is_priority());
                    }
                }
            }
            self.drive_ready();
            self.expire_timers();
            if self
                .acceptor
                .as_ref()
                .and_then(|a| a.retry_at)
                .is_some_and(|at| self.now >= at)
            {
                self.accept();
            }
            if let Some(acceptor) = &mut self.acceptor {
                acceptor.refill_reserve();
                if let Some((report, last)) = acceptor.crowding.flush(self.now) {
                    tracing::warn!(last_peer = last.map(tracing::field::display), "{report}");
                }
            }
            if self.shutdown.is_requested() && self.deadline.is_none() {
                self.begin_drain();
            }
            if self.is_done() {
                return Ok(self.stats);
            }
        }
    }

    fn listener_count(&self) -> usize {
        self.acceptor.as_ref().map_or(0, |a| a.listeners.len())
    }

    /// When the loop must wake if no event comes first (`None`: only an
    /// event wakes it).
    fn wake_at(&self) -> Option<Instant> {
        if !self.ready.is_empty() {
            return Some(self.now);
        }
        let retry = self.acceptor.as_ref().and_then(|a| a.retry_at);
        let crowding = self.acceptor.as_ref().and_then(|a| a.crowding.due());
        // A deadline that has passed was acted on: wait for a wake-up instead.
        let deadline = self.deadline.filter(|&d| d > self.now);
        let timer = self.timers.peek().map(|Reverse((at, _))| *at);
        [retry, crowding, deadline, timer]
            .into_iter()
            .flatten()
            .min()
    }

    fn drive(&mut self, key: usize, peer_closed: bool, urgent: bool) {
        let Some(entry) = self.conns.get_mut(key) else {
            return;
        };
        if let State::Open { link, .. } = &mut entry.state {
            link.peer_closed |= peer_closed;
            link.urgent |= urgent;
        }
        if self.ready.is_listed(key) {
            // Its turn comes from the ready list.
            return;
        }
        let progress = match &mut entry.state {
            State::Open { conn, link, .. } => {
                let mut cx = Cx {
                    now: self.now,
                    peer: link.peer,
                    conn: link.id,
                    metrics: &self.metrics,
                    pool: &mut self.pool,
                };
                let mut loop_io = LoopIo {
                    scratch: &mut self.scratch,
                    driver: &self.driver,
                    token: Token(key),
                };
                serve(conn, link, &mut cx, &mut loop_io, true)
            }
            State::Closing { socket, .. } => drain(socket, &mut self.scratch, &self.metrics),
            State::Changing => return,
        };
        self.after(key, progress);
    }

    /// Acts on what a connection said: notes its traffic, closes it or
    /// lists it, and sets its timer.
    fn after(&mut self, key: usize, progress: Progress) {
        if let Some(Entry {
            state: State::Open { conn, link, watch },
            ..
        }) = self.conns.get_mut(key)
        {
            let unsent = !conn.transmit().is_empty();
            let (came, went) = watch.note(self.now, link.received, link.sent, unsent);
            if came != 0 {
                self.metrics.bytes_in.add(came);
            }
            if went != 0 {
                self.metrics.bytes_out.add(went);
            }
        }
        match progress {
            Progress::Wait => {}
            Progress::Yield => self.ready.push(key),
            Progress::Linger => return self.linger(key),
            Progress::Close(ended) => return self.close(key, ended),
        }
        self.arm(key);
    }

    /// Sets a connection's timer for its next deadline, if it has none set
    /// at or before it (a later one is found when the earlier fires).
    fn arm(&mut self, key: usize) {
        let Some(entry) = self.conns.get_mut(key) else {
            return;
        };
        let due = match &entry.state {
            State::Open { conn, watch, .. } => {
                let own = conn.poll_timeout();
                let watched = watch.due(&self.options.limits).map(|(at, _)| at);
                own.into_iter().chain(watched).min()
            }
            State::Closing { until, .. } => Some(*until),
            State::Changing => None,
        };
        if let Some(at) = due
            && entry.armed.is_none_or(|armed| at < armed)
        {
            entry.armed = Some(at);
            self.timers.push(Reverse((at, key)));
            self.compact_timers();
        }
    }

    /// Drops the stale timers (closed connections', and those replaced by
    /// an earlier one) once they outnumber the live ones: a closed
    /// connection's idle timer would otherwise stay until its time, and a
    /// server that opens and closes many connections would hold rate x
    /// idle timeout of them. One pass per at least as many pushes.
    fn compact_timers(&mut self) {
        if self.timers.len() <= 2 * self.conns.len() + 1024 {
            return;
        }
        let conns = &self.conns;
        self.timers
            .retain(|Reverse((at, key))| conns.get(*key).is_some_and(|e| e.armed == Some(*at)));
    }

    /// Acts on the timers that have fired: a connection idle or stalled too
    /// long is closed, one whose own deadline has come is told, one that
    /// lingered long enough is closed.
    fn expire_timers(&mut self) {
        let now = self.now;
        while let Some(&Reverse((at, key))) = self.timers.peek() {
            if at > now {
                break;
            }
            self.timers.pop();
            let Some(entry) = self.conns.get_mut(key) else {
                continue;
            };
            if entry.armed != Some(at) {
                // Replaced by an earlier timer, or a closed connection's.
                continue;
            }
            entry.armed = None;
            let progress = match &mut entry.state {
                State::Open { conn, link, watch } => {
                    if let Some((due, why)) = watch.due(&self.options.limits)
                        && due <= now
                    {
                        expired(
                            conn,
                            (link.peer, link.id),
                            why,
                            &self.options.limits,
                            &self.metrics,
                        )
                    } else if conn.poll_timeout().is_some_and(|d| d <= now) {
                        let mut cx = Cx {
                            now,
                            peer: link.peer,
                            conn: link.id,
                            metrics: &self.metrics,
                            pool: &mut self.pool,
                        };
                        conn.handle_timeout(&mut cx);
                        let mut loop_io = LoopIo {
                            scratch: &mut self.scratch,
                            driver: &self.driver,
                            token: Token(key),
                        };
                        // What it queued goes out; it reads on its next event.
                        serve(conn, link, &mut cx, &mut loop_io, false)
                    } else {
                        Progress::Wait
                    }
                }
                State::Closing { until, .. } if *until <= now => Progress::Close(Ended::Finished),
                State::Closing { .. } | State::Changing => Progress::Wait,
            };
            self.after(key, progress);
        }
    }

    fn drive_ready(&mut self) {
        for i in 0..self.running.len() {
            let key = self.running[i];
            self.ready.unlist(key);
            self.drive(key, false, false);
        }
        self.running.clear();
    }

    /// A connection has done its part: FIN, then read and drop what its
    /// peer still sends, for at most [`LINGER`].
    fn linger(&mut self, key: usize) {
        let Some(entry) = self.conns.get_mut(key) else {
            return;
        };
        let State::Open { mut conn, link, .. } =
            std::mem::replace(&mut entry.state, State::Changing)
        else {
            return;
        };
        conn.release(&mut self.pool);
        self.stats.bytes += link.sent;
        let peer = link.peer;
        tracing::debug!(
            %peer,
            conn = link.id.0,
            "done after sending {} in {}; closing",
            text::byte_count(link.sent),
            text::duration(self.now.saturating_duration_since(link.since))
        );
        let socket = link.socket;
        // A FIN already sent makes this a no-op; a socket that cannot take
        // it is found by the read below.
        let _ = crate::calls::shutdown(&socket, std::net::Shutdown::Write);
        let progress = match self
            .driver
            .rewatch(socket.as_raw_fd(), Token(key), Interest::READABLE)
        {
            Ok(()) => drain(&socket, &mut self.scratch, &self.metrics),
            Err(_) => Progress::Close(Ended::Finished),
        };
        entry.state = State::Closing {
            socket,
            peer,
            until: self.now + LINGER,
        };
        self.after(key, progress);
    }

    /// Closes a connection's socket, now.
    fn close(&mut self, key: usize, ended: Ended) {
        let entry = self.conns.remove(key);
        let (socket, peer) = match entry.state {
            State::Open { mut conn, link, .. } => {
                conn.release(&mut self.pool);
                self.stats.bytes += link.sent;
                let peer = link.peer;
                let took = text::duration(self.now.saturating_duration_since(link.since));
                match &ended {
                    Ended::Finished => {
                        tracing::debug!(
                            %peer,
                            conn = link.id.0,
                            "closed: sent {} in {took}",
                            text::byte_count(link.sent)
                        );
                    }
                    Ended::Failed(e) => {
                        tracing::debug!(
                            %peer,
                            conn = link.id.0,
                            "{}; closed after sending {} in {took}",
                            text::os_error(e),
                            text::byte_count(link.sent)
                        );
                    }
                }
                (link.socket, peer)
            }
            State::Closing { socket, peer, .. } => (socket, peer),
            State::Changing => return,
        };
        if let Ended::Failed(e) = &ended {
            self.metrics.error(ErrorClass::of_connection(e));
        }
        crate::calls::close(&socket);
        drop(socket);
        self.forget(peer);
        self.metrics.closed.inc();
    }

    /// A connection placed on this loop is gone: its place in the counts
    /// that limits read is free.
    fn forget(&self, peer: Peer) {
        self.shared.forget(self.id, peer);
    }

    /// Starts serving a connection on this loop (its load is already counted).
    fn adopt(&mut self, stream: Socket, peer: Peer) {
        let token = Token(self.conns.vacant_key());
        let ready = self
            .configure(&stream, peer)
            .map_err(|e| ("set socket options", e));
        let ready = ready.and_then(|()| {
            let watched = self.driver.watch(stream.as_raw_fd(), token, READ_INTEREST);
            watched.map_err(|e| ("register with epoll", e))
        });
        if let Err((what, e)) = ready {
            tracing::warn!(
                %peer,
                "cannot {what}: {}; dropped before serving",
                crate::text::os_error(&e)
            );
            self.forget(peer);
            return;
        }
        let entry = self.conns.vacant_entry();
        let key = entry.key();
        debug_assert_eq!(key, token.0, "the slot watched is the slot taken");
        let id = ConnId(self.shared.next_conn.fetch_add(1, Ordering::Relaxed));
        let since = self.now.max(self.last_arrival + Duration::from_nanos(1));
        self.last_arrival = since;
        let mut cx = Cx {
            now: self.now,
            peer,
            conn: id,
            metrics: &self.metrics,
            pool: &mut self.pool,
        };
        entry.insert(Entry {
            state: State::Open {
                conn: self.service.open(&mut cx),
                link: Link {
                    transport: T::open(&stream),
                    socket: stream,
                    peer,
                    id,
                    since,
                    received: 0,
                    sent: 0,
                    peer_closed: false,
                    urgent: false,
                    eof: false,
                    writing: false,
                },
                watch: Watch::new(self.now),
            },
            armed: None,
        });
        self.stats.connections += 1;
        self.metrics.accepted.inc();
        if self.options.quiet {
            tracing::debug!(%peer, conn = id.0, "connected");
        } else {
            tracing::info!(%peer, conn = id.0, "connected");
        }
        self.after(key, Progress::Wait);
    }

    fn configure(&self, stream: &Socket, peer: Peer) -> io::Result<()> {
        if let Peer::Local(_) = peer {
            // A Unix stream has no Nagle and no keepalive.
            return Ok(());
        }
        // Echo replies are small and latency-bound: without TCP_NODELAY,
        // Nagle's algorithm holds a partial segment until the client ACKs the
        // previous one, and bulk echo loses a third of its throughput.
        crate::calls::option(stream, "TCP_NODELAY", 1, stream.set_tcp_nodelay(true))?;
        if let Some(idle) = self.options.keepalive {
            let keepalive = socket2::TcpKeepalive::new().with_time(idle);
            let result = stream.set_tcp_keepalive(&keepalive);
            crate::calls::option(stream, "SO_KEEPALIVE", 1, result)?;
        }
        Ok(())
    }

    fn take_handoffs(&mut self) {
        self.now = Instant::now();
        while let Ok((stream, peer)) = self.inbox.try_recv() {
            self.adopt(stream, peer);
        }
    }

    /// Accepts what the listeners have queued (loop 0 only), placing each
    /// connection as it comes.
    fn accept(&mut self) {
        let Some(mut acceptor) = self.acceptor.take() else {
            return;
        };
        acceptor.retry_at = None;
        for i in 0..acceptor.listeners.len() {
            // Edge-triggered: a listener not drained to EAGAIN will not be
            // reported again, so one that used its whole turn is retried next turn.
            let mut drained = false;
            for _ in 0..ACCEPTS_PER_TURN {
                match acceptor.accept(i, &self.shared, &self.metrics, self.now) {
                    Accepted::Crowded(stream, peer) => {
                        self.make_room(&mut acceptor, stream, peer);
                    }
                    Accepted::Conn(stream, peer) => {
                        self.place(&acceptor, stream, peer);
                        if acceptor.once {
                            self.acceptor = Some(acceptor);
                            self.close_listeners();
                            return;
                        }
                    }
                    Accepted::Skipped => {}
                    Accepted::Drained => {
                        drained = true;
                        break;
                    }
                    Accepted::Paused => {
                        // Every listener waits for the pause to end.
                        self.acceptor = Some(acceptor);
                        return;
                    }
                }
            }
            if !drained {
                acceptor.retry_at = Some(self.now);
            }
        }
        self.acceptor = Some(acceptor);
    }

    /// A newcomer over a limit, on a loop that makes room
    /// (`WhenFull::MakeRoom`, one loop): the oldest connection that has sent
    /// nothing gives up its place (its address's, or the oldest of all), or
    /// the newcomer is turned away (`admission.rs`). A candidate is read
    /// first, so that a request that has come in but was not read yet
    /// counts; a lingering connection has done its part and counts as
    /// silent.
    fn make_room(&mut self, acceptor: &mut Acceptor, stream: Socket, peer: Peer) {
        let limits = admission::Limits {
            total: self.options.limits.max_conns,
            per_source: self.options.limits.max_per_ip.unwrap_or(usize::MAX),
        };
        loop {
            let why = match acceptor.admit(&peer, &self.shared) {
                Ok(()) => return self.place(acceptor, stream, peer),
                Err(why) => why,
            };
            let places = self.conns.iter().map(|(key, entry)| {
                let (source, since, silent) = match &entry.state {
                    State::Open { link, .. } => (link.peer.ip(), link.since, link.received == 0),
                    State::Closing { peer, until, .. } => (peer.ip(), *until - LINGER, true),
                    State::Changing => (None, self.now, false),
                };
                let arrival = since.saturating_duration_since(self.started).as_nanos() as u64;
                let place = admission::Place {
                    source,
                    arrival,
                    silent,
                };
                (key, place)
            });
            match admission::admit(places, peer.ip(), limits) {
                Admission::Evict(key, full) => {
                    // What came meanwhile is served first: a candidate that
                    // has spoken since keeps its place.
                    self.drive(key, false, false);
                    match self.conns.get(key).map(|entry| &entry.state) {
                        Some(State::Open { link, .. }) if link.received == 0 => {
                            tracing::debug!(
                                peer = %link.peer,
                                conn = link.id.0,
                                newcomer = %peer,
                                "closed, having sent nothing, to make room for the newcomer"
                            );
                            self.close(key, Ended::Finished);
                            acceptor.crowded(true, peer, full, self.now);
                        }
                        // Served already, its close lingering: ending that
                        // early takes no client's place, and is no eviction.
                        Some(State::Closing { .. }) => self.close(key, Ended::Finished),
                        _ => {}
                    }
                }
                // The counts and the places disagree only while connections
                // are on their way: turned away too.
                Admission::TurnAway(_) | Admission::Admit => {
                    return acceptor.reject(stream, peer, why, &self.metrics, self.now);
                }
            }
        }
    }

    /// Gives a new connection to the loop with the fewest connections.
    fn place(&mut self, acceptor: &Acceptor, stream: Socket, peer: Peer) {
        let target = (0..self.shared.loads.len())
            .min_by_key(|&i| (self.shared.loads[i].load(Ordering::Relaxed), i != self.id))
            .unwrap_or(self.id);
        self.shared.loads[target].fetch_add(1, Ordering::Relaxed);
        let Some(tx) = acceptor.peers.get(target).and_then(Option::as_ref) else {
            self.adopt(stream, peer);
            return;
        };
        match tx.send((stream, peer)) {
            Ok(()) => {
                if let Err(e) = self.shared.wakers[target].wake() {
                    tracing::warn!("cannot wake loop {target}: {}", crate::text::os_error(&e));
                }
            }
            Err(returned) => {
                // That loop has already drained and exited: serve it here.
                self.shared.loads[target].fetch_sub(1, Ordering::Relaxed);
                self.shared.loads[self.id].fetch_add(1, Ordering::Relaxed);
                let (stream, peer) = returned.0;
                self.adopt(stream, peer);
            }
        }
    }

    fn close_listeners(&mut self) {
        if let Some(acceptor) = &mut self.acceptor {
            for listener in &acceptor.listeners {
                self.driver.unwatch(listener.socket().as_raw_fd());
                crate::calls::close(listener.socket());
            }
            // Closes them; a Unix listener removes its socket file.
            acceptor.listeners.clear();
            acceptor.retry_at = None;
        }
    }

    /// Stops accepting; open connections go on until their clients close or
    /// the grace period ends.
    fn begin_drain(&mut self) {
        if self.acceptor.is_some() {
            self.close_listeners();
            self.shared.stop_accepting();
            if !self.options.quiet {
                tracing::info!(
                    "stopped accepting; open connections have {} to finish",
                    text::duration(self.options.grace)
                );
            }
        }
        self.take_handoffs();
        self.deadline = Some(crate::deadline::from_now(self.options.grace));
        if !self.conns.is_empty() {
            tracing::debug!(
                event_loop = self.id,
                "draining {} connections",
                self.conns.len()
            );
        }
    }

    fn is_done(&mut self) -> bool {
        if let Some(deadline) = self.deadline {
            // Hand-overs can arrive until loop 0 stops accepting; take the last ones.
            let settled = !self.shared.accepting.load(Ordering::Acquire);
            if settled {
                self.take_handoffs();
            }
            if Instant::now() >= deadline {
                self.cut_off_all();
            }
            return settled && self.conns.is_empty();
        }
        let once_served = self
            .acceptor
            .as_ref()
            .is_some_and(|a| a.once && a.listeners.is_empty());
        once_served && self.conns.is_empty()
    }

    /// The grace period is over: what is still open is ended now (its
    /// unsent bytes get a last try, then FIN), and lingering sockets close.
    fn cut_off_all(&mut self) {
        for entry in self.conns.drain() {
            let (socket, peer) = match entry.state {
                State::Open {
                    mut conn, mut link, ..
                } => {
                    if self.options.quiet {
                        tracing::debug!(
                            peer = %link.peer,
                            conn = link.id.0,
                            "cut off at the end of the grace period"
                        );
                    } else {
                        tracing::info!(
                            peer = %link.peer,
                            conn = link.id.0,
                            "cut off at the end of the grace period"
                        );
                    }
                    self.stats.bytes += cut_off(&mut conn, &mut link, &mut self.pool);
                    self.stats.cut_off += 1;
                    self.metrics.time_out(TimedOut::Grace);
                    (link.socket, link.peer)
                }
                State::Closing { socket, peer, .. } => (socket, peer),
                State::Changing => continue,
            };
            crate::calls::close(&socket);
            drop(socket);
            self.metrics.closed.inc();
            self.shared.forget(self.id, peer);
        }
    }
}

/// Reads and drops what a closing connection's peer still sends: its end
/// of stream (or an error: it is gone) closes the socket.
fn drain(socket: &Socket, scratch: &mut [u8], metrics: &Shard) -> Progress {
    for _ in 0..READ_BUDGET {
        match crate::calls::recv(socket, scratch) {
            Ok(0) => return Progress::Close(Ended::Finished),
            Ok(n) => metrics.bytes_in.add(n as u64),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Progress::Wait,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            // The peer is gone: nothing is lost that it wanted.
            Err(_) => return Progress::Close(Ended::Finished),
        }
    }
    Progress::Yield
}

/// What [`serve`] borrows of the loop besides the service's context.
struct LoopIo<'a> {
    /// The loop's read buffer, shared by its connections.
    scratch: &'a mut [u8],
    /// Where to change the connection's interest.
    driver: &'a Driver,
    /// The connection's token.
    token: Token,
}

/// Runs one connection as far as its socket allows now: sends what its
/// service has to send, then (when `read`, and the service has nothing
/// unsent) reads and hands it what arrived, for at most [`READ_BUDGET`]
/// reads. The rules that make it lossless and bounded:
///
/// - Bytes unsent are back-pressure: while the service has any, write
///   interest is registered and nothing is read, so the peer's own send
///   buffer fills and TCP flow control pushes back on it. Write interest
///   is registered only then; an idle connection costs no wake-ups.
/// - A read shorter than the buffer means the socket's receive queue was
///   empty at that instant (TCP stream semantics), and any later arrival
///   raises a new edge, so the read that would only return `EAGAIN` is
///   skipped. Two exceptions read on until `EAGAIN`: the peer has closed
///   its side (the end of stream must be seen), and urgent data is pending
///   (a read stops at TCP's urgent mark with more bytes queued behind it).
///   Listeners set `SO_OOBINLINE`, so urgent bytes are read in their place.
/// - Half-close: after the end of stream, what the service has to send goes
///   first, then FIN, so the peer gets every byte and then its EOF.
fn serve<C: ServiceConnection, T: Transport>(
    conn: &mut C,
    link: &mut Link<T>,
    cx: &mut Cx<'_>,
    io: &mut LoopIo<'_>,
    mut read: bool,
) -> Progress {
    let mut reads = 0;
    // The socket just took less than it was given: a send now would only
    // say EAGAIN.
    let mut full = false;
    loop {
        // What the service has to send goes first.
        let out = conn.transmit();
        if !out.is_empty() {
            let n = match full {
                true => 0,
                false => match link.transport.send(&link.socket, out) {
                    Ok(n) => n,
                    Err(e) => return Progress::Close(Ended::Failed(e)),
                },
            };
            if n > 0 {
                link.sent += n as u64;
                conn.sent(n, cx);
            }
            if !conn.transmit().is_empty() {
                if !link.writing {
                    link.writing = true;
                    if let Err(e) = interest(link, io, Interest::WRITABLE) {
                        return Progress::Close(Ended::Failed(e));
                    }
                }
                return Progress::Wait;
            }
        }
        if link.writing {
            link.writing = false;
            if let Err(e) = interest(link, io, READ_INTEREST) {
                return Progress::Close(Ended::Failed(e));
            }
        }
        if link.eof {
            // Everything it had to send is out: our FIN says so.
            return match crate::calls::shutdown(&link.socket, std::net::Shutdown::Write) {
                Ok(()) => Progress::Close(Ended::Finished),
                Err(e) if e.kind() == io::ErrorKind::NotConnected => {
                    Progress::Close(Ended::Finished)
                }
                Err(e) => Progress::Close(Ended::Failed(e)),
            };
        }
        if conn.is_done() {
            return Progress::Linger;
        }
        if !read {
            return Progress::Wait;
        }
        if reads == READ_BUDGET {
            return Progress::Yield;
        }
        reads += 1;
        let n = match link.transport.recv(&link.socket, io.scratch) {
            Ok(0) => {
                link.eof = true;
                conn.end_of_stream(cx);
                continue;
            }
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                link.urgent = false;
                return Progress::Wait;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Progress::Close(Ended::Failed(e)),
        };
        link.received += n as u64;
        let data = &io.scratch[..n];
        if conn.received(data, cx) == Input::Reflect {
            let written = match link.transport.send(&link.socket, data) {
                Ok(w) => w,
                Err(e) => return Progress::Close(Ended::Failed(e)),
            };
            link.sent += written as u64;
            if written < n {
                conn.keep(&data[written..], cx);
                full = true;
            }
        }
        if n < io.scratch.len() && !link.peer_closed && !link.urgent {
            // The queue was empty at that read: send what it made, then wait.
            read = false;
        }
    }
}

/// Changes a connection's interest.
fn interest<T>(link: &Link<T>, io: &LoopIo<'_>, interest: Interest) -> io::Result<()> {
    io.driver
        .rewatch(link.socket.as_raw_fd(), io.token, interest)
}

/// Ends a connection at the grace deadline: one last try to send what its
/// service has not sent (as much as the socket takes now), then FIN, so
/// that the peer sees an orderly end; gives its buffer back. Returns the
/// bytes it sent in all.
fn cut_off<C: ServiceConnection, T: Transport>(
    conn: &mut C,
    link: &mut Link<T>,
    pool: &mut BufPool,
) -> u64 {
    let last = link
        .transport
        .send(&link.socket, conn.transmit())
        .unwrap_or(0);
    let _ = crate::calls::shutdown(&link.socket, std::net::Shutdown::Write);
    conn.release(pool);
    link.sent + last as u64
}

/// A connection idle or stalled too long: logged, counted, and closed
/// without loss of what it was sent before.
fn expired<C: ServiceConnection>(
    conn: &C,
    (peer, id): (Peer, ConnId),
    why: Expired,
    limits: &ConnLimits,
    metrics: &Shard,
) -> Progress {
    match why {
        Expired::Idle => {
            metrics.time_out(TimedOut::Idle);
            tracing::info!(
                %peer,
                conn = id.0,
                "nothing sent or received for {} (--idle-timeout); closing",
                text::duration(limits.idle_timeout.unwrap_or_default())
            );
        }
        Expired::Stall => {
            metrics.time_out(TimedOut::Stall);
            tracing::warn!(
                %peer,
                conn = id.0,
                "has not read what it was sent for {} ({} waiting; --stall-timeout); closing",
                text::duration(limits.stall_timeout.unwrap_or_default()),
                text::bytes(conn.transmit().len() as u64)
            );
        }
    }
    Progress::Linger
}

/// Connections whose read budget ran out with data left, to drive again.
/// A connection is listed once however often it yields or gets events, and
/// stays listed until its turn comes, so a busy connection gets one read
/// budget per turn of the loop.
#[derive(Debug, Default)]
struct ReadyList {
    keys: Vec<usize>,
    /// Indexed by connection key: listed, and not yet driven.
    listed: Vec<bool>,
}

impl ReadyList {
    fn push(&mut self, key: usize) {
        if key >= self.listed.len() {
            self.listed.resize(key + 1, false);
        }
        if !self.listed[key] {
            self.listed[key] = true;
            self.keys.push(key);
        }
    }

    fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    fn is_listed(&self, key: usize) -> bool {
        self.listed.get(key).copied().unwrap_or(false)
    }

    /// Moves this turn's keys into `into` (empty); they stay listed until
    /// [`ReadyList::unlist`], so their events wait for their turn.
    fn start_turn(&mut self, into: &mut Vec<usize>) {
        std::mem::swap(&mut self.keys, into);
    }

    /// A key's turn has come.
    fn unlist(&mut self, key: usize) {
        if let Some(listed) = self.listed.get_mut(key) {
            *listed = false;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::metrics::{Metrics, ServerKind};

    /// A service whose connections do nothing: the loop's own work shows.
    struct Idle;

    struct IdleConn;

    impl Service for Idle {
        type Conn = IdleConn;
        fn open(&self, _cx: &mut Cx<'_>) -> IdleConn {
            IdleConn
        }
    }

    impl ServiceConnection for IdleConn {
        fn received(&mut self, _data: &[u8], _cx: &mut Cx<'_>) -> Input {
            Input::Consumed
        }
        fn end_of_stream(&mut self, _cx: &mut Cx<'_>) {}
        fn transmit(&self) -> &[u8] {
            &[]
        }
        fn sent(&mut self, _n: usize, _cx: &mut Cx<'_>) {}
    }

    fn idle_loop() -> Worker<Idle> {
        let driver = Driver::new().unwrap();
        let waker = driver.waker(WAKER).unwrap();
        let shared = Arc::new(Shared {
            loads: Box::new([AtomicUsize::new(0)]),
            accepting: AtomicBool::new(false),
            wakers: vec![waker],
            per_ip: None,
            next_conn: AtomicU64::new(1),
        });
        let (_tx, inbox) = std::sync::mpsc::channel();
        let options = ConnOptions {
            keepalive: None,
            grace: Duration::from_secs(1),
            limits: ConnLimits::default(),
            quiet: false,
        };
        let metrics = Metrics::new(ServerKind::Echo).shard();
        Worker::new(
            0,
            driver,
            Arc::new(Idle),
            None,
            inbox,
            shared,
            Shutdown::new(),
            options,
            metrics,
        )
        .unwrap()
    }

    #[test]
    fn the_timers_of_closed_connections_do_not_pile_up() {
        // Regression: each connection's idle timer (5 minutes by default)
        // stayed in the heap after it closed, until its time came: a server
        // that opens and closes connections held rate x idle timeout
        // entries (3 million at 10,000 a second).
        let mut worker = idle_loop();
        let mut peers = Vec::new();
        let start = worker.now;
        for i in 0..10_000 {
            // One connection a turn of the loop: a millisecond each.
            worker.now = start + Duration::from_millis(i);
            let (ours, theirs) = std::os::unix::net::UnixStream::pair().unwrap();
            ours.set_nonblocking(true).unwrap();
            worker.shared.loads[0].fetch_add(1, Ordering::Relaxed);
            let key = worker.conns.vacant_key();
            worker.adopt(Socket::from(ours), Peer::Local(None));
            assert!(worker.conns.contains(key));
            // Keep one open in a hundred; close the rest at once.
            if i % 100 == 0 {
                peers.push(theirs);
            } else {
                worker.close(key, Ended::Finished);
            }
        }
        let open = worker.conns.len();
        assert!(
            worker.timers.len() <= 2 * open + 1024,
            "{} timers for {open} connections",
            worker.timers.len()
        );
        // The open ones keep theirs.
        for (key, entry) in &worker.conns {
            let at = entry.armed.expect("an open connection has its idle timer");
            assert!(worker.timers.iter().any(|t| *t == Reverse((at, key))));
        }
    }

    #[test]
    fn a_response_unsent_at_the_grace_deadline_gets_a_last_try() {
        // Regression: an app connection cut off at the end of the grace
        // period sent its FIN without trying its unsent response (the echo's
        // connection tried); the peer got an end of stream and nothing. The
        // loop now cuts off every service alike.
        use crate::app::conn::{AppService, Shared};
        use std::io::Read;
        let app = AppService(Arc::new(Shared {
            config: crate::app::server::AppServerConfig::default().app,
            buffered: std::sync::atomic::AtomicU64::new(0),
        }));
        let (ours, mut theirs) = std::os::unix::net::UnixStream::pair().unwrap();
        let mut pool = BufPool::new();
        let metrics = Metrics::new(ServerKind::App).shard();
        let mut cx = Cx {
            now: Instant::now(),
            peer: Peer::Local(None),
            conn: ConnId(1),
            metrics: &metrics,
            pool: &mut pool,
        };
        let mut conn = app.open(&mut cx);
        let request =
            crate::proto::encode(&crate::app::service::request("search", "morpheus")).unwrap();
        conn.received(&request, &mut cx);
        let answer = conn.transmit().to_vec();
        assert!(!answer.is_empty(), "the response waits, unsent");
        let mut link = Link {
            transport: Plain,
            socket: Socket::from(ours),
            peer: Peer::Local(None),
            id: ConnId(1),
            since: cx.now,
            received: request.len() as u64,
            sent: 0,
            peer_closed: false,
            urgent: false,
            eof: false,
            writing: true,
        };
        assert_eq!(
            cut_off(&mut conn, &mut link, &mut pool),
            answer.len() as u64
        );
        let mut got = Vec::new();
        theirs.read_to_end(&mut got).unwrap();
        assert_eq!(got, answer, "the response, then end of stream");
    }

    #[test]
    fn a_connection_is_listed_once_and_waits_for_its_turn() {
        let mut ready = ReadyList::default();
        ready.push(3);
        ready.push(3);
        ready.push(1);
        let mut running = Vec::new();
        ready.start_turn(&mut running);
        assert_eq!(running, [3, 1]);
        assert!(ready.is_empty());
        // Until its turn, an event finds it listed (and leaves it to the list).
        assert!(ready.is_listed(3));
        ready.push(3);
        assert!(ready.is_empty(), "not listed twice");
        ready.unlist(3);
        assert!(!ready.is_listed(3));
        // Listed again for the next turn once its budget runs out again.
        ready.push(3);
        let mut next = Vec::new();
        ready.start_turn(&mut next);
        assert_eq!(next, [3]);
    }
}
