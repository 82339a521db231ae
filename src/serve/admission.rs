//! Who gets a place when a server that makes room (`WhenFull::MakeRoom`,
//! the `/metrics` endpoint) is crowded. Pure: the places in, a decision
//! out, no socket and no clock, so that every case is a unit test; the loop
//! (`worker.rs`) reads the candidate and closes.
//!
//! A scrape must get through even past connections that hold places on
//! purpose and send nothing (issue 14: 64 of them blinded the endpoint for
//! as long as they were reopened). So, for a newcomer:
//!
//! 1. Its source address already holds [`Limits::per_source`] places: it
//!    takes the place of that source's oldest connection that has sent
//!    nothing; if every one of them is mid-request, it is turned away.
//! 2. Otherwise, the table holds [`Limits::total`]: it takes the place of
//!    the oldest connection that has sent nothing, from any source; if
//!    every place is mid-request, it is turned away.
//! 3. Otherwise it gets a free place.
//!
//! A connection that has sent a byte of its request is never evicted: the
//! service's deadlines bound it already, and it may be a scrape that is
//! half-way in. The oldest silent one goes first: a scraper sends its
//! request right behind its handshake, so its place is only taken if that
//! many newer connections come in before its first byte does, while a
//! holder that sends nothing is always older than the next newcomer.
//!
//! The source is the peer's IP address with an IPv4-mapped IPv6 address
//! counted as its IPv4 one, as `--max-conns-per-ip` counts it
//! (`net::Peer::ip`); a place with no address counts toward no source.

use std::net::IpAddr;

/// How many places the endpoint has.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Limits {
    /// Places in all.
    pub(crate) total: usize,
    /// Places one source address may hold.
    pub(crate) per_source: usize,
}

/// One taken place, as the policy sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Place {
    /// Its source address; `None` counts toward no source.
    pub(crate) source: Option<IpAddr>,
    /// Its order of arrival: a lower number came in first.
    pub(crate) arrival: u64,
    /// It has not sent a byte yet.
    pub(crate) silent: bool,
}

/// The limit a newcomer met.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Full {
    /// Its source address held all the places one source may.
    Source,
    /// Every place was taken.
    Table,
}

/// What to do with a newcomer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Admission {
    /// There is a free place.
    Admit,
    /// Close the place of this key, then admit the newcomer.
    Evict(usize, Full),
    /// No place may be taken from a silent connection: close the newcomer.
    TurnAway(Full),
}

/// Whether a newcomer from `source` gets a place among `places` (each with
/// its key), and whose.
pub(crate) fn admit(
    places: impl IntoIterator<Item = (usize, Place)>,
    source: Option<IpAddr>,
    limits: Limits,
) -> Admission {
    let mut total = 0;
    let mut of_source = 0;
    // (arrival, key) of the oldest silent place: of all, of the source.
    let mut oldest: Option<(u64, usize)> = None;
    let mut oldest_of_source: Option<(u64, usize)> = None;
    for (key, place) in places {
        total += 1;
        let same = source.is_some() && place.source == source;
        if same {
            of_source += 1;
        }
        if place.silent {
            let this = Some((place.arrival, key));
            if oldest.is_none_or(|(a, _)| place.arrival < a) {
                oldest = this;
            }
            if same && oldest_of_source.is_none_or(|(a, _)| place.arrival < a) {
                oldest_of_source = this;
            }
        }
    }
    let (full, victim) = if of_source >= limits.per_source {
        (Full::Source, oldest_of_source)
    } else if total >= limits.total {
        (Full::Table, oldest)
    } else {
        return Admission::Admit;
    };
    victim.map_or(Admission::TurnAway(full), |(_, key)| {
        Admission::Evict(key, full)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: Limits = Limits {
        total: 4,
        per_source: 2,
    };

    fn ip(last: u8) -> Option<IpAddr> {
        Some(IpAddr::from([10, 0, 0, last]))
    }

    /// Places keyed 0, 1, ... in the given order; arrivals as given.
    fn places(list: &[(Option<IpAddr>, u64, bool)]) -> Vec<(usize, Place)> {
        list.iter()
            .enumerate()
            .map(|(key, &(source, arrival, silent))| {
                (
                    key,
                    Place {
                        source,
                        arrival,
                        silent,
                    },
                )
            })
            .collect()
    }

    #[test]
    fn a_newcomer_gets_a_free_place_while_its_source_and_the_table_have_room() {
        assert_eq!(admit(places(&[]), ip(1), LIMITS), Admission::Admit);
        let taken = places(&[(ip(1), 0, true), (ip(2), 1, true), (ip(2), 2, true)]);
        assert_eq!(admit(taken, ip(1), LIMITS), Admission::Admit);
    }

    #[test]
    fn a_source_at_its_limit_gives_up_its_own_oldest_silent_place_not_an_older_one_of_another() {
        let taken = places(&[(ip(2), 0, true), (ip(1), 5, true), (ip(1), 3, true)]);
        assert_eq!(
            admit(taken, ip(1), LIMITS),
            Admission::Evict(2, Full::Source)
        );
    }

    #[test]
    fn a_full_table_gives_up_the_oldest_silent_place_of_all() {
        let taken = places(&[
            (ip(1), 4, true),
            (ip(2), 2, false),
            (ip(3), 3, true),
            (ip(4), 1, false),
        ]);
        assert_eq!(
            admit(taken, ip(5), LIMITS),
            Admission::Evict(2, Full::Table)
        );
    }

    #[test]
    fn a_place_that_has_sent_a_byte_is_never_given_up() {
        // The source's places are both mid-request: turned away, though
        // another source has a silent one and the table has room.
        let taken = places(&[(ip(1), 0, false), (ip(1), 1, false), (ip(2), 2, true)]);
        assert_eq!(
            admit(taken, ip(1), LIMITS),
            Admission::TurnAway(Full::Source)
        );
        let taken = places(&[
            (ip(1), 0, false),
            (ip(2), 1, false),
            (ip(3), 2, false),
            (ip(4), 3, false),
        ]);
        assert_eq!(
            admit(taken, ip(5), LIMITS),
            Admission::TurnAway(Full::Table)
        );
    }

    #[test]
    fn a_place_with_no_address_counts_toward_no_source() {
        let taken = places(&[(None, 0, true), (None, 1, true), (None, 2, true)]);
        assert_eq!(admit(taken.clone(), None, LIMITS), Admission::Admit);
        let mut full = taken;
        full.extend(places(&[(None, 3, false)]).into_iter().map(|(_, p)| (3, p)));
        assert_eq!(admit(full, None, LIMITS), Admission::Evict(0, Full::Table));
    }

    #[test]
    fn the_source_limit_is_checked_before_the_table_one() {
        // Both are reached: the newcomer's own source gives up a place,
        // not the oldest of all.
        let taken = places(&[
            (ip(2), 0, true),
            (ip(3), 1, true),
            (ip(1), 2, true),
            (ip(1), 3, true),
        ]);
        assert_eq!(
            admit(taken, ip(1), LIMITS),
            Admission::Evict(2, Full::Source)
        );
    }
}
