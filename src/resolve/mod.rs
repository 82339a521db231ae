//! Name resolution as the socket guide's Python calls see it: this host's
//! name (`gethostname`), `gethostbyname`'s one IPv4 address, the whole
//! `getaddrinfo` list in the resolver's order, `getnameinfo` for the names
//! of addresses, services from `/etc/services`, and why the answer can
//! differ elsewhere ([`config`]).
//!
//! Every call is glibc's own (through the `dns-lookup` crate), with the
//! arguments Python passes, so the answers are the ones Python gets.
//! Lookups block, and DNS may never answer: each NAME is looked up on a
//! thread of its own and given up after [`Options::timeout`]. A thread given
//! up on ends when glibc's own timeouts end it (`/etc/resolv.conf`'s
//! `timeout` times `attempts`); nothing waits for it.
//!
//! | file        | role                                                  |
//! |-------------|-------------------------------------------------------|
//! | `name.rs`   | the NAME syntax: `HOST`, `HOST:SERVICE`, `[IPv6]:SERVICE`, an IP |
//! | `config.rs` | the resolver's files, parsed and explained (no lookup) |
//! | `render.rs` | the report as text and JSON                            |
//!
//! ```
//! use std::time::Duration;
//! use echokit::resolve::{self, Options};
//!
//! let names = ["127.0.0.1:80".parse()?];
//! let report = resolve::run(&names, &Options { timeout: Duration::from_secs(5), reverse: false })?;
//! let lookup = report.outcomes[0].lookup.as_ref().expect("an IP address always resolves");
//! assert_eq!(lookup.gethostbyname, Some(std::net::Ipv4Addr::LOCALHOST));
//! assert!(lookup.addresses.iter().all(|a| a.address.port() == 80));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

pub mod config;
pub mod name;
mod render;

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use dns_lookup::{AddrInfoHints, LookupErrorKind};

use crate::endpoint::resolver_reason;
use crate::exit::{Classify, ExitCode};

pub use config::ResolverConfig;
pub use name::{Name, NameError};

/// How long one NAME may take. A DNS answer takes milliseconds; glibc waits
/// 5 s for a server that does not answer before it tries the next one, so
/// this is one such wait, and `--timeout` allows more.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);

/// NAMEs looked up at once, one thread each: a command line's worth in one
/// round, without a thread per name for a list of thousands.
pub const MAX_PARALLEL: usize = 32;

/// What to look up besides the addresses.
#[derive(Clone, Copy, Debug)]
pub struct Options {
    /// How long each NAME may take, its reverse lookups included.
    pub timeout: Duration,
    /// Look up the name of each address (`getnameinfo`).
    pub reverse: bool,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            timeout: DEFAULT_TIMEOUT,
            reverse: false,
        }
    }
}

/// What the resolver answered for one NAME.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Lookup {
    /// The service, when the NAME has one.
    pub service: Option<Service>,
    /// What Python's `socket.gethostbyname(host)` returns: the first address
    /// of `getaddrinfo(host, None, AF_INET)`, which is how CPython implements
    /// it. `None` when the host has no IPv4 address.
    pub gethostbyname: Option<Ipv4Addr>,
    /// Why `gethostbyname` has no answer, in the resolver's words.
    pub gethostbyname_error: Option<String>,
    /// The canonical name (`AI_CANONNAME`): the name the addresses are
    /// recorded under, after DNS aliases (CNAME records).
    pub canonical_name: Option<String>,
    /// `getaddrinfo(host, service)` with no family and no socket type, as
    /// Python's `socket.getaddrinfo(host, service)`: one entry per address
    /// and socket type, in the resolver's order.
    pub addresses: Vec<AddrEntry>,
    /// How long that `getaddrinfo` call took.
    pub elapsed: Duration,
    /// The name of each distinct address, when asked for.
    pub reverse: Option<Vec<Reverse>>,
}

/// A service, as `/etc/services` (through `getservbyname`) knows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Service {
    /// The port.
    pub port: u16,
    /// Its name in `/etc/services` (`http` for 80), if it has one.
    pub name: Option<String>,
    /// The protocols `/etc/services` lists it for (`tcp`, `udp`).
    pub protocols: Vec<&'static str>,
}

/// One entry of the `getaddrinfo` list: what `socket()` and `connect()` take.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AddrEntry {
    /// The address family (`AF_INET`, `AF_INET6`).
    pub family: i32,
    /// The socket type (`SOCK_STREAM`, `SOCK_DGRAM`, `SOCK_RAW`).
    pub socktype: i32,
    /// The protocol number (6 TCP, 17 UDP, 0 for a raw socket's choice).
    pub protocol: i32,
    /// The address and port.
    pub address: SocketAddr,
}

impl AddrEntry {
    /// The family's C name, as Python's `socket.AddressFamily` names it.
    pub fn family_name(&self) -> String {
        match self.family {
            libc::AF_INET => "AF_INET".into(),
            libc::AF_INET6 => "AF_INET6".into(),
            libc::AF_UNIX => "AF_UNIX".into(),
            other => format!("family {other}"),
        }
    }

    /// The socket type's C name, as Python's `socket.SocketKind` names it.
    pub fn type_name(&self) -> String {
        match self.socktype {
            libc::SOCK_STREAM => "SOCK_STREAM".into(),
            libc::SOCK_DGRAM => "SOCK_DGRAM".into(),
            libc::SOCK_RAW => "SOCK_RAW".into(),
            libc::SOCK_RDM => "SOCK_RDM".into(),
            libc::SOCK_SEQPACKET => "SOCK_SEQPACKET".into(),
            other => format!("type {other}"),
        }
    }
}

/// The name of one address (`getnameinfo` with `NI_NAMEREQD`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reverse {
    /// The address.
    pub address: IpAddr,
    /// Its name, or why there is none.
    pub answer: Result<String, ReverseFailure>,
}

/// Why an address has no name.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ReverseFailure {
    /// Neither DNS nor `/etc/hosts` has a name for it.
    #[error("no name for this address (no PTR record, no /etc/hosts line)")]
    NoName,
    /// The DNS server did not answer.
    #[error("the DNS server did not answer (a temporary failure)")]
    TemporaryFailure,
    /// No answer within the timeout.
    #[error("no answer within {}", crate::text::duration(*.0))]
    TimedOut(Duration),
    /// Anything else, in the resolver's words.
    #[error("{0}")]
    Failed(String),
}

/// Why a NAME did not resolve. Each message says the cause and what to try.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LookupError {
    /// No source knows the name (`EAI_NONAME`).
    #[error(
        "`{name}` does not resolve: it is not in /etc/hosts and DNS has no record of it; \
         check the spelling, or add it to /etc/hosts"
    )]
    NoSuchName {
        /// The host looked up.
        name: String,
    },
    /// The name exists but has no address (`EAI_NODATA`).
    #[error("`{name}` has no address: the name exists in DNS but has no A or AAAA record")]
    NoAddress {
        /// The host looked up.
        name: String,
    },
    /// The DNS server did not answer (`EAI_AGAIN`).
    #[error(
        "`{name}` did not resolve: the DNS server did not answer (a temporary failure); \
         check the nameserver lines of /etc/resolv.conf and the network, then try again"
    )]
    TemporaryFailure {
        /// The host looked up.
        name: String,
    },
    /// The DNS server failed for good (`EAI_FAIL`: it refused, or broke).
    #[error(
        "`{name}` did not resolve: the DNS server failed to answer (refused or broken); \
         try again later, or another nameserver in /etc/resolv.conf"
    )]
    ServerFailure {
        /// The host looked up.
        name: String,
    },
    /// A service name `/etc/services` does not list.
    #[error(
        "unknown service `{service}`: /etc/services lists no such name for tcp or udp; \
         give a port number instead (as in {host}:80) or a name listed there"
    )]
    UnknownService {
        /// The host it came with.
        host: String,
        /// The service as written.
        service: String,
    },
    /// The resolver did not answer within the timeout.
    #[error(
        "no answer for `{name}` within {}: the resolver did not answer in time (its sources \
         are the hosts: line of /etc/nsswitch.conf, its DNS servers in /etc/resolv.conf); \
         check the network, or allow longer with --timeout",
        crate::text::duration(*.timeout)
    )]
    TimedOut {
        /// The NAME looked up.
        name: String,
        /// How long it was given.
        timeout: Duration,
    },
    /// `--reverse` on an IP address that has no name.
    #[error("no name for {address}: no PTR record in DNS and no line in /etc/hosts")]
    NoReverseName {
        /// The address.
        address: IpAddr,
    },
    /// The reverse lookup of an IP address failed otherwise.
    #[error("no name for {address}: {reason}")]
    ReverseFailed {
        /// The address.
        address: IpAddr,
        /// Why.
        reason: ReverseFailure,
    },
    /// Any other resolver failure, in its own words.
    #[error("the resolver failed for `{name}`: {reason}")]
    System {
        /// The NAME looked up.
        name: String,
        /// The resolver's words.
        reason: String,
    },
    /// This host's own name could not be read.
    #[error("cannot read this host's name (gethostname): {0}")]
    Hostname(#[source] std::io::Error),
}

impl Classify for LookupError {
    fn exit_code(&self) -> ExitCode {
        match self {
            LookupError::NoSuchName { .. }
            | LookupError::NoAddress { .. }
            | LookupError::TemporaryFailure { .. }
            | LookupError::ServerFailure { .. }
            | LookupError::NoReverseName { .. }
            | LookupError::ReverseFailed { .. } => ExitCode::Unreachable,
            LookupError::UnknownService { .. } => ExitCode::Usage,
            LookupError::TimedOut { .. } => ExitCode::TimedOut,
            LookupError::System { .. } | LookupError::Hostname(_) => ExitCode::Failures,
        }
    }
}

/// One NAME and what became of it.
#[derive(Debug)]
pub struct Outcome {
    /// The NAME as given.
    pub name: Name,
    /// The answer; with an error too when only `--reverse` of an IP address failed.
    pub lookup: Option<Lookup>,
    /// Why the NAME failed, if it did.
    pub error: Option<LookupError>,
}

/// Everything `echokit resolve` reports.
#[derive(Debug)]
pub struct Report {
    /// This host's name, from `gethostname()`.
    pub hostname: String,
    /// One per NAME, in the order given.
    pub outcomes: Vec<Outcome>,
    /// The resolver's files, for why answers can differ.
    pub config: ResolverConfig,
}

impl Report {
    /// 0 when every NAME resolved, else the first failure's code.
    pub fn exit_code(&self) -> ExitCode {
        self.errors()
            .next()
            .map_or(ExitCode::Success, Classify::exit_code)
    }

    /// The failures, in the order of the NAMEs.
    pub fn errors(&self) -> impl Iterator<Item = &LookupError> {
        self.outcomes.iter().filter_map(|o| o.error.as_ref())
    }
}

/// This host's name, as `gethostname()` (and Python's `socket.gethostname()`) gives it.
pub fn hostname() -> Result<String, LookupError> {
    dns_lookup::get_hostname().map_err(LookupError::Hostname)
}

/// Looks up every NAME, [`MAX_PARALLEL`] at a time, each within
/// `options.timeout`, and reads the resolver's files. Fails only when this
/// host's name cannot be read; each NAME's failure is in its [`Outcome`].
pub fn run(names: &[Name], options: &Options) -> Result<Report, LookupError> {
    let hostname = hostname()?;
    let mut outcomes = Vec::with_capacity(names.len());
    for round in names.chunks(MAX_PARALLEL) {
        let pending: Vec<_> = round.iter().map(|n| start(n, options.reverse)).collect();
        let deadline = crate::deadline::from_now(options.timeout);
        for (name, steps) in round.iter().zip(pending) {
            outcomes.push(finish(name, steps, deadline, options));
        }
    }
    Ok(Report {
        hostname,
        outcomes,
        config: ResolverConfig::read(),
    })
}

/// What a lookup thread sends: the forward answer first, then one reverse
/// answer per distinct address.
struct Steps {
    forward: Receiver<Result<Lookup, LookupError>>,
    reverse: Receiver<Reverse>,
}

/// Starts the lookups of one NAME on a thread of its own.
fn start(name: &Name, reverse: bool) -> Result<Steps, LookupError> {
    let (forward_tx, forward) = mpsc::sync_channel(1);
    let (reverse_tx, reverse_rx) = mpsc::channel();
    let thread_name = name.clone();
    std::thread::Builder::new()
        .name("resolve".into())
        .spawn(move || {
            let answer = forward_lookup(&thread_name);
            let addresses = match &answer {
                Ok(lookup) if reverse => distinct_ips(&lookup.addresses),
                _ => Vec::new(),
            };
            if forward_tx.send(answer).is_err() {
                return; // given up on
            }
            for address in addresses {
                if reverse_tx.send(reverse_lookup(address)).is_err() {
                    return;
                }
            }
        })
        .map_err(|e| LookupError::System {
            name: name.to_string(),
            reason: format!("cannot start a lookup thread: {e}"),
        })?;
    Ok(Steps {
        forward,
        reverse: reverse_rx,
    })
}

/// Waits for one NAME's answers until the deadline.
fn finish(
    name: &Name,
    steps: Result<Steps, LookupError>,
    deadline: Instant,
    options: &Options,
) -> Outcome {
    let failed = |error| Outcome {
        name: name.clone(),
        lookup: None,
        error: Some(error),
    };
    let steps = match steps {
        Ok(steps) => steps,
        Err(e) => return failed(e),
    };
    let left = || deadline.saturating_duration_since(Instant::now());
    let mut lookup = match steps.forward.recv_timeout(left()) {
        Ok(Ok(lookup)) => lookup,
        Ok(Err(e)) => return failed(e),
        Err(RecvTimeoutError::Timeout) => {
            return failed(LookupError::TimedOut {
                name: name.to_string(),
                timeout: options.timeout,
            });
        }
        Err(RecvTimeoutError::Disconnected) => return failed(thread_died(name)),
    };
    if !options.reverse {
        return Outcome {
            name: name.clone(),
            lookup: Some(lookup),
            error: None,
        };
    }
    let mut reverse = Vec::new();
    for address in distinct_ips(&lookup.addresses) {
        let answer = match steps.reverse.recv_timeout(left()) {
            Ok(found) => found.answer,
            Err(RecvTimeoutError::Timeout) => Err(ReverseFailure::TimedOut(options.timeout)),
            Err(RecvTimeoutError::Disconnected) => {
                Err(ReverseFailure::Failed("the lookup thread stopped".into()))
            }
        };
        reverse.push(Reverse { address, answer });
    }
    // For an IP address, its name is the question: no name is a failure.
    let error = match (name.ip(), reverse.first()) {
        (Some(_), Some(Reverse { address, answer })) => match answer {
            Ok(_) => None,
            Err(ReverseFailure::NoName) => Some(LookupError::NoReverseName { address: *address }),
            Err(ReverseFailure::TimedOut(timeout)) => Some(LookupError::TimedOut {
                name: name.to_string(),
                timeout: *timeout,
            }),
            Err(reason) => Some(LookupError::ReverseFailed {
                address: *address,
                reason: reason.clone(),
            }),
        },
        _ => None,
    };
    lookup.reverse = Some(reverse);
    Outcome {
        name: name.clone(),
        lookup: Some(lookup),
        error,
    }
}

/// A lookup thread that ended without an answer (it panicked).
fn thread_died(name: &Name) -> LookupError {
    LookupError::System {
        name: name.to_string(),
        reason: "the lookup thread stopped without an answer (see the panic message above)".into(),
    }
}

/// The addresses of the list, each once, in the list's order.
fn distinct_ips(entries: &[AddrEntry]) -> Vec<IpAddr> {
    let mut ips: Vec<IpAddr> = Vec::new();
    for entry in entries {
        if !ips.contains(&entry.address.ip()) {
            ips.push(entry.address.ip());
        }
    }
    ips
}

/// The blocking part: the service, `getaddrinfo`, `gethostbyname`.
fn forward_lookup(name: &Name) -> Result<Lookup, LookupError> {
    let service = match &name.service {
        Some(service) => Some(service_info(name, service)?),
        None => None,
    };
    let hints = AddrInfoHints {
        // AI_CANONNAME only fills in the first entry's ai_canonname; the
        // list and its order stay those of Python's flags=0 (a test compares).
        flags: libc::AI_CANONNAME,
        address: libc::AF_UNSPEC,
        socktype: 0,
        protocol: 0,
    };
    let started = Instant::now();
    let entries = dns_lookup::getaddrinfo(Some(&name.host), name.service.as_deref(), Some(hints))
        .map_err(|e| lookup_error(name, &e))?;
    let mut canonical_name = None;
    let mut addresses = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| LookupError::System {
            name: name.to_string(),
            reason: e.to_string(),
        })?;
        if canonical_name.is_none() {
            canonical_name = entry.canonname.clone();
        }
        addresses.push(AddrEntry {
            family: entry.address,
            socktype: entry.socktype,
            protocol: entry.protocol,
            address: entry.sockaddr,
        });
    }
    let elapsed = started.elapsed();
    let has_ipv4 = addresses.iter().any(|a| a.address.is_ipv4());
    let (gethostbyname, gethostbyname_error) = match first_ipv4(&name.host) {
        Ok(ip) => (Some(ip), None),
        Err(_) if !has_ipv4 => (
            None,
            Some("no IPv4 address (Python's socket.gethostbyname raises socket.gaierror)".into()),
        ),
        Err(why) => (None, Some(why)),
    };
    Ok(Lookup {
        service,
        gethostbyname,
        gethostbyname_error,
        canonical_name,
        addresses,
        elapsed,
        reverse: None,
    })
}

/// `socket.gethostbyname(host)` as CPython does it: the first address of
/// `getaddrinfo(host, NULL)` with the family `AF_INET`.
fn first_ipv4(host: &str) -> Result<Ipv4Addr, String> {
    let hints = AddrInfoHints {
        address: libc::AF_INET,
        ..AddrInfoHints::default()
    };
    let mut entries =
        dns_lookup::getaddrinfo(Some(host), None, Some(hints)).map_err(|e| resolver_reason(&e))?;
    match entries.next() {
        Some(Ok(entry)) => match entry.sockaddr.ip() {
            IpAddr::V4(ip) => Ok(ip),
            IpAddr::V6(ip) => Err(format!("the resolver gave an IPv6 address, {ip}")),
        },
        Some(Err(e)) => Err(e.to_string()),
        None => Err("no IPv4 address".into()),
    }
}

/// The service's port and protocols, from `/etc/services` through
/// `getaddrinfo(NULL, service)`: with no host, glibc asks no host source,
/// only the `services:` database, as `getservbyname` does.
fn service_info(name: &Name, service: &str) -> Result<Service, LookupError> {
    let port_for = |socktype| {
        let hints = AddrInfoHints {
            socktype,
            ..AddrInfoHints::default()
        };
        let mut entries = dns_lookup::getaddrinfo(None, Some(service), Some(hints)).ok()?;
        entries.next()?.ok().map(|entry| entry.sockaddr.port())
    };
    let tcp = port_for(libc::SOCK_STREAM);
    let udp = port_for(libc::SOCK_DGRAM);
    let Some(port) = tcp.or(udp) else {
        return Err(LookupError::UnknownService {
            host: name.host.clone(),
            service: service.into(),
        });
    };
    let mut protocols = Vec::new();
    let listed_name = if let Some(number) = name.port() {
        // A number: its name, if /etc/services lists one (getnameinfo asks it).
        let lookup = |flags| {
            let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, number));
            dns_lookup::getnameinfo(&addr, libc::NI_NUMERICHOST | flags)
                .ok()
                .map(|(_, service)| service)
                .filter(|s| *s != number.to_string())
        };
        let tcp_name = lookup(0);
        let udp_name = lookup(libc::NI_DGRAM);
        if tcp_name.is_some() {
            protocols.push("tcp");
        }
        if udp_name.is_some() {
            protocols.push("udp");
        }
        tcp_name.or(udp_name)
    } else {
        if tcp.is_some() {
            protocols.push("tcp");
        }
        if udp.is_some() {
            protocols.push("udp");
        }
        Some(service.to_string())
    };
    Ok(Service {
        port,
        name: listed_name,
        protocols,
    })
}

/// `getnameinfo(address, NI_NAMEREQD)`: the address's name, or why none.
fn reverse_lookup(address: IpAddr) -> Reverse {
    let answer = dns_lookup::getnameinfo(&SocketAddr::new(address, 0), libc::NI_NAMEREQD)
        .map(|(host, _)| host)
        .map_err(|e| match e.kind() {
            LookupErrorKind::NoName | LookupErrorKind::NoData => ReverseFailure::NoName,
            LookupErrorKind::Again => ReverseFailure::TemporaryFailure,
            _ => ReverseFailure::Failed(resolver_reason(&e)),
        });
    Reverse { address, answer }
}

/// The error for a failed `getaddrinfo`.
fn lookup_error(name: &Name, e: &dns_lookup::LookupError) -> LookupError {
    let host = name.host.clone();
    match e.kind() {
        LookupErrorKind::NoName => LookupError::NoSuchName { name: host },
        LookupErrorKind::NoData => LookupError::NoAddress { name: host },
        LookupErrorKind::Again => LookupError::TemporaryFailure { name: host },
        LookupErrorKind::Fail => LookupError::ServerFailure { name: host },
        LookupErrorKind::Service | LookupErrorKind::Socktype => LookupError::UnknownService {
            host,
            service: name.service.clone().unwrap_or_default(),
        },
        _ => LookupError::System {
            name: name.to_string(),
            reason: resolver_reason(e),
        },
    }
}

impl fmt::Display for Service {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.name {
            Some(name) if *name != self.port.to_string() => {
                write!(f, "{name} = port {}", self.port)?;
            }
            _ => write!(f, "port {}", self.port)?,
        }
        if self.protocols.is_empty() {
            f.write_str(" (not in /etc/services)")
        } else {
            write!(f, " ({})", self.protocols.join(", "))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(ip: &str, socktype: i32) -> AddrEntry {
        AddrEntry {
            family: libc::AF_INET,
            socktype,
            protocol: 0,
            address: SocketAddr::new(ip.parse().unwrap(), 0),
        }
    }

    #[test]
    fn distinct_addresses_keep_the_resolvers_order() {
        let list = [
            entry("10.0.0.2", libc::SOCK_STREAM),
            entry("10.0.0.2", libc::SOCK_DGRAM),
            entry("10.0.0.1", libc::SOCK_STREAM),
            entry("10.0.0.2", libc::SOCK_RAW),
        ];
        let want: Vec<IpAddr> = vec!["10.0.0.2".parse().unwrap(), "10.0.0.1".parse().unwrap()];
        assert_eq!(distinct_ips(&list), want);
        assert_eq!(list[0].type_name(), "SOCK_STREAM");
        assert_eq!(list[3].type_name(), "SOCK_RAW");
        assert_eq!(list[0].family_name(), "AF_INET");
    }

    #[test]
    fn literal_addresses_resolve_without_a_source() {
        let names = ["127.0.0.1:80".parse().unwrap(), "[::1]:80".parse().unwrap()];
        let report = run(&names, &Options::default()).unwrap();
        let v4 = report.outcomes[0].lookup.as_ref().unwrap();
        assert_eq!(v4.gethostbyname, Some(Ipv4Addr::LOCALHOST));
        assert!(v4.addresses.iter().all(|a| a.address.port() == 80));
        let v6 = report.outcomes[1].lookup.as_ref().unwrap();
        assert_eq!(v6.gethostbyname, None);
        assert!(v6.gethostbyname_error.is_some());
        assert!(v6.addresses.iter().all(|a| a.family == libc::AF_INET6));
        assert_eq!(report.exit_code(), ExitCode::Success);
    }

    #[test]
    fn a_resolver_that_never_answers_is_given_up_on() {
        let (_forward_tx, forward) = mpsc::sync_channel(1);
        let (_reverse_tx, reverse) = mpsc::channel();
        let name: Name = "slow.example".parse().unwrap();
        let options = Options {
            timeout: Duration::from_millis(20),
            reverse: false,
        };
        let started = Instant::now();
        let outcome = finish(
            &name,
            Ok(Steps { forward, reverse }),
            started + options.timeout,
            &options,
        );
        assert!(started.elapsed() < Duration::from_secs(5));
        let error = outcome.error.expect("a timeout");
        assert!(matches!(error, LookupError::TimedOut { .. }), "{error}");
        assert_eq!(error.exit_code(), ExitCode::TimedOut);
        assert!(error.to_string().contains("within 20 ms"), "{error}");
        assert!(error.to_string().contains("/etc/resolv.conf"), "{error}");
    }

    #[test]
    fn reverse_answers_that_do_not_come_are_marked() {
        let (forward_tx, forward) = mpsc::sync_channel(1);
        let (_reverse_tx, reverse) = mpsc::channel();
        let lookup = Lookup {
            service: None,
            gethostbyname: None,
            gethostbyname_error: None,
            canonical_name: None,
            addresses: vec![entry("192.0.2.1", libc::SOCK_STREAM)],
            elapsed: Duration::ZERO,
            reverse: None,
        };
        forward_tx.send(Ok(lookup)).unwrap();
        let options = Options {
            timeout: Duration::from_millis(20),
            reverse: true,
        };
        let name: Name = "192.0.2.1".parse().unwrap();
        let deadline = Instant::now() + options.timeout;
        let outcome = finish(&name, Ok(Steps { forward, reverse }), deadline, &options);
        let reverse = outcome.lookup.unwrap().reverse.unwrap();
        assert_eq!(
            reverse[0].answer,
            Err(ReverseFailure::TimedOut(options.timeout))
        );
        // The name of an IP address was the question: no answer is a failure.
        assert!(matches!(outcome.error, Some(LookupError::TimedOut { .. })));
    }

    #[test]
    fn error_codes() {
        let name = || "x".to_string();
        assert_eq!(
            LookupError::NoSuchName { name: name() }.exit_code(),
            ExitCode::Unreachable
        );
        assert_eq!(
            LookupError::TimedOut {
                name: name(),
                timeout: DEFAULT_TIMEOUT
            }
            .exit_code(),
            ExitCode::TimedOut
        );
        assert_eq!(
            LookupError::UnknownService {
                host: name(),
                service: name()
            }
            .exit_code(),
            ExitCode::Usage
        );
    }
}
