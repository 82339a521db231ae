//! One echo connection: read, write back, and the states in between.
//!
//! The loop calls [`Conn::drive`] when the socket is ready (epoll is
//! edge-triggered, so each call works until the socket would block). The
//! rules that make the echo lossless and bounded:
//!
//! - Bytes are written back as soon as they are read. What the client's
//!   window cannot take waits in one [`Pending`] buffer, and while it waits
//!   the connection is not read from: the client's own send buffer fills and
//!   TCP flow control pushes back on it. Memory per connection is bounded by
//!   one buffer, never a queue.
//! - Write interest is registered only while bytes are pending; an idle
//!   connection costs no wake-ups.
//! - A read shorter than the buffer means the socket's receive queue was
//!   empty at that instant (TCP stream semantics), and any later arrival
//!   raises a new edge, so the read that would only return `EAGAIN` is
//!   skipped. Two exceptions read on until `EAGAIN`: the peer has closed its
//!   side (the end of stream must be seen), and urgent data is pending (a
//!   read stops at TCP's urgent mark with more bytes queued behind it).
//!   Listeners set `SO_OOBINLINE`, so urgent bytes are echoed in their place.
//! - Half-close: at end of stream the pending echo is sent first, then the
//!   write side is shut down (FIN), so the client gets every byte and then EOF.
//! - A connection reads at most [`READ_BUDGET`] buffers per turn, so a bulk
//!   sender cannot starve the loop's other connections.

use std::io;
use std::net::Shutdown;
use std::time::Instant;

use mio::Interest;
use socket2::Socket;

use crate::calls;
use crate::net::Peer;
use crate::serve::buffer::{BufPool, Pending};
use crate::serve::{Connection, Ended, Io, Progress, READ_INTEREST, reregister, write_some};

/// Reads per turn before a busy connection yields to the others: 16 x 64 KiB
/// is 1 MiB, a few hundred microseconds of copying.
pub(crate) const READ_BUDGET: usize = 16;

/// A client connection and its echo state: TCP or Unix stream, the same
/// code (both are byte streams with half-close).
#[derive(Debug)]
pub(crate) struct Conn {
    stream: Socket,
    peer: Peer,
    pending: Option<Pending>,
    /// The peer has shut down its write side (EPOLLRDHUP seen); sticky.
    peer_closed: bool,
    /// Urgent data was reported (EPOLLPRI) and reading has not yet reached
    /// `EAGAIN` since: a short read may be the urgent mark, not the end.
    urgent: bool,
    /// End of stream was read.
    eof: bool,
    received: u64,
    echoed: u64,
    since: Instant,
}

impl Conn {
    pub(crate) fn new(stream: Socket, peer: Peer) -> Conn {
        Conn {
            stream,
            peer,
            pending: None,
            peer_closed: false,
            urgent: false,
            eof: false,
            received: 0,
            echoed: 0,
            since: Instant::now(),
        }
    }

    /// Sends pending bytes; once they are all out, gives the buffer back and
    /// reads again.
    fn flush(&mut self, io: &mut Io<'_>) -> io::Result<()> {
        let Some(pending) = &mut self.pending else {
            return Ok(());
        };
        let n = write_some(&self.stream, pending.bytes())?;
        self.echoed += n as u64;
        pending.consume(n);
        if pending.is_empty() {
            let pending = self.pending.take().expect("matched as Some above");
            io.pool.give(pending.into_buf());
            reregister(&self.stream, io, READ_INTEREST)?;
        }
        Ok(())
    }

    /// Everything received was echoed and the client closed its side: our
    /// FIN tells it the echo is complete.
    fn finish(&mut self) -> Progress {
        match calls::shutdown(&self.stream, Shutdown::Write) {
            Ok(()) => Progress::Close(Ended::Finished),
            Err(e) if e.kind() == io::ErrorKind::NotConnected => Progress::Close(Ended::Finished),
            Err(e) => Progress::Close(Ended::Failed(e)),
        }
    }
}

/// The echo service: each connection echoes.
pub(crate) struct EchoService;

impl crate::serve::Service for EchoService {
    type Conn = Conn;

    fn open(&self, stream: Socket, peer: Peer) -> Conn {
        Conn::new(stream, peer)
    }
}

impl Connection for Conn {
    /// Records what an event said, for when the connection is next driven.
    /// `peer_closed`: the event carried EPOLLRDHUP or EPOLLHUP; `urgent`: EPOLLPRI.
    fn note(&mut self, peer_closed: bool, urgent: bool) {
        self.peer_closed |= peer_closed;
        self.urgent |= urgent;
    }

    /// Echoes what can be echoed now (call `note` first with the event's flags).
    fn drive(&mut self, io: &mut Io<'_>) -> Progress {
        if let Err(e) = self.flush(io) {
            return Progress::Close(Ended::Failed(e));
        }
        if self.pending.is_some() {
            return Progress::Wait;
        }
        if self.eof {
            return self.finish();
        }
        for _ in 0..READ_BUDGET {
            let n = match calls::recv(&self.stream, io.scratch) {
                Ok(0) => {
                    self.eof = true;
                    return self.finish();
                }
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    self.urgent = false;
                    return Progress::Wait;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Progress::Close(Ended::Failed(e)),
            };
            self.received += n as u64;
            let written = match write_some(&self.stream, &io.scratch[..n]) {
                Ok(w) => w,
                Err(e) => return Progress::Close(Ended::Failed(e)),
            };
            self.echoed += written as u64;
            if written < n {
                self.pending = Some(Pending::new(io.pool.take(), &io.scratch[written..n]));
                if let Err(e) = reregister(&self.stream, io, Interest::WRITABLE) {
                    return Progress::Close(Ended::Failed(e));
                }
                return Progress::Wait;
            }
            if n < io.scratch.len() && !self.peer_closed && !self.urgent {
                return Progress::Wait;
            }
        }
        Progress::Yield
    }

    /// Gives a pending buffer back to the pool before the connection is dropped.
    fn release(&mut self, pool: &mut BufPool) {
        if let Some(pending) = self.pending.take() {
            pool.give(pending.into_buf());
        }
    }

    fn unsent(&self) -> &[u8] {
        self.pending.as_ref().map_or(&[], Pending::bytes)
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
        self.echoed
    }

    fn bytes_in(&self) -> u64 {
        self.received
    }

    fn into_socket(self) -> Socket {
        self.stream
    }
}
