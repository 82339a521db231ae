//! The NAME that `echokit resolve` takes: a host, an IP address, and an
//! optional service, as `getaddrinfo(host, service)` takes them.
//!
//! | written            | host        | service |
//! |--------------------|-------------|---------|
//! | `localhost`        | `localhost` | none    |
//! | `localhost:http`   | `localhost` | `http`  |
//! | `example.com:443`  | `example.com` | `443` |
//! | `127.0.0.1`        | `127.0.0.1` | none    |
//! | `::1`              | `::1`       | none    |
//! | `[::1]:http`       | `::1`       | `http`  |
//! | `fe80::1%eth0`     | `fe80::1%eth0` (a scoped IPv6 address) | none |
//!
//! A bare IPv6 address is taken whole (`::1:80` is itself an address); a
//! service after one needs the brackets. This module does no I/O: whether a
//! service name is in `/etc/services` is found when the name is looked up.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

use crate::endpoint::is_host_name;
use crate::exit::{Classify, ExitCode};

/// What the error messages show as the accepted forms.
const EXPECTED: &str = "expected HOST, HOST:SERVICE, an IP address or [IPv6]:SERVICE \
                        (SERVICE: a port number or a name from /etc/services, such as http)";

/// A name to look up, as given on the command line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Name {
    /// The host: a name or an IP address (an IPv6 one without brackets).
    pub host: String,
    /// The service, as written: a port number or a name from `/etc/services`.
    pub service: Option<String>,
}

/// Why a string is not a NAME. Every message says what was expected.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum NameError {
    /// Nothing was given.
    #[error("empty name: {EXPECTED}")]
    Empty,
    /// A host that is neither an IP address nor a valid host name.
    #[error("`{0}` is not a host name or IP address: expected letters, digits, '-' and '.'")]
    BadHost(String),
    /// Text in brackets that is not an IPv6 address, or brackets not closed.
    #[error("`{0}` is not an IPv6 address: inside brackets expected one such as [::1]")]
    BadIpv6(String),
    /// Something other than `:SERVICE` after the closing bracket.
    #[error("`{0}`: after [IPv6] only :SERVICE may follow, as in [::1]:http")]
    AfterBracket(String),
    /// An IPv6 address and a service without brackets.
    #[error("`{0}`: an IPv6 address with a service needs brackets, as in [::1]:http")]
    UnbracketedIpv6(String),
    /// `HOST:` with nothing after the colon.
    #[error(
        "`{0}` has nothing after ':': give a service (a port such as 80 or a name such as http), or leave out the ':'"
    )]
    EmptyService(String),
    /// A port number over 65535.
    #[error("`{0}` is not a port: expected a number from 0 to 65535")]
    BadPort(String),
    /// A service that cannot be a name in `/etc/services`.
    #[error(
        "`{0}` is not a service: expected a port number or a name from /etc/services (letters, digits, '-', such as http)"
    )]
    BadService(String),
}

impl Classify for NameError {
    fn exit_code(&self) -> ExitCode {
        ExitCode::Usage
    }
}

impl Name {
    /// The host as an IP address, when it is one (a scoped IPv6 address such
    /// as `fe80::1%eth0` is not: the resolver parses its scope).
    pub fn ip(&self) -> Option<IpAddr> {
        self.host.parse().ok()
    }

    /// The service as a port number, when it is written as one.
    pub fn port(&self) -> Option<u16> {
        self.service.as_deref().and_then(|s| s.parse().ok())
    }
}

impl FromStr for Name {
    type Err = NameError;

    fn from_str(s: &str) -> Result<Name, NameError> {
        if s.is_empty() {
            return Err(NameError::Empty);
        }
        if let Some(inner) = s.strip_prefix('[') {
            let Some((addr, after)) = inner.split_once(']') else {
                return Err(NameError::BadIpv6(s.into()));
            };
            if !is_ipv6(addr) {
                return Err(NameError::BadIpv6(addr.into()));
            }
            let service = match after {
                "" => None,
                _ => match after.strip_prefix(':') {
                    Some(service) => Some(service_of(s, service)?),
                    None => return Err(NameError::AfterBracket(s.into())),
                },
            };
            return Ok(Name {
                host: addr.into(),
                service,
            });
        }
        if is_ipv6(s) {
            return Ok(Name {
                host: s.into(),
                service: None,
            });
        }
        if s.contains('%') {
            // Only a scoped IPv6 address has a `%`, and this is not one.
            return Err(NameError::BadIpv6(s.into()));
        }
        let (host, service) = match s.rsplit_once(':') {
            Some((host, _)) if host.contains(':') => {
                return Err(NameError::UnbracketedIpv6(s.into()));
            }
            Some((host, service)) => (host, Some(service_of(s, service)?)),
            None => (s, None),
        };
        if host.is_empty() || (host.parse::<Ipv4Addr>().is_err() && !is_host_name(host)) {
            return Err(NameError::BadHost(host.into()));
        }
        Ok(Name {
            // Host names are case-insensitive; the resolver is given them as written.
            host: host.into(),
            service,
        })
    }
}

/// An IPv6 address, with or without a `%scope` (an interface name or number).
fn is_ipv6(s: &str) -> bool {
    let (addr, scope) = match s.split_once('%') {
        Some((addr, scope)) => (addr, Some(scope)),
        None => (s, None),
    };
    addr.parse::<Ipv6Addr>().is_ok()
        && scope.is_none_or(|scope| {
            !scope.is_empty()
                && scope
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
        })
}

/// Checks a service: a port number, or a word that `/etc/services` could list.
fn service_of(whole: &str, service: &str) -> Result<String, NameError> {
    if service.is_empty() {
        return Err(NameError::EmptyService(whole.into()));
    }
    if service.bytes().all(|b| b.is_ascii_digit()) {
        return match service.parse::<u16>() {
            Ok(_) => Ok(service.into()),
            Err(_) => Err(NameError::BadPort(service.into())),
        };
    }
    // services(5) names are single words; these are the characters real ones use.
    let word = service.len() <= 64
        && service
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.+".contains(&b))
        && service.as_bytes()[0].is_ascii_alphabetic();
    if !word {
        return Err(NameError::BadService(service.into()));
    }
    Ok(service.into())
}

impl fmt::Display for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.service {
            None => f.write_str(&self.host),
            Some(service) if self.host.contains(':') => write!(f, "[{}]:{service}", self.host),
            Some(service) => write!(f, "{}:{service}", self.host),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(host: &str, service: Option<&str>) -> Name {
        Name {
            host: host.into(),
            service: service.map(Into::into),
        }
    }

    #[test]
    fn accepted_forms() {
        let cases = [
            ("localhost", name("localhost", None)),
            ("localhost:http", name("localhost", Some("http"))),
            ("localhost.:80", name("localhost.", Some("80"))),
            ("example.com:0", name("example.com", Some("0"))),
            ("127.0.0.1", name("127.0.0.1", None)),
            ("127.0.0.1:domain", name("127.0.0.1", Some("domain"))),
            ("::1", name("::1", None)),
            ("::1:80", name("::1:80", None)),
            ("[::1]", name("::1", None)),
            ("[::1]:http", name("::1", Some("http"))),
            ("[2001:db8::1]:443", name("2001:db8::1", Some("443"))),
            ("fe80::1%eth0", name("fe80::1%eth0", None)),
            ("[fe80::1%2]:22", name("fe80::1%2", Some("22"))),
            (
                "_srv.example:x11-ssh",
                name("_srv.example", Some("x11-ssh")),
            ),
        ];
        for (text, want) in cases {
            assert_eq!(text.parse::<Name>(), Ok(want.clone()), "{text}");
            // Display gives back a form that parses to the same name.
            assert_eq!(want.to_string().parse::<Name>(), Ok(want), "{text}");
        }
        assert_eq!(
            "[::1]:http".parse::<Name>().unwrap().to_string(),
            "[::1]:http"
        );
        assert_eq!("[::1]".parse::<Name>().unwrap().to_string(), "::1");
    }

    #[test]
    fn ip_and_port() {
        let n: Name = "[::1]:8080".parse().unwrap();
        assert_eq!(n.ip(), Some("::1".parse().unwrap()));
        assert_eq!(n.port(), Some(8080));
        let n: Name = "localhost:http".parse().unwrap();
        assert_eq!((n.ip(), n.port()), (None, None));
    }

    #[test]
    fn errors_say_what_was_expected() {
        let cases = [
            ("", "empty name"),
            ("localhost:", "nothing after ':'"),
            ("localhost:99999", "`99999` is not a port"),
            ("localhost:ht tp", "`ht tp` is not a service"),
            ("localhost:-x", "`-x` is not a service"),
            (":http", "`` is not a host name"),
            ("bad host", "`bad host` is not a host name"),
            ("-x.example", "is not a host name"),
            ("2001:db8::1:http", "needs brackets"),
            ("[::1", "is not an IPv6 address"),
            ("[1.2.3.4]:80", "`1.2.3.4` is not an IPv6 address"),
            ("[::1]80", "only :SERVICE may follow"),
            ("fe80::1%", "`fe80::1%` is not an IPv6 address"),
        ];
        for (text, want) in cases {
            let err = text.parse::<Name>().unwrap_err().to_string();
            assert!(err.contains(want), "{text:?}: {err}");
        }
    }
}
