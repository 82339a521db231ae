//! One app-server connection, as a sans-IO state machine: decode a
//! request, answer it, close (or, with keep-alive, read the next), under the
//! deadlines that stop slow senders. The loop (`serve`) reads, sends,
//! times and closes; this decides.
//!
//! - The request is decoded as it arrives ([`Decoder`]), so any split works
//!   and nothing is allocated by a declared length.
//! - Its header must be whole within the header timeout and the whole
//!   request within the request timeout, both counted from the request's
//!   start (the connection, or the previous response with keep-alive):
//!   a sender that trickles a byte a second is cut off all the same.
//! - A rejected request (malformed, over a limit, late) is logged with its
//!   reason and the connection closed, after the answers to the requests
//!   before it.
//! - Closing is clean: the response (if any), then the loop's lingering
//!   close (FIN, then what the peer still sends is read and dropped for a
//!   moment: a second, `serve::LINGER`), so that closing with unread bytes
//!   does not reset the connection and lose the response on the way.
//! - While a response is unsent, the loop reads nothing from the connection:
//!   a client that pipelines requests without reading holds one response's
//!   bytes. No request deadline runs then; the loop's stall timeout ends a
//!   client that never reads.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use super::service::{self, TEXT_JSON};
use super::table::SearchTable;
use crate::metrics::{ErrorClass, TimedOut};
use crate::proto::{Decoder, Limits, Message, encode_into};
use crate::serve::{Cx, Input, Service, ServiceConnection};
use crate::text;

/// How much of a request and its answer a log line shows.
const LOGGED_CHARS: usize = 200;

/// What every connection of an app-server shares.
#[derive(Debug)]
pub struct AppConfig {
    /// Search terms and answers.
    pub table: SearchTable,
    /// What a request may be.
    pub limits: Limits,
    /// The longest a request's header may take to arrive.
    pub header_timeout: Duration,
    /// The longest a whole request may take to arrive.
    pub request_timeout: Duration,
    /// One connection carries many requests.
    pub keep_alive: bool,
    /// The most bytes of unfinished requests all connections together may
    /// hold: past it, a request that grows is rejected.
    pub max_buffered: u64,
}

/// The server's default for [`AppConfig::max_buffered`]: 16 requests at the
/// largest content.
pub const DEFAULT_MAX_BUFFERED: u64 = 256 * 1024 * 1024;

/// The app service: each connection answers the guide's requests.
pub(crate) struct AppService(pub(crate) Arc<Shared>);

/// What the connections of all loops share.
pub(crate) struct Shared {
    pub(crate) config: AppConfig,
    /// Bytes of unfinished requests held now, by every connection.
    pub(crate) buffered: AtomicU64,
}

impl Service for AppService {
    type Conn = AppConn;

    fn open(&self, cx: &mut Cx<'_>) -> AppConn {
        let mut conn = AppConn {
            shared: Arc::clone(&self.0),
            holding: Holding {
                shared: Arc::clone(&self.0),
                bytes: 0,
            },
            decoder: Decoder::new(self.0.config.limits),
            request_started: cx.now,
            first_byte: None,
            deadline: None,
            out: Vec::new(),
            written: 0,
            closing: false,
        };
        conn.deadline = Some(conn.reading_deadline());
        conn
    }
}

/// One connection.
pub(crate) struct AppConn {
    shared: Arc<Shared>,
    /// Its decoder's share of `shared.buffered`.
    holding: Holding,
    decoder: Decoder,
    /// When the request being read began to be awaited (the connection, or
    /// the previous response): its deadlines count from here.
    request_started: Instant,
    /// The turn the request being read had its first byte read, for its latency.
    first_byte: Option<Instant>,
    /// When the request being read must be whole (none while a response
    /// waits to be sent).
    deadline: Option<Instant>,
    /// Response bytes; `written` of them are sent.
    out: Vec<u8>,
    written: usize,
    /// Done: once `out` is sent, the loop closes (one request without
    /// keep-alive, or a rejected one).
    closing: bool,
}

/// The bytes of unfinished requests a connection holds, counted in the
/// server-wide total; given back when the connection goes.
struct Holding {
    shared: Arc<Shared>,
    bytes: u64,
}

impl Drop for Holding {
    fn drop(&mut self) {
        self.shared
            .buffered
            .fetch_sub(self.bytes, Ordering::Relaxed);
    }
}

impl AppConn {
    /// Counts what the decoder holds into the server-wide total; false when
    /// the total is over the budget.
    fn account(&mut self) -> bool {
        let now = self.decoder.buffered() as u64;
        let holding = self.holding.bytes;
        if now == holding {
            // Nothing changed: leave the counter all loops share alone.
            return now == 0
                || self.shared.buffered.load(Ordering::Relaxed) <= self.shared.config.max_buffered;
        }
        let total = if now >= holding {
            let grew = now - holding;
            self.shared.buffered.fetch_add(grew, Ordering::Relaxed) + grew
        } else {
            let shrank = holding - now;
            self.shared.buffered.fetch_sub(shrank, Ordering::Relaxed) - shrank
        };
        self.holding.bytes = now;
        total <= self.shared.config.max_buffered || now == 0
    }

    /// How long a request's header may take: the header timeout, within
    /// the whole request's.
    fn header_limit(&self) -> Duration {
        let config = &self.shared.config;
        config.header_timeout.min(config.request_timeout)
    }

    /// When the request being read must be whole: its header by the header
    /// limit, then all of it by the request timeout, both from its start.
    fn reading_deadline(&self) -> Instant {
        let limit = if self.decoder.has_header() {
            self.shared.config.request_timeout
        } else {
            self.header_limit()
        };
        crate::deadline::after(self.request_started, limit)
    }

    /// Logs a rejected request and closes, once the answers to the requests
    /// before it are sent.
    fn reject(&mut self, why: &dyn std::fmt::Display, cx: &mut Cx<'_>) {
        rejected(why, cx);
        self.close_cleanly();
    }

    /// Builds the response to a request and queues it.
    fn answer(&mut self, request: &Message, cx: &Cx<'_>) -> Result<(), service::ContentError> {
        let response = service::respond(request, &self.shared.config.table)?;
        // What a client wrote is escaped and cut short in the log.
        if request.header.content_type == TEXT_JSON {
            tracing::info!(
                peer = %cx.peer,
                conn = cx.conn.0,
                "request {} -> {}",
                text::clip(
                    &request
                        .text()
                        .unwrap_or_else(|_| String::from_utf8_lossy(&request.content)),
                    LOGGED_CHARS
                ),
                text::clip(&String::from_utf8_lossy(&response.content), LOGGED_CHARS)
            );
        } else {
            tracing::info!(
                peer = %cx.peer,
                conn = cx.conn.0,
                "{} request of {}",
                text::clip(&request.header.content_type, LOGGED_CHARS),
                text::byte_count(request.content.len() as u64)
            );
        }
        encode_into(&response, &mut self.out)
            .expect("a response's header is small and its length right");
        Ok(())
    }

    /// Done with this connection: the loop sends what is queued, then FIN,
    /// and drops what the peer still sends for a moment. Nothing more is
    /// decoded: the unfinished request's bytes, and their share of the
    /// budget, go now.
    fn close_cleanly(&mut self) {
        self.decoder = Decoder::new(self.shared.config.limits);
        self.account();
        self.closing = true;
        self.deadline = None;
    }
}

impl ServiceConnection for AppConn {
    /// Decodes what arrived and answers each whole request.
    fn received(&mut self, data: &[u8], cx: &mut Cx<'_>) -> Input {
        if self.closing {
            // One request a connection, as the guide's server: anything
            // after it is dropped while closing.
            return Input::Consumed;
        }
        let mut rest = data;
        while !rest.is_empty() {
            self.first_byte.get_or_insert(cx.now);
            let decoded = match self.decoder.decode(rest) {
                Ok(d) => d,
                Err(e) => {
                    self.reject(&e, cx);
                    break;
                }
            };
            rest = &rest[decoded.consumed..];
            if let Some(request) = decoded.message {
                let started = self.first_byte.take().unwrap_or(cx.now);
                if let Err(e) = self.answer(&request, cx) {
                    self.reject(&e, cx);
                    break;
                }
                cx.metrics
                    .request(cx.now.saturating_duration_since(started));
                if !self.shared.config.keep_alive {
                    self.closing = true;
                    break;
                }
            }
        }
        if !self.account() {
            cx.metrics.error(ErrorClass::BadRequest);
            let held = self.shared.buffered.load(Ordering::Relaxed);
            // The budget is given back before the line is out: a client
            // that reads it and tries again finds the room it says.
            self.close_cleanly();
            tracing::warn!(
                peer = %cx.peer,
                conn = cx.conn.0,
                "rejected request: the server holds {} of unfinished requests, \
                 over its budget (--max-buffered); try again later",
                text::bytes(held)
            );
        } else if self.closing || !self.out.is_empty() {
            // Wait for room, not for more requests: no request deadline
            // now; the loop's stall timeout ends a client that never reads.
            self.deadline = None;
        } else if self.decoder.has_header() {
            self.deadline = Some(self.reading_deadline());
        }
        Input::Consumed
    }

    fn end_of_stream(&mut self, cx: &mut Cx<'_>) {
        if let Err(e) = self.decoder.finish() {
            rejected(&e, cx);
        }
        self.deadline = None;
    }

    fn transmit(&self) -> &[u8] {
        &self.out[self.written..]
    }

    /// Once a response is all out, the next request's deadlines count from
    /// now (with keep-alive; without, the loop closes).
    fn sent(&mut self, n: usize, cx: &mut Cx<'_>) {
        self.written += n;
        if self.written < self.out.len() {
            return;
        }
        self.out.clear();
        self.written = 0;
        if !self.closing {
            self.request_started = cx.now;
            // A pipelined request's header may be decoded already.
            self.deadline = Some(self.reading_deadline());
        }
    }

    fn poll_timeout(&self) -> Option<Instant> {
        self.deadline
    }

    fn handle_timeout(&mut self, cx: &mut Cx<'_>) {
        if self.deadline.is_none_or(|at| at > cx.now) {
            return;
        }
        let header_limit = self.header_limit();
        let (what, limit) = if self.decoder.has_header() {
            cx.metrics.time_out(TimedOut::Request);
            (
                "the request was not whole",
                self.shared.config.request_timeout,
            )
        } else if self.decoder.is_between_messages() {
            cx.metrics.time_out(TimedOut::Header);
            ("no request came", header_limit)
        } else {
            cx.metrics.time_out(TimedOut::Header);
            ("the header was not whole", header_limit)
        };
        tracing::warn!(
            peer = %cx.peer,
            conn = cx.conn.0,
            "rejected request: {what} within {}; closing",
            crate::text::duration(limit)
        );
        self.close_cleanly();
    }

    fn is_done(&self) -> bool {
        self.closing
    }
}

/// Counts and logs a request that is rejected, with what was wrong in the
/// client's words, escaped and cut short.
fn rejected(why: &dyn std::fmt::Display, cx: &Cx<'_>) {
    cx.metrics.error(ErrorClass::BadRequest);
    tracing::warn!(
        peer = %cx.peer,
        conn = cx.conn.0,
        "rejected request: {}",
        text::clip(&why.to_string(), LOGGED_CHARS)
    );
}

#[cfg(test)]
mod tests {
    //! The deadlines and back-pressure, driven with a clock the test moves:
    //! no socket, no sleep.
    use super::*;
    use crate::metrics::ServerKind;
    use crate::proto::encode;
    use crate::serve::service::testing::Drive;

    const SECOND: Duration = Duration::from_secs(1);
    const MS: Duration = Duration::from_millis(1);

    fn app(keep_alive: bool, max_buffered: u64) -> Drive<AppConn> {
        let mut config = super::super::server::AppServerConfig::default().app;
        config.header_timeout = 10 * SECOND;
        config.request_timeout = 30 * SECOND;
        config.keep_alive = keep_alive;
        config.max_buffered = max_buffered;
        let service = AppService(Arc::new(Shared {
            config,
            buffered: AtomicU64::new(0),
        }));
        Drive::open(&service, ServerKind::App)
    }

    fn request(value: &str) -> Vec<u8> {
        encode(&service::request("search", value)).unwrap()
    }

    fn response(value: &str) -> Vec<u8> {
        let table = SearchTable::default();
        encode(&service::respond(&service::request("search", value), &table).unwrap()).unwrap()
    }

    /// Searches for each value, back to back (or their answers).
    fn each(values: &[&str], message: fn(&str) -> Vec<u8>) -> Vec<u8> {
        values.iter().flat_map(|v| message(v)).collect()
    }

    /// The request's bytes up to the end of its JSON header.
    fn header_end(request: &[u8]) -> usize {
        2 + usize::from(u16::from_be_bytes([request[0], request[1]]))
    }

    /// The connection's deadline is `at`: nothing happens a millisecond
    /// before, and at `at` it is closed, timed out for `why` alone.
    fn closes_at(d: &mut Drive<AppConn>, at: Instant, why: TimedOut) {
        assert_eq!(d.conn.poll_timeout(), Some(at));
        assert!(!d.advance(at - MS - d.now), "fired early");
        assert!(!d.conn.is_done());
        assert!(d.advance(MS), "did not fire at its time");
        assert!(d.conn.is_done());
        for other in TimedOut::ALL {
            let count = d.metrics.timed_out[other as usize].get();
            assert_eq!(count, u64::from(other == why), "{other:?}");
        }
    }

    #[test]
    fn no_request_at_all_closes_at_the_header_timeout() {
        let mut d = app(false, DEFAULT_MAX_BUFFERED);
        let at = d.now + 10 * SECOND;
        closes_at(&mut d, at, TimedOut::Header);
        assert!(d.delivered.is_empty(), "closed with no answer");
    }

    #[test]
    fn the_deadlines_count_from_the_connection_and_a_whole_header_moves_to_the_request_timeout() {
        let req = request("morpheus");
        // Part of the header: due at the header timeout, not moved by the
        // bytes. The whole header: due at the request timeout, past the
        // header's.
        for (sent, limit, why) in [
            (3, 10 * SECOND, TimedOut::Header),
            (header_end(&req), 30 * SECOND, TimedOut::Request),
        ] {
            let mut d = app(false, DEFAULT_MAX_BUFFERED);
            let start = d.now;
            d.advance(4 * SECOND);
            d.arrive(&req[..sent]);
            closes_at(&mut d, start + limit, why);
        }
    }

    #[test]
    fn a_sender_that_trickles_a_byte_a_second_is_cut_off_all_the_same() {
        let mut d = app(false, DEFAULT_MAX_BUFFERED);
        let req = request("morpheus");
        assert!(header_end(&req) > 11, "the header outlasts the trickle");
        let mut fired = false;
        for byte in &req[..10] {
            d.arrive(std::slice::from_ref(byte));
            fired |= d.advance(SECOND);
        }
        assert!(fired, "each byte came in time, the header did not");
        assert!(d.conn.is_done());
        assert_eq!(d.metrics.timed_out[TimedOut::Header as usize].get(), 1);
    }

    #[test]
    fn without_keep_alive_one_answer_then_the_connection_is_done() {
        let mut d = app(false, DEFAULT_MAX_BUFFERED);
        d.arrive(&each(&["morpheus", "ring"], request));
        assert_eq!(d.delivered, response("morpheus"), "the second is dropped");
        assert!(d.conn.is_done());
        assert!(!d.reads());
        assert_eq!(d.conn.poll_timeout(), None, "no deadline while closing");
        assert_eq!(d.metrics.requests.get(), 1);
    }

    #[test]
    fn with_keep_alive_the_next_request_counts_from_the_response() {
        let mut d = app(true, DEFAULT_MAX_BUFFERED);
        d.advance(5 * SECOND);
        d.arrive(&request("morpheus"));
        assert_eq!(d.delivered, response("morpheus"));
        // No request came within the header timeout of the response.
        let at = d.now + 10 * SECOND;
        closes_at(&mut d, at, TimedOut::Header);
    }

    #[test]
    fn while_a_response_waits_unsent_no_request_deadline_runs() {
        let mut d = app(true, DEFAULT_MAX_BUFFERED);
        d.room = 4;
        d.arrive(&request("morpheus"));
        let answer = response("morpheus");
        assert_eq!(
            d.conn.transmit(),
            &answer[4..],
            "back-pressure: the rest waits"
        );
        assert!(!d.reads(), "nothing is read while it waits");
        assert_eq!(d.conn.poll_timeout(), None);
        // An hour: the loop's stall timeout governs, not the request's.
        assert!(!d.advance(3600 * SECOND));
        assert!(!d.conn.is_done());
        d.peer_reads(usize::MAX);
        assert_eq!(d.delivered, answer);
        assert!(d.reads());
        assert_eq!(d.conn.poll_timeout(), Some(d.now + 10 * SECOND));
    }

    #[test]
    fn pipelined_requests_in_one_read_are_answered_in_order() {
        let mut d = app(true, DEFAULT_MAX_BUFFERED);
        d.arrive(&each(&["ring", "morpheus"], request));
        assert_eq!(d.delivered, each(&["ring", "morpheus"], response));
        assert_eq!(d.metrics.requests.get(), 2);
    }

    #[test]
    fn a_bad_request_after_a_good_one_closes_after_the_good_answer() {
        let mut d = app(true, DEFAULT_MAX_BUFFERED);
        d.room = 0;
        let mut bytes = request("morpheus");
        bytes.extend([0, 0]);
        bytes.extend(b"no header at all");
        d.arrive(&bytes);
        assert!(d.conn.is_done());
        assert_eq!(d.conn.transmit(), response("morpheus"), "still to send");
        d.peer_reads(usize::MAX);
        assert_eq!(d.delivered, response("morpheus"));
        assert_eq!(d.metrics.errors[ErrorClass::BadRequest as usize].get(), 1);
    }

    #[test]
    fn a_request_over_the_servers_budget_is_rejected_and_its_bytes_given_back() {
        let mut d = app(true, 16);
        let req = request("morpheus");
        d.arrive(&req[..req.len() - 1]);
        assert!(d.conn.is_done());
        assert!(d.delivered.is_empty());
        assert_eq!(d.conn.shared.buffered.load(Ordering::Relaxed), 0);
        assert_eq!(d.metrics.errors[ErrorClass::BadRequest as usize].get(), 1);
    }

    #[test]
    fn an_unfinished_request_at_end_of_stream_is_counted_bad() {
        let mut d = app(true, DEFAULT_MAX_BUFFERED);
        let req = request("morpheus");
        d.arrive(&req[..5]);
        d.end();
        assert_eq!(d.metrics.errors[ErrorClass::BadRequest as usize].get(), 1);
        assert_eq!(d.conn.poll_timeout(), None, "the loop closes it now");
    }

    #[test]
    fn a_requests_latency_runs_from_its_first_bytes_turn_to_its_answers() {
        let mut d = app(false, DEFAULT_MAX_BUFFERED);
        let req = request("morpheus");
        d.arrive(&req[..7]);
        d.advance(3 * MS);
        d.arrive(&req[7..]);
        assert_eq!(d.metrics.requests.get(), 1);
        assert_eq!(d.metrics.latency_sum_ns.get(), 3_000_000);
    }
}
