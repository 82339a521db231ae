//! What a stream server allows: how many connections, how many from one
//! address, and how long a connection may sit idle or leave its echo
//! unread. The loops enforce them the same way for every service.
//!
//! - Over a connection limit, a connection is accepted and closed at once
//!   (and counted): it never waits in the listen backlog, where it would
//!   hold a place a later client needs.
//! - A connection's timeouts are found from its byte counts, read by the
//!   loop around each drive ([`Watch`]); a service does nothing for them,
//!   and a message costs two comparisons, no clock read (the loop reads
//!   the clock once per turn).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How long a connection may go without a byte in or out by default.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(300);

/// How long a connection may leave bytes unsent because its client does not
/// read them, by default.
pub const DEFAULT_STALL_TIMEOUT: Duration = Duration::from_secs(30);

/// The limits of a stream server.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConnLimits {
    /// Connections open at once, in total; more are accepted and closed.
    pub max_conns: usize,
    /// Connections open at once from one IP address (an IPv4-mapped IPv6
    /// address counts as its IPv4 address); `None`: no such limit.
    pub max_per_ip: Option<usize>,
    /// Close a connection that has sent and received nothing for this long.
    pub idle_timeout: Option<Duration>,
    /// Close a connection whose client has not read what it is sent (the
    /// send buffer stays full) for this long.
    pub stall_timeout: Option<Duration>,
    /// What a newcomer over a limit meets.
    pub when_full: WhenFull,
}

/// What a server does with a newcomer when it is full: over `max_conns`,
/// over `max_per_ip`, or out of descriptors.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum WhenFull {
    /// Closes the newcomer at once (an end of stream rather than a place in
    /// the backlog); out of descriptors, closes what is queued with the
    /// reserve descriptor, so that no client waits forever. The servers.
    #[default]
    TurnAway,
    /// Makes room for it: it takes the place of the oldest connection that
    /// has sent nothing (of its address, or of all; `admission.rs`), and is
    /// turned away only when every place is mid-request; out of
    /// descriptors, the reserve descriptor's place goes to the newcomer.
    /// For a service that must get through a crowd (the `/metrics`
    /// endpoint: its counters matter most when the server is crowded). One
    /// event loop only: the places it weighs are that loop's.
    MakeRoom,
}

impl Default for ConnLimits {
    /// No connection limit but the descriptor table's, no per-IP limit, and
    /// the default timeouts.
    fn default() -> ConnLimits {
        ConnLimits {
            max_conns: usize::MAX,
            max_per_ip: None,
            idle_timeout: Some(DEFAULT_IDLE_TIMEOUT),
            stall_timeout: Some(DEFAULT_STALL_TIMEOUT),
            when_full: WhenFull::TurnAway,
        }
    }
}

/// Open connections per IP address, shared by the loops: taken by the
/// accepting loop, given back by whichever loop closes the connection.
/// Touched on connect and close only, and only with a per-IP limit.
#[derive(Debug)]
pub(crate) struct PerIp {
    max: usize,
    open: Mutex<HashMap<IpAddr, usize>>,
}

impl PerIp {
    pub(crate) fn new(max: usize) -> PerIp {
        PerIp {
            max,
            open: Mutex::new(HashMap::new()),
        }
    }

    /// Counts a new connection from `ip`; false (and not counted) when `ip`
    /// has its limit already.
    pub(crate) fn admit(&self, ip: IpAddr) -> bool {
        let mut open = self.lock();
        let n = open.entry(ip).or_insert(0);
        if *n >= self.max {
            if *n == 0 {
                open.remove(&ip);
            }
            return false;
        }
        *n += 1;
        true
    }

    /// A connection from `ip` is closed.
    pub(crate) fn release(&self, ip: IpAddr) {
        let mut open = self.lock();
        if let Some(n) = open.get_mut(&ip) {
            *n -= 1;
            if *n == 0 {
                // The table holds only addresses with connections open.
                open.remove(&ip);
            }
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<IpAddr, usize>> {
        self.open
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// Why the loop closes a connection that is still open.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Expired {
    /// Nothing came or went for the idle timeout.
    Idle,
    /// Its unsent bytes did not move for the stall timeout.
    Stall,
}

/// What the loop knows of one connection's traffic, to find idle and
/// stalled ones.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Watch {
    bytes_in: u64,
    bytes_out: u64,
    /// The last turn a byte came in or went out.
    active: Instant,
    /// The last turn a byte went out, or it began to have bytes unsent.
    sending: Instant,
    /// It had bytes unsent after its last drive.
    stuck: bool,
}

impl Watch {
    pub(crate) fn new(now: Instant) -> Watch {
        Watch {
            bytes_in: 0,
            bytes_out: 0,
            active: now,
            sending: now,
            stuck: false,
        }
    }

    /// Notes a connection's counts after a drive at `now` (the loop's
    /// clock for this turn); returns the bytes that came in and went out
    /// since the last note.
    pub(crate) fn note(
        &mut self,
        now: Instant,
        bytes_in: u64,
        bytes_out: u64,
        unsent: bool,
    ) -> (u64, u64) {
        let came = bytes_in - self.bytes_in;
        let went = bytes_out - self.bytes_out;
        if came != 0 || went != 0 {
            self.active = now;
            self.bytes_in = bytes_in;
            self.bytes_out = bytes_out;
        }
        if went != 0 || (unsent && !self.stuck) {
            self.sending = now;
        }
        self.stuck = unsent;
        (came, went)
    }

    /// When the connection must close if nothing changes: the earliest of
    /// its timeouts.
    pub(crate) fn due(&self, limits: &ConnLimits) -> Option<(Instant, Expired)> {
        let idle = limits
            .idle_timeout
            .map(|t| (crate::deadline::after(self.active, t), Expired::Idle));
        let stall = limits
            .stall_timeout
            .filter(|_| self.stuck)
            .map(|t| (crate::deadline::after(self.sending, t), Expired::Stall));
        match (idle, stall) {
            (Some(i), Some(s)) => Some(if s.0 <= i.0 { s } else { i }),
            (i, s) => i.or(s),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::net::Peer;

    #[test]
    fn a_mapped_v4_peer_counts_as_its_v4_address() {
        let mapped: Peer = Peer::Ip("[::ffff:10.0.0.1]:5000".parse().unwrap());
        let v4: Peer = Peer::Ip("10.0.0.1:6000".parse().unwrap());
        assert_eq!(mapped.ip(), v4.ip());
        let per_ip = PerIp::new(1);
        assert!(per_ip.admit(mapped.ip().unwrap()));
        assert!(
            !per_ip.admit(v4.ip().unwrap()),
            "the same address, over its limit"
        );
        per_ip.release(mapped.ip().unwrap());
        assert!(per_ip.admit(v4.ip().unwrap()));
        assert!(per_ip.open.lock().unwrap().len() == 1);
        per_ip.release(v4.ip().unwrap());
        assert!(
            per_ip.open.lock().unwrap().is_empty(),
            "no entry left behind"
        );
    }

    #[test]
    fn a_connection_stalls_when_its_unsent_bytes_do_not_move() {
        let limits = ConnLimits {
            idle_timeout: Some(Duration::from_secs(300)),
            stall_timeout: Some(Duration::from_secs(30)),
            ..ConnLimits::default()
        };
        let t0 = Instant::now();
        let mut watch = Watch::new(t0);
        assert_eq!(
            watch.due(&limits).unwrap(),
            (t0 + limits.idle_timeout.unwrap(), Expired::Idle)
        );
        // 10 s in, it reads 100 bytes and sends 40: 60 are unsent.
        let t1 = t0 + Duration::from_secs(10);
        assert_eq!(watch.note(t1, 100, 40, true), (100, 40));
        assert_eq!(
            watch.due(&limits).unwrap(),
            (t1 + Duration::from_secs(30), Expired::Stall)
        );
        // Its client reads nothing: a later drive moves nothing, the stall stands.
        let t2 = t1 + Duration::from_secs(20);
        assert_eq!(watch.note(t2, 100, 40, true), (0, 0));
        assert_eq!(watch.due(&limits).unwrap().0, t1 + Duration::from_secs(30));
        // It reads some: the stall clock starts again.
        assert_eq!(watch.note(t2, 100, 50, true), (0, 10));
        assert_eq!(
            watch.due(&limits).unwrap(),
            (t2 + Duration::from_secs(30), Expired::Stall)
        );
        // All sent: only the idle timeout is left.
        watch.note(t2, 100, 100, false);
        assert_eq!(
            watch.due(&limits).unwrap(),
            (t2 + Duration::from_secs(300), Expired::Idle)
        );
        let none = ConnLimits {
            idle_timeout: None,
            stall_timeout: None,
            ..limits
        };
        assert_eq!(watch.due(&none), None);
    }
}
