//! Who gets an answer from the UDP echo: the rules that keep an echo server
//! from becoming half of a packet loop or a reflection amplifier.
//!
//! - A datagram from one of the classic loop ports ([`LOOP_PORTS`]: echo,
//!   discard, daytime, quote, chargen, and port 0) is never answered: two
//!   such services answering each other loop for ever (CERT CA-1996-01).
//! - A datagram from the port the server serves on is never answered, from
//!   any address: from one of this host's own addresses (a wildcard socket
//!   owns the port on all of them) a forged source would make the server
//!   talk to itself for ever, and from another host it is most likely
//!   another echo server on the same port, the two of which would loop.
//! - A datagram from any other UDP port this process serves on, from any
//!   of this host's addresses (loopback, or an address of one of its
//!   interfaces), is never answered: two endpoints of one process would
//!   answer each other for ever.
//! - Loops with other processes and hosts, whatever their ports, are the
//!   loop guard's (`loop_guard.rs`).
//! - Each source address gets at most a rate of answers, and all sources
//!   together another; both use the generic cell rate algorithm (one
//!   timestamp of state per source), with a burst of a tenth of a second's
//!   worth. An IPv4-mapped IPv6 source counts as its IPv4 address.
//!
//! The table of sources is bounded ([`MAX_SOURCES`]): sources whose budget is
//! whole again are forgotten once a second, and while the table is full new
//! sources share one budget, so a flood of forged addresses costs bounded
//! memory and still gets at most one source's rate.
//!
//! Pure logic: the caller passes the time, so tests need no clock.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use super::served;

/// Source ports never answered: 0 (invalid), 7 echo, 9 discard, 13 daytime,
/// 17 quote of the day, 19 chargen.
pub const LOOP_PORTS: [u16; 6] = [0, 7, 9, 13, 17, 19];
const _: () = assert!(
    matches!(LOOP_PORTS, [0, 7, 9, 13, 17, 19]),
    "Gate::check matches them"
);

/// Answers per second per source address by default, for sources off this
/// host: plenty for any test or probe, too few to make the server useful
/// to a reflection attack.
pub const DEFAULT_PER_SOURCE: u32 = 1000;

/// Source addresses remembered at once: about 3 MiB at most.
pub const MAX_SOURCES: usize = 65_536;

/// How often sources with a whole budget are forgotten.
const SWEEP_EVERY: Duration = Duration::from_secs(1);

/// How long this host's addresses are trusted before they are read again:
/// they are read only for a datagram from one of this process's ports, so
/// a flood of such datagrams reads them once a second at most.
const HOST_ADDRESSES_FOR: Duration = Duration::from_secs(1);

/// The rate limits of a UDP echo socket, in datagrams per second (0: none).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RateLimits {
    /// Answers per second to each source address.
    pub per_source: u32,
    /// Answers per second to all sources together.
    pub total: u32,
    /// Sources on a loopback address are not held to `per_source` (so that
    /// local benchmarks measure the server). Off when a limit is asked for.
    pub exempt_loopback: bool,
}

impl Default for RateLimits {
    fn default() -> RateLimits {
        RateLimits {
            per_source: DEFAULT_PER_SOURCE,
            total: 0,
            exempt_loopback: true,
        }
    }
}

/// Why a datagram got no answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// It came from one of [`LOOP_PORTS`].
    LoopPort,
    /// It came from the port the server serves on.
    OwnPort,
    /// It came from another UDP port of this process, on this host.
    OwnProcess,
    /// Its source is over its rate.
    SourceRate,
    /// All sources together are over the total rate.
    TotalRate,
}

impl Refusal {
    /// How a drop report names it.
    pub fn describe(self) -> &'static str {
        match self {
            Refusal::LoopPort => "from a loop port (0, 7, 9, 13, 17, 19)",
            Refusal::OwnPort => {
                "from the port this server serves on (itself, or another echo server: a loop)"
            }
            Refusal::OwnProcess => {
                "from another UDP port this process serves on, from this host (the two would loop)"
            }
            Refusal::SourceRate => "over the per-source rate (--udp-rate-per-source)",
            Refusal::TotalRate => "over the total rate (--udp-rate-total)",
        }
    }
}

/// A rate: one answer per `interval`, with up to `tolerance` of credit.
#[derive(Clone, Copy, Debug)]
struct Rate {
    interval: Duration,
    tolerance: Duration,
}

impl Rate {
    /// `per_second` answers a second, bursts of a tenth of a second's worth.
    fn new(per_second: u32) -> Option<Rate> {
        if per_second == 0 {
            return None;
        }
        let interval = Duration::from_secs(1) / per_second;
        let burst = (per_second / 10).max(1);
        Some(Rate {
            interval,
            tolerance: interval * (burst - 1),
        })
    }

    /// GCRA: `tat` is when the budget is whole again (the theoretical
    /// arrival time). An answer is allowed while that is at most
    /// `tolerance` ahead of now, and moves it one interval on.
    fn admit(&self, tat: &mut Instant, now: Instant) -> bool {
        let start = (*tat).max(now);
        if start - now > self.tolerance {
            return false;
        }
        *tat = start + self.interval;
        true
    }
}

/// The rules for one socket, with the state they need.
#[derive(Debug)]
pub struct Gate {
    /// Loopback sources skip the per-source limit.
    exempt_loopback: bool,
    per_source: Option<Rate>,
    total: Option<Rate>,
    sources: HashMap<IpAddr, Instant>,
    /// The budget that new sources share while the table is full.
    overflow: Instant,
    total_tat: Instant,
    last_sweep: Instant,
    host: HostAddrs,
}

/// This host's addresses, read when needed and kept for a while.
#[derive(Debug)]
struct HostAddrs {
    read: fn() -> Vec<IpAddr>,
    addrs: Vec<IpAddr>,
    read_at: Option<Instant>,
}

impl HostAddrs {
    /// Whether `ip` (canonical) is one of this host's addresses.
    fn contains(&mut self, ip: IpAddr, now: Instant) -> bool {
        if ip.is_loopback() {
            return true;
        }
        if self
            .read_at
            .is_none_or(|t| now.saturating_duration_since(t) >= HOST_ADDRESSES_FOR)
        {
            self.addrs = (self.read)();
            self.read_at = Some(now);
        }
        self.addrs.iter().any(|a| a.to_canonical() == ip)
    }
}

impl Gate {
    /// A gate with these limits, starting at `now`.
    pub fn new(limits: RateLimits, now: Instant) -> Gate {
        Gate::with_host(limits, now, crate::os::host_addresses)
    }

    /// A gate that learns this host's addresses from `read`.
    fn with_host(limits: RateLimits, now: Instant, read: fn() -> Vec<IpAddr>) -> Gate {
        Gate {
            exempt_loopback: limits.exempt_loopback,
            per_source: Rate::new(limits.per_source),
            total: Rate::new(limits.total),
            sources: HashMap::new(),
            overflow: now,
            total_tat: now,
            last_sweep: now,
            host: HostAddrs {
                read,
                addrs: Vec::new(),
                read_at: None,
            },
        }
    }

    /// Whether a datagram from `source`, sent to the server's port
    /// `own_port`, gets an answer.
    pub fn check(
        &mut self,
        source: SocketAddr,
        own_port: u16,
        now: Instant,
    ) -> Result<(), Refusal> {
        let ip = source.ip().to_canonical();
        if matches!(source.port(), 0 | 7 | 9 | 13 | 17 | 19) {
            return Err(Refusal::LoopPort);
        }
        if source.port() == own_port {
            return Err(Refusal::OwnPort);
        }
        if served::serves_port(source.port()) && self.host.contains(ip, now) {
            return Err(Refusal::OwnProcess);
        }
        if let Some(rate) = self.per_source
            && !(self.exempt_loopback && ip.is_loopback())
        {
            if now - self.last_sweep >= SWEEP_EVERY {
                self.sweep(now);
            }
            let full = self.sources.len() >= MAX_SOURCES;
            let tat = match self.sources.get_mut(&ip) {
                Some(tat) => tat,
                None if full => &mut self.overflow,
                None => self.sources.entry(ip).or_insert(now),
            };
            if !rate.admit(tat, now) {
                return Err(Refusal::SourceRate);
            }
        }
        if let Some(rate) = self.total
            && !rate.admit(&mut self.total_tat, now)
        {
            return Err(Refusal::TotalRate);
        }
        Ok(())
    }

    /// Forgets sources whose budget is whole again: they lose nothing.
    fn sweep(&mut self, now: Instant) {
        self.sources.retain(|_, tat| *tat > now);
        self.last_sweep = now;
    }

    /// Source addresses remembered now.
    pub fn sources(&self) -> usize {
        self.sources.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    /// Answers out of `n` datagrams from `source`, spread evenly over `over`.
    fn answered(gate: &mut Gate, source: &str, n: u32, over: Duration, start: Instant) -> u32 {
        (0..n)
            .filter(|&i| {
                let now = start + over * i / n;
                gate.check(addr(source), 5000, now).is_ok()
            })
            .count() as u32
    }

    #[test]
    fn loop_ports_and_own_address_are_never_answered() {
        let now = Instant::now();
        let mut gate = Gate::new(RateLimits::default(), now);
        for port in LOOP_PORTS {
            let from = SocketAddr::new("10.0.0.1".parse().unwrap(), port);
            assert_eq!(gate.check(from, 5000, now), Err(Refusal::LoopPort));
        }
        assert_eq!(gate.check(addr("10.0.0.1:8"), 5000, now), Ok(()));
        // The server's own port, from its own address, another of this
        // host's, or another host: never.
        for from in [
            "127.0.0.1:5000",
            "127.0.0.2:5000",
            "[::ffff:10.0.0.1]:5000",
            "[2001:db8::1]:5000",
        ] {
            assert_eq!(
                gate.check(addr(from), 5000, now),
                Err(Refusal::OwnPort),
                "{from}"
            );
        }
    }

    #[test]
    fn the_other_ports_of_this_process_are_never_answered_from_this_host() {
        let now = Instant::now();
        let host = || vec!["192.0.2.7".parse().unwrap(), "2001:db8::7".parse().unwrap()];
        let mut gate = Gate::with_host(RateLimits::default(), now, host);
        // A port no other test registers: this process serves UDP on it.
        let _other = served::Served::port(61_900);
        for from in [
            "127.0.0.1:61900",
            "127.9.9.9:61900",
            "[::1]:61900",
            "192.0.2.7:61900",
            "[::ffff:192.0.2.7]:61900",
            "[2001:db8::7]:61900",
        ] {
            assert_eq!(
                gate.check(addr(from), 5000, now),
                Err(Refusal::OwnProcess),
                "{from}"
            );
        }
        // From another host, or another port: answered (the loop guard
        // watches those).
        assert_eq!(gate.check(addr("198.51.100.1:61900"), 5000, now), Ok(()));
        assert_eq!(gate.check(addr("127.0.0.1:61901"), 5000, now), Ok(()));
    }

    #[test]
    fn a_flood_gets_its_rate_and_a_tenth_of_a_second_of_burst() {
        let start = Instant::now();
        let limits = RateLimits {
            per_source: 100,
            total: 0,
            exempt_loopback: false,
        };
        let mut gate = Gate::new(limits, start);
        // 10,000 datagrams in 2 s from one source: 2 s of rate plus the burst.
        let got = answered(
            &mut gate,
            "127.0.0.1:4000",
            10_000,
            Duration::from_secs(2),
            start,
        );
        assert!((200..=211).contains(&got), "{got}");
        // Another source is served meanwhile.
        assert_eq!(
            gate.check(addr("127.0.0.2:4000"), 5000, start + Duration::from_secs(2)),
            Ok(())
        );
    }

    #[test]
    fn loopback_is_exempt_by_default_and_others_get_the_default_rate() {
        let start = Instant::now();
        let mut gate = Gate::new(RateLimits::default(), start);
        let local = answered(
            &mut gate,
            "127.0.0.1:4000",
            5000,
            Duration::from_secs(1),
            start,
        );
        assert_eq!(local, 5000);
        let remote = answered(
            &mut gate,
            "[2001:db8::1]:4000",
            5000,
            Duration::from_secs(1),
            start,
        );
        assert!((1000..=1100).contains(&remote), "{remote}");
    }

    #[test]
    fn the_total_rate_holds_every_source_together() {
        let start = Instant::now();
        let limits = RateLimits {
            per_source: 0,
            total: 50,
            exempt_loopback: false,
        };
        let mut gate = Gate::new(limits, start);
        let mut got = 0;
        for i in 0..1000u32 {
            let now = start + Duration::from_secs(1) * i / 1000;
            let source = SocketAddr::new(IpAddr::from([10, 0, (i % 7) as u8, 1]), 4000);
            if gate.check(source, 5000, now).is_ok() {
                got += 1;
            }
        }
        assert!((50..=56).contains(&got), "{got}");
    }

    #[test]
    fn the_source_table_is_bounded_and_swept() {
        let start = Instant::now();
        let limits = RateLimits {
            per_source: 10,
            total: 0,
            exempt_loopback: false,
        };
        let mut gate = Gate::new(limits, start);
        for i in 0..(MAX_SOURCES as u32 + 1000) {
            let source = SocketAddr::new(IpAddr::from(i.to_be_bytes()), 4000);
            let _ = gate.check(source, 5000, start);
        }
        assert_eq!(gate.sources(), MAX_SOURCES);
        // A second later every budget is whole again: the table empties.
        let later = start + Duration::from_secs(2);
        assert_eq!(gate.check(addr("10.9.9.9:4000"), 5000, later), Ok(()));
        assert_eq!(gate.sources(), 1);
    }
}
