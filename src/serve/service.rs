//! What a stream service is to the loops: a sans-IO state machine per
//! connection. The loop owns the socket, the peer, the counters, the
//! clock, the buffers and the close; the service is given the bytes that
//! arrived, the peer's end of stream and the time, and answers with the
//! bytes to send, when it next wants to be woken, and whether it is done.
//! It holds no socket and never calls `recv` or `send` or reads the clock,
//! so its deadlines and back-pressure are tested with a clock the test
//! moves (see `echo::conn` and `app::conn`). quinn-proto's
//! `handle_timeout(now)` and `poll_transmit` are the model.
//!
//! Back-pressure is the bytes unsent: while [`ServiceConnection::transmit`]
//! is not empty the loop sends and reads nothing, so a peer that does not
//! read its answers fills its own send buffer and TCP pushes back on it.
//!
//! The echo's zero-copy path: [`ServiceConnection::received`] may answer
//! [`Input::Reflect`], and the loop sends the same slice of its read buffer
//! back; only what the socket cannot take now is handed to
//! [`ServiceConnection::keep`], and becomes the service's to transmit.

use std::time::Instant;

use super::buffer::BufPool;
use crate::metrics::Shard;
use crate::net::Peer;

/// What a service does with each accepted connection.
pub(crate) trait Service: Send + Sync + 'static {
    /// Its connections.
    type Conn: ServiceConnection;

    /// A connection's state, as it is accepted at `cx.now`.
    fn open(&self, cx: &mut Cx<'_>) -> Self::Conn;
}

/// A connection's number: the server's nth, in the order the loops took
/// them up, from 1. Logged as the `conn` field, so that one connection's
/// lines can be told from another's of the same peer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct ConnId(pub(crate) u64);

/// What the loop lends a service's connection while it runs: the time of
/// this turn of the loop, which connection it is and who the peer is (for
/// log lines), where to count, and the loop's pool of buffers.
pub(crate) struct Cx<'a> {
    /// The loop's clock, read once per turn (a test's clock in tests).
    pub(crate) now: Instant,
    /// Who is at the other end.
    pub(crate) peer: Peer,
    /// Which connection this is.
    pub(crate) conn: ConnId,
    /// The loop's counters.
    pub(crate) metrics: &'a Shard,
    /// The loop's pool of buffers, for bytes a connection must keep.
    pub(crate) pool: &'a mut BufPool,
}

/// What the loop does with bytes a connection was given.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Input {
    /// The service took them (decoded, buffered, answered into its own
    /// output).
    Consumed,
    /// Send them back as they are, from the loop's buffer; what the socket
    /// cannot take now goes to [`ServiceConnection::keep`].
    Reflect,
}

/// One connection of a service: a state machine the loop drives.
pub(crate) trait ServiceConnection: Send + 'static {
    /// Bytes arrived from the peer (never empty).
    fn received(&mut self, data: &[u8], cx: &mut Cx<'_>) -> Input;

    /// The part of a reflected read the socket could not take now: the
    /// service holds it and transmits it next. Only a service that answers
    /// [`Input::Reflect`] is ever given this.
    fn keep(&mut self, rest: &[u8], cx: &mut Cx<'_>) {
        let _ = (rest, cx);
        unreachable!("keep is only called after Input::Reflect");
    }

    /// The peer ended its stream (it sends nothing more). Once the service
    /// has nothing left to transmit the loop sends FIN and closes.
    fn end_of_stream(&mut self, cx: &mut Cx<'_>);

    /// The bytes it wants sent now; empty when it has none.
    fn transmit(&self) -> &[u8];

    /// `n` bytes of [`ServiceConnection::transmit`] went out.
    fn sent(&mut self, n: usize, cx: &mut Cx<'_>);

    /// When it wants [`ServiceConnection::handle_timeout`] called, if ever.
    /// Asked after each turn it runs; it may move (each request of a
    /// keep-alive connection). The loop keeps one timer per connection.
    fn poll_timeout(&self) -> Option<Instant> {
        None
    }

    /// Its timeout has come (`cx.now` is at or past it).
    fn handle_timeout(&mut self, cx: &mut Cx<'_>) {
        let _ = cx;
    }

    /// It has done its part: once it has nothing left to transmit, the loop
    /// ends the connection (FIN, then what the peer still sends is read and
    /// dropped for at most `LINGER`).
    fn is_done(&self) -> bool {
        false
    }

    /// Gives back any pooled buffer before the connection is dropped.
    fn release(&mut self, pool: &mut BufPool) {
        let _ = pool;
    }
}

/// A loop with no socket and a clock the test moves, for the services'
/// unit tests: it hands a connection bytes, sends what it transmits
/// through a send buffer of a size the test sets, and fires its timeout
/// when the clock passes it, as the loop would.
#[cfg(test)]
pub(crate) mod testing {
    use std::sync::Arc;
    use std::time::{Duration, Instant};

    use super::{ConnId, Cx, Input, Service, ServiceConnection};
    use crate::metrics::{Metrics, ServerKind, Shard};
    use crate::net::Peer;
    use crate::serve::buffer::BufPool;

    /// One connection, driven by hand.
    pub(crate) struct Drive<C> {
        pub(crate) conn: C,
        /// The test's clock.
        pub(crate) now: Instant,
        pub(crate) pool: BufPool,
        pub(crate) metrics: Arc<Shard>,
        /// What reached the peer.
        pub(crate) delivered: Vec<u8>,
        /// What the socket's send buffer takes now; the peer reading frees
        /// room ([`Drive::peer_reads`]).
        pub(crate) room: usize,
    }

    impl<C: ServiceConnection> Drive<C> {
        /// A connection of `service` opened at a fixed instant, with a send
        /// buffer that takes everything.
        pub(crate) fn open<S: Service<Conn = C>>(service: &S, kind: ServerKind) -> Drive<C> {
            let now = Instant::now();
            let mut pool = BufPool::new();
            let metrics = Metrics::new(kind).shard();
            let conn = service.open(&mut Cx {
                now,
                peer: Peer::Local(None),
                conn: ConnId(1),
                metrics: &metrics,
                pool: &mut pool,
            });
            Drive {
                conn,
                now,
                pool,
                metrics,
                delivered: Vec::new(),
                room: usize::MAX,
            }
        }

        fn run<R>(&mut self, f: impl FnOnce(&mut C, &mut Cx<'_>) -> R) -> R {
            let mut cx = Cx {
                now: self.now,
                peer: Peer::Local(None),
                conn: ConnId(1),
                metrics: &self.metrics,
                pool: &mut self.pool,
            };
            f(&mut self.conn, &mut cx)
        }

        /// Whether the loop would read now: it has nothing unsent and is
        /// not done.
        pub(crate) fn reads(&self) -> bool {
            self.conn.transmit().is_empty() && !self.conn.is_done()
        }

        /// The peer's bytes arrive, and the loop sends what they make.
        ///
        /// # Panics
        /// When the loop would not read now (back-pressure, or done).
        pub(crate) fn arrive(&mut self, data: &[u8]) {
            assert!(self.reads(), "the loop reads nothing now");
            if self.run(|c, cx| c.received(data, cx)) == Input::Reflect {
                let n = data.len().min(self.room);
                self.take(&data[..n]);
                if n < data.len() {
                    self.run(|c, cx| c.keep(&data[n..], cx));
                }
            }
            self.flush();
        }

        /// The peer ends its stream.
        pub(crate) fn end(&mut self) {
            self.run(super::ServiceConnection::end_of_stream);
            self.flush();
        }

        /// Sends what the connection has to send, as far as the room allows.
        pub(crate) fn flush(&mut self) {
            let out = self.conn.transmit().to_vec();
            let n = out.len().min(self.room);
            if n > 0 {
                self.take(&out[..n]);
                self.run(|c, cx| c.sent(n, cx));
            }
        }

        fn take(&mut self, bytes: &[u8]) {
            self.delivered.extend_from_slice(bytes);
            self.room = self.room.saturating_sub(bytes.len());
        }

        /// The peer reads `n` bytes: that much room comes free, and what
        /// waited goes out.
        pub(crate) fn peer_reads(&mut self, n: usize) {
            self.room = self.room.saturating_add(n);
            self.flush();
        }

        /// Moves the clock on; fires the timeout if it has come, as the
        /// loop's timer would, and sends what that made. Says whether it
        /// fired.
        pub(crate) fn advance(&mut self, by: Duration) -> bool {
            self.now += by;
            let due = self.conn.poll_timeout().is_some_and(|at| at <= self.now);
            if due {
                self.run(super::ServiceConnection::handle_timeout);
                self.flush();
            }
            due
        }
    }
}
