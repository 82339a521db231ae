//! How a loop learns what is ready: the poll, the waker, the retry after a
//! signal, and a deadline turned into a timeout, written once for every
//! event loop of the project (the stream servers, the datagram echo, the
//! echo clients, the load generator, probe, and Happy Eyeballs in
//! `net::connect`).
//!
//! Today's driver is mio: epoll, edge-triggered. A socket is watched under
//! a token with an interest; [`Driver::wait`] fills the loop's own
//! [`Events`] (kept outside the driver, so that a loop can act on them with
//! its own state borrowed). A signal that interrupts `epoll_wait` (EINTR)
//! ends the wait with no events, as a timeout would: the loop looks at its
//! clock and its flags again, which is what every loop did by hand before.
//! An io_uring driver, which hands over completed buffers instead of
//! readiness, is the next one (`ARCHITECTURE.md`).
//!
//! It sits in the bottom layer, beside `net`, and names nothing above it.

use std::io;
use std::os::fd::RawFd;
use std::sync::Arc;
use std::time::{Duration, Instant};

use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Token, Waker};

/// One loop's poller.
#[derive(Debug)]
pub(crate) struct Driver {
    poll: Poll,
}

impl Driver {
    /// A poller with nothing watched yet.
    pub(crate) fn new() -> io::Result<Driver> {
        Ok(Driver { poll: Poll::new()? })
    }

    /// A waker that ends this loop's wait from another thread, its event
    /// under `token`. Keep it for as long as the loop may be woken:
    /// dropping the last handle closes its eventfd, and a wake still
    /// pending goes with it.
    pub(crate) fn waker(&self, token: Token) -> io::Result<Arc<Waker>> {
        Waker::new(self.poll.registry(), token).map(Arc::new)
    }

    /// Watches descriptor `fd` under `token` for `interest`.
    pub(crate) fn watch(&self, fd: RawFd, token: Token, interest: Interest) -> io::Result<()> {
        self.poll
            .registry()
            .register(&mut SourceFd(&fd), token, interest)
    }

    /// Changes what `fd` is watched for.
    pub(crate) fn rewatch(&self, fd: RawFd, token: Token, interest: Interest) -> io::Result<()> {
        self.poll
            .registry()
            .reregister(&mut SourceFd(&fd), token, interest)
    }

    /// Stops watching `fd` (closing it stops it too; this is for a socket
    /// that stays open, or to be explicit). A descriptor not watched is no
    /// error worth reporting.
    pub(crate) fn unwatch(&self, fd: RawFd) {
        let _ = self.poll.registry().deregister(&mut SourceFd(&fd));
    }

    /// Waits for events, at most `timeout` (`None`: until one comes), and
    /// puts them in `events`. Interrupted by a signal, it returns with none.
    pub(crate) fn wait(
        &mut self,
        events: &mut Events,
        timeout: Option<Duration>,
    ) -> io::Result<()> {
        match self.poll.poll(events, timeout) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {
                events.clear();
                Ok(())
            }
            result => result,
        }
    }

    /// Waits as [`Driver::wait`] does, until `until` (`None`: until an
    /// event comes); a moment already past makes it a look with no wait.
    pub(crate) fn wait_until(
        &mut self,
        events: &mut Events,
        until: Option<Instant>,
    ) -> io::Result<()> {
        let timeout = until.map(|at| at.saturating_duration_since(Instant::now()));
        self.wait(events, timeout)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsRawFd;

    const WAKE: Token = Token(usize::MAX);

    #[test]
    fn a_watched_socket_is_reported_under_its_token_and_a_wake_ends_the_wait() {
        let mut driver = Driver::new().unwrap();
        let mut events = Events::with_capacity(8);
        let (a, b) = std::os::unix::net::UnixStream::pair().unwrap();
        a.set_nonblocking(true).unwrap();
        driver
            .watch(a.as_raw_fd(), Token(7), Interest::READABLE)
            .unwrap();
        // Nothing to read: a wait with a moment already past returns empty.
        driver
            .wait_until(&mut events, Some(Instant::now()))
            .unwrap();
        assert!(events.is_empty());
        std::io::Write::write_all(&mut &b, b"x").unwrap();
        driver.wait(&mut events, None).unwrap();
        let tokens: Vec<Token> = events.iter().map(mio::event::Event::token).collect();
        assert_eq!(tokens, [Token(7)]);
        // Another thread's wake ends a wait with no end. (The waker must
        // outlive the wait: closing its eventfd takes its event away.)
        let waker = driver.waker(WAKE).unwrap();
        driver.unwatch(a.as_raw_fd());
        let thread = {
            let waker = Arc::clone(&waker);
            std::thread::spawn(move || waker.wake().unwrap())
        };
        driver.wait(&mut events, None).unwrap();
        thread.join().unwrap();
        let tokens: Vec<Token> = events.iter().map(mio::event::Event::token).collect();
        assert_eq!(tokens, [WAKE]);
    }
}
