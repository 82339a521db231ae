//! One event loop of a stream server (echo, app): an epoll instance (through mio), the
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
//! Loop 0 also owns the listening sockets. It accepts and hands each new
//! connection to the loop with the fewest connections, through a channel and
//! the loop's waker: one listening socket, no `SO_REUSEPORT`, so another
//! process can never join the port. Nothing is shared on the data path but a
//! per-loop connection count that changes only on connect and close.

use std::io;
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, Sender};
use std::time::{Duration, Instant};

use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Token, Waker};
use slab::Slab;
use socket2::Socket;

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use super::buffer::{BUF_SIZE, BufPool};
use super::{Connection, Ended, Io, Progress, READ_INTEREST, Service};
use crate::net::{Listener, Peer};
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
/// Wait before accepting again after an error such as EMFILE, so a full
/// descriptor table does not spin the loop at 100% CPU.
const ACCEPT_RETRY: Duration = Duration::from_millis(100);
/// An accept error that persists (a full descriptor table) is logged at most
/// this often, so it cannot flood the log.
const ACCEPT_WARN_EVERY: Duration = Duration::from_secs(1);

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
}

impl Shared {
    /// Loop 0 has accepted its last connection: every hand-over it made is
    /// in a channel by now, and the other loops may finish once they have
    /// taken theirs.
    pub(crate) fn stop_accepting(&self) {
        self.accepting.store(false, Ordering::Release);
        for waker in &self.wakers {
            if let Err(e) = waker.wake() {
                tracing::warn!("cannot wake an event loop: {e}");
            }
        }
    }
}

/// The accepting side of loop 0.
pub(crate) struct Acceptor {
    /// Stream listeners (TCP and Unix); a Unix one removes its socket file
    /// when it is dropped.
    pub(crate) listeners: Vec<Listener>,
    /// Where to hand connections to, by loop id; `None` for loop 0 itself.
    pub(crate) peers: Vec<Option<Sender<Handoff>>>,
    /// Serve one client, then stop accepting (`--once`).
    pub(crate) once: bool,
    /// Accept again at this time (after an error, or with connections left in the queue).
    pub(crate) retry_at: Option<Instant>,
    /// When an accept error was last logged: at most one a second.
    pub(crate) last_warning: Option<Instant>,
}

/// Options that apply to every accepted connection.
#[derive(Clone, Copy, Debug)]
pub(crate) struct ConnOptions {
    pub(crate) keepalive: Option<Duration>,
    pub(crate) grace: Duration,
}

/// One event loop, for connections of one service.
pub(crate) struct Worker<S: Service> {
    id: usize,
    poll: Poll,
    service: Arc<S>,
    conns: Slab<S::Conn>,
    /// Connection timers, earliest first: (when, key). The connection tells
    /// whether a fired timer is due (see `Connection::new_deadline`).
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
    /// Set when shutdown begins: connections still open then are cut off.
    deadline: Option<Instant>,
    stats: WorkerStats,
}

impl<S: Service> Worker<S> {
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        id: usize,
        poll: Poll,
        service: Arc<S>,
        acceptor: Option<Acceptor>,
        inbox: Receiver<Handoff>,
        shared: Arc<Shared>,
        shutdown: Shutdown,
        options: ConnOptions,
    ) -> io::Result<Worker<S>> {
        let mut worker = Worker {
            id,
            poll,
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
            deadline: None,
            stats: WorkerStats::default(),
        };
        if let Some(acceptor) = &mut worker.acceptor {
            for (i, listener) in acceptor.listeners.iter().enumerate() {
                worker.poll.registry().register(
                    &mut SourceFd(&listener.socket().as_raw_fd()),
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
            let timeout = self.poll_timeout();
            if let Err(e) = self.poll.poll(&mut events, timeout) {
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(e);
            }
            // What was listed before this turn's events is driven after them,
            // once: a connection gets one read budget per turn.
            self.ready.start_turn(&mut self.running);
            for event in events.iter() {
                match event.token() {
                    WAKER => self.take_handoffs(),
                    Token(t) if t > LISTENER_BASE - self.listener_count() => self.accept(),
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
                .is_some_and(|at| Instant::now() >= at)
            {
                self.accept();
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

    fn poll_timeout(&self) -> Option<Duration> {
        if !self.ready.is_empty() {
            return Some(Duration::ZERO);
        }
        let retry = self.acceptor.as_ref().and_then(|a| a.retry_at);
        // A deadline that has passed was acted on: wait for a wake-up instead.
        let deadline = self.deadline.filter(|&d| d > Instant::now());
        let timer = self.timers.peek().map(|Reverse((at, _))| *at);
        let wake_at = [retry, deadline, timer].into_iter().flatten().min()?;
        Some(wake_at.saturating_duration_since(Instant::now()))
    }

    fn drive(&mut self, key: usize, peer_closed: bool, urgent: bool) {
        let Some(conn) = self.conns.get_mut(key) else {
            return;
        };
        conn.note(peer_closed, urgent);
        if self.ready.is_listed(key) {
            // Its turn comes from the ready list.
            return;
        }
        let mut io = Io {
            scratch: &mut self.scratch,
            pool: &mut self.pool,
            registry: self.poll.registry(),
            token: Token(key),
        };
        let progress = conn.drive(&mut io);
        self.after(key, progress);
    }

    /// Acts on what a connection said, and sets its timer.
    fn after(&mut self, key: usize, progress: Progress) {
        match progress {
            Progress::Wait => {}
            Progress::Yield => self.ready.push(key),
            Progress::Close(ended) => return self.close(key, ended),
        }
        if let Some(at) = self.conns.get_mut(key).and_then(Connection::new_deadline) {
            self.timers.push(Reverse((at, key)));
        }
    }

    /// Tells connections whose deadline has come.
    fn expire_timers(&mut self) {
        if self.timers.is_empty() {
            // Echo connections have no timers: no clock read per turn.
            return;
        }
        let now = Instant::now();
        while let Some(&Reverse((at, key))) = self.timers.peek() {
            if at > now {
                break;
            }
            self.timers.pop();
            let Some(conn) = self.conns.get_mut(key) else {
                continue;
            };
            let mut io = Io {
                scratch: &mut self.scratch,
                pool: &mut self.pool,
                registry: self.poll.registry(),
                token: Token(key),
            };
            let progress = conn.expire(&mut io, now);
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

    fn close(&mut self, key: usize, ended: Ended) {
        let mut conn = self.conns.remove(key);
        conn.release(&mut self.pool);
        crate::calls::close(conn.socket());
        self.shared.loads[self.id].fetch_sub(1, Ordering::Relaxed);
        self.stats.bytes += conn.bytes();
        let peer = conn.peer();
        let took = text::duration(conn.since().elapsed());
        match ended {
            Ended::Finished => {
                tracing::debug!("closed {peer}: sent {} bytes in {took}", conn.bytes());
            }
            Ended::Failed(e) => {
                tracing::debug!(
                    "{peer}: {e}; closed after sending {} bytes in {took}",
                    conn.bytes()
                );
            }
        }
    }

    /// Starts serving a connection on this loop (its load is already counted).
    fn adopt(&mut self, stream: Socket, peer: Peer) {
        if let Err(e) = self.configure(&stream, peer) {
            tracing::warn!("{peer}: cannot set socket options: {e}; dropped before serving");
            self.shared.loads[self.id].fetch_sub(1, Ordering::Relaxed);
            return;
        }
        let entry = self.conns.vacant_entry();
        let token = Token(entry.key());
        if let Err(e) =
            self.poll
                .registry()
                .register(&mut SourceFd(&stream.as_raw_fd()), token, READ_INTEREST)
        {
            tracing::warn!("{peer}: cannot register with epoll: {e}");
            self.shared.loads[self.id].fetch_sub(1, Ordering::Relaxed);
            return;
        }
        let key = entry.key();
        entry.insert(self.service.open(stream, peer));
        self.stats.connections += 1;
        tracing::info!("connected by {peer}");
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
        while let Ok((stream, peer)) = self.inbox.try_recv() {
            self.adopt(stream, peer);
        }
    }

    /// Accepts what the listeners have queued (loop 0 only), placing each
    /// connection as it comes.
    fn accept(&mut self) {
        let Some(count) = self.acceptor.as_mut().map(|a| {
            a.retry_at = None;
            a.listeners.len()
        }) else {
            return;
        };
        for i in 0..count {
            // Edge-triggered: a listener not drained to EAGAIN will not be
            // reported again, so one that used its whole turn is retried next turn.
            let mut drained = false;
            for _ in 0..ACCEPTS_PER_TURN {
                let Some(acceptor) = &mut self.acceptor else {
                    return;
                };
                let Some(listener) = acceptor.listeners.get(i) else {
                    return;
                };
                // Non-blocking from the start: no fcntl per connection.
                match crate::calls::accept(listener.socket()) {
                    Ok((stream, addr)) => {
                        let peer = Peer::of(&stream, &addr);
                        let once = acceptor.once;
                        self.place(stream, peer);
                        if once {
                            self.close_listeners();
                            return;
                        }
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                        drained = true;
                        break;
                    }
                    Err(e) if is_transient_accept_error(&e) => {
                        tracing::debug!("accept: {e}; skipped");
                    }
                    Err(e) => {
                        let now = Instant::now();
                        if acceptor
                            .last_warning
                            .is_none_or(|t| now - t >= ACCEPT_WARN_EVERY)
                        {
                            tracing::warn!(
                                "accept: {e}; retrying every {}",
                                text::duration(ACCEPT_RETRY)
                            );
                            acceptor.last_warning = Some(now);
                        }
                        acceptor.retry_at = Some(now + ACCEPT_RETRY);
                        drained = true;
                        break;
                    }
                }
            }
            if let Some(acceptor) = &mut self.acceptor
                && !drained
                && acceptor.retry_at.is_none()
            {
                acceptor.retry_at = Some(Instant::now());
            }
        }
    }

    /// Gives a new connection to the loop with the fewest connections.
    fn place(&mut self, stream: Socket, peer: Peer) {
        let target = (0..self.shared.loads.len())
            .min_by_key(|&i| (self.shared.loads[i].load(Ordering::Relaxed), i != self.id))
            .unwrap_or(self.id);
        self.shared.loads[target].fetch_add(1, Ordering::Relaxed);
        let tx = self
            .acceptor
            .as_ref()
            .and_then(|a| a.peers.get(target))
            .and_then(Option::as_ref);
        let Some(tx) = tx else {
            self.adopt(stream, peer);
            return;
        };
        match tx.send((stream, peer)) {
            Ok(()) => {
                if let Err(e) = self.shared.wakers[target].wake() {
                    tracing::warn!("cannot wake loop {target}: {e}");
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
                let _ = self
                    .poll
                    .registry()
                    .deregister(&mut SourceFd(&listener.socket().as_raw_fd()));
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
            tracing::info!(
                "stopped accepting; open connections have {} to finish",
                text::duration(self.options.grace)
            );
        }
        self.take_handoffs();
        self.deadline = Some(crate::deadline::from_now(self.options.grace));
        if !self.conns.is_empty() {
            tracing::debug!(
                "loop {}: draining {} connections",
                self.id,
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

    fn cut_off_all(&mut self) {
        for mut conn in self.conns.drain() {
            tracing::info!("{}: cut off at the end of the grace period", conn.peer());
            self.stats.bytes += super::cut_off(&mut conn, &mut self.pool);
            crate::calls::close(conn.socket());
            self.stats.cut_off += 1;
            self.shared.loads[self.id].fetch_sub(1, Ordering::Relaxed);
        }
    }
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

/// Accept errors that concern one connection, not the listener: the client
/// gave up before `accept` (ECONNABORTED), a firewall rule (EPERM), a
/// protocol error on that connection, or a signal.
fn is_transient_accept_error(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(
            libc::ECONNABORTED
                | libc::EPERM
                | libc::EPROTO
                | libc::EINTR
                | libc::ENOPROTOOPT
                | libc::EHOSTDOWN
        )
    )
}

#[cfg(test)]
mod tests {
    use super::*;

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
