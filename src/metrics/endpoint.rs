//! The `/metrics` scrape, as a sans-IO service that `serve`'s loop runs:
//! a request head in, the exposition out. `GET /metrics` (and `HEAD`)
//! answers the exposition of `render.rs`; any other path gets 404, any
//! other method 405; a head that is not HTTP 400, one past
//! [`MAX_REQUEST_HEAD`] 431. Each connection carries one request
//! (`Connection: close`): once the response is out the loop ends it
//! (FIN, then the lingering close every `serve` connection gets).
//!
//! Its deadlines bound a hostile scraper's whole life: [`FIRST_BYTE_DEADLINE`]
//! to start the request, [`DEADLINE`] from accept to the last byte of the
//! response. The request head is parsed by `httparse` (hyper's parser).

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::Metrics;
use super::render::{self, CONTENT_TYPE};
use crate::serve::{Cx, Input, Service, ServiceConnection};

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
/// One the kernel held back for `DEFER_ACCEPT` and handed over silent has
/// been silent that long already: it is closed after 6 s of silence in
/// all, before the 10 s of [`DEADLINE`].
pub const FIRST_BYTE_DEADLINE: Duration = Duration::from_secs(3);

/// The longest request head read: a scraper's is a few hundred bytes, and
/// 8 KiB is what common servers allow by default.
pub const MAX_REQUEST_HEAD: usize = 8 * 1024;

/// Headers parsed at most; more make the request a 431.
const MAX_HEADERS: usize = 32;

/// The scrape service: each connection answers one request from `metrics`.
pub(crate) struct ScrapeService {
    pub(crate) metrics: Arc<Metrics>,
}

impl Service for ScrapeService {
    type Conn = Scrape;

    fn open(&self, cx: &mut Cx<'_>) -> Scrape {
        Scrape {
            metrics: Arc::clone(&self.metrics),
            accepted: cx.now,
            head: Vec::new(),
            reply: None,
            done: false,
        }
    }
}

/// One scrape connection.
pub(crate) struct Scrape {
    metrics: Arc<Metrics>,
    accepted: Instant,
    /// The request head read so far.
    head: Vec<u8>,
    /// The response, once the request is whole, and how much of it is sent.
    reply: Option<(Vec<u8>, usize)>,
    /// Nothing more to send: the response is out, or the deadline passed.
    done: bool,
}

impl Scrape {
    /// It has not sent a byte yet.
    fn is_silent(&self) -> bool {
        self.head.is_empty()
    }

    /// The response to the head read so far, if it is whole (or cannot be).
    fn parse(&self, peer: crate::net::Peer) -> Option<Reply> {
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let mut request = httparse::Request::new(&mut headers);
        match request.parse(&self.head) {
            Ok(httparse::Status::Complete(_)) => {
                let method = request.method.unwrap_or_default();
                let path = request.path.unwrap_or_default();
                let reply = respond(method, path, &self.metrics);
                tracing::debug!(%peer, "metrics: {method} {path}: {reply}");
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
        }
    }
}

impl ServiceConnection for Scrape {
    /// Reads the head up to [`MAX_REQUEST_HEAD`]; once it is whole (or
    /// cannot be), makes the response. What comes after is dropped.
    fn received(&mut self, data: &[u8], cx: &mut Cx<'_>) -> Input {
        if self.reply.is_some() || self.done {
            return Input::Consumed;
        }
        let room = MAX_REQUEST_HEAD - self.head.len();
        self.head.extend_from_slice(&data[..data.len().min(room)]);
        self.reply = self.parse(cx.peer).map(|r| (r.bytes(), 0));
        Input::Consumed
    }

    fn end_of_stream(&mut self, _cx: &mut Cx<'_>) {
        // The client gave up before its request was whole: nothing to say.
        if self.reply.is_none() {
            self.done = true;
        }
    }

    fn transmit(&self) -> &[u8] {
        match &self.reply {
            Some((reply, sent)) if !self.done => &reply[*sent..],
            _ => &[],
        }
    }

    fn sent(&mut self, n: usize, _cx: &mut Cx<'_>) {
        if let Some((reply, sent)) = &mut self.reply {
            *sent += n;
            self.done = *sent == reply.len();
        }
    }

    /// Sooner while it has sent nothing.
    fn poll_timeout(&self) -> Option<Instant> {
        (!self.done).then(|| deadline(self.accepted, self.is_silent()))
    }

    /// Late: closed, with what it was to be sent dropped.
    fn handle_timeout(&mut self, cx: &mut Cx<'_>) {
        if self.poll_timeout().is_none_or(|at| at > cx.now) {
            return;
        }
        let (what, limit) = if self.is_silent() {
            ("sent nothing", FIRST_BYTE_DEADLINE)
        } else {
            ("was not done", DEADLINE)
        };
        tracing::debug!(
            peer = %cx.peer,
            "metrics: {what} within {}: closed",
            crate::text::duration(limit)
        );
        self.done = true;
    }

    fn is_done(&self) -> bool {
        self.done
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
    use crate::serve::service::testing::Drive;

    fn scrape() -> Drive<Scrape> {
        let metrics = Metrics::new(ServerKind::Echo);
        metrics.shard().datagrams_in.add(3);
        Drive::open(&ScrapeService { metrics }, ServerKind::Echo)
    }

    fn delivered(d: &Drive<Scrape>) -> String {
        String::from_utf8_lossy(&d.delivered).into_owned()
    }

    #[test]
    fn a_request_in_pieces_is_answered_once_whole_then_the_connection_is_done() {
        let mut d = scrape();
        d.arrive(b"GET /metr");
        assert!(d.delivered.is_empty() && !d.conn.is_done());
        d.arrive(b"ics HTTP/1.1\r\nHost: x\r\n\r\n");
        let out = delivered(&d);
        assert!(out.starts_with("HTTP/1.1 200 OK\r\n"), "{out}");
        assert!(
            out.contains("\nechokit_datagrams_received_total 3\n"),
            "{out}"
        );
        assert!(d.conn.is_done());
        assert_eq!(d.conn.poll_timeout(), None);
    }

    #[test]
    fn a_silent_connection_is_closed_at_the_first_byte_deadline() {
        let mut d = scrape();
        assert!(!d.advance(FIRST_BYTE_DEADLINE - Duration::from_millis(1)));
        assert!(d.advance(Duration::from_millis(1)));
        assert!(d.conn.is_done());
        assert!(d.delivered.is_empty());
    }

    #[test]
    fn a_begun_request_has_until_the_whole_deadline() {
        let mut d = scrape();
        d.arrive(b"G");
        assert!(
            !d.advance(DEADLINE - Duration::from_millis(1)),
            "past 3 s: fine"
        );
        assert!(d.advance(Duration::from_millis(1)));
        assert!(d.conn.is_done());
    }

    #[test]
    fn a_response_the_client_does_not_read_is_dropped_at_the_deadline() {
        let mut d = scrape();
        d.room = 10;
        d.arrive(b"GET /metrics HTTP/1.1\r\n\r\n");
        assert!(
            !d.conn.transmit().is_empty(),
            "back-pressure: the rest waits"
        );
        assert!(d.advance(DEADLINE));
        assert!(d.conn.is_done());
        assert!(d.conn.transmit().is_empty(), "nothing more is sent");
    }

    #[test]
    fn a_head_past_the_limit_is_answered_431() {
        let mut d = scrape();
        let mut head = b"GET /metrics HTTP/1.1\r\nX-Long: ".to_vec();
        head.resize(MAX_REQUEST_HEAD * 2, b'a');
        d.arrive(&head);
        assert!(
            delivered(&d).starts_with("HTTP/1.1 431 "),
            "{}",
            delivered(&d)
        );
    }

    #[test]
    fn a_silent_connection_is_due_sooner_than_one_that_has_begun() {
        let t0 = Instant::now();
        assert_eq!(deadline(t0, true), t0 + FIRST_BYTE_DEADLINE);
        assert_eq!(deadline(t0, false), t0 + DEADLINE);
        assert!(FIRST_BYTE_DEADLINE < DEADLINE);
    }
}
