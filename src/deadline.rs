//! Deadlines from durations a person typed, which may be absurdly long.
//!
//! `Instant + Duration` panics on overflow; `--timeout 1e19` must mean "no
//! limit to speak of", not a crash. Past a century a deadline is a century away.

use std::time::{Duration, Instant};

/// Longer than any run: what an overflowing deadline becomes.
const CENTURY: Duration = Duration::from_secs(100 * 365 * 24 * 3600);

/// `from + limit`, saturating at a century from `from`.
pub fn after(from: Instant, limit: Duration) -> Instant {
    from.checked_add(limit.min(CENTURY))
        .or_else(|| from.checked_add(CENTURY))
        .unwrap_or(from)
}

/// `now + limit`, saturating.
pub fn from_now(limit: Duration) -> Instant {
    after(Instant::now(), limit)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn absurd_limits_saturate() {
        let now = Instant::now();
        assert_eq!(after(now, Duration::MAX), now + CENTURY);
        assert_eq!(
            after(now, Duration::from_secs(5)),
            now + Duration::from_secs(5)
        );
    }
}
