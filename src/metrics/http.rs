//! The `--metrics` endpoint: `GET /metrics` answers the exposition of
//! `render.rs`; any other path gets 404, any other method 405.
//!
//! [`bind`] binds first (so port 0 works and the real address can be
//! printed before serving); [`MetricsListener::serve`] starts a thread of
//! its own, and the returned [`Serving`] stops it when dropped. The server's
//! event loops never wait on it: a scrape only reads their counters.
//!
//! A scraper may be hostile, so everything is bounded: one thread and one
//! epoll for every client, [`MAX_CLIENTS`] at once and [`MAX_PER_SOURCE`]
//! from one address, a request head of [`MAX_REQUEST_HEAD`] bytes,
//! [`FIRST_BYTE_DEADLINE`] to start the request and [`DEADLINE`] for a
//! connection's whole life, request in and response out. Each connection
//! carries one request (`Connection: close`).
//!
//! A scrape always gets through, even while others hold places on purpose
//! and send nothing (issue 14: 64 such connections, reopened as they were
//! closed, kept every scrape out):
//! - The kernel hands a connection over only once its first bytes have come
//!   in, or after [`DEFER_ACCEPT`] (`TCP_DEFER_ACCEPT`): a scrape arrives
//!   with its request there to read, and a silent connection holds no place
//!   for that long.
//! - A newcomer whose address holds [`MAX_PER_SOURCE`] places takes the
//!   place of that address's oldest connection that has sent nothing; when
//!   all [`MAX_CLIENTS`] are taken it takes the oldest silent place of all
//!   (the policy is `admission.rs`, pure). A candidate is read just before
//!   it is evicted, so a request that has come in but was not read yet
//!   counts. A connection that has sent a byte of its request keeps its
//!   place (the deadline and the head limit bound it); a newcomer that
//!   finds only such places is closed at once (turned away).
//! - Every queued connection is accepted in one go, evicting as it goes,
//!   so a scrape queued behind a burst is not left waiting; the listen
//!   queue ([`BACKLOG`]) takes a burst of hundreds.
//! - Evictions and turn-aways are logged at `warn`, at most once a second,
//!   with their counts since the last line and the last address that met
//!   a limit; what was held back is logged when the second is over.
//!
//! A server out of descriptors is when its counters matter most, and a
//! scrape needs a descriptor too: the endpoint holds a reserve one
//! (`/dev/null`), and when `accept` fails with EMFILE or ENFILE it closes
//! the reserve and accepts the scrape with the descriptor that frees; the
//! reserve is taken again as soon as one is free. When `accept` fails and
//! no reserve is left, it is tried again every [`ACCEPT_RETRY`]: the
//! listener is edge-triggered, so a scrape already queued would otherwise
//! wait for the next one to connect.
//!
//! No HTTP server crate was taken: `tiny_http` (the small blocking one) has
//! no read timeout, reads a header line of any length into memory, starts a
//! thread per connection with no upper bound, and stops accepting for good
//! after one `accept` error; a hostile client could make it grow the
//! server's memory or threads without end. `hyper` would bring an async
//! runtime for one read and one write. The request head is parsed by
//! `httparse` (hyper's parser); the rest is a few lines of mio.

use std::io::{self, Read, Write};
use std::net::{IpAddr, SocketAddr};
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Token, Waker};
use slab::Slab;
use socket2::Socket;

use super::Metrics;
use super::admission::{self, Admission, Full, Limits, Place};
use super::render::{self, CONTENT_TYPE};
use crate::endpoint::{Endpoint, HostPort};
use crate::net::Peer;
use crate::net::listen::{self, BindError, ListenOptions, Listener};
use crate::ratelog::RateLog;

/// Scrape connections served at once; past it, a newcomer takes the place
/// of the oldest one that has sent nothing, or is closed at once.
/// Prometheus holds one per target; 64 leave room for people and scripts.
pub const MAX_CLIENTS: usize = 64;

/// Scrape connections from one address at once (an IPv4-mapped IPv6
/// address counts as its IPv4 one); past it, a newcomer from there takes
/// the place of that address's oldest one that has sent nothing, or is
/// closed at once. Prometheus holds one connection per target at a time,
/// and a pair of them for high availability two; 8 leave room besides for
/// a person with curl and a few scripts behind the same address (a NAT, a
/// bastion host), and it takes 8 addresses to fill the table.
pub const MAX_PER_SOURCE: usize = 8;

/// The longest a connection may live, from accept to the last byte of the
/// response: a scrape takes milliseconds, and Prometheus's own scrape
/// timeout is 10s by default.
pub const DEADLINE: Duration = Duration::from_secs(10);

/// The longest a connection may take, from accept, to send the first byte
/// of its request. A scraper sends it right behind its handshake; 3 s
/// leave room for that segment to be lost and sent again (Linux resends
/// after 200 ms at the least and 1 s before it has measured a round trip).
/// A connection that sends nothing can be evicted anyway, so this only
/// gives its place and descriptor back sooner when nobody asks for them.
/// One the kernel held back for [`DEFER_ACCEPT`] and handed over silent has
/// been silent that long already: it is closed after 6 s of silence in
/// all, before the 10 s of [`DEADLINE`].
pub const FIRST_BYTE_DEADLINE: Duration = Duration::from_secs(3);

/// The longest request head read: a scraper's is a few hundred bytes, and
/// 8 KiB is what common servers allow by default.
pub const MAX_REQUEST_HEAD: usize = 8 * 1024;

/// Headers parsed at most; more make the request a 431.
const MAX_HEADERS: usize = 32;

/// How soon `accept` is tried again after it failed (out of descriptors
/// or memory, no reserve left): a queued scrape is answered within about
/// this long once descriptors free up.
pub const ACCEPT_RETRY: Duration = Duration::from_millis(250);

/// How long the kernel holds a new connection back from the endpoint until
/// its first bytes come in (`TCP_DEFER_ACCEPT`): a scrape is accepted with
/// its request there to read, so it is never a silent place that a burst of
/// newer connections could evict before its request was seen; a connection
/// that sends nothing holds no place for this long, and is then handed
/// over, silent. 3 s leave room for a lost request to be sent again, as
/// [`FIRST_BYTE_DEADLINE`] does.
pub const DEFER_ACCEPT: Duration = Duration::from_secs(3);

/// The listen() backlog. Scrapers are few, but a burst of connections
/// that hold places on purpose (the 500 at once) waits here until
/// the loop accepts it, evicting as it goes; past the backlog the kernel
/// drops SYNs, and a client sends its SYN again only after 1 s, then 2 s
/// more: a scraper's dropped among them would wait as long. 1024 take such
/// a burst whole, for a few KiB of kernel memory each while queued. The
/// connections held back for [`DEFER_ACCEPT`] wait in a queue of the same
/// length; past it the kernel falls back to SYN cookies (by default), and
/// a connection made with one is handed over at once, silent or not. The
/// kernel caps the backlog at `net.core.somaxconn` (4096 by default since
/// Linux 5.4); 1024 is the servers' default backlog too.
pub const BACKLOG: u32 = 1024;

/// The most connections one turn of the loop accepts from a listener
/// before it serves those it has, and then accepts again: a flood that
/// never lets the queue run dry must not keep the loop from answering the
/// scrapes it took. A full backlog's worth.
const ACCEPTS_PER_TURN: usize = BACKLOG as usize;

/// The endpoint's places.
const LIMITS: Limits = Limits {
    total: MAX_CLIENTS,
    per_source: MAX_PER_SOURCE,
};

const WAKER: Token = Token(usize::MAX);

/// The endpoint's sockets, bound and listening, not served yet.
#[derive(Debug)]
pub struct MetricsListener {
    listeners: Vec<Listener>,
}

/// Binds `at` over TCP (every address a host name resolves to, one port).
pub fn bind(at: &HostPort) -> Result<MetricsListener, BindError> {
    let options = ListenOptions {
        backlog: BACKLOG,
        ..ListenOptions::default()
    };
    let listeners = listen::bind(&Endpoint::Tcp(at.clone()), &options)?;
    for l in &listeners {
        if let Err(e) = listen::defer_accept(l.socket(), DEFER_ACCEPT) {
            // Silent connections are then accepted at once, and evicted
            // when a place is needed.
            tracing::debug!("metrics: TCP_DEFER_ACCEPT: {e}");
        }
    }
    Ok(MetricsListener { listeners })
}

impl MetricsListener {
    /// The bound addresses, with the real port.
    pub fn local_addrs(&self) -> Vec<SocketAddr> {
        self.listeners
            .iter()
            .filter_map(Listener::local_addr)
            .collect()
    }

    /// The URLs to scrape: `http://ADDR/metrics` for each bound address.
    pub fn urls(&self) -> Vec<String> {
        self.local_addrs()
            .iter()
            .map(|a| format!("http://{a}/metrics"))
            .collect()
    }

    /// Serves `metrics` on a thread of its own until the result is dropped.
    pub fn serve(self, metrics: Arc<Metrics>) -> io::Result<Serving> {
        let poll = Poll::new()?;
        let waker = Arc::new(Waker::new(poll.registry(), WAKER)?);
        for (i, l) in self.listeners.iter().enumerate() {
            poll.registry().register(
                &mut SourceFd(&l.socket().as_raw_fd()),
                Token(i),
                Interest::READABLE,
            )?;
        }
        let stop = Arc::new(AtomicBool::new(false));
        let endpoint = Loop {
            poll,
            listeners: self.listeners,
            clients: Slab::with_capacity(MAX_CLIENTS),
            metrics,
            stop: Arc::clone(&stop),
            reserve: crate::os::reserve_descriptor(),
            retry_accept: None,
            arrivals: 0,
            crowding: Crowding::default(),
        };
        let thread = std::thread::Builder::new()
            .name("metrics".into())
            .spawn(move || endpoint.run())?;
        Ok(Serving {
            waker,
            stop,
            thread: Some(thread),
        })
    }
}

/// The endpoint's thread: stopped and joined when this is dropped.
#[derive(Debug)]
pub struct Serving {
    waker: Arc<Waker>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Drop for Serving {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        if let Err(e) = self.waker.wake() {
            // The thread cannot be woken: leave it; it never keeps the
            // process alive.
            tracing::warn!("cannot stop the metrics endpoint: {e}");
            return;
        }
        if let Some(thread) = self.thread.take()
            && thread.join().is_err()
        {
            tracing::warn!("the metrics endpoint panicked");
        }
    }
}

/// One scrape connection.
struct Client {
    socket: Socket,
    peer: Peer,
    /// Its address, as the per-address limit counts it.
    source: Option<IpAddr>,
    /// Its order of arrival, for evicting the oldest first.
    arrival: u64,
    accepted: Instant,
    /// The request head read so far.
    head: Vec<u8>,
    /// The response, once the request is whole, and how much of it is sent.
    reply: Option<(Vec<u8>, usize)>,
}

/// The thread's state.
struct Loop {
    poll: Poll,
    listeners: Vec<Listener>,
    clients: Slab<Client>,
    metrics: Arc<Metrics>,
    stop: Arc<AtomicBool>,
    /// Spent to serve a scrape when descriptors run out.
    reserve: Option<std::fs::File>,
    /// When to try `accept` again: after it failed, or at once after a
    /// turn that accepted [`ACCEPTS_PER_TURN`] (the queue may hold more).
    retry_accept: Option<Instant>,
    /// Connections accepted so far: the next one's arrival number.
    arrivals: u64,
    /// Evictions and turn-aways not yet logged.
    crowding: Crowding,
}

impl Loop {
    fn run(mut self) {
        let mut events = Events::with_capacity(64);
        loop {
            let timeout = self
                .clients
                .iter()
                .map(|(_, c)| c.deadline())
                .chain(self.retry_accept)
                .chain(self.crowding.due())
                .min()
                .map(|d| d.saturating_duration_since(Instant::now()));
            if let Err(e) = self.poll.poll(&mut events, timeout) {
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                tracing::warn!("metrics endpoint stopped: {e}");
                return;
            }
            if self.stop.load(Ordering::Acquire) {
                return;
            }
            // A retry set during this turn waits for the next one, so that
            // the clients' events are served in between.
            let turn = Instant::now();
            for event in &events {
                let Token(t) = event.token();
                if t < self.listeners.len() {
                    self.accept(t);
                } else if t != WAKER.0 {
                    self.progress(t - self.listeners.len());
                }
            }
            if self.retry_accept.is_some_and(|at| at <= turn) {
                self.retry_accept = None;
                for i in 0..self.listeners.len() {
                    self.accept(i);
                }
            }
            if self.reserve.is_none() {
                self.reserve = crate::os::reserve_descriptor();
            }
            let now = Instant::now();
            self.clients.retain(|_, c| {
                let alive = c.deadline() > now;
                if !alive {
                    let (what, limit) = if c.is_silent() {
                        ("sent nothing", FIRST_BYTE_DEADLINE)
                    } else {
                        ("was not done", DEADLINE)
                    };
                    tracing::debug!("metrics: {} {what} within {limit:?}: closed", c.peer);
                }
                alive
            });
            if let Some(report) = self.crowding.flush(now) {
                tracing::warn!("{report}");
            }
        }
    }

    /// Accepts what is queued on listener `i`, up to [`ACCEPTS_PER_TURN`].
    fn accept(&mut self, i: usize) {
        for _ in 0..ACCEPTS_PER_TURN {
            let (socket, addr) = match self.listeners[i]
                .socket()
                .accept4(libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC)
            {
                Ok(accepted) => accepted,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) if e.kind() == io::ErrorKind::ConnectionAborted => continue,
                Err(e)
                    if matches!(e.raw_os_error(), Some(libc::EMFILE | libc::ENFILE))
                        && self.reserve.take().is_some() =>
                {
                    // The reserve is closed: its descriptor takes the scrape.
                    continue;
                }
                Err(e) => {
                    // Out of descriptors or memory: what is queued raises
                    // no new edge, so it is tried again a little later.
                    tracing::debug!("metrics: accept: {e}");
                    self.retry_accept = Some(Instant::now() + ACCEPT_RETRY);
                    return;
                }
            };
            let peer = Peer::of(&socket, &addr);
            let source = peer.ip();
            let evicted = match self.make_room(source) {
                Ok(evicted) => evicted,
                Err(full) => {
                    tracing::debug!("metrics: no place for {peer}: closed");
                    self.tell(false, peer, full);
                    continue;
                }
            };
            if let Some(full) = evicted {
                self.tell(true, peer, full);
            }
            let entry = self.clients.vacant_entry();
            let token = Token(self.listeners.len() + entry.key());
            let registered = self.poll.registry().register(
                &mut SourceFd(&socket.as_raw_fd()),
                token,
                Interest::READABLE | Interest::WRITABLE,
            );
            if let Err(e) = registered {
                tracing::debug!("metrics: cannot watch {peer}: {e}");
                continue;
            }
            entry.insert(Client {
                socket,
                peer,
                source,
                arrival: self.arrivals,
                accepted: Instant::now(),
                head: Vec::new(),
                reply: None,
            });
            self.arrivals += 1;
        }
        // More may be queued, and the edge-triggered listener will not say
        // so again: accept again once this turn's events are served.
        self.retry_accept = Some(Instant::now());
    }

    /// Makes a place for a newcomer from `source`: `Ok(None)` if one was
    /// free, `Ok(Some(limit))` if a silent connection was closed for it,
    /// `Err(limit)` if every candidate is mid-request.
    fn make_room(&mut self, source: Option<IpAddr>) -> Result<Option<Full>, Full> {
        loop {
            let places = self.clients.iter().map(|(key, c)| (key, c.place()));
            match admission::admit(places, source, LIMITS) {
                Admission::Admit => return Ok(None),
                Admission::TurnAway(full) => return Err(full),
                Admission::Evict(key, full) => {
                    // Its request may have come in since its last event (a
                    // place accepted earlier in this same burst has had
                    // none yet): read what is there first. Each turn of
                    // this loop evicts, or leaves one silent place fewer.
                    self.progress(key);
                    if self.clients.get(key).is_some_and(Client::is_silent) {
                        let evicted = self.clients.remove(key);
                        tracing::debug!(
                            "metrics: {} sent nothing: closed to make room",
                            evicted.peer
                        );
                        return Ok(Some(full));
                    }
                }
            }
        }
    }

    /// Counts an eviction (or a turn-away) made for `peer`, and logs the
    /// counts if none were logged in the last second.
    fn tell(&mut self, evicted: bool, peer: Peer, full: Full) {
        if let Some(report) = self.crowding.note(Instant::now(), evicted, peer, full) {
            tracing::warn!("{report}");
        }
    }

    /// Reads the request, or writes the response, as far as the socket lets.
    fn progress(&mut self, key: usize) {
        let Some(client) = self.clients.get_mut(key) else {
            return;
        };
        let done = match client.reply {
            None => client.read(&self.metrics),
            Some(_) => Ok(false),
        }
        .and_then(|closed| if closed { Ok(true) } else { client.write() });
        match done {
            Ok(false) => {}
            Ok(true) => {
                self.clients.remove(key);
            }
            Err(e) => {
                tracing::debug!("metrics: {}: {e}", client.peer);
                self.clients.remove(key);
            }
        }
    }
}

impl Client {
    /// It has not sent a byte yet.
    fn is_silent(&self) -> bool {
        self.head.is_empty()
    }

    /// What the admission policy sees of it.
    fn place(&self) -> Place {
        Place {
            source: self.source,
            arrival: self.arrival,
            silent: self.is_silent(),
        }
    }

    /// When it is closed if it is not done: sooner while it has sent
    /// nothing.
    fn deadline(&self) -> Instant {
        deadline(self.accepted, self.is_silent())
    }

    /// Reads what has come; once the head is whole (or cannot be), makes
    /// the response. Returns whether the client closed first.
    fn read(&mut self, metrics: &Metrics) -> io::Result<bool> {
        let mut buf = [0; 1024];
        while self.reply.is_none() {
            let room = MAX_REQUEST_HEAD - self.head.len();
            let n = match (&self.socket).read(&mut buf[..room.min(1024)]) {
                Ok(0) => return Ok(true),
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            self.head.extend_from_slice(&buf[..n]);
            let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
            let mut request = httparse::Request::new(&mut headers);
            let reply = match request.parse(&self.head) {
                Ok(httparse::Status::Complete(_)) => {
                    let method = request.method.unwrap_or_default();
                    let path = request.path.unwrap_or_default();
                    let reply = respond(method, path, metrics);
                    tracing::debug!("metrics: {method} {path} from {}: {}", self.peer, reply);
                    Some(reply)
                }
                Ok(httparse::Status::Partial) if self.head.len() < MAX_REQUEST_HEAD => None,
                Ok(httparse::Status::Partial) | Err(httparse::Error::TooManyHeaders) => {
                    Some(Reply::text(
                        431,
                        "Request Header Fields Too Large",
                        "request head too large\n",
                    ))
                }
                Err(e) => Some(Reply::text(
                    400,
                    "Bad Request",
                    &format!("not an HTTP request: {e}\n"),
                )),
            };
            self.reply = reply.map(|r| (r.bytes(), 0));
        }
        Ok(false)
    }

    /// Sends what the socket takes. Returns whether the response is all sent.
    fn write(&mut self) -> io::Result<bool> {
        let Some((reply, sent)) = &mut self.reply else {
            return Ok(false);
        };
        while *sent < reply.len() {
            match (&self.socket).write(&reply[*sent..]) {
                Ok(n) => *sent += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        // The response is whole: a FIN after it (the socket closes next).
        let _ = self.socket.shutdown(std::net::Shutdown::Write);
        Ok(true)
    }
}

/// When a connection accepted at `accepted` is closed if it is not done:
/// [`FIRST_BYTE_DEADLINE`] after while it is `silent`, [`DEADLINE`] after
/// once it has sent a byte.
fn deadline(accepted: Instant, silent: bool) -> Instant {
    let limit = if silent {
        FIRST_BYTE_DEADLINE
    } else {
        DEADLINE
    };
    crate::deadline::after(accepted, limit)
}

/// Evictions and turn-aways, logged at most once a second with their counts
/// since the last line, and the last newcomer that met a limit. What was
/// held back is told once the second is over, not only with the next one.
#[derive(Debug, Default)]
struct Crowding {
    log: RateLog,
    evicted: u64,
    turned_away: u64,
    last: Option<(Peer, Full)>,
}

impl Crowding {
    /// Counts one at `now`; returns the line to log, if one may be now.
    fn note(&mut self, now: Instant, evicted: bool, peer: Peer, full: Full) -> Option<String> {
        if evicted {
            self.evicted += 1;
        } else {
            self.turned_away += 1;
        }
        self.last = Some((peer, full));
        self.log.allow(now).map(|_| self.report())
    }

    /// When the counts held back are to be logged, if any are.
    fn due(&self) -> Option<Instant> {
        if self.evicted + self.turned_away == 0 {
            return None;
        }
        self.log.next_at()
    }

    /// The line of what was held back, once it is due.
    fn flush(&mut self, now: Instant) -> Option<String> {
        self.due().filter(|&at| at <= now)?;
        self.log.allow(now).map(|_| self.report())
    }

    /// The line, with the counts since the last one (which start again).
    fn report(&mut self) -> String {
        let evicted = std::mem::take(&mut self.evicted);
        let turned_away = std::mem::take(&mut self.turned_away);
        let last = match self.last {
            Some((peer, Full::Source)) => format!(
                "; the last for {peer}, whose address had {MAX_PER_SOURCE} connections open, the most for one"
            ),
            Some((peer, Full::Table)) => {
                format!("; the last for {peer}, with all {MAX_CLIENTS} places taken")
            }
            None => String::new(),
        };
        format!(
            "metrics endpoint full: evicted {evicted} connection{} that had sent nothing, \
             turned away {turned_away} (no silent one to evict) since the last report{last}",
            if evicted == 1 { "" } else { "s" }
        )
    }
}

/// A response: status, reason, headers beyond the usual, body, and whether
/// the body is sent (not for HEAD).
struct Reply {
    status: u16,
    reason: &'static str,
    content_type: &'static str,
    extra: &'static str,
    body: String,
    send_body: bool,
}

impl Reply {
    fn text(status: u16, reason: &'static str, body: &str) -> Reply {
        Reply {
            status,
            reason,
            content_type: "text/plain; charset=utf-8",
            extra: "",
            body: body.to_string(),
            send_body: true,
        }
    }

    fn bytes(&self) -> Vec<u8> {
        let mut out = format!(
            "HTTP/1.1 {} {}\r\nContent-Type: {}\r\nContent-Length: {}\r\n{}Connection: close\r\n\r\n",
            self.status,
            self.reason,
            self.content_type,
            self.body.len(),
            self.extra
        )
        .into_bytes();
        if self.send_body {
            out.extend_from_slice(self.body.as_bytes());
        }
        out
    }
}

/// The answer to `METHOD PATH`: the exposition for `GET /metrics` (and
/// HEAD), 405 for another method there, 404 elsewhere.
fn respond(method: &str, path: &str, metrics: &Metrics) -> Reply {
    // A query string (`/metrics?x=1`) is ignored, as Prometheus's own
    // exporters do.
    let path = path.split_once('?').map_or(path, |(p, _)| p);
    if path != "/metrics" {
        return Reply::text(404, "Not Found", "not found: the metrics are at /metrics\n");
    }
    match method {
        "GET" | "HEAD" => Reply {
            status: 200,
            reason: "OK",
            content_type: CONTENT_TYPE,
            extra: "",
            body: render::render(&metrics.snapshot()),
            send_body: method == "GET",
        },
        _ => Reply {
            extra: "Allow: GET, HEAD\r\n",
            ..Reply::text(405, "Method Not Allowed", "only GET and HEAD\n")
        },
    }
}

impl std::fmt::Display for Reply {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.status, self.reason)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::ServerKind;
    use std::net::TcpStream;

    const LIMIT: Duration = Duration::from_secs(10);

    fn start() -> (SocketAddr, Arc<Metrics>, Serving) {
        let listener =
            bind(&HostPort::of(SocketAddr::from(([127, 0, 0, 1], 0)))).expect("bind 127.0.0.1:0");
        serve(listener)
    }

    /// The endpoint as on a kernel without `TCP_DEFER_ACCEPT`: silent
    /// connections take places at once, for the eviction to be seen
    /// without waiting out the deferral.
    fn start_undeferred() -> (SocketAddr, Arc<Metrics>, Serving) {
        let listener =
            bind(&HostPort::of(SocketAddr::from(([127, 0, 0, 1], 0)))).expect("bind 127.0.0.1:0");
        for l in &listener.listeners {
            listen::defer_accept(l.socket(), Duration::ZERO).expect("TCP_DEFER_ACCEPT off");
        }
        serve(listener)
    }

    fn serve(listener: MetricsListener) -> (SocketAddr, Arc<Metrics>, Serving) {
        let addr = listener.local_addrs()[0];
        assert_eq!(listener.urls(), [format!("http://{addr}/metrics")]);
        let metrics = Metrics::new(ServerKind::Echo);
        let serving = listener.serve(Arc::clone(&metrics)).expect("serve");
        (addr, metrics, serving)
    }

    fn exchange(addr: SocketAddr, request: &[u8]) -> String {
        let mut s = TcpStream::connect_timeout(&addr, LIMIT).expect("connect");
        s.set_read_timeout(Some(LIMIT)).unwrap();
        s.write_all(request).expect("send the request");
        let mut out = String::new();
        s.read_to_string(&mut out).expect("read the response");
        out
    }

    #[test]
    fn get_metrics_answers_the_exposition() {
        let (addr, metrics, _serving) = start();
        metrics.shard().datagrams_in.add(3);
        let out = exchange(addr, b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
        let (head, body) = out.split_once("\r\n\r\n").expect("a head and a body");
        assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
        assert!(head.contains(&format!("Content-Type: {CONTENT_TYPE}")));
        assert!(head.contains(&format!("Content-Length: {}", body.len())));
        assert!(
            body.contains("\nechokit_datagrams_received_total 3\n"),
            "{body}"
        );
    }

    #[test]
    fn head_has_no_body_and_other_paths_and_methods_are_refused() {
        let (addr, _metrics, _serving) = start();
        let out = exchange(addr, b"HEAD /metrics HTTP/1.0\r\n\r\n");
        assert!(
            out.starts_with("HTTP/1.1 200 OK\r\n") && out.ends_with("\r\n\r\n"),
            "{out}"
        );
        let out = exchange(addr, b"GET / HTTP/1.1\r\n\r\n");
        assert!(out.starts_with("HTTP/1.1 404 Not Found\r\n"), "{out}");
        let out = exchange(addr, b"POST /metrics HTTP/1.1\r\nContent-Length: 0\r\n\r\n");
        assert!(
            out.starts_with("HTTP/1.1 405 Method Not Allowed\r\n"),
            "{out}"
        );
        assert!(out.contains("Allow: GET, HEAD\r\n"));
        let out = exchange(addr, b"\x16\x03\x01 not http\r\n\r\n");
        assert!(out.starts_with("HTTP/1.1 400 Bad Request\r\n"), "{out}");
    }

    #[test]
    fn an_endless_head_is_cut_at_the_limit() {
        let (addr, _metrics, _serving) = start();
        let mut request = b"GET /metrics HTTP/1.1\r\nX-Long: ".to_vec();
        request.resize(MAX_REQUEST_HEAD * 2, b'a');
        let mut s = TcpStream::connect_timeout(&addr, LIMIT).expect("connect");
        s.set_read_timeout(Some(LIMIT)).unwrap();
        // The server stops reading at the limit; the rest may not be taken.
        let _ = s.write_all(&request);
        let mut out = Vec::new();
        let _ = s.read_to_end(&mut out);
        let out = String::from_utf8_lossy(&out);
        assert!(out.starts_with("HTTP/1.1 431 "), "{out}");
    }

    #[test]
    fn a_silent_client_does_not_hold_up_another() {
        let (addr, _metrics, _serving) = start();
        let mut silent = TcpStream::connect_timeout(&addr, LIMIT).expect("connect");
        silent.write_all(b"GET /metr").expect("send half a request");
        let out = exchange(addr, b"GET /metrics HTTP/1.1\r\n\r\n");
        assert!(out.starts_with("HTTP/1.1 200 OK\r\n"), "{out}");
        drop(silent);
    }

    /// A connection that sends nothing, from `from` (port 0).
    fn silent_from(from: [u8; 4], to: SocketAddr) -> TcpStream {
        let s = Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).expect("a socket");
        s.bind(&SocketAddr::from((from, 0)).into())
            .expect("bind a loopback address");
        s.connect_timeout(&to.into(), LIMIT).expect("connect");
        let s = TcpStream::from(s);
        s.set_read_timeout(Some(LIMIT)).unwrap();
        s
    }

    /// Whether the endpoint closed `s` without a response.
    fn closed_unanswered(s: &mut TcpStream) -> bool {
        let mut out = Vec::new();
        match s.read_to_end(&mut out) {
            Ok(_) => out.is_empty(),
            Err(e) => e.kind() == io::ErrorKind::ConnectionReset,
        }
    }

    #[test]
    fn a_scrape_from_an_address_at_its_limit_takes_the_place_of_its_oldest_silent_connection() {
        let (addr, _metrics, _serving) = start_undeferred();
        let mut silent: Vec<TcpStream> = (0..MAX_PER_SOURCE)
            .map(|_| silent_from([127, 0, 0, 1], addr))
            .collect();
        let out = exchange(addr, b"GET /metrics HTTP/1.1\r\n\r\n");
        assert!(out.starts_with("HTTP/1.1 200 OK\r\n"), "{out}");
        assert!(closed_unanswered(&mut silent[0]), "the oldest is evicted");
        // The others keep their places: one of them still gets an answer.
        let last = silent.last_mut().expect("8 silent connections");
        last.write_all(b"GET /metrics HTTP/1.1\r\n\r\n").unwrap();
        let mut out = String::new();
        last.read_to_string(&mut out).unwrap();
        assert!(out.starts_with("HTTP/1.1 200 OK\r\n"), "{out}");
    }

    #[test]
    fn a_scrape_finds_a_place_in_a_full_table_of_silent_connections() {
        // 8 addresses with 8 silent connections each fill the table; a
        // scrape from a ninth takes the place of the oldest of all.
        let (addr, _metrics, _serving) = start_undeferred();
        let mut silent: Vec<TcpStream> = (2..2 + MAX_CLIENTS / MAX_PER_SOURCE)
            .flat_map(|host| (0..MAX_PER_SOURCE).map(move |_| host))
            .map(|host| silent_from([127, 0, 0, host as u8], addr))
            .collect();
        assert_eq!(silent.len(), MAX_CLIENTS);
        let out = exchange(addr, b"GET /metrics HTTP/1.1\r\n\r\n");
        assert!(out.starts_with("HTTP/1.1 200 OK\r\n"), "{out}");
        assert!(closed_unanswered(&mut silent[0]), "the oldest is evicted");
    }

    #[test]
    fn a_connection_that_has_sent_a_byte_keeps_its_place() {
        // Every place of the address is mid-request: a newcomer from there
        // is turned away, and each of them is answered once it is whole.
        let (addr, _metrics, _serving) = start_undeferred();
        let mut begun: Vec<TcpStream> = (0..MAX_PER_SOURCE)
            .map(|_| {
                let mut s = silent_from([127, 0, 0, 1], addr);
                s.write_all(b"GET /metr").expect("send half a request");
                s
            })
            .collect();
        let mut newcomer = silent_from([127, 0, 0, 1], addr);
        assert!(closed_unanswered(&mut newcomer), "turned away");
        for s in &mut begun {
            s.write_all(b"ics HTTP/1.1\r\n\r\n").unwrap();
            let mut out = String::new();
            s.read_to_string(&mut out).unwrap();
            assert!(out.starts_with("HTTP/1.1 200 OK\r\n"), "{out}");
        }
    }

    #[test]
    fn a_silent_connection_is_due_sooner_than_one_that_has_begun() {
        let t0 = Instant::now();
        assert_eq!(deadline(t0, true), t0 + FIRST_BYTE_DEADLINE);
        assert_eq!(deadline(t0, false), t0 + DEADLINE);
        assert!(FIRST_BYTE_DEADLINE < DEADLINE);
    }

    #[test]
    fn evictions_are_logged_at_once_then_at_most_once_a_second_with_their_counts() {
        let ms = Duration::from_millis;
        let mut crowding = Crowding::default();
        let (a, b) = (
            Peer::Ip("127.0.0.1:5000".parse().unwrap()),
            Peer::Ip("[::ffff:10.0.0.2]:6000".parse().unwrap()),
        );
        let t0 = Instant::now();
        assert_eq!(crowding.due(), None);
        let first = crowding
            .note(t0, true, a, Full::Source)
            .expect("the first is logged at once");
        assert!(
            first.contains("evicted 1 connection that had sent nothing, turned away 0")
                && first.contains("127.0.0.1:5000"),
            "{first}"
        );
        assert_eq!(crowding.due(), None, "nothing held back");
        for i in 1..=5 {
            assert_eq!(crowding.note(t0 + ms(10 * i), true, a, Full::Source), None);
        }
        assert_eq!(crowding.note(t0 + ms(60), false, b, Full::Table), None);
        // What was held back is told when the second is over, with no new
        // eviction to carry it.
        assert_eq!(crowding.due(), Some(t0 + ms(1000)));
        assert_eq!(crowding.flush(t0 + ms(999)), None);
        let held = crowding.flush(t0 + ms(1000)).expect("told after a second");
        assert!(
            held.contains("evicted 5 connections that had sent nothing, turned away 1")
                && held.contains("[::ffff:10.0.0.2]:6000")
                && held.contains(&format!("all {MAX_CLIENTS} places")),
            "{held}"
        );
        assert_eq!(crowding.due(), None);
        assert_eq!(crowding.flush(t0 + ms(5000)), None);
    }

    #[test]
    fn dropping_the_handle_stops_the_thread_and_closes_the_port() {
        let (addr, _metrics, serving) = start();
        drop(serving);
        let refused = TcpStream::connect_timeout(&addr, LIMIT);
        assert!(refused.is_err(), "the port still takes connections");
    }
}
