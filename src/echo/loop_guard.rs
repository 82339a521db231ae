//! The loop guard: no echo loop between two echo servers.
//!
//! Two echo servers that each take the other for a client answer each other
//! for ever: one forged datagram, "from" B and sent to A, sets them off,
//! and they bounce it at tens of thousands a second until one stops (the
//! packet loop of CERT CA-1996-01, CVE-1999-0103, between echo and chargen).
//! The fixed rules of `limit.rs` stop the loops they can name (the classic
//! loop ports, this process's own ports); this stops the rest, between
//! processes and between hosts, whatever the ports.
//!
//! A loop partner is a peer that sends back, at once, exactly the bytes it
//! was just sent. So every answer leaves a digest of its peer and its bytes
//! for [`WINDOW`]; a datagram from that peer whose digest is found is a
//! *reflection*. Each reflection counts one up, each datagram from the
//! peer that is not one counts one down; at [`MUTE_AFTER`] the peer is
//! muted: it gets no answer for [`FIRST_MUTE`], twice that if it does it
//! again soon after, up to [`LONGEST_MUTE`]. Either side of a loop that
//! mutes the other ends it. To keep a loop going past the guard, a forger
//! would have to send a fresh datagram for every one the loop bounces:
//! the loop then gains it nothing.
//!
//! A client that sends the same bytes again looks the same, so the window
//! is short: a client re-sending one message every 100 ms (or every 50) is
//! never a reflection, and the clients of echokit (`bench`, `--count`)
//! number their datagrams. What it does mute is a client that re-sends the
//! same bytes the moment their echo arrives, a thousand times in a row;
//! `--no-loop-guard` turns the guard off for such a benchmark.
//!
//! What it costs: one 64-bit hash of each datagram (xxh3, seeded per
//! socket so that no one can aim collisions at it), one load to look it
//! up and one store to remember its answer, in a table of [`SLOTS`]
//! (direct-mapped, each entry tagged with its generation, so nothing is
//! ever cleared). A newer answer may take an older one's slot: at 100,000
//! answers a second about one reflection in fifteen is missed, which only
//! slows the count. Memory is fixed: the table (256 KiB) and at most
//! [`MAX_SUSPECTS`] peers remembered.
//!
//! Pure logic: the caller passes the time, so tests need no clock.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use nohash_hasher::BuildNoHashHasher;
use xxhash_rust::xxh3::xxh3_64_with_seed;

/// How long an answer's digest is remembered, at most: a reflection
/// arrives within it. Digests live in two generations of half of it each,
/// so one is remembered for between 25 and 50 ms. A loop's round trip is
/// tens of microseconds on one host and a few milliseconds across a
/// network; a client that re-sends its message 100 ms later is well out.
pub const WINDOW: Duration = Duration::from_millis(50);

/// The count of reflections (less the datagrams that were not) that mutes
/// a peer: a loop on one host runs a thousand in 20 to 50 ms, while a
/// script that re-sends one message closed-loop still gets its first
/// thousand round trips.
pub const MUTE_AFTER: u32 = 1000;

/// How long a peer is muted the first time: a loop needs a new forged
/// datagram to start again, and a client muted by mistake is back soon.
pub const FIRST_MUTE: Duration = Duration::from_secs(1);

/// The longest mute: each mute within its own length after the last one
/// ends doubles, so a peer forged into a loop again and again costs a
/// handful of datagrams a minute.
pub const LONGEST_MUTE: Duration = Duration::from_secs(64);

/// Slots of the table of recent answers: 256 KiB. At 100,000 answers a
/// second (about what one socket's loop answers on this kind of machine),
/// the 2,500 to 5,000 answers of one window fill a few percent of them.
pub const SLOTS: usize = 1 << 15;

/// The low bits of a slot hold the generation of its answer; the rest,
/// the digest's high bits (the slot's index is its low bits).
const TAG_BITS: u32 = 16;

/// Peers with reflections remembered at once. When full, the ones not
/// muted are forgotten: a loop is counted again from zero, and reaches
/// [`MUTE_AFTER`] in milliseconds.
pub const MAX_SUSPECTS: usize = 16_384;

/// How long a count of reflections is kept after the last one.
const SCORE_LIFE: Duration = Duration::from_secs(1);

/// A datagram as the guard sees it: who sent it, and a digest of who
/// and what.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Digest {
    peer: u64,
    echo: u64,
}

/// What to do with a datagram.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Answer it (as far as the guard is concerned).
    Answer,
    /// Its peer is muted: no answer.
    Muted,
    /// This datagram made its peer a loop partner: no answer, and none for
    /// this long. Log it.
    NowMuted(Duration),
}

/// A peer that has sent reflections.
#[derive(Clone, Copy, Debug)]
struct Suspect {
    /// Reflections, less the datagrams that were not (never below 0).
    score: u32,
    /// No answers before this.
    muted_until: Option<Instant>,
    /// The length of the last mute, which the next one doubles.
    last_mute: Duration,
    /// When to forget it.
    forget_at: Instant,
}

/// One socket's loop guard.
#[derive(Debug)]
pub struct LoopGuard {
    seed: u64,
    /// Recent answers, by digest: the digest's high bits and the
    /// generation of the answer. One is recent while it is of this
    /// generation or the one before.
    recent: Vec<u64>,
    /// The current generation, counted in half windows (wrapping).
    generation: u16,
    /// When the current generation began.
    began: Instant,
    suspects: HashMap<u64, Suspect, BuildNoHashHasher<u64>>,
    last_sweep: Instant,
}

impl LoopGuard {
    /// A guard starting at `now`, with a random seed.
    pub fn new(now: Instant) -> LoopGuard {
        use std::hash::BuildHasher;
        let seed = std::collections::hash_map::RandomState::new().hash_one(0u8);
        LoopGuard::with_seed(seed, now)
    }

    fn with_seed(seed: u64, now: Instant) -> LoopGuard {
        LoopGuard {
            seed,
            recent: vec![0; SLOTS],
            generation: 0,
            began: now,
            suspects: HashMap::default(),
            last_sweep: now,
        }
    }

    /// The digest of a datagram from `peer` (its address, as bytes) that
    /// carries `payload`; its answer has the same one.
    pub fn digest(&self, peer: &[u8], payload: &[u8]) -> Digest {
        self.digest_of(xxh3_64_with_seed(peer, self.seed), payload)
    }

    /// The digest of a datagram from an IP peer: as [`LoopGuard::digest`],
    /// with the address mixed in without a hash of its own.
    pub fn digest_ip(&self, peer: SocketAddr, payload: &[u8]) -> Digest {
        let ip = match peer.ip().to_canonical() {
            IpAddr::V4(v4) => u128::from(v4.to_ipv6_mapped()),
            IpAddr::V6(v6) => u128::from(v6),
        };
        let folded = (ip as u64) ^ ((ip >> 64) as u64).rotate_left(29) ^ u64::from(peer.port());
        // A multiply by an odd constant (the golden ratio's, as Fibonacci
        // hashing takes it) spreads the bits; the seed keeps it secret.
        self.digest_of(
            (folded ^ self.seed).wrapping_mul(0x9E37_79B9_7F4A_7C15),
            payload,
        )
    }

    fn digest_of(&self, peer: u64, payload: &[u8]) -> Digest {
        Digest {
            peer,
            echo: xxh3_64_with_seed(payload, peer ^ self.seed.rotate_left(32)),
        }
    }

    /// Moves the guard's clock to `now`: once per batch of datagrams, before
    /// their [`LoopGuard::arrived`].
    pub fn tick(&mut self, now: Instant) {
        let half = WINDOW / 2;
        let since = now.saturating_duration_since(self.began);
        if since < half {
            return;
        }
        // Whole half windows passed; past two, every answer is old anyway.
        let passed = (since.as_nanos() / half.as_nanos()).min(2) as u16;
        self.generation = self.generation.wrapping_add(passed);
        self.began = now;
    }

    /// Whether `echo` was answered within the window.
    fn is_recent(&self, echo: u64) -> bool {
        let slot = self.recent[echo as usize % SLOTS];
        let tag = !0u64 << TAG_BITS;
        slot & tag == echo & tag && self.generation.wrapping_sub(slot as u16) <= 1 && slot != 0
    }

    /// A datagram arrived: whether it may be answered. [`LoopGuard::tick`]
    /// has been told the time.
    pub fn arrived(&mut self, d: Digest, now: Instant) -> Verdict {
        let reflected = self.is_recent(d.echo);
        if !reflected && self.suspects.is_empty() {
            return Verdict::Answer;
        }
        if now.duration_since(self.last_sweep) >= SCORE_LIFE {
            self.suspects.retain(|_, s| s.forget_at > now);
            self.last_sweep = now;
        }
        let suspect = match self.suspects.get_mut(&d.peer) {
            Some(s) => s,
            None if !reflected => return Verdict::Answer,
            None => {
                if self.suspects.len() >= MAX_SUSPECTS {
                    self.suspects
                        .retain(|_, s| s.muted_until.is_some_and(|t| t > now));
                    if self.suspects.len() >= MAX_SUSPECTS {
                        return Verdict::Answer;
                    }
                }
                self.suspects.entry(d.peer).or_insert(Suspect {
                    score: 0,
                    muted_until: None,
                    last_mute: Duration::ZERO,
                    forget_at: now,
                })
            }
        };
        if suspect.muted_until.is_some_and(|t| t > now) {
            return Verdict::Muted;
        }
        if !reflected {
            suspect.score = suspect.score.saturating_sub(1);
            return Verdict::Answer;
        }
        suspect.score += 1;
        suspect.forget_at = suspect.forget_at.max(now + SCORE_LIFE);
        if suspect.score < MUTE_AFTER {
            return Verdict::Answer;
        }
        // Muted again within the last mute's length after it ended: twice
        // as long.
        let again = suspect
            .muted_until
            .is_some_and(|t| now.duration_since(t) < suspect.last_mute);
        let mute = if again {
            (suspect.last_mute * 2).min(LONGEST_MUTE)
        } else {
            FIRST_MUTE
        };
        suspect.score = 0;
        suspect.muted_until = Some(now + mute);
        suspect.last_mute = mute;
        suspect.forget_at = now + mute * 2;
        Verdict::NowMuted(mute)
    }

    /// The datagram with this digest is answered: its echo is remembered
    /// for [`WINDOW`].
    pub fn answered(&mut self, d: Digest) {
        let tag = !0u64 << TAG_BITS;
        self.recent[d.echo as usize % SLOTS] = (d.echo & tag) | u64::from(self.generation);
    }

    /// Peers remembered now.
    pub fn suspects(&self) -> usize {
        self.suspects.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const B: &[u8] = b"127.0.0.1:6000";

    /// A datagram arrives at `now`.
    fn arrive(guard: &mut LoopGuard, d: Digest, now: Instant) -> Verdict {
        guard.tick(now);
        guard.arrived(d, now)
    }

    /// `n` round trips of one ball between this guard and a mirror, one
    /// every `every`; returns the answers given, and when the peer was muted.
    fn bounce(
        guard: &mut LoopGuard,
        n: u32,
        every: Duration,
        start: Instant,
    ) -> (u32, Option<(u32, Duration)>) {
        let mut answers = 0;
        for i in 0..n {
            let now = start + every * i;
            let d = guard.digest(B, b"forged");
            match arrive(guard, d, now) {
                Verdict::Answer => {
                    guard.answered(d);
                    answers += 1;
                }
                Verdict::Muted => {}
                Verdict::NowMuted(mute) => return (answers, Some((i, mute))),
            }
        }
        (answers, None)
    }

    #[test]
    fn a_mirror_is_muted_after_a_thousand_reflections() {
        let start = Instant::now();
        let mut guard = LoopGuard::with_seed(1, start);
        // A loop on one host: a round trip every 25 us.
        let (answers, muted) = bounce(&mut guard, 5000, Duration::from_micros(25), start);
        // The first datagram is not a reflection: nothing was sent before.
        assert_eq!(muted, Some((MUTE_AFTER, FIRST_MUTE)));
        assert_eq!(answers, MUTE_AFTER);
        // Muted: nothing more for a second.
        let later = start + Duration::from_millis(500);
        let again = guard.digest(B, b"x");
        assert_eq!(arrive(&mut guard, again, later), Verdict::Muted);
        // Another peer is answered meanwhile.
        let other = guard.digest(b"127.0.0.1:7000", b"forged");
        assert_eq!(arrive(&mut guard, other, later), Verdict::Answer);
    }

    #[test]
    fn many_balls_at_once_are_a_loop_too() {
        let start = Instant::now();
        let mut guard = LoopGuard::with_seed(2, start);
        // 300 forged datagrams in flight at once, each bounced in turn.
        let mut muted_at = None;
        'outer: for round in 0..10u32 {
            for ball in 0..300u32 {
                let now = start + Duration::from_micros(u64::from(round * 300 + ball) * 3);
                let d = guard.digest(B, &ball.to_le_bytes());
                match arrive(&mut guard, d, now) {
                    Verdict::Answer => guard.answered(d),
                    Verdict::Muted => panic!("muted before it was said"),
                    Verdict::NowMuted(_) => {
                        muted_at = Some(round * 300 + ball);
                        break 'outer;
                    }
                }
            }
        }
        // The first round is fresh; then reflections count up to the
        // thousand, but for the few balls whose answers share a slot of the
        // table (each miss counts one down).
        let muted_at = muted_at.expect("muted");
        let first = 300 + MUTE_AFTER - 1;
        assert!((first..first + 100).contains(&muted_at), "{muted_at}");
    }

    #[test]
    fn a_client_resending_one_message_every_100ms_is_never_muted() {
        let start = Instant::now();
        let mut guard = LoopGuard::with_seed(3, start);
        let (answers, muted) = bounce(&mut guard, 10_000, Duration::from_millis(100), start);
        assert_eq!((answers, muted), (10_000, None));
        // Nor every 50 ms: the window is over by then.
        let (answers, muted) = bounce(
            &mut guard,
            10_000,
            WINDOW,
            start + Duration::from_secs(2000),
        );
        assert_eq!((answers, muted), (10_000, None));
    }

    #[test]
    fn numbered_messages_are_never_reflections() {
        let start = Instant::now();
        let mut guard = LoopGuard::with_seed(4, start);
        for i in 0..100_000u64 {
            let now = start + Duration::from_micros(i * 5);
            let d = guard.digest(B, format!("Hello, world #{i}").as_bytes());
            assert_eq!(arrive(&mut guard, d, now), Verdict::Answer);
            guard.answered(d);
        }
        assert_eq!(guard.suspects(), 0);
    }

    #[test]
    fn fresh_datagrams_count_down_and_a_mixed_client_goes_on() {
        let start = Instant::now();
        let mut guard = LoopGuard::with_seed(5, start);
        // Each message sent twice in a row: every other one is a reflection.
        for i in 0..100_000u64 {
            let now = start + Duration::from_micros(i * 20);
            let d = guard.digest(B, &(i / 2).to_le_bytes());
            assert_eq!(arrive(&mut guard, d, now), Verdict::Answer, "datagram {i}");
            guard.answered(d);
        }
    }

    #[test]
    fn a_peer_muted_again_soon_after_is_muted_twice_as_long_up_to_the_longest() {
        let mut now = Instant::now();
        let mut guard = LoopGuard::with_seed(6, now);
        let mut mutes = Vec::new();
        for _ in 0..10 {
            let (_, muted) = bounce(&mut guard, 5000, Duration::from_micros(25), now);
            let (_, mute) = muted.expect("muted");
            mutes.push(mute.as_secs());
            // The loop is set off again as soon as the mute ends.
            now += mute + Duration::from_millis(100);
        }
        assert_eq!(mutes, [1, 2, 4, 8, 16, 32, 64, 64, 64, 64]);
        // Long after, it starts from the first mute again.
        now += Duration::from_secs(600);
        let (_, muted) = bounce(&mut guard, 5000, Duration::from_micros(25), now);
        assert_eq!(muted.map(|m| m.1), Some(FIRST_MUTE));
    }

    #[test]
    fn memory_is_bounded_under_forged_suspects() {
        let start = Instant::now();
        let mut guard = LoopGuard::with_seed(7, start);
        // Each of many forged peers reflects once.
        for i in 0..(MAX_SUSPECTS as u32 * 3) {
            let peer = i.to_le_bytes();
            let d = guard.digest(&peer, b"x");
            guard.answered(d);
            let now = start + Duration::from_micros(u64::from(i % 1000));
            let _ = arrive(&mut guard, d, now);
            assert!(guard.suspects() <= MAX_SUSPECTS);
        }
        // A real loop is still caught among them.
        let (_, muted) = bounce(&mut guard, 5000, Duration::from_micros(1), start);
        assert!(muted.is_some());
        // The table of answers is fixed in size.
        for i in 0..(SLOTS as u64 * 4) {
            guard.answered(guard.digest(B, &i.to_le_bytes()));
        }
        assert_eq!(guard.recent.len(), SLOTS);
    }
}
