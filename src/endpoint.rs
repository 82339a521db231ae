//! Endpoints: the one address syntax that every subcommand takes and prints.
//!
//! | written                    | meaning                                              |
//! |----------------------------|------------------------------------------------------|
//! | `tcp://HOST:PORT`          | TCP                                                  |
//! | `HOST:PORT`                | TCP (the scheme may be left out)                     |
//! | `[IPv6]:PORT`              | an IPv6 literal, in brackets as in URLs              |
//! | `:PORT`, `tcp://:PORT`     | every interface, IPv4 and IPv6                       |
//! | `PORT`                     | `127.0.0.1:PORT`, the socket guide's loopback host   |
//! | `udp://HOST:PORT`          | UDP, with the same HOST and PORT forms               |
//! | `unix:PATH`                | a Unix stream socket at a file path                  |
//! | `unixgram:PATH`            | a Unix datagram socket at a file path                |
//! | `unix:@NAME`, `unixgram:@NAME` | Linux's abstract namespace: no file              |
//!
//! HOST is an IP address, a host name (resolved through `getaddrinfo`, so
//! `/etc/hosts` and DNS both count) or empty for every interface. `0.0.0.0` is
//! every IPv4 interface and `[::]` every IPv6 one. Port 0 asks the kernel for
//! a free port; the `listening on` line then shows the real one.
//!
//! A Unix socket path may be relative; it and an abstract name must fit the
//! kernel's `sun_path` ([`LOCAL_NAME_MAX`] bytes), which is checked here so
//! that the error comes before any socket is made.
//!
//! This module does no I/O except name resolution in [`HostPort::resolve`].

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::str::FromStr;

use crate::exit::{Classify, ExitCode};

/// The socket guide's address, where servers listen and clients connect by default.
pub const DEFAULT: &str = "tcp://127.0.0.1:65432";

/// What the error messages show as the accepted forms.
const EXPECTED: &str = "expected tcp://HOST:PORT, HOST:PORT, [IPv6]:PORT, :PORT, PORT, \
                        udp://HOST:PORT, unix:PATH, unixgram:PATH or unix:@NAME";

/// The longest Unix socket path or abstract name, in bytes: `sun_path` holds
/// 108, and a path needs its terminating NUL, an abstract name its leading one.
pub const LOCAL_NAME_MAX: usize = 107;

/// An address the toolkit listens on or connects to.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Endpoint {
    /// A TCP stream socket (`SOCK_STREAM` over `AF_INET` or `AF_INET6`).
    Tcp(HostPort),
    /// A UDP socket (`SOCK_DGRAM` over `AF_INET` or `AF_INET6`).
    Udp(HostPort),
    /// A Unix stream socket (`SOCK_STREAM` over `AF_UNIX`).
    Unix(LocalName),
    /// A Unix datagram socket (`SOCK_DGRAM` over `AF_UNIX`).
    UnixGram(LocalName),
}

/// Where a Unix socket lives.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum LocalName {
    /// A socket file in the file system (written as it is).
    Path(PathBuf),
    /// A name in Linux's abstract namespace (written `@NAME`): no file, gone
    /// with the last socket that holds it.
    Abstract(String),
}

/// The two socket types, as the guide names them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SocketType {
    /// `SOCK_STREAM`: a connection carrying a byte stream (TCP, `unix:`).
    Stream,
    /// `SOCK_DGRAM`: messages with their boundaries (UDP, `unixgram:`).
    Datagram,
}

impl SocketType {
    /// The `socket(2)` type.
    pub fn socket2(self) -> socket2::Type {
        match self {
            SocketType::Stream => socket2::Type::STREAM,
            SocketType::Datagram => socket2::Type::DGRAM,
        }
    }
}

/// A host and a port, before or after resolution.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct HostPort {
    /// Where: an address, a name, or every interface.
    pub host: Host,
    /// The port; 0 asks the kernel for a free one when binding.
    pub port: u16,
}

/// The host part of an endpoint.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Host {
    /// Written empty: every interface (IPv4 and IPv6) for a server, this
    /// host's loopback for a client.
    Any,
    /// An IP literal, used as it is.
    Ip(IpAddr),
    /// A host name, resolved when it is used.
    Name(String),
}

/// Why a string is not an endpoint. Every message says what was expected.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum ParseError {
    /// Nothing was given.
    #[error("empty endpoint: {EXPECTED}")]
    Empty,
    /// A host without a port.
    #[error("`{0}` has no port: {EXPECTED} (for example {0}:65432)")]
    MissingPort(String),
    /// The port is not a number from 0 to 65535.
    #[error("`{0}` is not a port: expected a number from 0 to 65535 (0 picks a free port)")]
    BadPort(String),
    /// An IPv6 address written without brackets, so its colons are ambiguous.
    #[error(
        "`{input}`: an IPv6 address needs brackets: expected [IPv6]:PORT, as in [{addr}]:{port}"
    )]
    UnbracketedIpv6 {
        /// What was written.
        input: String,
        /// The address part.
        addr: String,
        /// The port part.
        port: String,
    },
    /// Text in brackets that is not an IPv6 address.
    #[error("`{0}` is not an IPv6 address: inside brackets expected one such as [::1]")]
    BadIpv6(String),
    /// A host that is neither an IP address nor a valid host name.
    #[error("`{0}` is not a host name or IP address: expected letters, digits, '-' and '.'")]
    BadHost(String),
    /// A scheme echokit does not know.
    #[error("unknown scheme `{0}`: {EXPECTED}")]
    UnknownScheme(String),
    /// A known scheme written with the other kind's separator: `udp:` for
    /// `udp://`, `unix://` for `unix:`.
    #[error("`{input}` is not how {form} is written: did you mean {suggestion}?")]
    Misspelled {
        /// What was written.
        input: String,
        /// The form its scheme takes, e.g. `udp://HOST:PORT`.
        form: &'static str,
        /// The endpoint it most likely means.
        suggestion: String,
    },
    /// `unix:` or `unixgram:` with nothing after it.
    #[error("`{0}` needs a path or an abstract name, as in {0}/tmp/echo.sock or {0}@echo")]
    EmptyLocal(String),
    /// A Unix socket path or abstract name too long for `sun_path`.
    #[error(
        "`{name}` is {len} bytes: a Unix socket {what} may have at most {LOCAL_NAME_MAX} \
         (the kernel's sun_path); use a shorter one, e.g. in /tmp or /run"
    )]
    LocalTooLong {
        /// What was written.
        name: String,
        /// Its length in bytes.
        len: usize,
        /// "path" or "abstract name".
        what: &'static str,
    },
    /// A Unix socket path with a NUL byte, which the kernel cannot take.
    #[error("`{0}` contains a NUL byte, which no Unix socket path may hold")]
    LocalNul(String),
}

impl Classify for ParseError {
    fn exit_code(&self) -> ExitCode {
        ExitCode::Usage
    }
}

/// A host name that did not resolve.
#[derive(Debug, thiserror::Error)]
#[error("cannot resolve `{host}`: {reason}")]
pub struct ResolveError {
    /// The name that was looked up.
    pub host: String,
    /// What the resolver said, in its words.
    pub reason: String,
}

impl Classify for ResolveError {
    fn exit_code(&self) -> ExitCode {
        ExitCode::Unreachable
    }
}

impl Endpoint {
    /// The TCP endpoint of a socket address, as `listening on` lines print it.
    pub fn tcp(addr: SocketAddr) -> Endpoint {
        Endpoint::Tcp(HostPort::of(addr))
    }

    /// The UDP endpoint of a socket address.
    pub fn udp(addr: SocketAddr) -> Endpoint {
        Endpoint::Udp(HostPort::of(addr))
    }

    /// Stream or datagram.
    pub fn socket_type(&self) -> SocketType {
        match self {
            Endpoint::Tcp(_) | Endpoint::Unix(_) => SocketType::Stream,
            Endpoint::Udp(_) | Endpoint::UnixGram(_) => SocketType::Datagram,
        }
    }

    /// The host and port of an IP endpoint; `None` for a Unix one.
    pub fn host_port(&self) -> Option<&HostPort> {
        match self {
            Endpoint::Tcp(hp) | Endpoint::Udp(hp) => Some(hp),
            Endpoint::Unix(_) | Endpoint::UnixGram(_) => None,
        }
    }

    /// Where a Unix endpoint lives; `None` for an IP one.
    pub fn local_name(&self) -> Option<&LocalName> {
        match self {
            Endpoint::Unix(name) | Endpoint::UnixGram(name) => Some(name),
            Endpoint::Tcp(_) | Endpoint::Udp(_) => None,
        }
    }

    /// The same address with `addr` (a resolved or bound address) in place
    /// of the host and port; a Unix endpoint stays as it is.
    pub fn with_addr(&self, addr: SocketAddr) -> Endpoint {
        match self {
            Endpoint::Tcp(_) => Endpoint::tcp(addr),
            Endpoint::Udp(_) => Endpoint::udp(addr),
            other => other.clone(),
        }
    }

    /// The guide's `tcp://127.0.0.1:65432`.
    pub fn default_tcp() -> Endpoint {
        Endpoint::tcp(SocketAddr::from((Ipv4Addr::LOCALHOST, 65432)))
    }
}

/// What resolved addresses are for: a wildcard means different things to
/// `bind` and to `connect`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Purpose {
    /// Addresses to listen on.
    Bind,
    /// Addresses to connect to.
    Connect,
}

impl HostPort {
    /// The host and port of a socket address.
    pub fn of(addr: SocketAddr) -> HostPort {
        HostPort {
            host: Host::Ip(addr.ip()),
            port: addr.port(),
        }
    }

    /// The socket address, when the host is an IP address.
    pub fn addr(&self) -> Option<SocketAddr> {
        match self.host {
            Host::Ip(ip) => Some(SocketAddr::new(ip, self.port)),
            Host::Any | Host::Name(_) => None,
        }
    }

    /// Resolves to socket addresses, in the resolver's order (RFC 6724), without
    /// duplicates. An empty host gives both wildcards to bind, and both
    /// loopbacks to connect to.
    pub fn resolve(&self, purpose: Purpose) -> Result<Vec<SocketAddr>, ResolveError> {
        let port = self.port;
        match &self.host {
            Host::Ip(ip) => Ok(vec![SocketAddr::new(*ip, port)]),
            Host::Any => Ok(match purpose {
                Purpose::Bind => vec![
                    SocketAddr::from((Ipv4Addr::UNSPECIFIED, port)),
                    SocketAddr::from((Ipv6Addr::UNSPECIFIED, port)),
                ],
                Purpose::Connect => vec![
                    SocketAddr::from((Ipv4Addr::LOCALHOST, port)),
                    SocketAddr::from((Ipv6Addr::LOCALHOST, port)),
                ],
            }),
            Host::Name(name) => {
                let failed = |reason: String| ResolveError {
                    host: name.clone(),
                    reason,
                };
                let found = (name.as_str(), port)
                    .to_socket_addrs()
                    .map_err(|e| failed(resolver_reason(&e)))?;
                let mut addrs: Vec<SocketAddr> = Vec::new();
                for addr in found {
                    if !addrs.contains(&addr) {
                        addrs.push(addr);
                    }
                }
                if addrs.is_empty() {
                    return Err(failed("the name has no addresses".into()));
                }
                let list: Vec<String> = addrs.iter().map(|a| a.ip().to_string()).collect();
                tracing::info!("{name} resolved to {}", list.join(", "));
                Ok(addrs)
            }
        }
    }
}

/// The resolver's own words, without the prefix that the standard library
/// and `dns-lookup` put before glibc's `gai_strerror` text.
pub(crate) fn resolver_reason(e: &impl fmt::Display) -> String {
    let text = e.to_string();
    text.strip_prefix("failed to lookup address information: ")
        .unwrap_or(&text)
        .to_string()
}

impl FromStr for Endpoint {
    type Err = ParseError;

    fn from_str(s: &str) -> Result<Endpoint, ParseError> {
        if s.is_empty() {
            return Err(ParseError::Empty);
        }
        let misspelled = |form, scheme: &str, separator: &str, rest: &str| {
            Err(ParseError::Misspelled {
                input: s.into(),
                form,
                suggestion: format!("{scheme}{separator}{}", rest.trim_start_matches('/')),
            })
        };
        if let Some((scheme, rest)) = s.split_once("://") {
            return match scheme.to_ascii_lowercase().as_str() {
                "tcp" => parse_host_port(rest).map(Endpoint::Tcp),
                "udp" => parse_host_port(rest).map(Endpoint::Udp),
                // `unix://tmp/x.sock`: a URL's slashes on a path scheme.
                "unix" => misspelled("a Unix stream socket (unix:PATH)", "unix", ":/", rest),
                "unixgram" => misspelled(
                    "a Unix datagram socket (unixgram:PATH)",
                    "unixgram",
                    ":/",
                    rest,
                ),
                _ => Err(ParseError::UnknownScheme(format!("{scheme}://"))),
            };
        }
        // `udp:127.0.0.1:7`, `tcp:/127.0.0.1:1`: a path scheme's colon on
        // an IP scheme, which would otherwise read as an IPv6 address.
        if let Some((scheme, rest)) = s.split_once(':') {
            match scheme.to_ascii_lowercase().as_str() {
                "tcp" => return misspelled("a TCP endpoint (tcp://HOST:PORT)", "tcp", "://", rest),
                "udp" => return misspelled("a UDP endpoint (udp://HOST:PORT)", "udp", "://", rest),
                _ => {}
            }
        }
        if let Some(rest) = s.strip_prefix("unix:") {
            return parse_local("unix:", rest).map(Endpoint::Unix);
        }
        if let Some(rest) = s.strip_prefix("unixgram:") {
            return parse_local("unixgram:", rest).map(Endpoint::UnixGram);
        }
        parse_host_port(s).map(Endpoint::Tcp)
    }
}

fn parse_local(scheme: &str, rest: &str) -> Result<LocalName, ParseError> {
    let (name, what) = match rest.strip_prefix('@') {
        Some(name) => (LocalName::Abstract(name.into()), "abstract name"),
        None => (LocalName::Path(rest.into()), "path"),
    };
    let len = match &name {
        LocalName::Abstract(n) => n.len(),
        LocalName::Path(_) => rest.len(),
    };
    if len == 0 {
        return Err(ParseError::EmptyLocal(scheme.into()));
    }
    if rest.contains('\0') {
        return Err(ParseError::LocalNul(format!("{scheme}{rest}")));
    }
    if len > LOCAL_NAME_MAX {
        return Err(ParseError::LocalTooLong {
            name: format!("{scheme}{rest}"),
            len,
            what,
        });
    }
    Ok(name)
}

fn parse_host_port(s: &str) -> Result<HostPort, ParseError> {
    if s.is_empty() {
        return Err(ParseError::Empty);
    }
    if let Some(inner) = s.strip_prefix('[') {
        let Some((addr, after)) = inner.split_once(']') else {
            return Err(ParseError::BadIpv6(s.into()));
        };
        let ip: Ipv6Addr = addr.parse().map_err(|_| ParseError::BadIpv6(addr.into()))?;
        let Some(port) = after.strip_prefix(':') else {
            return Err(ParseError::MissingPort(s.into()));
        };
        return Ok(HostPort {
            host: Host::Ip(IpAddr::V6(ip)),
            port: parse_port(port)?,
        });
    }
    if s.bytes().all(|b| b.is_ascii_digit()) {
        return Ok(HostPort {
            host: Host::Ip(IpAddr::V4(Ipv4Addr::LOCALHOST)),
            port: parse_port(s)?,
        });
    }
    if s.parse::<Ipv6Addr>().is_ok() {
        // `::1:80` is itself an IPv6 address; the brackets say which was meant.
        if let Some((addr, port)) = s.rsplit_once(':')
            && addr.parse::<Ipv6Addr>().is_ok()
            && parse_port(port).is_ok()
        {
            return Err(ParseError::UnbracketedIpv6 {
                input: s.into(),
                addr: addr.into(),
                port: port.into(),
            });
        }
        return Err(ParseError::MissingPort(format!("[{s}]")));
    }
    let Some((host, port)) = s.rsplit_once(':') else {
        return Err(ParseError::MissingPort(s.into()));
    };
    if host.contains(':') {
        return Err(ParseError::UnbracketedIpv6 {
            input: s.into(),
            addr: host.into(),
            port: port.into(),
        });
    }
    let port = parse_port(port)?;
    let host = if host.is_empty() {
        Host::Any
    } else if let Ok(ip) = host.parse::<Ipv4Addr>() {
        Host::Ip(IpAddr::V4(ip))
    } else if is_host_name(host) {
        Host::Name(host.to_ascii_lowercase())
    } else {
        return Err(ParseError::BadHost(host.into()));
    };
    Ok(HostPort { host, port })
}

fn parse_port(s: &str) -> Result<u16, ParseError> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(ParseError::BadPort(s.into()));
    }
    s.parse().map_err(|_| ParseError::BadPort(s.into()))
}

/// RFC 1123 host names, plus `_` which real resolvers accept in labels.
pub(crate) fn is_host_name(s: &str) -> bool {
    s.len() <= 253
        && s.trim_end_matches('.').split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
}

impl fmt::Display for Host {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Host::Any => Ok(()),
            Host::Ip(IpAddr::V4(ip)) => write!(f, "{ip}"),
            Host::Ip(IpAddr::V6(ip)) => write!(f, "[{ip}]"),
            Host::Name(name) => f.write_str(name),
        }
    }
}

impl fmt::Display for HostPort {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.host, self.port)
    }
}

impl fmt::Display for LocalName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LocalName::Path(path) => write!(f, "{}", path.display()),
            LocalName::Abstract(name) => write!(f, "@{name}"),
        }
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Endpoint::Tcp(hp) => write!(f, "tcp://{hp}"),
            Endpoint::Udp(hp) => write!(f, "udp://{hp}"),
            Endpoint::Unix(name) => write!(f, "unix:{name}"),
            Endpoint::UnixGram(name) => write!(f, "unixgram:{name}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tcp(host: Host, port: u16) -> Endpoint {
        Endpoint::Tcp(HostPort { host, port })
    }

    #[test]
    fn accepted_forms() {
        let v4 = |a, b, c, d| Host::Ip(IpAddr::V4(Ipv4Addr::new(a, b, c, d)));
        let cases = [
            ("tcp://127.0.0.1:65432", tcp(v4(127, 0, 0, 1), 65432)),
            ("127.0.0.1:0", tcp(v4(127, 0, 0, 1), 0)),
            (
                "TCP://localhost:80",
                tcp(Host::Name("localhost".into()), 80),
            ),
            ("Example.COM:1", tcp(Host::Name("example.com".into()), 1)),
            ("[::1]:9000", tcp(Host::Ip("::1".parse().unwrap()), 9000)),
            ("tcp://[::]:7", tcp(Host::Ip("::".parse().unwrap()), 7)),
            (":8000", tcp(Host::Any, 8000)),
            ("tcp://:8000", tcp(Host::Any, 8000)),
            ("0.0.0.0:8000", tcp(v4(0, 0, 0, 0), 8000)),
            ("65432", tcp(v4(127, 0, 0, 1), 65432)),
            (
                "udp://127.0.0.1:7",
                Endpoint::Udp(HostPort {
                    host: v4(127, 0, 0, 1),
                    port: 7,
                }),
            ),
            (
                "unix:/run/echo.sock",
                Endpoint::Unix(LocalName::Path("/run/echo.sock".into())),
            ),
            (
                "unix:x.sock",
                Endpoint::Unix(LocalName::Path("x.sock".into())),
            ),
            (
                "unixgram:@echo",
                Endpoint::UnixGram(LocalName::Abstract("echo".into())),
            ),
        ];
        for (text, want) in cases {
            assert_eq!(text.parse::<Endpoint>(), Ok(want), "{text}");
        }
    }

    #[test]
    fn display_round_trips() {
        for text in [
            "tcp://127.0.0.1:65432",
            "tcp://[::1]:9000",
            "tcp://:8000",
            "tcp://localhost:0",
            "udp://[::1]:7",
            "udp://:7",
            "unix:/tmp/echo.sock",
            "unix:@echo",
            "unixgram:rel/x.sock",
            "unixgram:@e",
        ] {
            let ep: Endpoint = text.parse().unwrap();
            assert_eq!(ep.to_string(), text);
            assert_eq!(ep.to_string().parse::<Endpoint>().unwrap(), ep);
        }
    }

    #[test]
    fn errors_say_what_was_expected() {
        let cases = [
            ("", "empty endpoint"),
            ("localhost", "`localhost` has no port"),
            ("127.0.0.1:99999", "`99999` is not a port"),
            ("127.0.0.1:", "`` is not a port"),
            ("127.0.0.1:http", "`http` is not a port"),
            (
                "::1:80",
                "needs brackets: expected [IPv6]:PORT, as in [::1]:80",
            ),
            ("::1", "`[::1]` has no port"),
            (
                "udp:127.0.0.1:5",
                "`udp:127.0.0.1:5` is not how a UDP endpoint (udp://HOST:PORT) is written: \
                 did you mean udp://127.0.0.1:5?",
            ),
            ("tcp:/127.0.0.1:1", "did you mean tcp://127.0.0.1:1?"),
            ("TCP:[::1]:7", "did you mean tcp://[::1]:7?"),
            (
                "unix://tmp/x.sock",
                "is not how a Unix stream socket (unix:PATH) is written: did you mean unix:/tmp/x.sock?",
            ),
            (
                "unixgram:///run/e.sock",
                "did you mean unixgram:/run/e.sock?",
            ),
            ("[::1]", "`[::1]` has no port"),
            ("[::1", "is not an IPv6 address"),
            ("[1.2.3.4]:80", "`1.2.3.4` is not an IPv6 address"),
            ("bad host:80", "`bad host` is not a host name"),
            ("-x:80", "`-x` is not a host name"),
            ("udp://127.0.0.1", "`127.0.0.1` has no port"),
            ("unix:", "`unix:` needs a path or an abstract name"),
            ("unixgram:@", "`unixgram:` needs a path"),
            ("http://x:80", "unknown scheme `http://`"),
        ];
        for (text, want) in cases {
            let err = text.parse::<Endpoint>().unwrap_err().to_string();
            assert!(err.contains(want), "{text:?}: {err}");
        }
    }

    #[test]
    fn unix_names_must_fit_sun_path() {
        let longest = format!("unix:/{}", "x".repeat(LOCAL_NAME_MAX - 1));
        assert!(longest.parse::<Endpoint>().is_ok());
        let err = format!("unix:/{}", "x".repeat(LOCAL_NAME_MAX))
            .parse::<Endpoint>()
            .unwrap_err();
        assert_eq!(
            err,
            ParseError::LocalTooLong {
                name: format!("unix:/{}", "x".repeat(LOCAL_NAME_MAX)),
                len: LOCAL_NAME_MAX + 1,
                what: "path"
            }
        );
        assert!(err.to_string().contains("at most 107"), "{err}");
        let abstract_ok = format!("unixgram:@{}", "a".repeat(LOCAL_NAME_MAX));
        assert!(abstract_ok.parse::<Endpoint>().is_ok());
        let err = format!("unix:@{}", "a".repeat(LOCAL_NAME_MAX + 1))
            .parse::<Endpoint>()
            .unwrap_err();
        assert!(err.to_string().contains("abstract name"), "{err}");
    }

    #[test]
    fn wildcard_resolves_by_purpose() {
        let hp = HostPort {
            host: Host::Any,
            port: 5,
        };
        let bind = hp.resolve(Purpose::Bind).unwrap();
        assert!(bind.iter().all(|a| a.ip().is_unspecified()));
        let connect = hp.resolve(Purpose::Connect).unwrap();
        assert!(connect.iter().all(|a| a.ip().is_loopback()));
        assert_eq!(bind.len(), 2);
    }

    #[test]
    fn localhost_resolves_to_loopback() {
        let hp = HostPort {
            host: Host::Name("localhost".into()),
            port: 5,
        };
        let addrs = hp.resolve(Purpose::Connect).unwrap();
        assert!(!addrs.is_empty());
        assert!(addrs.iter().all(|a| a.ip().is_loopback() && a.port() == 5));
    }
}
