//! One app-server connection: read a request, answer it, close (or, with
//! keep-alive, read the next), under the deadlines that stop slow senders.
//!
//! - The request is decoded as it arrives ([`Decoder`]), so any split works
//!   and nothing is allocated by a declared length.
//! - Its header must be whole within the header timeout and the whole
//!   request within the request timeout, both counted from the request's
//!   start (the connection, or the previous response with keep-alive):
//!   a sender that trickles a byte a second is cut off all the same.
//! - A rejected request (malformed, over a limit, late) is logged with its
//!   reason and the connection closed.
//! - Closing is clean: the response (if any), then the loop's lingering
//!   close (FIN, then what the peer still sends is read and dropped for a
//!   moment: a second, `serve::LINGER`), so that closing with unread bytes
//!   does not reset the connection and lose the response on the way.
//! - While a response is unsent, the connection is not read from: a client
//!   that pipelines requests without reading holds one response's bytes.

use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use mio::Interest;
use socket2::Socket;

use super::service::{self, TEXT_JSON};
use super::table::SearchTable;
use crate::metrics::{ErrorClass, TimedOut};
use crate::net::Peer;
use crate::proto::{Decoder, Limits, Message, encode_into};
use crate::serve::{
    Connection, Ended, Io, Progress, READ_INTEREST, Service, reregister, write_some,
};
use crate::text;

/// How much of a request and its answer a log line shows.
const LOGGED_CHARS: usize = 200;

/// Reads per turn before a connection yields to the others.
const READ_BUDGET: usize = 16;

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

    fn open(&self, stream: Socket, peer: Peer) -> AppConn {
        let now = Instant::now();
        AppConn {
            stream,
            peer,
            shared: Arc::clone(&self.0),
            holding: Holding {
                shared: Arc::clone(&self.0),
                bytes: 0,
            },
            decoder: Decoder::new(self.0.config.limits),
            phase: Phase::Reading,
            request_started: now,
            first_byte: None,
            deadline: None,
            out: Vec::new(),
            received: 0,
            written: 0,
            sent: 0,
            since: now,
            close_after_write: false,
        }
        .with_request_deadline(now)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Reading a request.
    Reading,
    /// Waiting for room to send the rest of `out` (write interest is
    /// registered in this phase only; the loop's stall timeout applies).
    Writing,
}

/// One connection.
pub(crate) struct AppConn {
    stream: Socket,
    peer: Peer,
    shared: Arc<Shared>,
    /// Its decoder's share of `shared.buffered`.
    holding: Holding,
    decoder: Decoder,
    phase: Phase,
    /// When the request being read began to be awaited (the connection, or
    /// the previous response): its deadlines count from here.
    request_started: Instant,
    /// The turn the request being read had its first byte read, for its latency.
    first_byte: Option<Instant>,
    deadline: Option<Instant>,
    /// Response bytes; `written` of them are sent.
    out: Vec<u8>,
    received: u64,
    written: usize,
    sent: u64,
    since: Instant,
    /// Close once `out` is sent (a later request in the same read was rejected).
    close_after_write: bool,
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

    fn with_request_deadline(mut self, start: Instant) -> AppConn {
        self.request_started = start;
        self.deadline = Some(self.reading_deadline());
        self
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

    /// Reads and decodes; answers each whole request.
    fn read(&mut self, io: &mut Io<'_>) -> Progress {
        for _ in 0..READ_BUDGET {
            let n = match crate::calls::recv(&self.stream, io.scratch) {
                Ok(0) => {
                    if let Err(e) = self.decoder.finish() {
                        io.metrics.error(ErrorClass::BadRequest);
                        tracing::warn!(
                            "{}: rejected request: {}",
                            self.peer,
                            text::clip(&e.to_string(), LOGGED_CHARS)
                        );
                    }
                    // Its end of stream is read: nothing is left to drain.
                    return Progress::Close(Ended::Finished);
                }
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Progress::Wait,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Progress::Close(Ended::Failed(e)),
            };
            self.received += n as u64;
            let mut rest = &io.scratch[..n];
            while !rest.is_empty() {
                self.first_byte.get_or_insert(io.now);
                let decoded = match self.decoder.decode(rest) {
                    Ok(d) => d,
                    Err(e) => {
                        if let Some(closed) = self.reject(&e, io) {
                            return closed;
                        }
                        break;
                    }
                };
                rest = &rest[decoded.consumed..];
                if let Some(request) = decoded.message {
                    let started = self.first_byte.take().unwrap_or(io.now);
                    let answered = self.answer(&request);
                    if answered.is_ok() {
                        io.metrics.request(started.elapsed());
                    }
                    if let Err(e) = answered {
                        if let Some(closed) = self.reject(&e, io) {
                            return closed;
                        }
                        break;
                    }
                    if !self.shared.config.keep_alive {
                        // One request a connection, as the guide's server:
                        // anything after it is dropped while closing.
                        break;
                    }
                }
            }
            if !self.account() {
                io.metrics.error(ErrorClass::BadRequest);
                let held = self.shared.buffered.load(Ordering::Relaxed);
                // The budget is given back before the line is out: a client
                // that reads it and tries again finds the room it says.
                let closed = self.close_cleanly(io);
                tracing::warn!(
                    "{}: rejected request: the server holds {} of unfinished requests, \
                     over its budget (--max-buffered); try again later",
                    self.peer,
                    text::bytes(held)
                );
                return closed;
            }
            if !self.out.is_empty() {
                return self.write(io);
            }
            if self.decoder.has_header() {
                self.deadline = Some(self.reading_deadline());
            }
        }
        Progress::Yield
    }

    /// Logs a rejected request and closes: at once, or once the answers to
    /// the requests before it are sent (`None`: stop reading, then write).
    fn reject(&mut self, why: &dyn std::fmt::Display, io: &mut Io<'_>) -> Option<Progress> {
        io.metrics.error(ErrorClass::BadRequest);
        tracing::warn!(
            "{}: rejected request: {}",
            self.peer,
            text::clip(&why.to_string(), LOGGED_CHARS)
        );
        if self.out.is_empty() {
            return Some(self.close_cleanly(io));
        }
        self.close_after_write = true;
        None
    }

    /// Builds the response to a request and queues it.
    fn answer(&mut self, request: &Message) -> Result<(), service::ContentError> {
        let response = service::respond(request, &self.shared.config.table)?;
        // What a client wrote is escaped and cut short in the log.
        if request.header.content_type == TEXT_JSON {
            tracing::info!(
                "{}: request {} -> {}",
                self.peer,
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
                "{}: {} request of {} bytes",
                self.peer,
                text::clip(&request.header.content_type, LOGGED_CHARS),
                request.content.len()
            );
        }
        encode_into(&response, &mut self.out)
            .expect("a response's header is small and its length right");
        Ok(())
    }

    /// Sends what is queued; then reads the next request or closes.
    fn write(&mut self, io: &mut Io<'_>) -> Progress {
        match write_some(&self.stream, &self.out[self.written..]) {
            Ok(n) => {
                self.written += n;
                self.sent += n as u64;
            }
            Err(e) => return Progress::Close(Ended::Failed(e)),
        }
        if self.written < self.out.len() {
            if self.phase != Phase::Writing {
                // Wait for room, not for more requests: no request deadline
                // now; the loop's stall timeout ends a client that never reads.
                self.phase = Phase::Writing;
                self.deadline = None;
                if let Err(e) = reregister(&self.stream, io, Interest::WRITABLE) {
                    return Progress::Close(Ended::Failed(e));
                }
            }
            return Progress::Wait;
        }
        self.out.clear();
        self.written = 0;
        // Interest changes only when a response did not fit the send buffer:
        // one that went out whole costs no `epoll_ctl`.
        if self.phase == Phase::Writing
            && let Err(e) = reregister(&self.stream, io, READ_INTEREST)
        {
            return Progress::Close(Ended::Failed(e));
        }
        // With keep-alive, read on even after the client's FIN: requests it
        // sent before it may still be queued; the end of stream closes.
        if self.shared.config.keep_alive && !self.close_after_write {
            self.phase = Phase::Reading;
            self.request_started = Instant::now();
            // A pipelined request's header may be decoded already.
            self.deadline = Some(self.reading_deadline());
            // Read the next request on the loop's next turn (not from here:
            // a client that keeps sending would make this recursion deep).
            return Progress::Yield;
        }
        self.close_cleanly(io)
    }

    /// Done with this connection: the loop sends FIN and drops what the
    /// peer still sends for a moment. Nothing more is decoded: the
    /// unfinished request's bytes, and their share of the budget, go now.
    fn close_cleanly(&mut self, _io: &mut Io<'_>) -> Progress {
        self.decoder = Decoder::new(self.shared.config.limits);
        self.account();
        Progress::Linger
    }
}

impl Connection for AppConn {
    fn note(&mut self, _peer_closed: bool, _urgent: bool) {
        // Reads go on until the end of stream; the flags change nothing here.
    }

    fn drive(&mut self, io: &mut Io<'_>) -> Progress {
        match self.phase {
            Phase::Reading => self.read(io),
            Phase::Writing => self.write(io),
        }
    }

    fn deadline(&self) -> Option<Instant> {
        self.deadline
    }

    fn expire(&mut self, io: &mut Io<'_>, now: Instant) -> Progress {
        if self.deadline.is_none_or(|at| at > now) {
            return Progress::Wait;
        }
        self.deadline = None;
        match self.phase {
            Phase::Reading => {
                let header_limit = self.header_limit();
                let (what, limit) = if self.decoder.has_header() {
                    io.metrics.time_out(TimedOut::Request);
                    (
                        "the request was not whole",
                        self.shared.config.request_timeout,
                    )
                } else if self.decoder.is_between_messages() {
                    io.metrics.time_out(TimedOut::Header);
                    ("no request came", header_limit)
                } else {
                    io.metrics.time_out(TimedOut::Header);
                    ("the header was not whole", header_limit)
                };
                tracing::warn!(
                    "{}: rejected request: {what} within {}; closing",
                    self.peer,
                    crate::text::duration(limit)
                );
                self.close_cleanly(io)
            }
            // The loop's stall timeout governs a response that waits.
            Phase::Writing => Progress::Wait,
        }
    }

    fn unsent(&self) -> &[u8] {
        &self.out[self.written..]
    }

    fn peer(&self) -> Peer {
        self.peer
    }

    fn socket(&self) -> &Socket {
        &self.stream
    }

    fn since(&self) -> Instant {
        self.since
    }

    fn bytes(&self) -> u64 {
        self.sent
    }

    fn bytes_in(&self) -> u64 {
        self.received
    }

    fn into_socket(self) -> Socket {
        self.stream
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;
    use std::os::unix::net::UnixStream;

    use crate::serve::buffer::BufPool;

    fn service() -> AppService {
        AppService(Arc::new(Shared {
            config: super::super::server::AppServerConfig::default().app,
            buffered: AtomicU64::new(0),
        }))
    }

    #[test]
    fn a_response_unsent_at_the_grace_deadline_gets_a_last_try() {
        // Regression: an app connection cut off at the end of the grace
        // period sent its FIN without trying its unsent response (the echo's
        // connection tried); the peer got an end of stream and nothing.
        let (ours, mut theirs) = UnixStream::pair().unwrap();
        let mut conn = service().open(Socket::from(ours), Peer::Local(None));
        conn.out = b"the answer".to_vec();
        conn.phase = Phase::Writing;
        assert_eq!(crate::serve::cut_off(&mut conn, &mut BufPool::new()), 10);
        let mut got = Vec::new();
        theirs.read_to_end(&mut got).unwrap();
        assert_eq!(got, b"the answer", "the response, then end of stream");
    }
}
