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
//! - Closing is clean: the response (if any), then FIN, then what the peer
//!   still sends is read and dropped for a moment ([`LINGER`]), so that
//!   closing with unread bytes does not reset the connection and lose the
//!   response on the way.
//! - While a response is unsent, the connection is not read from: a client
//!   that pipelines requests without reading holds one response's bytes.

use std::io;
use std::net::Shutdown;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use mio::Interest;
use socket2::Socket;

use super::service::{self, TEXT_JSON};
use super::table::SearchTable;
use crate::net::Peer;
use crate::proto::{Decoder, Limits, Message, encode_into};
use crate::serve::{
    Connection, Ended, Io, Progress, READ_INTEREST, Service, reregister, write_some,
};
use crate::text;

/// How long a closing connection reads and drops what its peer still sends.
pub const LINGER: Duration = Duration::from_secs(1);

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
            holding: 0,
            decoder: Decoder::new(self.0.config.limits),
            phase: Phase::Reading,
            request_started: now,
            deadline: None,
            armed: None,
            out: Vec::new(),
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
    /// registered in this phase only).
    Writing,
    /// FIN sent; dropping what the peer still sends until it closes.
    Draining,
}

/// One connection.
pub(crate) struct AppConn {
    stream: Socket,
    peer: Peer,
    shared: Arc<Shared>,
    /// Bytes of `shared.buffered` this connection's decoder holds.
    holding: u64,
    decoder: Decoder,
    phase: Phase,
    request_started: Instant,
    deadline: Option<Instant>,
    /// The timer the loop holds for this connection, if any.
    armed: Option<Instant>,
    /// Response bytes; `written` of them are sent.
    out: Vec<u8>,
    written: usize,
    sent: u64,
    since: Instant,
    /// Close once `out` is sent (a later request in the same read was rejected).
    close_after_write: bool,
}

impl Drop for AppConn {
    fn drop(&mut self) {
        self.shared
            .buffered
            .fetch_sub(self.holding, Ordering::Relaxed);
    }
}

impl AppConn {
    /// Counts what the decoder holds into the server-wide total; false when
    /// the total is over the budget.
    fn account(&mut self) -> bool {
        let now = self.decoder.buffered() as u64;
        if now == self.holding {
            // Nothing changed: leave the counter all loops share alone.
            return now == 0
                || self.shared.buffered.load(Ordering::Relaxed) <= self.shared.config.max_buffered;
        }
        let total = if now >= self.holding {
            let grew = now - self.holding;
            self.shared.buffered.fetch_add(grew, Ordering::Relaxed) + grew
        } else {
            let shrank = self.holding - now;
            self.shared.buffered.fetch_sub(shrank, Ordering::Relaxed) - shrank
        };
        self.holding = now;
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
                        tracing::warn!(
                            "{}: rejected request: {}",
                            self.peer,
                            text::clip(&e.to_string(), LOGGED_CHARS)
                        );
                    }
                    return self.close_cleanly(io);
                }
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Progress::Wait,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Progress::Close(Ended::Failed(e)),
            };
            let mut rest = &io.scratch[..n];
            while !rest.is_empty() {
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
                    if let Err(e) = self.answer(&request) {
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
                tracing::warn!(
                    "{}: rejected request: the server holds {} of unfinished requests, \
                     over its budget (--max-buffered); try again later",
                    self.peer,
                    text::bytes(self.shared.buffered.load(Ordering::Relaxed))
                );
                return self.close_cleanly(io);
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
    fn answer(&mut self, request: &Message) -> Result<(), service::RequestError> {
        let response = service::respond(request, &self.shared.config.table)?;
        // What a client wrote is escaped and cut short in the log.
        if request.header.content_type == TEXT_JSON {
            tracing::info!(
                "{}: request {} -> {}",
                self.peer,
                text::clip(&String::from_utf8_lossy(&request.content), LOGGED_CHARS),
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
                // Wait for room, not for more requests.
                self.phase = Phase::Writing;
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

    /// FIN, then drop what the peer still sends until it closes or the
    /// linger ends.
    fn close_cleanly(&mut self, io: &mut Io<'_>) -> Progress {
        if self.phase != Phase::Draining {
            self.phase = Phase::Draining;
            // Nothing more is decoded: the unfinished request's bytes, and
            // their share of the budget, go now, not after the linger.
            self.decoder = Decoder::new(self.shared.config.limits);
            self.account();
            if let Err(e) = crate::calls::shutdown(&self.stream, Shutdown::Write)
                && e.kind() != io::ErrorKind::NotConnected
            {
                return Progress::Close(Ended::Failed(e));
            }
            self.deadline = Some(crate::deadline::from_now(LINGER));
        }
        self.drain(io)
    }

    fn drain(&mut self, io: &mut Io<'_>) -> Progress {
        for _ in 0..READ_BUDGET {
            match crate::calls::recv(&self.stream, io.scratch) {
                Ok(0) => return Progress::Close(Ended::Finished),
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Progress::Wait,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                // The peer is gone: nothing is lost that it wanted.
                Err(_) => return Progress::Close(Ended::Finished),
            }
        }
        Progress::Yield
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
            Phase::Draining => self.drain(io),
        }
    }

    fn new_deadline(&mut self) -> Option<Instant> {
        let at = self.deadline?;
        if self.armed.is_some_and(|armed| armed <= at) {
            // A timer at or before it is set: it will come back to this.
            return None;
        }
        self.armed = Some(at);
        Some(at)
    }

    fn expire(&mut self, io: &mut Io<'_>, now: Instant) -> Progress {
        if self.armed.is_some_and(|armed| armed <= now) {
            self.armed = None;
        }
        match self.deadline {
            // Not due (it moved later, or this timer was an earlier
            // connection's): `new_deadline` sets the next timer.
            Some(at) if at > now => return Progress::Wait,
            None => return Progress::Wait,
            Some(_) => {}
        }
        self.deadline = None;
        match self.phase {
            Phase::Reading => {
                let header_limit = self.header_limit();
                let (what, limit) = if self.decoder.has_header() {
                    (
                        "the request was not whole",
                        self.shared.config.request_timeout,
                    )
                } else if self.decoder.is_between_messages() {
                    ("no request came", header_limit)
                } else {
                    ("the header was not whole", header_limit)
                };
                tracing::warn!(
                    "{}: rejected request: {what} within {}; closing",
                    self.peer,
                    crate::text::duration(limit)
                );
                self.close_cleanly(io)
            }
            // A client that does not read its response, or will not close.
            Phase::Writing | Phase::Draining => Progress::Close(Ended::Finished),
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
