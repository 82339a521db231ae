//! One echo connection, as a sans-IO state machine: every read is sent
//! back as it is, from the loop's own buffer (zero copy), and only what the
//! socket cannot take now is kept.
//!
//! The loop (`serve`) reads, sends and closes; this says what to do with the
//! bytes. The rules that make the echo lossless and bounded:
//!
//! - Bytes are written back as soon as they are read ([`Input::Reflect`]).
//!   What the client's window cannot take waits in one [`Pending`] buffer,
//!   and while it waits the loop reads nothing from the connection: the
//!   client's own send buffer fills and TCP flow control pushes back on it.
//!   Memory per connection is bounded by one buffer, never a queue; an idle
//!   connection holds none.
//! - Half-close: at end of stream the loop sends what is pending first, then
//!   FIN, so the client gets every byte and then EOF.

use crate::serve::buffer::{BufPool, Pending};
use crate::serve::{Cx, Input, Service, ServiceConnection};

/// An echo connection's own state: the unsent rest of a read, if any.
#[derive(Debug, Default)]
pub(crate) struct Conn {
    pending: Option<Pending>,
}

/// The echo service: each connection echoes.
pub(crate) struct EchoService;

impl Service for EchoService {
    type Conn = Conn;

    fn open(&self, _cx: &mut Cx<'_>) -> Conn {
        Conn::default()
    }
}

impl ServiceConnection for Conn {
    fn received(&mut self, _data: &[u8], _cx: &mut Cx<'_>) -> Input {
        Input::Reflect
    }

    fn keep(&mut self, rest: &[u8], cx: &mut Cx<'_>) {
        debug_assert!(
            self.pending.is_none(),
            "the loop reads nothing while bytes wait"
        );
        self.pending = Some(Pending::new(cx.pool.take(), rest));
    }

    fn end_of_stream(&mut self, _cx: &mut Cx<'_>) {}

    fn transmit(&self) -> &[u8] {
        self.pending.as_ref().map_or(&[], Pending::bytes)
    }

    /// Once the pending bytes are all out, the buffer goes back to the pool.
    fn sent(&mut self, n: usize, cx: &mut Cx<'_>) {
        if let Some(pending) = &mut self.pending {
            pending.consume(n);
            if pending.is_empty() {
                let pending = self.pending.take().expect("matched as Some above");
                cx.pool.give(pending.into_buf());
            }
        }
    }

    fn release(&mut self, pool: &mut BufPool) {
        if let Some(pending) = self.pending.take() {
            pool.give(pending.into_buf());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::ServerKind;
    use crate::serve::service::testing::Drive;

    fn echo() -> Drive<Conn> {
        Drive::open(&EchoService, ServerKind::Echo)
    }

    #[test]
    fn a_read_the_socket_takes_whole_is_reflected_and_nothing_is_kept() {
        let mut d = echo();
        d.arrive(b"Hello, world");
        assert_eq!(d.delivered, b"Hello, world");
        assert!(d.conn.pending.is_none(), "no buffer held");
        assert!(d.reads());
    }

    #[test]
    fn what_the_socket_cannot_take_waits_and_stops_the_reading() {
        let mut d = echo();
        d.room = 5;
        d.arrive(b"Hello, world");
        assert_eq!(d.delivered, b"Hello");
        assert_eq!(d.conn.transmit(), b", world");
        assert!(
            !d.reads(),
            "back-pressure: nothing is read while bytes wait"
        );
        // The peer reads a little: some of the rest goes, the rest waits.
        d.peer_reads(3);
        assert_eq!(d.delivered, b"Hello, w");
        assert!(!d.reads());
        d.peer_reads(100);
        assert_eq!(d.delivered, b"Hello, world");
        assert!(d.reads(), "all out: reading again");
    }

    #[test]
    fn the_pending_buffer_goes_back_to_the_pool_once_flushed() {
        let mut d = echo();
        d.room = 0;
        d.arrive(b"abc");
        assert!(d.conn.pending.is_some());
        d.peer_reads(3);
        assert!(d.conn.pending.is_none());
        // The pool has it: the next pending bytes reuse it, no new buffer.
        d.room = 0;
        d.arrive(b"def");
        let reused = d.conn.pending.as_ref().unwrap().bytes().as_ptr();
        d.conn.release(&mut d.pool);
        assert!(d.conn.pending.is_none());
        d.arrive(b"ghi");
        assert_eq!(d.conn.pending.as_ref().unwrap().bytes().as_ptr(), reused);
    }

    #[test]
    fn at_end_of_stream_what_waits_is_still_sent() {
        let mut d = echo();
        d.room = 2;
        d.arrive(b"last words");
        d.end();
        assert_eq!(
            d.conn.transmit(),
            b"st words",
            "the loop sends it before FIN"
        );
        d.peer_reads(usize::MAX);
        assert_eq!(d.delivered, b"last words");
        assert!(
            !d.conn.is_done(),
            "the loop closes it after its end of stream"
        );
    }

    #[test]
    fn an_echo_has_no_timeout_of_its_own() {
        let mut d = echo();
        d.room = 0;
        d.arrive(b"stuck");
        // Hours pass: the loop's stall timeout governs a peer that never
        // reads, not the echo.
        assert!(!d.advance(std::time::Duration::from_secs(3600)));
        assert_eq!(d.conn.poll_timeout(), None);
        assert_eq!(d.conn.transmit(), b"stuck", "nothing dropped");
    }
}
