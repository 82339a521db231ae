//! TARGET specs: any endpoint, or an IP endpoint whose port is a list or a
//! range, expanded into one endpoint per port. Pure: no sockets, no resolver.
//!
//! | written                      | probes                                       |
//! |------------------------------|----------------------------------------------|
//! | `HOST:PORT`, `tcp://…`, `PORT` | one endpoint, as every echokit command takes |
//! | `HOST:8000-8100`             | ports 8000 to 8100, both included            |
//! | `HOST:22,80,443`             | those ports, in that order                   |
//! | `HOST:22,8000-8010`          | a mix                                        |
//! | `udp://HOST:53,123`          | the same for UDP                             |
//! | `8000-8100`, `:22,80`        | `127.0.0.1`, and both loopbacks, as `PORT` and `:PORT` mean |
//! | `unix:PATH`, `unixgram:PATH` | one Unix socket                              |
//!
//! The host part goes through [`Endpoint`]'s own parser, so every host form
//! and every error message is the one the other commands give.

use crate::endpoint::{Endpoint, ParseError};

/// The most probes one command line may expand to: a whole port range of
/// one host (1-65535) fits; more is almost surely a typo (each probe costs a
/// socket and a packet, and the output would be unreadable).
pub const MAX_TARGETS: usize = 65_536;

/// Why a TARGET cannot be probed. Every message says what was expected.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum TargetError {
    /// Not an endpoint at all.
    #[error(transparent)]
    Endpoint(#[from] ParseError),
    /// A list item that is neither a port nor a range.
    #[error(
        "`{item}` in `{spec}` is not a port or a range: expected e.g. 80, 8000-8100 or 22,80,443"
    )]
    BadPorts {
        /// The whole TARGET.
        spec: String,
        /// The item that did not parse.
        item: String,
    },
    /// A range whose end comes before its start.
    #[error("`{lo}-{hi}` in `{spec}` runs backwards: write the smaller port first, {hi}-{lo}")]
    Backwards {
        /// The whole TARGET.
        spec: String,
        /// The range's first port as written.
        lo: u16,
        /// The range's last port as written.
        hi: u16,
    },
    /// Port 0, which no server listens on.
    #[error(
        "`{0}`: port 0 cannot be probed: it asks the kernel for a free port when binding, \
         and nothing listens on it; ports run from 1 to 65535"
    )]
    PortZero(String),
    /// The specs expand to more probes than [`MAX_TARGETS`].
    #[error(
        "the targets expand to {count} probes, more than {MAX_TARGETS}: probe one host's \
         ports at a time"
    )]
    TooMany {
        /// How many probes they would make.
        count: usize,
    },
}

/// One endpoint to probe and the TARGET it came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    /// The TARGET as written on the command line.
    pub spec: String,
    /// One endpoint of it: one port, not yet resolved.
    pub endpoint: Endpoint,
}

/// Expands every spec, in order; fails on the first bad one or when the
/// total passes [`MAX_TARGETS`].
pub fn expand(specs: &[String]) -> Result<Vec<Target>, TargetError> {
    let mut out = Vec::new();
    for spec in specs {
        let endpoints = parse(spec)?;
        let count = out.len() + endpoints.len();
        if count > MAX_TARGETS {
            return Err(TargetError::TooMany { count });
        }
        out.extend(endpoints.into_iter().map(|endpoint| Target {
            spec: spec.clone(),
            endpoint,
        }));
    }
    Ok(out)
}

/// The endpoints of one TARGET: one per port, in the order written, each
/// port once.
pub fn parse(spec: &str) -> Result<Vec<Endpoint>, TargetError> {
    let Some((head, ports)) = split_ports(spec) else {
        let endpoint: Endpoint = spec.parse()?;
        if endpoint.host_port().is_some_and(|hp| hp.port == 0) {
            return Err(TargetError::PortZero(spec.into()));
        }
        return Ok(vec![endpoint]);
    };
    let ports = port_set(spec, ports)?;
    // The host part is checked by the endpoint parser, with a stand-in port.
    let template: Endpoint = format!("{head}1").parse()?;
    Ok(ports
        .into_iter()
        .map(|port| {
            let mut endpoint = template.clone();
            if let Endpoint::Tcp(hp) | Endpoint::Udp(hp) = &mut endpoint {
                hp.port = port;
            }
            endpoint
        })
        .collect())
}

/// `(everything before the ports, the ports)` when the port part is a list
/// or a range; `None` for a plain endpoint (left to the endpoint parser).
fn split_ports(spec: &str) -> Option<(&str, &str)> {
    if spec.starts_with("unix:") || spec.starts_with("unixgram:") {
        return None;
    }
    let rest_at = spec.find("://").map_or(0, |i| i + 3);
    let rest = &spec[rest_at..];
    let is_port_set = |p: &str| {
        !p.is_empty()
            && p.contains([',', '-'])
            && p.bytes()
                .all(|b| b.is_ascii_digit() || b == b',' || b == b'-')
    };
    // `PORTS` alone means 127.0.0.1, as a lone `PORT` does.
    if is_port_set(rest) {
        return Some((&spec[..rest_at], rest));
    }
    let colon = if rest.starts_with('[') {
        rest.find("]:")? + 1
    } else {
        rest.rfind(':')?
    };
    let ports = &rest[colon + 1..];
    is_port_set(ports).then(|| spec.split_at(rest_at + colon + 1))
}

/// `22,80,8000-8010`: the ports in order, each once.
fn port_set(spec: &str, text: &str) -> Result<Vec<u16>, TargetError> {
    let mut seen = vec![false; usize::from(u16::MAX) + 1];
    let mut out = Vec::new();
    for item in text.split(',') {
        let bad = || TargetError::BadPorts {
            spec: spec.into(),
            item: item.into(),
        };
        let port = |s: &str| -> Result<u16, TargetError> {
            if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
                return Err(bad());
            }
            match s.parse::<u16>() {
                Ok(0) => Err(TargetError::PortZero(spec.into())),
                Ok(p) => Ok(p),
                Err(_) => Err(bad()),
            }
        };
        let (lo, hi) = match item.split_once('-') {
            Some((a, b)) => (port(a)?, port(b)?),
            None => {
                let p = port(item)?;
                (p, p)
            }
        };
        if lo > hi {
            return Err(TargetError::Backwards {
                spec: spec.into(),
                lo,
                hi,
            });
        }
        for p in lo..=hi {
            if !std::mem::replace(&mut seen[usize::from(p)], true) {
                out.push(p);
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn shown(spec: &str) -> Vec<String> {
        parse(spec)
            .unwrap_or_else(|e| panic!("{spec}: {e}"))
            .iter()
            .map(ToString::to_string)
            .collect()
    }

    #[test]
    fn plain_endpoints_parse_as_everywhere_else() {
        assert_eq!(shown("127.0.0.1:22"), ["tcp://127.0.0.1:22"]);
        assert_eq!(shown("8080"), ["tcp://127.0.0.1:8080"]);
        assert_eq!(shown("[::1]:80"), ["tcp://[::1]:80"]);
        assert_eq!(shown("localhost:80"), ["tcp://localhost:80"]);
        assert_eq!(shown("udp://127.0.0.1:53"), ["udp://127.0.0.1:53"]);
        assert_eq!(shown("unix:/tmp/a-b,c.sock"), ["unix:/tmp/a-b,c.sock"]);
        assert_eq!(shown("unixgram:@x-1"), ["unixgram:@x-1"]);
    }

    #[test]
    fn ranges_and_lists_expand_in_order_once() {
        assert_eq!(
            shown("127.0.0.1:8000-8002"),
            [
                "tcp://127.0.0.1:8000",
                "tcp://127.0.0.1:8001",
                "tcp://127.0.0.1:8002"
            ]
        );
        assert_eq!(
            shown("tcp://localhost:443,22,80,22"),
            [
                "tcp://localhost:443",
                "tcp://localhost:22",
                "tcp://localhost:80"
            ]
        );
        assert_eq!(
            shown("[::1]:22,8000-8001"),
            ["tcp://[::1]:22", "tcp://[::1]:8000", "tcp://[::1]:8001"]
        );
        assert_eq!(
            shown("udp://10.0.0.1:53,123"),
            ["udp://10.0.0.1:53", "udp://10.0.0.1:123"]
        );
        assert_eq!(shown("7-8"), ["tcp://127.0.0.1:7", "tcp://127.0.0.1:8"]);
        assert_eq!(shown(":22,80"), ["tcp://:22", "tcp://:80"]);
        assert_eq!(parse("127.0.0.1:1-65535").unwrap().len(), 65535);
    }

    #[test]
    fn errors_say_what_was_expected() {
        let cases = [
            (
                "127.0.0.1:9000-8000",
                "runs backwards: write the smaller port first, 8000-9000",
            ),
            ("127.0.0.1:0", "port 0 cannot be probed"),
            ("127.0.0.1:0-10", "port 0 cannot be probed"),
            (
                "127.0.0.1:80,,81",
                "`` in `127.0.0.1:80,,81` is not a port or a range",
            ),
            ("127.0.0.1:1-2-3", "`1-2-3`"),
            ("127.0.0.1:80-70000", "`80-70000`"),
            ("bad host:80,81", "`bad host` is not a host name"),
            ("http://x:80,81", "unknown scheme"),
            ("::1:80,81", "needs brackets"),
            ("localhost", "has no port"),
        ];
        for (spec, want) in cases {
            let err = parse(spec).unwrap_err().to_string();
            assert!(err.contains(want), "{spec}: {err}");
        }
    }

    #[test]
    fn expansion_is_capped() {
        let specs = vec!["127.0.0.1:1-65535".to_string(), "[::1]:1-2".to_string()];
        assert_eq!(
            expand(&specs).unwrap_err(),
            TargetError::TooMany { count: 65537 }
        );
        let t = expand(&["localhost:1,2".to_string()]).unwrap();
        assert_eq!(t.len(), 2);
        assert!(t.iter().all(|t| t.spec == "localhost:1,2"));
    }

    proptest! {
        #[test]
        fn any_port_list_gives_its_ports_in_order_once(
            items in prop::collection::vec((1u16.., 0u16..50), 1..20)
        ) {
            let text: Vec<String> = items
                .iter()
                .map(|&(lo, len)| {
                    let hi = lo.saturating_add(len);
                    if hi == lo { lo.to_string() } else { format!("{lo}-{hi}") }
                })
                .collect();
            let spec = format!("127.0.0.1:{}", text.join(","));
            let mut want: Vec<u16> = Vec::new();
            for &(lo, len) in &items {
                for p in lo..=lo.saturating_add(len) {
                    if !want.contains(&p) {
                        want.push(p);
                    }
                }
            }
            let got: Vec<u16> = parse(&spec)
                .unwrap()
                .iter()
                .map(|e| e.host_port().unwrap().port)
                .collect();
            prop_assert_eq!(got, want);
        }

        #[test]
        fn parsing_never_panics(s in "\\PC{0,40}") {
            let _ = parse(&s);
        }
    }
}
