//! What the bench sends: a per-connection byte stream that the receiver can
//! check at any offset, and the message sizes. Pure: no I/O, no clock.
//!
//! The stream is a table of [`PERIOD`] pseudo-random bytes read in a loop,
//! each connection starting at its own phase. The period is a prime, so no
//! message size lines up with it and a lost, repeated or reordered message
//! shows as a mismatch. The table is followed by a copy of its first
//! [`MAX_SLICE`] bytes, so that any slice of up to that length is contiguous
//! in memory: sending writes straight from the table and checking is one
//! `memcmp`, with no copy and no allocation per message.

use std::sync::OnceLock;

/// The stream's period, a prime.
pub const PERIOD: usize = 65_521;

/// The longest slice handed out at once (one write, one comparison).
pub const MAX_SLICE: usize = 256 * 1024;

fn table() -> &'static [u8] {
    static TABLE: OnceLock<Box<[u8]>> = OnceLock::new();
    TABLE.get_or_init(|| {
        let mut rng = SplitMix(0x6563_686f_6b69_7421); // "echokit!"
        let head: Vec<u8> = (0..PERIOD).map(|_| (rng.next() >> 56) as u8).collect();
        head.iter()
            .copied()
            .chain(head.iter().copied().cycle().take(MAX_SLICE))
            .collect()
    })
}

/// One connection's byte stream.
#[derive(Clone, Copy, Debug)]
pub struct Stream {
    phase: usize,
}

impl Stream {
    /// The stream of connection number `n`.
    pub fn new(n: u64) -> Stream {
        // Spread neighbours far apart in the period.
        let phase = (n.wrapping_mul(7_919) % PERIOD as u64) as usize;
        Stream { phase }
    }

    /// The stream's bytes from `offset`, at most `len` (and at most [`MAX_SLICE`]).
    #[inline]
    pub fn slice(&self, offset: u64, len: usize) -> &'static [u8] {
        let start = (self.phase + (offset % PERIOD as u64) as usize) % PERIOD;
        &table()[start..start + len.min(MAX_SLICE)]
    }

    /// Where `got`, received at stream `offset`, first differs from the
    /// stream: `None` when every byte is right. `got` may be any length.
    #[inline]
    pub fn check(&self, offset: u64, got: &[u8]) -> Option<u64> {
        let mut done = 0;
        while done < got.len() {
            let want = self.slice(offset + done as u64, got.len() - done);
            let part = &got[done..done + want.len()];
            if part != want {
                let at = part.iter().zip(want).position(|(a, b)| a != b);
                return Some(offset + (done + at.unwrap_or(0)) as u64);
            }
            done += want.len();
        }
        None
    }

    /// The byte the stream holds at `offset`.
    pub fn byte(&self, offset: u64) -> u8 {
        self.slice(offset, 1)[0]
    }
}

/// The message sizes: one fixed size, or a uniform draw from `min..=max`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SizeRange {
    /// The smallest message.
    pub min: usize,
    /// The largest message.
    pub max: usize,
}

impl SizeRange {
    /// Every message `size` bytes.
    pub fn fixed(size: usize) -> SizeRange {
        SizeRange {
            min: size,
            max: size,
        }
    }

    /// The mean size.
    pub fn mean(&self) -> f64 {
        (self.min + self.max) as f64 / 2.0
    }
}

impl std::fmt::Display for SizeRange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.min == self.max {
            write!(f, "{}", self.min)
        } else {
            write!(f, "{}..{}", self.min, self.max)
        }
    }
}

/// Draws message sizes, deterministically per connection.
#[derive(Clone, Debug)]
pub struct Sizes {
    range: SizeRange,
    rng: SplitMix,
}

impl Sizes {
    /// The sizes of connection number `n`.
    pub fn new(range: SizeRange, n: u64) -> Sizes {
        Sizes {
            range,
            rng: SplitMix(n ^ 0x9e37_79b9_7f4a_7c15),
        }
    }

    /// The next message's size.
    #[inline]
    pub fn draw(&mut self) -> usize {
        let span = (self.range.max - self.range.min) as u64 + 1;
        if span == 1 {
            return self.range.min;
        }
        self.range.min + (self.rng.next() % span) as usize
    }
}

/// SplitMix64: a tiny, good-enough generator (Steele, Lea and Flood, 2014).
#[derive(Clone, Debug)]
struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn slices_wrap_around_the_period() {
        let s = Stream::new(3);
        let long = s.slice(PERIOD as u64 - 10, 20);
        for (i, b) in long.iter().enumerate() {
            assert_eq!(*b, s.byte(PERIOD as u64 - 10 + i as u64));
        }
        assert_eq!(s.byte(5), s.byte(5 + PERIOD as u64));
    }

    #[test]
    fn connections_differ() {
        assert_ne!(Stream::new(0).slice(0, 64), Stream::new(1).slice(0, 64));
    }

    proptest! {
        #[test]
        fn check_finds_the_first_wrong_byte(
            n in 0u64..1000, offset in 0u64..10_000_000, len in 1usize..300_000, at in 0usize..300_000
        ) {
            let s = Stream::new(n);
            let mut got: Vec<u8> = (0..len as u64).map(|i| s.byte(offset + i)).collect();
            prop_assert_eq!(s.check(offset, &got), None);
            let at = at % len;
            got[at] ^= 0x40;
            prop_assert_eq!(s.check(offset, &got), Some(offset + at as u64));
        }

        #[test]
        fn sizes_stay_in_range(min in 0usize..100, extra in 0usize..100, n in 0u64..100) {
            let range = SizeRange { min, max: min + extra };
            let mut sizes = Sizes::new(range, n);
            for _ in 0..100 {
                let s = sizes.draw();
                prop_assert!((min..=min + extra).contains(&s));
            }
        }
    }
}
