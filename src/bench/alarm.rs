//! A wake-up at a precise time, for the open-loop schedule. `epoll_wait`
//! takes whole milliseconds (mio rounds up), which would send every message
//! up to a millisecond late; a timerfd in the same epoll set fires on time.
//! Linux-only, like the rest of the engines.

use std::io;
use std::os::fd::{AsFd, AsRawFd};
use std::time::Duration;

use mio::unix::SourceFd;
use mio::{Interest, Registry, Token};
use nix::sys::time::TimeSpec;
use nix::sys::timerfd::{ClockId, Expiration, TimerFd, TimerFlags, TimerSetTimeFlags};

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
