//! The client connection both stream clients are made of: what a connection
//! says and expects, with no I/O (a [`Session`]), and the [`Link`] that owns
//! its socket and moves its bytes. It is the client side's mirror of
//! `serve`'s service and link.
//!
//! A connection's traffic is one byte stream each way. The loop issues
//! messages (the session says how long the next one is), the link writes
//! the issued bytes straight from the session ([`Session::chunk`]: the bench's
//! pattern table, the app request, the echo client's message list) until the
//! socket is full, and reads what comes back into the loop's one buffer,
//! handing each read to the session ([`Session::take`]), which checks it and
//! says how far the stream has come back.
//!
//! The loops stay the clients' own, because their policies differ: the
//! bench paces, measures and churns thousands of connections per thread
//! (`bench::stream`); the echo client reports each connection, half-closes
//! once its echo is whole and waits for the server's FIN (`echo::client`).
//! Both wait on `driver`. What they share is here, written once: the write
//! loop, the read loop with its edge-triggered stopping rule, the counters,
//! and the traced calls (`--trace-calls` costs one relaxed load per call
//! when off).
//!
//! Linux specifics: a read shorter than what was asked ends the read pass
//! without the extra read that would return `EAGAIN`: on Linux, data that
//! arrives after a short read raises a new edge. A pass told that the peer
//! closed reads on, because the FIN may have come with the data and only a
//! read shows it.

use std::io;
use std::net::Shutdown;

use socket2::Socket;

use crate::calls;

/// One connection's workload, with no I/O: the bytes it sends and the check
/// of the bytes that come back. Its stream offsets are the link's.
pub(crate) trait Session {
    /// What the sessions of one loop share (an encoded request, the first
    /// response, the echo client's message list).
    type Shared;

    /// The length of its next message, in bytes of its stream.
    fn next_len(&mut self, shared: &Self::Shared) -> u64;

    /// Its stream's bytes at offset `at`, at most `left` of them (fewer is
    /// fine: the link asks again for the rest).
    fn chunk<'a>(&'a self, shared: &'a Self::Shared, at: u64, left: usize) -> &'a [u8];

    /// `got` came back, after `received` bytes of its stream, with `written`
    /// bytes of it sent: how far its stream has come back now, or why what
    /// came is wrong.
    fn take(
        &mut self,
        shared: &mut Self::Shared,
        got: &[u8],
        received: u64,
        written: u64,
    ) -> Result<u64, String>;

    /// How many bytes it takes from the next read, `received` bytes in. The
    /// echo client reads exactly what its echo still lacks, so that bytes
    /// beyond it show up after its FIN; others take whatever came.
    #[inline]
    fn room(&self, _shared: &Self::Shared, _received: u64) -> usize {
        usize::MAX
    }

    /// The connection starts again from the beginning (the bench's churn).
    fn restart(&mut self);
}

/// One client connection's socket and how far its stream has gone: issued
/// (handed to the link to send), written, and come back.
#[derive(Debug, Default)]
pub(crate) struct Link {
    /// The socket, while the connection is open (or opening).
    pub(crate) socket: Option<Socket>,
    /// Stream bytes issued so far.
    pub(crate) issued: u64,
    /// Stream bytes written so far.
    pub(crate) written: u64,
    /// Stream bytes that came back so far, as the session counts them.
    pub(crate) received: u64,
}

/// How a read pass went.
#[derive(Debug)]
pub(crate) struct ReadPass {
    /// Bytes read in this pass, all of them handed to the session.
    pub(crate) bytes: u64,
    /// Why it stopped.
    pub(crate) end: ReadEnd,
}

/// Why a read pass stopped.
#[derive(Debug)]
pub(crate) enum ReadEnd {
    /// Everything there was is read, or the session wants no more for now.
    Drained,
    /// The peer closed its side (a read returned 0).
    Closed,
    /// The session found what came wrong; it says why.
    Wrong(String),
    /// The read failed.
    Failed(io::Error),
}

impl Link {
    /// A link over `socket`, nothing sent yet.
    pub(crate) fn new(socket: Socket) -> Link {
        Link {
            socket: Some(socket),
            ..Link::default()
        }
    }

    /// Whether issued bytes wait to be written.
    pub(crate) fn unsent(&self) -> bool {
        self.written < self.issued
    }

    /// Writes the issued bytes not yet written, from the session, until
    /// they are all out (`Ok(true)`) or the socket is full (`Ok(false)`:
    /// wait for it to be writable). `wrote(n, written)` follows each write.
    #[inline]
    pub(crate) fn flush<S: Session>(
        &mut self,
        session: &S,
        shared: &S::Shared,
        mut wrote: impl FnMut(u64, u64),
    ) -> io::Result<bool> {
        let Some(socket) = self.socket.as_ref() else {
            return Ok(true);
        };
        while self.written < self.issued {
            let left = usize::try_from(self.issued - self.written).unwrap_or(usize::MAX);
            let chunk = session.chunk(shared, self.written, left);
            match calls::send(socket, chunk) {
                Ok(n) => {
                    self.written += n as u64;
                    wrote(n as u64, self.written);
                    if n < chunk.len() {
                        return Ok(false);
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(true)
    }

    /// Reads what has arrived into `buf`, handing each read to the session,
    /// until a short read (unless `closed`: the event said the peer closed),
    /// `EAGAIN`, the end of the stream, an error, or the session's room is
    /// used up.
    #[inline]
    pub(crate) fn read<S: Session>(
        &mut self,
        session: &mut S,
        shared: &mut S::Shared,
        buf: &mut [u8],
        closed: bool,
    ) -> ReadPass {
        let mut bytes = 0;
        let end = loop {
            let Some(socket) = self.socket.as_ref() else {
                break ReadEnd::Drained;
            };
            let room = session.room(shared, self.received).min(buf.len());
            if room == 0 {
                break ReadEnd::Drained;
            }
            match calls::recv(socket, &mut buf[..room]) {
                Ok(0) => break ReadEnd::Closed,
                Ok(n) => {
                    bytes += n as u64;
                    match session.take(shared, &buf[..n], self.received, self.written) {
                        Ok(received) => self.received = received,
                        Err(what) => break ReadEnd::Wrong(what),
                    }
                    if n < room && !closed {
                        break ReadEnd::Drained;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break ReadEnd::Drained,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => break ReadEnd::Failed(e),
            }
        };
        ReadPass { bytes, end }
    }

    /// Half-closes: the peer reads the end of the stream, and the socket
    /// still reads. A peer gone already is no error.
    pub(crate) fn finish_sending(&self) -> io::Result<()> {
        let Some(socket) = self.socket.as_ref() else {
            return Ok(());
        };
        match calls::shutdown(socket, Shutdown::Write) {
            Err(e) if e.kind() == io::ErrorKind::NotConnected => Ok(()),
            result => result,
        }
    }

    /// Closes the socket, if open; `unwatch` first takes it out of the loop.
    pub(crate) fn close(&mut self, unwatch: impl FnOnce(&Socket)) {
        if let Some(socket) = self.socket.take() {
            unwatch(&socket);
            calls::close(&socket);
        }
    }

    /// Back to the start of a new stream (the socket is closed already).
    pub(crate) fn reset(&mut self) {
        debug_assert!(self.socket.is_none());
        *self = Link::default();
    }
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};
    use std::os::unix::net::UnixStream;

    use super::*;

    /// Sends `msg` over and over; takes back only bytes equal to what was
    /// sent, and at most `room` at a time.
    struct Repeat {
        room: usize,
    }

    impl Session for Repeat {
        type Shared = Vec<u8>;

        fn next_len(&mut self, msg: &Vec<u8>) -> u64 {
            msg.len() as u64
        }

        fn chunk<'a>(&'a self, msg: &'a Vec<u8>, at: u64, left: usize) -> &'a [u8] {
            let off = (at % msg.len() as u64) as usize;
            &msg[off..msg.len().min(off + left)]
        }

        fn take(
            &mut self,
            msg: &mut Vec<u8>,
            got: &[u8],
            received: u64,
            written: u64,
        ) -> Result<u64, String> {
            for (k, &b) in got.iter().enumerate() {
                let at = received + k as u64;
                if at >= written || b != msg[(at % msg.len() as u64) as usize] {
                    return Err(format!("wrong byte at {at}"));
                }
            }
            Ok(received + got.len() as u64)
        }

        fn room(&self, _msg: &Vec<u8>, _received: u64) -> usize {
            self.room
        }

        fn restart(&mut self) {}
    }

    /// A link over one end of a socket pair, non-blocking, and the other end.
    fn pair() -> (Link, UnixStream) {
        let (a, b) = UnixStream::pair().unwrap();
        a.set_nonblocking(true).unwrap();
        // A test that went wrong fails instead of waiting for ever.
        b.set_read_timeout(Some(std::time::Duration::from_secs(10)))
            .unwrap();
        (Link::new(Socket::from(std::os::fd::OwnedFd::from(a))), b)
    }

    #[test]
    fn flush_writes_every_issued_message_and_counts_each_write() {
        let (mut link, mut peer) = pair();
        let (mut session, msg) = (Repeat { room: usize::MAX }, b"Hello, world".to_vec());
        for _ in 0..3 {
            link.issued += session.next_len(&msg);
        }
        let mut writes = Vec::new();
        let all = link
            .flush(&session, &msg, |n, written| writes.push((n, written)))
            .unwrap();
        assert!(all && !link.unsent());
        // One write per message: the chunk ends where the message repeats.
        assert_eq!(writes, [(12, 12), (12, 24), (12, 36)]);
        let mut got = [0; 36];
        peer.read_exact(&mut got).unwrap();
        assert_eq!(&got[..], b"Hello, world".repeat(3));
    }

    #[test]
    fn flush_stops_when_the_socket_is_full_and_goes_on_where_it_stopped() {
        let (mut link, mut peer) = pair();
        let (session, msg) = (Repeat { room: usize::MAX }, vec![7u8; 4096]);
        link.issued = 64 << 20; // far more than a socket buffer holds
        let all = link.flush(&session, &msg, |_, _| {}).unwrap();
        assert!(
            !all && link.unsent(),
            "the socket took {} bytes",
            link.written
        );
        let before = link.written;
        let mut drained = vec![0; before.min(64 * 1024) as usize];
        peer.read_exact(&mut drained).unwrap();
        assert!(!link.flush(&session, &msg, |_, _| {}).unwrap());
        assert!(link.written > before);
    }

    #[test]
    fn a_read_pass_hands_every_byte_to_the_session_then_sees_the_end() {
        let (mut link, mut peer) = pair();
        let (mut session, mut msg) = (Repeat { room: usize::MAX }, b"abc".to_vec());
        link.issued = 9;
        link.flush(&session, &msg, |_, _| {}).unwrap();
        // The peer reads all (closing with unread bytes would be a reset),
        // echoes and closes.
        let mut echo = [0; 9];
        peer.read_exact(&mut echo).unwrap();
        peer.write_all(&echo).unwrap();
        drop(peer);
        let mut buf = [0; 4];
        // Told the peer closed, the pass reads past short reads to the EOF.
        let pass = link.read(&mut session, &mut msg, &mut buf, true);
        assert_eq!(pass.bytes, 9);
        assert!(matches!(pass.end, ReadEnd::Closed), "{pass:?}");
        assert_eq!(link.received, 9);
    }

    #[test]
    fn a_short_read_ends_the_pass_without_reading_again() {
        let (mut link, mut peer) = pair();
        let (mut session, mut msg) = (Repeat { room: usize::MAX }, b"abc".to_vec());
        link.issued = 6;
        link.flush(&session, &msg, |_, _| {}).unwrap();
        peer.read_exact(&mut [0; 6]).unwrap();
        peer.write_all(b"abc").unwrap();
        let mut buf = [0; 64];
        let pass = link.read(&mut session, &mut msg, &mut buf, false);
        assert!(matches!(pass.end, ReadEnd::Drained) && pass.bytes == 3);
        // What came after the short read is still there for the next pass.
        peer.write_all(b"abc").unwrap();
        drop(peer);
        let pass = link.read(&mut session, &mut msg, &mut buf, false);
        assert!(matches!(pass.end, ReadEnd::Drained) && pass.bytes == 3);
        let pass = link.read(&mut session, &mut msg, &mut buf, false);
        assert!(matches!(pass.end, ReadEnd::Closed) && pass.bytes == 0);
    }

    #[test]
    fn the_session_room_bounds_each_read_and_a_full_session_reads_nothing() {
        let (mut link, mut peer) = pair();
        let (mut session, mut msg) = (Repeat { room: 2 }, b"abcd".to_vec());
        link.issued = 4;
        link.flush(&session, &msg, |_, _| {}).unwrap();
        peer.write_all(b"abcd").unwrap();
        let mut buf = [0; 64];
        let pass = link.read(&mut session, &mut msg, &mut buf, false);
        // Two reads of 2: each filled its room, so the pass read on.
        assert_eq!((pass.bytes, link.received), (4, 4));
        session.room = 0;
        peer.write_all(b"more").unwrap();
        let pass = link.read(&mut session, &mut msg, &mut buf, true);
        assert!(matches!(pass.end, ReadEnd::Drained) && pass.bytes == 0);
    }

    #[test]
    fn what_the_session_rejects_ends_the_pass_with_its_reason() {
        let (mut link, mut peer) = pair();
        let (mut session, mut msg) = (Repeat { room: usize::MAX }, b"abc".to_vec());
        link.issued = 3;
        link.flush(&session, &msg, |_, _| {}).unwrap();
        peer.write_all(b"abX").unwrap();
        let pass = link.read(&mut session, &mut msg, &mut [0; 64], false);
        match pass.end {
            ReadEnd::Wrong(what) => assert_eq!(what, "wrong byte at 2"),
            other => panic!("{other:?}"),
        }
        assert_eq!(link.received, 0, "nothing of a rejected read counts");
    }

    #[test]
    fn finish_sending_half_closes_and_close_unwatches_first() {
        let (mut link, mut peer) = pair();
        link.finish_sending().unwrap();
        let mut rest = Vec::new();
        peer.read_to_end(&mut rest).unwrap();
        assert!(rest.is_empty(), "the peer read the end of the stream");
        let mut unwatched = None;
        link.close(|s| unwatched = Some(s.local_addr().is_ok()));
        assert_eq!(unwatched, Some(true), "unwatched while still open");
        assert!(link.socket.is_none());
        link.reset();
        assert_eq!((link.issued, link.written, link.received), (0, 0, 0));
    }
}
