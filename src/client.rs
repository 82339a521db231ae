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
//! The echo client's session is here too ([`Script`]: send these bytes
//! once, expect them back), the simplest; the bench's are its own
//! (`bench::session`).
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
            debug_assert!(!chunk.is_empty(), "a session has the bytes it issued");
            if chunk.is_empty() {
                return Ok(true);
            }
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

/// The echo client's session: the message list, sent once as one stream,
/// whose echo must come back. It never rejects a read: a difference is
/// noted where it first shows (a failure under `--verify`), and bytes
/// beyond the echo are counted as surplus (always a failure).
#[derive(Debug, Default)]
pub(crate) struct Script {
    /// The echoed bytes, when kept (to print them).
    pub(crate) echo: Option<Vec<u8>>,
    /// Where the echo first differs from what was sent.
    pub(crate) first_difference: Option<u64>,
    /// Bytes that came after the whole echo.
    pub(crate) surplus: u64,
    /// The echo is whole and the FIN sent: read whatever else comes.
    pub(crate) closing: bool,
}

impl Script {
    /// A script's session, keeping the echo or not.
    pub(crate) fn new(keep_echo: bool) -> Script {
        Script {
            echo: keep_echo.then(Vec::new),
            ..Script::default()
        }
    }
}

impl Session for Script {
    /// The messages, concatenated.
    type Shared = Vec<u8>;

    fn next_len(&mut self, expected: &Vec<u8>) -> u64 {
        expected.len() as u64
    }

    fn chunk<'a>(&'a self, expected: &'a Vec<u8>, at: u64, left: usize) -> &'a [u8] {
        let rest = &expected[at as usize..];
        &rest[..left.min(rest.len())]
    }

    fn take(
        &mut self,
        expected: &mut Vec<u8>,
        got: &[u8],
        received: u64,
        _written: u64,
    ) -> Result<u64, String> {
        let want = &expected[received as usize..];
        let (echo, extra) = got.split_at(got.len().min(want.len()));
        if self.first_difference.is_none()
            && let Some(at) = echo.iter().zip(want).position(|(a, b)| a != b)
        {
            self.first_difference = Some(received + at as u64);
        }
        if let Some(kept) = self.echo.as_mut() {
            kept.extend_from_slice(echo);
        }
        self.surplus += extra.len() as u64;
        Ok(received + echo.len() as u64)
    }

    /// Exactly what the echo lacks, until the FIN is sent; then anything.
    fn room(&self, expected: &Vec<u8>, received: u64) -> usize {
        if self.closing {
            usize::MAX
        } else {
            expected.len() - received as usize
        }
    }

    fn restart(&mut self) {
        *self = Script::new(self.echo.is_some());
    }
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};
    use std::os::unix::net::UnixStream;

    use super::*;

    /// A link over one end of a socket pair, non-blocking, and the other end.
    fn pair() -> (Link, UnixStream) {
        let (a, b) = UnixStream::pair().unwrap();
        a.set_nonblocking(true).unwrap();
        // A test that went wrong fails instead of waiting for ever.
        b.set_read_timeout(Some(std::time::Duration::from_secs(10)))
            .unwrap();
        (Link::new(Socket::from(std::os::fd::OwnedFd::from(a))), b)
    }

    /// A script's connection, its bytes sent and read by the peer.
    struct Sent {
        link: Link,
        peer: UnixStream,
        script: Script,
        expected: Vec<u8>,
    }

    /// `expected` issued, sent, and read by the peer (which must read it
    /// all before it closes: a close with unread bytes resets).
    fn sent(expected: &[u8]) -> Sent {
        let (mut link, mut peer) = pair();
        let (mut script, expected) = (Script::new(true), expected.to_vec());
        link.issued = script.next_len(&expected);
        assert!(link.flush(&script, &expected, |_, _| {}).unwrap());
        let mut got = vec![0; expected.len()];
        peer.read_exact(&mut got).unwrap();
        assert_eq!(got, expected);
        Sent {
            link,
            peer,
            script,
            expected,
        }
    }

    impl Sent {
        /// One read pass into a buffer of `len` bytes.
        fn read(&mut self, len: usize, closed: bool) -> ReadPass {
            let mut buf = vec![0; len];
            let (script, expected) = (&mut self.script, &mut self.expected);
            self.link.read(script, expected, &mut buf, closed)
        }
    }

    #[test]
    fn flush_writes_the_issued_bytes_and_counts_each_write() {
        let (mut link, mut peer) = pair();
        let (mut script, expected) = (Script::new(false), b"Hello, world".to_vec());
        link.issued = script.next_len(&expected);
        let mut writes = Vec::new();
        let all = link
            .flush(&script, &expected, |n, written| writes.push((n, written)))
            .unwrap();
        assert!(all && !link.unsent());
        assert_eq!(writes, [(12, 12)]);
        let mut got = [0; 12];
        peer.read_exact(&mut got).unwrap();
        assert_eq!(&got, b"Hello, world");
    }

    #[test]
    fn flush_stops_when_the_socket_is_full_and_goes_on_where_it_stopped() {
        let (mut link, mut peer) = pair();
        // Far more than a socket buffer holds.
        let (mut script, expected) = (Script::new(false), vec![7u8; 16 << 20]);
        link.issued = script.next_len(&expected);
        let all = link.flush(&script, &expected, |_, _| {}).unwrap();
        assert!(
            !all && link.unsent(),
            "the socket took {} bytes",
            link.written
        );
        let before = link.written;
        let mut drained = vec![0; before.min(64 * 1024) as usize];
        peer.read_exact(&mut drained).unwrap();
        assert!(!link.flush(&script, &expected, |_, _| {}).unwrap());
        assert!(link.written > before);
    }

    #[test]
    fn a_read_pass_takes_exactly_the_echo_and_after_the_fin_sees_the_end() {
        let mut c = sent(b"abcdefghi");
        c.peer.write_all(b"abcdefghi").unwrap();
        c.peer.shutdown(std::net::Shutdown::Write).unwrap();
        // Told the peer closed, the pass reads on past short reads, but no
        // further than the echo: the script's room is what it lacks.
        let pass = c.read(4, true);
        assert!(matches!(pass.end, ReadEnd::Drained), "{pass:?}");
        assert_eq!((pass.bytes, c.link.received), (9, 9));
        assert_eq!(c.script.echo.as_deref(), Some(&b"abcdefghi"[..]));
        c.link.finish_sending().unwrap();
        c.script.closing = true;
        let pass = c.read(4, true);
        assert!(matches!(pass.end, ReadEnd::Closed) && pass.bytes == 0);
        assert_eq!((c.script.surplus, c.script.first_difference), (0, None));
    }

    #[test]
    fn a_short_read_ends_the_pass_without_reading_again() {
        let mut c = sent(b"abcdef");
        c.peer.write_all(b"abc").unwrap();
        let pass = c.read(64, false);
        assert!(matches!(pass.end, ReadEnd::Drained) && pass.bytes == 3);
        // What came after the short read is there for the next pass.
        c.peer.write_all(b"def").unwrap();
        let pass = c.read(64, false);
        assert!(matches!(pass.end, ReadEnd::Drained) && pass.bytes == 3);
        assert_eq!(c.link.received, 6);
    }

    #[test]
    fn bytes_after_the_echo_are_surplus_and_a_difference_is_noted_where_it_first_shows() {
        let mut c = sent(b"abcdef");
        c.peer.write_all(b"abXdeYmore").unwrap();
        let pass = c.read(64, false);
        assert_eq!((pass.bytes, c.link.received), (6, 6), "the echo's room");
        assert_eq!(c.script.first_difference, Some(2));
        c.script.closing = true;
        let pass = c.read(64, false);
        assert!(matches!(pass.end, ReadEnd::Drained) && pass.bytes == 4);
        assert_eq!((c.link.received, c.script.surplus), (6, 4));
    }

    /// Takes nothing: every read is wrong.
    struct Refuse;

    impl Session for Refuse {
        type Shared = ();
        fn next_len(&mut self, _: &()) -> u64 {
            0
        }
        fn chunk<'a>(&'a self, _: &'a (), _: u64, _: usize) -> &'a [u8] {
            &[]
        }
        fn take(&mut self, _: &mut (), got: &[u8], _: u64, _: u64) -> Result<u64, String> {
            Err(format!("{} unasked bytes", got.len()))
        }
        fn restart(&mut self) {}
    }

    #[test]
    fn what_the_session_rejects_ends_the_pass_with_its_reason() {
        let (mut link, mut peer) = pair();
        peer.write_all(b"abc").unwrap();
        let pass = link.read(&mut Refuse, &mut (), &mut [0; 64], false);
        match pass.end {
            ReadEnd::Wrong(what) => assert_eq!(what, "3 unasked bytes"),
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
