//! The open loop's schedule: when each message is due, which connection
//! sends it, and a wake-up on time. `epoll_wait` takes whole milliseconds
//! (mio rounds up), which would send every message up to a millisecond
//! late; a timerfd in the same epoll set fires on time. Linux-only, like the
//! rest of the engines.

use std::io;
use std::os::fd::{AsFd, AsRawFd};
use std::time::Duration;

use mio::unix::SourceFd;
use mio::{Interest, Registry, Token};
use nix::sys::time::TimeSpec;
use nix::sys::timerfd::{ClockId, Expiration, TimerFd, TimerFlags, TimerSetTimeFlags};

/// Message `k` of a thread is due `k` periods after the start, and goes to
/// the next usable connection, round-robin.
#[derive(Debug)]
pub(super) struct Schedule {
    start: u64,
    period: f64,
    k: u64,
    next: usize,
}

impl Schedule {
    /// `rate` messages per second from `start` (ns).
    pub(super) fn new(start: u64, rate: f64) -> Schedule {
        Schedule {
            start,
            period: 1e9 / rate.max(1e-9),
            k: 0,
            next: 0,
        }
    }

    /// When the next message is due, ns.
    pub(super) fn due(&self) -> u64 {
        self.start + (self.k as f64 * self.period) as u64
    }

    /// Takes the next message if it is due by `now`: its due time and the
    /// connection (of `n`) that sends it, the first `usable` one round-robin.
    pub(super) fn take(
        &mut self,
        now: u64,
        n: usize,
        usable: impl Fn(usize) -> bool,
    ) -> Option<(u64, usize)> {
        let due = self.due();
        if due > now {
            return None;
        }
        let i = (0..n).map(|j| (self.next + j) % n).find(|&j| usable(j))?;
        self.next = (i + 1) % n;
        self.k += 1;
        Some((due, i))
    }
}

/// One timer, armed for the next moment the loop must act.
pub(super) struct Alarm {
    fd: TimerFd,
    armed_for: Option<u64>,
}

impl Alarm {
    /// A disarmed alarm, registered under `token`.
    pub(super) fn new(registry: &Registry, token: Token) -> io::Result<Alarm> {
        let fd = TimerFd::new(
            ClockId::CLOCK_MONOTONIC,
            TimerFlags::TFD_NONBLOCK | TimerFlags::TFD_CLOEXEC,
        )
        .map_err(io::Error::from)?;
        registry.register(
            &mut SourceFd(&fd.as_fd().as_raw_fd()),
            token,
            Interest::READABLE,
        )?;
        Ok(Alarm {
            fd,
            armed_for: None,
        })
    }

    /// Fires at `at` (ns on the run's clock, now `now`), unless already set for it.
    pub(super) fn arm(&mut self, at: u64, now: u64) -> io::Result<()> {
        if self.armed_for == Some(at) {
            return Ok(());
        }
        // A zero expiry would disarm the timer: at least one nanosecond.
        let after = Duration::from_nanos(at.saturating_sub(now).max(1));
        self.fd
            .set(
                Expiration::OneShot(TimeSpec::from_duration(after)),
                TimerSetTimeFlags::empty(),
            )
            .map_err(io::Error::from)?;
        self.armed_for = Some(at);
        Ok(())
    }

    /// The alarm went off: clears it.
    pub(super) fn fired(&mut self) {
        // Non-blocking: EAGAIN when it was re-armed meanwhile, which is fine.
        let _ = self.fd.wait();
        self.armed_for = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_are_spread_evenly_and_round_robin() {
        let mut s = Schedule::new(1_000, 3.0);
        assert_eq!(
            s.take(0, 3, |_| true),
            None,
            "nothing is due before the start"
        );
        let mut taken = Vec::new();
        while let Some(t) = s.take(1_000_001_000, 3, |i| i != 1) {
            taken.push(t);
        }
        assert_eq!(
            taken,
            [
                (1_000, 0),
                (333_334_333, 2),
                (666_667_666, 0),
                (1_000_001_000, 2)
            ]
        );
        assert_eq!(s.take(u64::MAX, 3, |_| false), None, "no usable connection");
    }
}
