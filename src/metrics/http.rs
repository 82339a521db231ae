//! The `--metrics` endpoint: `GET /metrics` answers the exposition of
//! `render.rs`; any other path gets 404, any other method 405.
//!
//! [`bind`] binds first (so port 0 works and the real address can be
//! printed before serving); [`MetricsListener::serve`] starts a thread of
//! its own, and the returned [`Serving`] stops it when dropped. The server's
//! event loops never wait on it: a scrape only reads their counters.
//!
//! A scraper may be hostile, so everything is bounded: one thread and one
//! epoll for every client, [`MAX_CLIENTS`] at once (more are closed at
//! once), a request head of [`MAX_REQUEST_HEAD`] bytes, and [`DEADLINE`] for
//! a connection's whole life, request in and response out. Each connection
//! carries one request (`Connection: close`).
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
use std::net::SocketAddr;
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
use super::render::{self, CONTENT_TYPE};
use crate::endpoint::{Endpoint, HostPort};
use crate::net::listen::{self, BindError, ListenOptions, Listener};
use crate::serve::accept::open_reserve;

/// Scrape connections served at once; past it, a new one is closed at once.
/// Prometheus holds one per target; 64 leave room for people and scripts.
pub const MAX_CLIENTS: usize = 64;

/// The longest a connection may live, from accept to the last byte of the
/// response: a scrape takes milliseconds, and Prometheus's own scrape
/// timeout is 10s by default.
pub const DEADLINE: Duration = Duration::from_secs(10);

/// The longest request head read: a scraper's is a few hundred bytes, and
/// 8 KiB is what common servers allow by default.
pub const MAX_REQUEST_HEAD: usize = 8 * 1024;

/// Headers parsed at most; more make the request a 431.
const MAX_HEADERS: usize = 32;

/// How soon `accept` is tried again after it failed (out of descriptors
/// or memory, no reserve left): a queued scrape is answered within about
/// this long once descriptors free up.
pub const ACCEPT_RETRY: Duration = Duration::from_millis(250);

/// The listen() backlog: scrapers are few.
const BACKLOG: u32 = 64;

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
            reserve: open_reserve(),
            retry_accept: None,
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
    peer: String,
    /// The request head read so far.
    head: Vec<u8>,
    /// The response, once the request is whole, and how much of it is sent.
    reply: Option<(Vec<u8>, usize)>,
    deadline: Instant,
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
    /// When to try `accept` again after it failed.
    retry_accept: Option<Instant>,
}

impl Loop {
    fn run(mut self) {
        let mut events = Events::with_capacity(64);
        loop {
            let timeout = self
                .clients
                .iter()
                .map(|(_, c)| c.deadline)
                .chain(self.retry_accept)
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
            for event in &events {
                let Token(t) = event.token();
                if t < self.listeners.len() {
                    self.accept(t);
                } else if t != WAKER.0 {
                    self.progress(t - self.listeners.len());
                }
            }
            if self.retry_accept.is_some_and(|at| at <= Instant::now()) {
                self.retry_accept = None;
                for i in 0..self.listeners.len() {
                    self.accept(i);
                }
            }
            if self.reserve.is_none() {
                self.reserve = open_reserve();
            }
            let now = Instant::now();
            self.clients.retain(|_, c| {
                let alive = c.deadline > now;
                if !alive {
                    tracing::debug!("metrics: {} took longer than {DEADLINE:?}: closed", c.peer);
                }
                alive
            });
        }
    }

    /// Accepts what is queued on listener `i`.
    fn accept(&mut self, i: usize) {
        loop {
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
            let peer = addr
                .as_socket()
                .map_or_else(|| "a client".to_string(), |a| a.to_string());
            if self.clients.len() >= MAX_CLIENTS {
                tracing::debug!("metrics: {MAX_CLIENTS} scrapes open: {peer} closed");
                continue;
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
                head: Vec::new(),
                reply: None,
                deadline: Instant::now() + DEADLINE,
            });
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

    #[test]
    fn dropping_the_handle_stops_the_thread_and_closes_the_port() {
        let (addr, _metrics, serving) = start();
        drop(serving);
        let refused = TcpStream::connect_timeout(&addr, LIMIT);
        assert!(refused.is_err(), "the port still takes connections");
    }
}
