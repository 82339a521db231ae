//! The report as a learner reads it (text) and as a script reads it (JSON).
//! Pure: it formats a [`Report`] and looks nothing up.

use std::fmt::Write as _;
use std::net::{IpAddr, SocketAddr};

use serde::Serialize;

use super::{AddrEntry, Lookup, Outcome, Report, ResolverConfig, Service};
use crate::exit::{Classify, ExitCode};
use crate::text;

/// Width of the label column of the text report, its indent included.
const LABEL: usize = 18;
/// Width of the value column, before the comment that says where it came from.
const VALUE: usize = 26;
/// Where the explanation's lines wrap, to stay readable in a terminal.
const WRAP: usize = 100;

impl Report {
    /// The report as text: this host's name, a block per NAME, and why the
    /// answers can differ.
    pub fn text(&self) -> String {
        let mut out = String::new();
        row(&mut out, "", "host name", &self.hostname, "gethostname()");
        for outcome in &self.outcomes {
            out.push('\n');
            name_block(&mut out, outcome, &self.config);
        }
        out.push_str("\nwhy it can differ from one run or host to another\n");
        for line in self.config.explanation() {
            wrap(&mut out, "  ", &line);
        }
        out
    }

    /// The report as one JSON object (its shape is in the README).
    pub fn json(&self) -> serde_json::Value {
        let names: Vec<NameJson<'_>> = self
            .outcomes
            .iter()
            .map(|o| NameJson::of(o, &self.config))
            .collect();
        serde_json::json!({
            "hostname": self.hostname,
            "names": names,
            "resolver": self.config,
            "why_it_can_differ": self.config.explanation(),
        })
    }
}

/// One NAME's block of the text report.
fn name_block(out: &mut String, outcome: &Outcome, config: &ResolverConfig) {
    let _ = writeln!(out, "{}", outcome.name);
    let Some(lookup) = &outcome.lookup else {
        row(out, "  ", "not resolved", "(the error is on stderr)", "");
        row(out, "  ", "source", &config.note_for(&outcome.name), "");
        return;
    };
    if let Some(service) = &lookup.service {
        row(
            out,
            "  ",
            "service",
            &service.to_string(),
            "/etc/services, as Python's socket.getservbyname",
        );
    }
    match (&lookup.gethostbyname, &lookup.gethostbyname_error) {
        (Some(ip), _) => row(
            out,
            "  ",
            "gethostbyname",
            &ip.to_string(),
            "the first IPv4 address, as Python's socket.gethostbyname",
        ),
        (None, why) => row(
            out,
            "  ",
            "gethostbyname",
            "none",
            why.as_deref().unwrap_or_default(),
        ),
    }
    if let Some(canonical) = &lookup.canonical_name {
        row(
            out,
            "  ",
            "canonical name",
            canonical,
            "AI_CANONNAME: the name after DNS aliases",
        );
    }
    let count = lookup.addresses.len();
    row(
        out,
        "  ",
        "getaddrinfo",
        &format!(
            "{count} entr{} in {}",
            if count == 1 { "y" } else { "ies" },
            text::duration(lookup.elapsed)
        ),
        "in the resolver's order, as Python's socket.getaddrinfo",
    );
    let _ = writeln!(
        out,
        "    {:<10}{:<14}{:<7}address",
        "family", "type", "proto"
    );
    let with_port = lookup.service.is_some();
    for entry in &lookup.addresses {
        let address = if with_port {
            entry.address.to_string()
        } else {
            entry.address.ip().to_string()
        };
        let _ = writeln!(
            out,
            "    {:<10}{:<14}{:<7}{address}",
            entry.family_name(),
            entry.type_name(),
            entry.protocol
        );
    }
    if let Some(reverse) = &lookup.reverse {
        for (i, r) in reverse.iter().enumerate() {
            let value = match &r.answer {
                Ok(name) => format!("{} -> {name}", r.address),
                Err(why) => format!("{} -> {why}", r.address),
            };
            let comment = if i == 0 {
                "getnameinfo(NI_NAMEREQD)"
            } else {
                ""
            };
            row(
                out,
                "  ",
                if i == 0 { "reverse" } else { "" },
                &value,
                comment,
            );
        }
    }
    row(out, "  ", "source", &config.note_for(&outcome.name), "");
}

/// `label  value  comment`, in columns; a long value pushes the comment along.
fn row(out: &mut String, indent: &str, label: &str, value: &str, comment: &str) {
    let width = LABEL.saturating_sub(indent.len());
    let mut line = format!("{indent}{label:<width$}");
    if comment.is_empty() {
        line.push_str(value);
    } else {
        let _ = write!(line, "{value:<VALUE$} {comment}");
    }
    let _ = writeln!(out, "{}", line.trim_end());
}

/// Writes `text` wrapped at [`WRAP`] columns, continuation lines indented further.
fn wrap(out: &mut String, indent: &str, text: &str) {
    let mut line = String::from(indent);
    let mut empty = true;
    for word in text.split_whitespace() {
        if !empty && line.len() + 1 + word.len() > WRAP {
            let _ = writeln!(out, "{line}");
            line = format!("{indent}  ");
            empty = true;
        }
        if !empty {
            line.push(' ');
        }
        line.push_str(word);
        empty = false;
    }
    let _ = writeln!(out, "{line}");
}

/// One NAME in the JSON report.
#[derive(Serialize)]
struct NameJson<'a> {
    name: String,
    host: &'a str,
    service: Option<ServiceJson<'a>>,
    gethostbyname: Option<String>,
    gethostbyname_error: Option<&'a str>,
    canonical_name: Option<&'a str>,
    getaddrinfo_ms: Option<f64>,
    addresses: Vec<AddrJson>,
    reverse: Option<Vec<ReverseJson>>,
    source: String,
    error: Option<String>,
    exit_code: u8,
}

#[derive(Serialize)]
struct ServiceJson<'a> {
    given: &'a str,
    port: u16,
    name: Option<&'a str>,
    protocols: &'a [&'static str],
}

#[derive(Serialize)]
struct AddrJson {
    family: String,
    #[serde(rename = "type")]
    socktype: String,
    protocol: i32,
    address: IpAddr,
    port: u16,
    #[serde(skip_serializing_if = "Option::is_none")]
    flowinfo: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    scope_id: Option<u32>,
}

#[derive(Serialize)]
struct ReverseJson {
    address: IpAddr,
    name: Option<String>,
    error: Option<String>,
}

impl<'a> NameJson<'a> {
    fn of(outcome: &'a Outcome, config: &ResolverConfig) -> NameJson<'a> {
        let lookup: Option<&Lookup> = outcome.lookup.as_ref();
        let service = match (
            &outcome.name.service,
            lookup.and_then(|l| l.service.as_ref()),
        ) {
            (Some(given), Some(found)) => Some(ServiceJson::of(given, found)),
            _ => None,
        };
        NameJson {
            name: outcome.name.to_string(),
            host: &outcome.name.host,
            service,
            gethostbyname: lookup.and_then(|l| l.gethostbyname.map(|ip| ip.to_string())),
            gethostbyname_error: lookup.and_then(|l| l.gethostbyname_error.as_deref()),
            canonical_name: lookup.and_then(|l| l.canonical_name.as_deref()),
            // Microseconds are what a clock read around one call can tell.
            getaddrinfo_ms: lookup.map(|l| l.elapsed.as_micros() as f64 / 1e3),
            addresses: lookup
                .map(|l| l.addresses.iter().map(AddrJson::of).collect())
                .unwrap_or_default(),
            reverse: lookup.and_then(|l| l.reverse.as_ref()).map(|all| {
                all.iter()
                    .map(|r| ReverseJson {
                        address: r.address,
                        name: r.answer.as_ref().ok().cloned(),
                        error: r.answer.as_ref().err().map(ToString::to_string),
                    })
                    .collect()
            }),
            source: config.note_for(&outcome.name),
            error: outcome.error.as_ref().map(ToString::to_string),
            exit_code: outcome
                .error
                .as_ref()
                .map_or(ExitCode::Success, Classify::exit_code)
                .code(),
        }
    }
}

impl<'a> ServiceJson<'a> {
    fn of(given: &'a str, found: &'a Service) -> ServiceJson<'a> {
        ServiceJson {
            given,
            port: found.port,
            name: found.name.as_deref(),
            protocols: &found.protocols,
        }
    }
}

impl AddrJson {
    fn of(entry: &AddrEntry) -> AddrJson {
        let (flowinfo, scope_id) = match entry.address {
            SocketAddr::V6(v6) => (Some(v6.flowinfo()), Some(v6.scope_id())),
            SocketAddr::V4(_) => (None, None),
        };
        AddrJson {
            family: entry.family_name(),
            socktype: entry.type_name(),
            protocol: entry.protocol,
            address: entry.address.ip(),
            port: entry.address.port(),
            flowinfo,
            scope_id,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resolve::{LookupError, Reverse, ReverseFailure};
    use std::time::Duration;

    fn report() -> Report {
        let config = ResolverConfig::from_texts(
            Some("hosts: files dns\n"),
            Some("nameserver 192.0.2.53\n"),
            Some("127.0.0.1 localhost\n"),
            None,
        );
        let entry = |socktype, protocol| AddrEntry {
            family: libc::AF_INET,
            socktype,
            protocol,
            address: "127.0.0.1:80".parse().unwrap(),
        };
        let lookup = Lookup {
            service: Some(Service {
                port: 80,
                name: Some("http".into()),
                protocols: vec!["tcp"],
            }),
            gethostbyname: Some("127.0.0.1".parse().unwrap()),
            gethostbyname_error: None,
            canonical_name: Some("localhost".into()),
            addresses: vec![entry(libc::SOCK_STREAM, 6), entry(libc::SOCK_DGRAM, 17)],
            elapsed: Duration::from_micros(250),
            reverse: Some(vec![Reverse {
                address: "127.0.0.1".parse().unwrap(),
                answer: Ok("localhost".into()),
            }]),
        };
        Report {
            hostname: "box".into(),
            outcomes: vec![
                Outcome {
                    name: "localhost:http".parse().unwrap(),
                    lookup: Some(lookup),
                    error: None,
                },
                Outcome {
                    name: "192.0.2.1".parse().unwrap(),
                    lookup: None,
                    error: Some(LookupError::ReverseFailed {
                        address: "192.0.2.1".parse().unwrap(),
                        reason: ReverseFailure::TemporaryFailure,
                    }),
                },
            ],
            config,
        }
    }

    #[test]
    fn text_report() {
        let text = report().text();
        let want = "\
host name         box                        gethostname()

localhost:http
  service         http = port 80 (tcp)       /etc/services, as Python's socket.getservbyname
  gethostbyname   127.0.0.1                  the first IPv4 address, as Python's socket.gethostbyname
  canonical name  localhost                  AI_CANONNAME: the name after DNS aliases
  getaddrinfo     2 entries in 250 µs        in the resolver's order, as Python's socket.getaddrinfo
    family    type          proto  address
    AF_INET   SOCK_STREAM   6      127.0.0.1:80
    AF_INET   SOCK_DGRAM    17     127.0.0.1:80
  reverse         127.0.0.1 -> localhost     getnameinfo(NI_NAMEREQD)
  source          in /etc/hosts (127.0.0.1): files comes first, so it answers and DNS is not asked

192.0.2.1
  not resolved    (the error is on stderr)
  source          an IP address: getaddrinfo parses it, no source is asked

why it can differ from one run or host to another
";
        assert!(text.starts_with(want), "{text}");
        assert!(
            text.contains("  sources, tried in order until one answers (`hosts: files dns`"),
            "{text}"
        );
        let why = &text[want.len()..];
        assert!(why.lines().all(|l| l.len() <= WRAP), "{why}");
    }

    #[test]
    fn json_report() {
        let json = report().json();
        let first = &json["names"][0];
        assert_eq!(json["hostname"], "box");
        assert_eq!(first["name"], "localhost:http");
        assert_eq!(first["service"]["port"], 80);
        assert_eq!(first["service"]["protocols"][0], "tcp");
        assert_eq!(first["gethostbyname"], "127.0.0.1");
        assert_eq!(first["addresses"][1]["type"], "SOCK_DGRAM");
        assert_eq!(first["addresses"][1]["protocol"], 17);
        assert_eq!(first["addresses"][1]["port"], 80);
        assert_eq!(first["reverse"][0]["name"], "localhost");
        assert_eq!(first["exit_code"], 0);
        let second = &json["names"][1];
        assert_eq!(second["exit_code"], 5);
        assert!(
            second["error"]
                .as_str()
                .unwrap()
                .contains("no name for 192.0.2.1")
        );
        assert_eq!(json["resolver"]["sources"][1], "dns");
        assert!(json["why_it_can_differ"].as_array().unwrap().len() >= 3);
    }
}
