//! What both engines wait on: one epoll set (mio) holding their sockets, a
//! waker for the coordinator's phase changes, and a timerfd for the open
//! loop. `epoll_wait` takes whole milliseconds (mio rounds up), which would
//! send every scheduled message up to a millisecond late; the timerfd fires
//! on time. Linux-only, like the rest of the engines.

use std::io;
use std::os::fd::{AsFd, AsRawFd, RawFd};
use std::time::Duration;

use mio::{Events, Interest, Token};
use nix::sys::time::TimeSpec;
use nix::sys::timerfd::{ClockId, Expiration, TimerFd, TimerFlags, TimerSetTimeFlags};

use super::stats::Control;
use crate::driver::Driver;

const WAKE: Token = Token(usize::MAX);
const ALARM: Token = Token(usize::MAX - 1);

/// What an event said about socket number `slot`.
#[derive(Clone, Copy, Debug)]
pub(super) struct Ready {
    pub slot: usize,
    pub readable: bool,
    pub writable: bool,
    /// The peer closed its side (EPOLLRDHUP/EPOLLHUP).
    pub read_closed: bool,
    pub write_closed: bool,
    pub error: bool,
}

/// One engine thread's epoll set.
pub(super) struct Reactor {
    driver: Driver,
    alarm: Alarm,
    events: Events,
    /// The sockets' events of the last wait.
    pub ready: Vec<Ready>,
}

impl Reactor {
    /// A reactor whose waker the coordinator holds.
    pub(super) fn new(control: &Control) -> io::Result<Reactor> {
        let driver = Driver::new()?;
        control.register(driver.waker(WAKE)?);
        let alarm = Alarm::new(&driver, ALARM)?;
        Ok(Reactor {
            driver,
            alarm,
            events: Events::with_capacity(1024),
            ready: Vec::with_capacity(1024),
        })
    }

    /// Watches socket `fd` as number `slot`, edge-triggered, both ways.
    pub(super) fn register(&self, fd: RawFd, slot: usize) -> io::Result<()> {
        self.driver
            .watch(fd, Token(slot), Interest::READABLE | Interest::WRITABLE)
    }

    /// Stops watching `fd`.
    pub(super) fn deregister(&self, fd: RawFd) {
        self.driver.unwatch(fd);
    }

    /// Waits until `until` (ns on the run's clock, now `now`), or until
    /// `due` if the open loop has a message due then, or an event; fills
    /// `ready` with the sockets' events.
    pub(super) fn wait(&mut self, now: u64, until: u64, due: Option<u64>) -> io::Result<()> {
        if let Some(due) = due {
            self.alarm.arm(due, now)?;
        }
        self.ready.clear();
        let timeout = Duration::from_nanos(until.saturating_sub(now));
        self.driver.wait(&mut self.events, Some(timeout))?;
        for event in &self.events {
            match event.token() {
                WAKE => {}
                ALARM => self.alarm.fired(),
                Token(slot) => self.ready.push(Ready {
                    slot,
                    readable: event.is_readable(),
                    writable: event.is_writable(),
                    read_closed: event.is_read_closed(),
                    write_closed: event.is_write_closed(),
                    error: event.is_error(),
                }),
            }
        }
        Ok(())
    }
}

/// One timer, armed for the next moment the loop must act.
struct Alarm {
    fd: TimerFd,
    armed_for: Option<u64>,
}

impl Alarm {
    /// A disarmed alarm, registered under `token`.
    fn new(driver: &Driver, token: Token) -> io::Result<Alarm> {
        let fd = TimerFd::new(
            ClockId::CLOCK_MONOTONIC,
            TimerFlags::TFD_NONBLOCK | TimerFlags::TFD_CLOEXEC,
        )
        .map_err(io::Error::from)?;
        driver.watch(fd.as_fd().as_raw_fd(), token, Interest::READABLE)?;
        Ok(Alarm {
            fd,
            armed_for: None,
        })
    }

    /// Fires at `at` (ns on the run's clock, now `now`), unless already set for it.
    fn arm(&mut self, at: u64, now: u64) -> io::Result<()> {
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
    fn fired(&mut self) {
        // Non-blocking: EAGAIN when it was re-armed meanwhile, which is fine.
        let _ = self.fd.wait();
        self.armed_for = None;
    }
}
