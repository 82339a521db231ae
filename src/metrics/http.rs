//! The `--metrics` endpoint: `GET /metrics` answers the exposition of
//! `render.rs` (the scrape itself is `endpoint.rs`, a sans-IO service).
//!
//! [`bind`] binds first (so port 0 works and the real address can be
//! printed before serving); [`MetricsListener::serve`] runs the scrape
//! service on `serve`'s loop code, one event loop on a thread of its own,
//! and the returned [`Serving`] stops it when dropped. The server's event
//! loops never wait on it: a scrape only reads their counters.
//!
//! A scraper may be hostile, so everything is bounded, as `serve` bounds
//! every service's connections: [`MAX_CLIENTS`] at once and
//! [`MAX_PER_SOURCE`] from one address, a request head of
//! `MAX_REQUEST_HEAD` bytes, `FIRST_BYTE_DEADLINE` to start the request
//! and `DEADLINE` for a connection's whole life (the service's own
//! deadlines), and the lingering close. Each connection carries one
//! request (`Connection: close`).
//!
//! A scrape always gets through, even while others hold places on purpose
//! and send nothing (issue 14: 64 such connections, reopened as they were
//! closed, kept every scrape out):
//! - The kernel hands a connection over only once its first bytes have come
//!   in, or after [`DEFER_ACCEPT`] (`TCP_DEFER_ACCEPT`): a scrape arrives
//!   with its request there to read, and a silent connection holds no place
//!   for that long.
//! - The endpoint's limits make room (`serve::WhenFull::MakeRoom`): a
//!   newcomer whose address holds [`MAX_PER_SOURCE`] places takes the place
//!   of that address's oldest connection that has sent nothing; when all
//!   [`MAX_CLIENTS`] are taken it takes the oldest silent place of all. A
//!   candidate is read just before it is evicted, so a request that has
//!   come in but was not read yet counts. A connection that has sent a byte
//!   of its request keeps its place; a newcomer that finds only such places
//!   is closed at once (turned away).
//! - Evictions and turn-aways are logged at `warn`, at most once a second,
//!   with their counts since the last line and the last address that met
//!   a limit; what was held back is logged when the second is over.
//! - A server out of descriptors is when its counters matter most, and a
//!   scrape needs a descriptor too: the loop holds a reserve one
//!   (`/dev/null`), and when `accept` fails with EMFILE or ENFILE it closes
//!   the reserve and accepts the scrape with the descriptor that frees; the
//!   reserve is taken again as soon as one is free. With no reserve left,
//!   `accept` is tried again after a pause (5 ms, doubling to 1 s), so a
//!   scrape already queued is not left for the next one to connect.
//!
//! No HTTP server crate was taken: `tiny_http` (the small blocking one) has
//! no read timeout, reads a header line of any length into memory, starts a
//! thread per connection with no upper bound, and stops accepting for good
//! after one `accept` error; a hostile client could make it grow the
//! server's memory or threads without end. `hyper` would bring an async
//! runtime for one read and one write.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use super::endpoint::ScrapeService;
use super::{Metrics, ServerKind};
use crate::endpoint::{Endpoint, HostPort};
use crate::net::listen::{self, BindError, ListenOptions, Listener};
use crate::serve::{self, ConnLimits, StreamConfig, WhenFull};
use crate::shutdown::Shutdown;

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

/// How long the kernel holds a new connection back from the endpoint until
/// its first bytes come in (`TCP_DEFER_ACCEPT`): a scrape is accepted with
/// its request there to read, so it is never a silent place that a burst of
/// newer connections could evict before its request was seen; a connection
/// that sends nothing holds no place for this long, and is then handed
/// over, silent. 3 s leave room for a lost request to be sent again, as
/// the scrape's `FIRST_BYTE_DEADLINE` does.
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
            tracing::debug!("metrics: TCP_DEFER_ACCEPT: {}", crate::text::os_error(&e));
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
        let config = StreamConfig {
            threads: 1,
            once: false,
            keepalive: None,
            // Stopped, it stops: a scrape in flight gets what it has.
            grace: Duration::ZERO,
            limits: LIMITS,
            // What the endpoint's own connections count is nobody's
            // business: the server's counters are what it shows.
            metrics: Metrics::new(ServerKind::Echo),
            name: "metrics endpoint",
            quiet: true,
        };
        let shutdown = Shutdown::new();
        let service = Arc::new(ScrapeService { metrics });
        let listeners = self.listeners;
        let thread = {
            let shutdown = shutdown.clone();
            std::thread::Builder::new()
                .name("metrics".into())
                .spawn(move || {
                    if let Err(e) = serve::run(listeners, &config, service, &shutdown) {
                        tracing::warn!("metrics endpoint stopped: {}", crate::text::os_error(&e));
                    }
                })?
        };
        Ok(Serving {
            shutdown,
            thread: Some(thread),
        })
    }
}

/// The endpoint's limits, in `serve`'s terms: the places, the policy when
/// they are taken, and no idle or stall timeout of the loop's (the scrape's
/// own deadlines bound a connection's whole life).
const LIMITS: ConnLimits = ConnLimits {
    max_conns: MAX_CLIENTS,
    max_per_ip: Some(MAX_PER_SOURCE),
    idle_timeout: None,
    stall_timeout: None,
    when_full: WhenFull::MakeRoom,
};

/// The endpoint's thread: stopped and joined when this is dropped.
#[derive(Debug)]
pub struct Serving {
    shutdown: Shutdown,
    thread: Option<JoinHandle<()>>,
}

impl Drop for Serving {
    fn drop(&mut self) {
        self.shutdown.request();
        if let Some(thread) = self.thread.take()
            && thread.join().is_err()
        {
            tracing::warn!("the metrics endpoint panicked");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::endpoint::MAX_REQUEST_HEAD;
    use crate::metrics::render::CONTENT_TYPE;
    use socket2::Socket;
    use std::io::{Read, Write};
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
    fn dropping_the_handle_stops_the_thread_and_closes_the_port() {
        let (addr, _metrics, serving) = start();
        drop(serving);
        let refused = TcpStream::connect_timeout(&addr, LIMIT);
        assert!(refused.is_err(), "the port still takes connections");
    }
}
