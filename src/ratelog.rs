//! A log line that repeats (a flood of refusals, EMFILE, a loop muted) is
//! written at most once a second, with a count of those held back: shared
//! by the stream loops, the datagram echo and the metrics endpoint.

use std::time::{Duration, Instant};

/// A message that repeats is logged at most this often.
pub(crate) const LOG_EVERY: Duration = Duration::from_secs(1);

/// A message logged at most once per [`LOG_EVERY`], with a count of the
/// times it was not.
#[derive(Debug, Default)]
pub(crate) struct RateLog {
    last: Option<Instant>,
    suppressed: u64,
}

impl RateLog {
    /// `Some(n)` when the message may be logged now, `n` being how many
    /// were not since the last one; `None` (and counted) otherwise.
    pub(crate) fn allow(&mut self, now: Instant) -> Option<u64> {
        if self.last.is_some_and(|t| now.duration_since(t) < LOG_EVERY) {
            self.suppressed += 1;
            return None;
        }
        self.last = Some(now);
        Some(std::mem::take(&mut self.suppressed))
    }

    /// The earliest a message may be logged again: [`LOG_EVERY`] after the
    /// last one; `None` before the first. For a caller that tells what it
    /// held back once the second is over, not only with the next message.
    pub(crate) fn next_at(&self) -> Option<Instant> {
        self.last.map(|t| t + LOG_EVERY)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_repeated_message_is_logged_once_a_second_with_a_count() {
        let mut log = RateLog::default();
        let t0 = Instant::now();
        assert_eq!(log.allow(t0), Some(0));
        assert_eq!(log.allow(t0 + Duration::from_millis(10)), None);
        assert_eq!(log.allow(t0 + Duration::from_millis(999)), None);
        assert_eq!(log.allow(t0 + Duration::from_secs(1)), Some(2));
        assert_eq!(log.allow(t0 + Duration::from_millis(1500)), None);
        assert_eq!(log.allow(t0 + Duration::from_secs(3)), Some(1));
        assert_eq!(log.next_at(), Some(t0 + Duration::from_secs(4)));
        assert_eq!(RateLog::default().next_at(), None);
    }
}
