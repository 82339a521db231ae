//! The open loop's schedule: when each message is due, and which
//! connection sends it. Pure; the engines' reactor wakes them on time.

use super::stats::Meter;

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

/// An engine that runs the open loop: the schedule says when a message is
/// due and on which connection; the engine issues it and sends it.
pub(super) trait OpenLoop {
    /// The next message due by `now`, and the connection it goes to (the
    /// next usable one, round-robin), if the run has a schedule.
    fn next_due(&mut self, now: u64) -> Option<(u64, usize)>;

    /// Issues one more message on connection `i`, due at `due`; false when
    /// the run admits no more.
    fn issue(&mut self, i: usize, due: u64) -> bool;

    /// Sends what connection `i` has issued, as far as its socket takes.
    fn flush(&mut self, i: usize, now: u64);

    /// Issues and sends every message that is due by `now`.
    fn issue_scheduled(&mut self, now: u64) {
        while let Some((due, i)) = self.next_due(now) {
            if !self.issue(i, due) {
                return;
            }
            self.flush(i, now);
        }
    }
}

/// [`OpenLoop::next_due`] for an engine whose schedule is `schedule`,
/// over `n` connections of which `usable` may take one; `meter` notes how
/// late it is.
pub(super) fn next_due(
    schedule: &mut Option<Schedule>,
    meter: &mut Meter,
    now: u64,
    n: usize,
    usable: impl Fn(usize) -> bool,
) -> Option<(u64, usize)> {
    let (due, i) = schedule.as_mut()?.take(now, n, usable)?;
    meter.behind(now - due);
    Some((due, i))
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
