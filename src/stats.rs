//! Latency statistics shared by the tools that time things (`bench`,
//! `probe`): one histogram shape, so that their percentiles agree.

use hdrhistogram::Histogram;

/// Latencies are recorded in nanoseconds, from 1 ns to an hour, to 3
/// significant digits.
pub fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 3_600_000_000_000, 3).expect("the bounds are valid")
}
