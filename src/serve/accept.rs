//! The accepting side of loop 0: takes connections from the listeners,
//! turns away those over a limit, and survives `accept` errors.
//!
//! - A connection that failed before it was accepted (ECONNABORTED, a
//!   firewall's EPERM...) is skipped: the listener is fine.
//! - When the process or the system is out of descriptors (EMFILE, ENFILE)
//!   or the kernel out of memory (ENOBUFS, ENOMEM), accepting stops for a
//!   while: 5 ms, doubling to 1 s, back to 5 ms after a success. The loop
//!   goes on serving its connections meanwhile, and a full descriptor table
//!   costs no CPU: an edge-triggered listener reports each new connection
//!   once, and those reports are ignored until the pause ends.
//! - Out of descriptors, the clients already queued would stay ahead of any
//!   new one and a new client could wait forever; so a reserve descriptor
//!   (`/dev/null`, opened at start) is closed, and the descriptor it frees
//!   accepts and closes what is queued, one by one; then the reserve is
//!   taken again. Each closed client gets an orderly end at once instead of
//!   a connect that hangs.
//! - An error that persists is logged at most once a second, with a count of
//!   those not logged.
//! - A server that makes room (`WhenFull::MakeRoom`, the `/metrics`
//!   endpoint) hands a newcomer over a limit to its loop, which evicts a
//!   silent connection for it (`admission.rs`), and out of descriptors it
//!   spends the reserve on the newcomer instead of closing the queue; it
//!   tells of evictions and turn-aways at most once a second, with counts
//!   (`Crowding`).

use std::fs::File;
use std::io;
use std::sync::Arc;
use std::sync::mpsc::Sender;
use std::time::{Duration, Instant};

use socket2::Socket;

use super::admission::Full;
use super::limits::{ConnLimits, WhenFull};
use super::worker::{Handoff, Shared};
use crate::metrics::{ErrorClass, Rejected, Shard};
use crate::net::{Listener, Peer};
use crate::ratelog::RateLog;
use crate::text;

/// The first pause after an `accept` error.
pub(crate) const BACKOFF_MIN: Duration = Duration::from_millis(5);
/// The longest pause: a server whose descriptors free up accepts again
/// within about this long.
pub(crate) const BACKOFF_MAX: Duration = Duration::from_secs(1);
/// The most queued connections one spending of the reserve closes.
const RESERVE_SPENDS: usize = 4096;

/// What one try to accept gave.
#[derive(Debug)]
pub(crate) enum Accepted {
    /// A connection to serve.
    Conn(Socket, Peer),
    /// A connection over a limit, to make room for (`WhenFull::MakeRoom`).
    Crowded(Socket, Peer),
    /// One turned away or failed before it was accepted: try the next.
    Skipped,
    /// Nothing is queued.
    Drained,
    /// Accepting paused after an error, until [`Acceptor::retry_at`].
    Paused,
}

/// The accepting side of loop 0.
pub(crate) struct Acceptor {
    /// Stream listeners (TCP and Unix); a Unix one removes its socket file
    /// when it is dropped.
    pub(crate) listeners: Vec<Listener>,
    /// Where to hand connections to, by loop id; `None` for loop 0 itself.
    pub(crate) peers: Vec<Option<Sender<Handoff>>>,
    /// Serve one client, then stop accepting (`--once`).
    pub(crate) once: bool,
    /// Accept again at this time: now, when a listener had more queued than
    /// one turn takes; later, at the end of a pause after an error.
    pub(crate) retry_at: Option<Instant>,
    limits: ConnLimits,
    /// The current pause after an error; `None` after a success.
    backoff: Option<Duration>,
    /// Spent to accept-and-close when descriptors run out.
    reserve: Option<File>,
    errors: RateLog,
    rejections: RateLog,
    /// Evictions and turn-aways not yet told (`WhenFull::MakeRoom`).
    pub(crate) crowding: Crowding,
}

impl Acceptor {
    pub(crate) fn new(
        listeners: Vec<Listener>,
        peers: Vec<Option<Sender<Handoff>>>,
        once: bool,
        limits: ConnLimits,
        name: &'static str,
    ) -> Acceptor {
        Acceptor {
            listeners,
            peers,
            once,
            retry_at: None,
            limits,
            backoff: None,
            reserve: crate::os::reserve_descriptor(),
            errors: RateLog::default(),
            rejections: RateLog::default(),
            crowding: Crowding::new(name, limits),
        }
    }

    /// Accepting is paused after an error: new connections wait.
    pub(crate) fn is_paused(&self, now: Instant) -> bool {
        self.retry_at.is_some_and(|at| at > now)
    }

    /// Accepts one connection from listener `i`, if one is queued and it is
    /// within the limits.
    pub(crate) fn accept(
        &mut self,
        i: usize,
        shared: &Arc<Shared>,
        shard: &Shard,
        now: Instant,
    ) -> Accepted {
        let Some(listener) = self.listeners.get(i) else {
            return Accepted::Drained;
        };
        match crate::calls::accept(listener.socket()) {
            Ok((stream, addr)) => {
                self.backoff = None;
                let peer = Peer::of(&stream, &addr);
                match self.admit(&peer, shared) {
                    Ok(()) => Accepted::Conn(stream, peer),
                    Err(_) if self.limits.when_full == WhenFull::MakeRoom => {
                        Accepted::Crowded(stream, peer)
                    }
                    Err(why) => {
                        self.reject(stream, peer, why, shard, now);
                        Accepted::Skipped
                    }
                }
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Accepted::Drained,
            Err(e) if is_transient(&e) => {
                tracing::debug!("accept: {}; skipped", crate::text::os_error(&e));
                Accepted::Skipped
            }
            Err(e)
                if self.limits.when_full == WhenFull::MakeRoom
                    && ErrorClass::of_accept(&e) == ErrorClass::AcceptDescriptors
                    && self.reserve.take().is_some() =>
            {
                // The reserve is closed: its descriptor takes the newcomer
                // (taken again once one is free: `refill_reserve`).
                tracing::debug!(
                    "accept: {}; the reserve descriptor takes the newcomer",
                    crate::text::os_error(&e)
                );
                self.accept(i, shared, shard, now)
            }
            Err(e) => {
                self.pause(&e, shard, now);
                Accepted::Paused
            }
        }
    }

    /// Takes the reserve descriptor again if it was spent on a newcomer
    /// and a descriptor is free now (`WhenFull::MakeRoom`; once a turn).
    pub(crate) fn refill_reserve(&mut self) {
        if self.reserve.is_none() && self.limits.when_full == WhenFull::MakeRoom {
            self.reserve = crate::os::reserve_descriptor();
        }
    }

    /// Counts a connection in, or says which limit it is over.
    pub(crate) fn admit(&self, peer: &Peer, shared: &Shared) -> Result<(), Rejected> {
        if shared.open() >= self.limits.max_conns {
            return Err(Rejected::MaxConns);
        }
        if let (Some(per_ip), Some(ip)) = (&shared.per_ip, peer.ip())
            && !per_ip.admit(ip)
        {
            return Err(Rejected::MaxConnsPerIp);
        }
        Ok(())
    }

    /// A connection is evicted to make room for `peer`, or `peer` turned
    /// away for want of a silent one to evict: counted, and told at most
    /// once a second.
    pub(crate) fn crowded(&mut self, evicted: bool, peer: Peer, full: Full, now: Instant) {
        if let Some((report, last)) = self.crowding.note(now, evicted, peer, full) {
            tracing::warn!(last_peer = last.map(tracing::field::display), "{report}");
        }
    }

    /// Closes a connection over a limit at once: it was accepted, so its
    /// client gets an end of stream now rather than a place in the backlog.
    pub(crate) fn reject(
        &mut self,
        stream: Socket,
        peer: Peer,
        why: Rejected,
        shard: &Shard,
        now: Instant,
    ) {
        shard.reject(why);
        crate::calls::close(&stream);
        drop(stream);
        if self.limits.when_full == WhenFull::MakeRoom {
            let full = match why {
                Rejected::MaxConnsPerIp => Full::Source,
                _ => Full::Table,
            };
            return self.crowded(false, peer, full, now);
        }
        if let Some(more) = self.rejections.allow(now) {
            let limit = match why {
                Rejected::MaxConnsPerIp => format!(
                    "over --max-conns-per-ip ({} open from its address)",
                    self.limits.max_per_ip.unwrap_or(0)
                ),
                _ => format!("over --max-conns ({} open)", self.limits.max_conns),
            };
            tracing::warn!(%peer, "{limit}; closed at once{}", more_note(more));
        }
    }

    /// Stops accepting for a while after an error; out of descriptors, first
    /// closes what the listeners have queued with the reserve descriptor.
    fn pause(&mut self, e: &io::Error, shard: &Shard, now: Instant) {
        let class = ErrorClass::of_accept(e);
        shard.error(class);
        shard.accept_backoffs.inc();
        let had_reserve = self.reserve.is_some();
        let closed = if class == ErrorClass::AcceptDescriptors {
            self.spend_reserve(shard)
        } else {
            0
        };
        let delay = self
            .backoff
            .map_or(BACKOFF_MIN, |d| (d * 2).min(BACKOFF_MAX));
        self.backoff = Some(delay);
        self.retry_at = Some(now + delay);
        if let Some(more) = self.errors.allow(now) {
            let spent = match (class, closed) {
                (ErrorClass::AcceptDescriptors, 0) if !had_reserve => {
                    "; no reserve descriptor to close the queued connections with".to_string()
                }
                // Linux takes a descriptor before it looks at the queue: a
                // full table fails `accept` with nothing queued too.
                (ErrorClass::AcceptDescriptors, 0) => {
                    "; nothing was queued for the reserve descriptor to close".to_string()
                }
                (_, 0) => String::new(),
                (_, n) => format!(
                    "; closed {n} queued connection{} with the reserve descriptor",
                    if n == 1 { "" } else { "s" }
                ),
            };
            tracing::warn!(
                "accept: {}{spent}; accepting again in {}{}",
                crate::text::os_error(e),
                text::duration(delay),
                more_note(more)
            );
        }
    }

    /// Frees the reserve descriptor and accepts-and-closes what every
    /// listener has queued with it (out of descriptors, every `accept`
    /// fails, the first listener's first: each queue is closed here or
    /// never); takes the reserve again. Returns how many connections it
    /// closed.
    fn spend_reserve(&mut self, shard: &Shard) -> usize {
        if self.reserve.take().is_none() {
            // Taken by something else last time: try again now.
            self.reserve = crate::os::reserve_descriptor();
            return 0;
        }
        let mut closed = 0;
        for listener in &self.listeners {
            while closed < RESERVE_SPENDS {
                let Ok((stream, _)) = crate::calls::accept(listener.socket()) else {
                    break;
                };
                crate::calls::close(&stream);
                drop(stream);
                shard.reject(Rejected::NoDescriptors);
                closed += 1;
            }
        }
        self.reserve = crate::os::reserve_descriptor();
        closed
    }
}

/// Accept errors that concern one connection, not the listener: the client
/// gave up before `accept` (ECONNABORTED), a firewall rule (EPERM), a
/// protocol error on that connection, or a signal.
fn is_transient(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(
            libc::ECONNABORTED
                | libc::EPERM
                | libc::EPROTO
                | libc::EINTR
                | libc::ENOPROTOOPT
                | libc::EHOSTDOWN
                | libc::ENETDOWN
                | libc::EHOSTUNREACH
                | libc::ENETUNREACH
                | libc::ENONET
                | libc::EOPNOTSUPP
        )
    )
}

fn more_note(more: u64) -> String {
    match more {
        0 => String::new(),
        n => format!(" ({n} more like this in the last second not logged)"),
    }
}

/// Evictions and turn-aways, logged at most once a second with their counts
/// since the last line, and the last newcomer that met a limit. What was
/// held back is told once the second is over, not only with the next one.
#[derive(Debug)]
pub(crate) struct Crowding {
    /// What is full, as the line names it (`metrics endpoint`).
    name: &'static str,
    limits: ConnLimits,
    log: RateLog,
    evicted: u64,
    turned_away: u64,
    last: Option<(Peer, Full)>,
}

impl Crowding {
    pub(crate) fn new(name: &'static str, limits: ConnLimits) -> Crowding {
        Crowding {
            name,
            limits,
            log: RateLog::default(),
            evicted: 0,
            turned_away: 0,
            last: None,
        }
    }

    /// Counts one at `now`; returns the line to log, if one may be now.
    fn note(
        &mut self,
        now: Instant,
        evicted: bool,
        peer: Peer,
        full: Full,
    ) -> Option<(String, Option<Peer>)> {
        if evicted {
            self.evicted += 1;
        } else {
            self.turned_away += 1;
        }
        self.last = Some((peer, full));
        self.log.allow(now).map(|_| self.report())
    }

    /// When the counts held back are to be logged, if any are.
    pub(crate) fn due(&self) -> Option<Instant> {
        if self.evicted + self.turned_away == 0 {
            return None;
        }
        self.log.next_at()
    }

    /// The line of what was held back, once it is due.
    pub(crate) fn flush(&mut self, now: Instant) -> Option<(String, Option<Peer>)> {
        self.due().filter(|&at| at <= now)?;
        self.log.allow(now).map(|_| self.report())
    }

    /// The line, with the counts since the last one (which start again),
    /// and the last newcomer (`last_peer`, a field of the line).
    fn report(&mut self) -> (String, Option<Peer>) {
        let evicted = std::mem::take(&mut self.evicted);
        let turned_away = std::mem::take(&mut self.turned_away);
        let last = match self.last {
            Some((_, Full::Source)) => format!(
                "; the last newcomer's address had {} connections open, the most for one",
                self.limits.max_per_ip.unwrap_or(usize::MAX)
            ),
            Some((_, Full::Table)) => format!(
                "; the last newcomer found all {} places taken",
                self.limits.max_conns
            ),
            None => String::new(),
        };
        let line = format!(
            "{} full: evicted {evicted} connection{} that had sent nothing, \
             turned away {turned_away} (no silent one to evict) since the last report{last}",
            self.name,
            if evicted == 1 { "" } else { "s" }
        );
        (line, self.last.map(|(peer, _)| peer))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_errors_of_one_connection_are_skipped() {
        for errno in [libc::ECONNABORTED, libc::EPERM, libc::EINTR] {
            assert!(is_transient(&io::Error::from_raw_os_error(errno)));
        }
        for errno in [
            libc::EMFILE,
            libc::ENFILE,
            libc::ENOBUFS,
            libc::ENOMEM,
            libc::EBADF,
        ] {
            assert!(!is_transient(&io::Error::from_raw_os_error(errno)));
        }
    }

    #[test]
    fn evictions_are_logged_at_once_then_at_most_once_a_second_with_their_counts() {
        let ms = Duration::from_millis;
        let limits = ConnLimits {
            max_conns: 64,
            max_per_ip: Some(8),
            ..ConnLimits::default()
        };
        let mut crowding = Crowding::new("metrics endpoint", limits);
        let (a, b) = (
            Peer::Ip("127.0.0.1:5000".parse().unwrap()),
            Peer::Ip("[::ffff:10.0.0.2]:6000".parse().unwrap()),
        );
        let t0 = Instant::now();
        assert_eq!(crowding.due(), None);
        let (first, last) = crowding
            .note(t0, true, a, Full::Source)
            .expect("the first is logged at once");
        assert!(
            first.starts_with("metrics endpoint full: ")
                && first.contains("evicted 1 connection that had sent nothing, turned away 0")
                && first.contains("had 8 connections open"),
            "{first}"
        );
        // The newcomer is the line's field, not words in it.
        assert_eq!(last, Some(a));
        assert!(!first.contains("127.0.0.1:5000"), "{first}");
        assert_eq!(crowding.due(), None, "nothing held back");
        for i in 1..=5 {
            assert_eq!(crowding.note(t0 + ms(10 * i), true, a, Full::Source), None);
        }
        assert_eq!(crowding.note(t0 + ms(60), false, b, Full::Table), None);
        // What was held back is told when the second is over, with no new
        // eviction to carry it.
        assert_eq!(crowding.due(), Some(t0 + ms(1000)));
        assert_eq!(crowding.flush(t0 + ms(999)), None);
        let (held, last) = crowding.flush(t0 + ms(1000)).expect("told after a second");
        assert!(
            held.contains("evicted 5 connections that had sent nothing, turned away 1")
                && held.contains("all 64 places"),
            "{held}"
        );
        assert_eq!(last, Some(b));
        assert_eq!(crowding.due(), None);
        assert_eq!(crowding.flush(t0 + ms(5000)), None);
    }
}
