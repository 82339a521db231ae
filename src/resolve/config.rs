//! Why a name can resolve differently from one run or host to another: the
//! files glibc's resolver reads, turned into sentences.
//!
//! - `/etc/nsswitch.conf`, its `hosts:` line: which sources answer, in order
//!   (`files` is `/etc/hosts`, `dns` the servers of `/etc/resolv.conf`, ...).
//! - `/etc/hosts`: this host's own list of names.
//! - `/etc/resolv.conf`: the DNS servers, the search domains, the options.
//! - `/etc/gai.conf`: the rules by which `getaddrinfo` orders addresses (RFC 6724).
//!
//! The parsers are pure functions of the files' text, tested on fixtures;
//! only [`ResolverConfig::read`] touches the file system.

use std::net::IpAddr;

use serde::Serialize;

use super::name::Name;

/// Which sources answer for host names, and in what order.
pub const NSSWITCH_CONF: &str = "/etc/nsswitch.conf";
/// This host's own list of names.
pub const HOSTS: &str = "/etc/hosts";
/// The DNS servers, search domains and options.
pub const RESOLV_CONF: &str = "/etc/resolv.conf";
/// The rules that order `getaddrinfo`'s addresses.
pub const GAI_CONF: &str = "/etc/gai.conf";

/// glibc reads at most this many `nameserver` lines (its `MAXNS`).
const MAX_NAMESERVERS: usize = 3;

/// systemd-resolved's local stub resolver, which forwards to the real servers.
const RESOLVED_STUB: &str = "127.0.0.53";

/// What the resolver's files say, as far as they could be read.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct ResolverConfig {
    /// The `hosts:` line of `/etc/nsswitch.conf` (after `hosts:`), if any.
    pub nsswitch_hosts: Option<String>,
    /// Its sources in order, without the `[STATUS=action]` parts.
    pub sources: Vec<String>,
    /// The DNS servers glibc asks (the first three `nameserver` lines).
    pub nameservers: Vec<String>,
    /// The search domains tried for short names.
    pub search: Vec<String>,
    /// The `options` of `/etc/resolv.conf` (`timeout:2`, `rotate`, ...).
    pub options: Vec<String>,
    /// Whether `/etc/gai.conf` has rules, which change the address order.
    pub gai_conf_rules: bool,
    /// The lines of `/etc/hosts`.
    #[serde(skip)]
    pub hosts: Vec<HostsLine>,
    /// Files that could not be read, with the reason.
    #[serde(skip)]
    pub unreadable: Vec<String>,
}

/// One line of `/etc/hosts`: an address and its names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HostsLine {
    /// The address.
    pub address: IpAddr,
    /// The canonical name, then the aliases.
    pub names: Vec<String>,
}

/// The parts of `/etc/resolv.conf` that change answers.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ResolvConf {
    /// The DNS servers, at most three, in order.
    pub nameservers: Vec<String>,
    /// The search domains (the last `search` or `domain` line wins, as in glibc).
    pub search: Vec<String>,
    /// Every option, in order.
    pub options: Vec<String>,
}

/// The `hosts:` line of an nsswitch.conf: the line itself (after `hosts:`)
/// and its sources without the `[STATUS=action]` parts. `None` when there is
/// no such line.
pub fn parse_nsswitch_hosts(text: &str) -> Option<(String, Vec<String>)> {
    let line = text
        .lines()
        .map(|l| l.split('#').next().unwrap_or_default().trim())
        .find_map(|l| l.strip_prefix("hosts:"))?
        .trim();
    let mut sources = Vec::new();
    let mut in_action = false;
    for word in line.split_whitespace() {
        // An action block may hold spaces: `[ NOTFOUND = return ]`.
        if word.starts_with('[') {
            in_action = true;
        }
        if !in_action {
            sources.push(word.to_string());
        }
        if word.ends_with(']') {
            in_action = false;
        }
    }
    Some((line.to_string(), sources))
}

/// The servers, search domains and options of a resolv.conf.
pub fn parse_resolv_conf(text: &str) -> ResolvConf {
    let mut conf = ResolvConf::default();
    for line in text.lines() {
        let line = line.split(['#', ';']).next().unwrap_or_default();
        let mut words = line.split_whitespace();
        match words.next() {
            Some("nameserver") => {
                if let Some(server) = words.next()
                    && conf.nameservers.len() < MAX_NAMESERVERS
                {
                    conf.nameservers.push(server.to_string());
                }
            }
            Some("search" | "domain") => conf.search = words.map(str::to_string).collect(),
            Some("options") => conf.options.extend(words.map(str::to_string)),
            _ => {}
        }
    }
    conf
}

/// The lines of an `/etc/hosts` with an address and at least one name.
pub fn parse_hosts(text: &str) -> Vec<HostsLine> {
    text.lines()
        .filter_map(|line| {
            let mut words = line
                .split('#')
                .next()
                .unwrap_or_default()
                .split_whitespace();
            let address = words.next()?.parse().ok()?;
            let names: Vec<String> = words.map(str::to_string).collect();
            (!names.is_empty()).then_some(HostsLine { address, names })
        })
        .collect()
}

/// Whether a gai.conf has any rule (a line that is not blank or a comment).
pub fn has_gai_rules(text: &str) -> bool {
    text.lines()
        .any(|l| !l.split('#').next().unwrap_or_default().trim().is_empty())
}

/// What a source of the `hosts:` line is, in a few words.
pub fn source_meaning(source: &str) -> String {
    match source {
        "files" => format!("{HOSTS}, this host's own list"),
        "dns" => format!("DNS, the servers of {RESOLV_CONF}"),
        "myhostname" => "systemd's nss-myhostname: this host's own name and localhost".into(),
        "resolve" => {
            "systemd-resolved (`resolvectl status` shows its DNS servers, per link)".into()
        }
        "mymachines" => "systemd-machined: the containers and VMs on this host".into(),
        "mdns_minimal" | "mdns4_minimal" | "mdns6_minimal" => {
            "mDNS through Avahi, for names ending in .local only".into()
        }
        "mdns" | "mdns4" | "mdns6" => "mDNS through Avahi: machines on the local network".into(),
        "wins" => "Samba's WINS: Windows (NetBIOS) names".into(),
        "nis" | "nisplus" => "NIS: maps from a directory server".into(),
        "libvirt" | "libvirt_guest" => "libvirt's virtual machines".into(),
        other => format!("the NSS module libnss_{other}.so"),
    }
}

impl ResolverConfig {
    /// Reads the resolver's files; a file that cannot be read is noted, not an error.
    pub fn read() -> ResolverConfig {
        let mut unreadable = Vec::new();
        let mut read = |path: &str| match std::fs::read_to_string(path) {
            Ok(text) => Some(text),
            Err(e) => {
                unreadable.push(format!("{path}: {}", crate::text::os_error(&e)));
                None
            }
        };
        let nsswitch = read(NSSWITCH_CONF);
        let resolv = read(RESOLV_CONF);
        let hosts = read(HOSTS);
        // A missing gai.conf is normal: the RFC 6724 defaults apply.
        let gai = std::fs::read_to_string(GAI_CONF).ok();
        let mut config = ResolverConfig::from_texts(
            nsswitch.as_deref(),
            resolv.as_deref(),
            hosts.as_deref(),
            gai.as_deref(),
        );
        config.unreadable = unreadable;
        config
    }

    /// The configuration these file contents make (`None`: not readable).
    pub fn from_texts(
        nsswitch: Option<&str>,
        resolv: Option<&str>,
        hosts: Option<&str>,
        gai: Option<&str>,
    ) -> ResolverConfig {
        let (nsswitch_hosts, sources) = match nsswitch.and_then(parse_nsswitch_hosts) {
            Some((line, sources)) => (Some(line), sources),
            None => (None, Vec::new()),
        };
        let resolv = resolv.map(parse_resolv_conf).unwrap_or_default();
        ResolverConfig {
            nsswitch_hosts,
            sources,
            nameservers: resolv.nameservers,
            search: resolv.search,
            options: resolv.options,
            gai_conf_rules: gai.is_some_and(has_gai_rules),
            hosts: hosts.map(parse_hosts).unwrap_or_default(),
            unreadable: Vec::new(),
        }
    }

    /// The addresses `/etc/hosts` gives a name (case-insensitive, a final
    /// dot ignored), in the file's order.
    pub fn hosts_file_addresses(&self, host: &str) -> Vec<IpAddr> {
        let host = host.strip_suffix('.').unwrap_or(host);
        self.hosts
            .iter()
            .filter(|line| line.names.iter().any(|n| n.eq_ignore_ascii_case(host)))
            .map(|line| line.address)
            .collect()
    }

    /// Why the resolver may answer differently elsewhere or later, one
    /// sentence a line.
    pub fn explanation(&self) -> Vec<String> {
        let mut lines = Vec::new();
        match &self.nsswitch_hosts {
            Some(line) => {
                let order: Vec<String> = self
                    .sources
                    .iter()
                    .map(|s| format!("{s} ({})", source_meaning(s)))
                    .collect();
                lines.push(format!(
                    "sources, tried in order until one answers (`hosts: {line}` in \
                     {NSSWITCH_CONF}): {}",
                    order.join(", then ")
                ));
            }
            None => lines.push(format!(
                "sources: {NSSWITCH_CONF} has no hosts: line, so glibc's default applies \
                 (dns [!UNAVAIL=return] files)"
            )),
        }
        lines.push(format!(
            "{HOSTS} is this host's own list: another host has other lines, and an entry \
             there hides what DNS says"
        ));
        if self.uses_dns() {
            let servers = if self.nameservers.is_empty() {
                format!("no nameserver in {RESOLV_CONF}, so glibc asks 127.0.0.1")
            } else {
                format!("nameserver {}", self.nameservers.join(", "))
            };
            lines.push(format!(
                "DNS: {servers}: answers differ per resolver and per network (a VPN, split \
                 DNS, another Wi-Fi), a name with several addresses may list them in another \
                 order each time, and records change when their TTL runs out; glibc keeps no \
                 cache, so each run asks again"
            ));
            if self.nameservers.iter().any(|s| s == RESOLVED_STUB) {
                lines.push(format!(
                    "{RESOLVED_STUB} is systemd-resolved's stub: it caches, and asks the servers \
                     `resolvectl status` shows"
                ));
            }
            if !self.search.is_empty() {
                lines.push(format!(
                    "search {} ({RESOLV_CONF}): a name with fewer dots than ndots (1 unless the \
                     options say) is tried with these domains too, so a short name depends on \
                     the network",
                    self.search.join(" ")
                ));
            }
            if self.options.iter().any(|o| o == "rotate") {
                lines.push(
                    "options rotate: queries go round the nameservers, which may answer differently"
                        .into(),
                );
            }
        }
        let rules = if self.gai_conf_rules {
            format!("{GAI_CONF} changes its rules on this host")
        } else {
            format!("{GAI_CONF} sets none here, so the defaults apply")
        };
        lines.push(format!(
            "order: getaddrinfo sorts the addresses by RFC 6724 ({rules}), by the source \
             addresses this host has: a host without IPv6 connectivity puts IPv4 first"
        ));
        for reason in &self.unreadable {
            lines.push(format!(
                "cannot read {reason}: the lines above take it as empty, as glibc does when it \
                 is missing"
            ));
        }
        lines.push(
            "IPv6: a program that passes AI_ADDRCONFIG gets IPv6 addresses only when this host \
             has an IPv6 address other than loopback (this list, as Python's getaddrinfo, does \
             not pass it)"
                .into(),
        );
        lines
    }

    /// Where this name's answer comes from, as far as the files tell.
    pub fn note_for(&self, name: &Name) -> String {
        if name.ip().is_some() || name.host.contains('%') {
            return "an IP address: getaddrinfo parses it, no source is asked".into();
        }
        let in_file = self.hosts_file_addresses(&name.host);
        let files_at = self.sources.iter().position(|s| s == "files");
        let later: Vec<&str> = match files_at {
            Some(at) => self.sources[at + 1..].iter().map(String::as_str).collect(),
            None => self.sources.iter().map(String::as_str).collect(),
        };
        if in_file.is_empty() {
            return if later.is_empty() {
                format!("not in {HOSTS}")
            } else {
                format!(
                    "not in {HOSTS}, so the next sources answer: {}",
                    later.join(", ")
                )
            };
        }
        let addrs: Vec<String> = in_file.iter().map(ToString::to_string).collect();
        let addrs = addrs.join(", ");
        match files_at {
            Some(0) => format!(
                "in {HOSTS} ({addrs}): files comes first, so it answers and DNS is not asked"
            ),
            Some(at) => format!(
                "in {HOSTS} ({addrs}), but {} {} first in the hosts: line",
                self.sources[..at].join(", "),
                if at == 1 { "comes" } else { "come" }
            ),
            None => format!("in {HOSTS} ({addrs}), but the hosts: line has no files source"),
        }
    }

    /// Whether DNS may be asked.
    fn uses_dns(&self) -> bool {
        self.nsswitch_hosts.is_none() || self.sources.iter().any(|s| s == "dns" || s == "resolve")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NSSWITCH: &str = "\
# /etc/nsswitch.conf
passwd:         files systemd
hosts:          files mdns4_minimal [NOTFOUND=return] dns # a comment
networks:       files
";

    const RESOLV: &str = "\
# Generated by NetworkManager
search corp.example lab.example
nameserver 10.0.0.53
nameserver 10.0.1.53 ; second
nameserver 10.0.2.53
nameserver 10.0.3.53
options rotate timeout:2
options attempts:3
";

    const HOSTS_TEXT: &str = "\
127.0.0.1\tlocalhost
::1     localhost ip6-localhost ip6-loopback
192.168.1.10  NAS.lan nas # the file server
bad-line-without-address
10.0.0.1
";

    #[test]
    fn nsswitch_hosts_line_and_sources() {
        let (line, sources) = parse_nsswitch_hosts(NSSWITCH).unwrap();
        assert_eq!(line, "files mdns4_minimal [NOTFOUND=return] dns");
        assert_eq!(sources, ["files", "mdns4_minimal", "dns"]);
        let (_, sources) =
            parse_nsswitch_hosts("hosts: dns [ !UNAVAIL = return ] files\n").unwrap();
        assert_eq!(sources, ["dns", "files"]);
        assert_eq!(parse_nsswitch_hosts("#hosts: files\npasswd: files\n"), None);
        assert_eq!(parse_nsswitch_hosts(""), None);
    }

    #[test]
    fn resolv_conf_servers_search_options() {
        let conf = parse_resolv_conf(RESOLV);
        // glibc uses the first three servers only.
        assert_eq!(conf.nameservers, ["10.0.0.53", "10.0.1.53", "10.0.2.53"]);
        assert_eq!(conf.search, ["corp.example", "lab.example"]);
        assert_eq!(conf.options, ["rotate", "timeout:2", "attempts:3"]);
        // The last search or domain line wins.
        let conf = parse_resolv_conf("search a.example\ndomain b.example\n");
        assert_eq!(conf.search, ["b.example"]);
        assert_eq!(parse_resolv_conf(""), ResolvConf::default());
    }

    #[test]
    fn hosts_file_lines() {
        let lines = parse_hosts(HOSTS_TEXT);
        assert_eq!(lines.len(), 3);
        assert_eq!(
            lines[1].names,
            ["localhost", "ip6-localhost", "ip6-loopback"]
        );
        let config = ResolverConfig::from_texts(None, None, Some(HOSTS_TEXT), None);
        let localhost: Vec<IpAddr> = vec!["127.0.0.1".parse().unwrap(), "::1".parse().unwrap()];
        assert_eq!(config.hosts_file_addresses("localhost"), localhost);
        assert_eq!(config.hosts_file_addresses("LOCALHOST."), localhost);
        assert_eq!(
            config.hosts_file_addresses("nas.lan"),
            ["192.168.1.10".parse::<IpAddr>().unwrap()]
        );
        assert!(config.hosts_file_addresses("the").is_empty());
        assert!(has_gai_rules("# comment\n\nprecedence ::ffff:0:0/96 100\n"));
        assert!(!has_gai_rules("# only comments\n#label ::1/128 0\n"));
    }

    #[test]
    fn explanation_names_the_sources_servers_and_order() {
        let config = ResolverConfig::from_texts(
            Some(NSSWITCH),
            Some(RESOLV),
            Some(HOSTS_TEXT),
            Some("precedence ::ffff:0:0/96 100\n"),
        );
        let text = config.explanation().join("\n");
        for needle in [
            "(`hosts: files mdns4_minimal [NOTFOUND=return] dns` in /etc/nsswitch.conf): files",
            "files (/etc/hosts, this host's own list), then mdns4_minimal (mDNS through Avahi",
            "then dns (DNS, the servers of /etc/resolv.conf)",
            "nameserver 10.0.0.53, 10.0.1.53, 10.0.2.53",
            "search corp.example lab.example",
            "options rotate",
            "RFC 6724 (/etc/gai.conf changes its rules on this host)",
            "AI_ADDRCONFIG",
        ] {
            assert!(text.contains(needle), "lacks {needle:?}:\n{text}");
        }
        let mut missing = ResolverConfig::from_texts(None, None, None, None);
        missing.unreadable = vec!["/etc/resolv.conf: No such file or directory".into()];
        let bare = missing.explanation();
        assert!(
            bare.iter()
                .any(|l| l.starts_with("cannot read /etc/resolv.conf: No such file")),
            "{bare:?}"
        );
        assert!(bare[0].contains("glibc's default applies"), "{bare:?}");
        assert!(
            bare.iter().any(|l| l.contains("asks 127.0.0.1")),
            "{bare:?}"
        );
        let stub = ResolverConfig::from_texts(
            Some("hosts: files resolve [!UNAVAIL=return] dns\n"),
            Some("nameserver 127.0.0.53\n"),
            None,
            None,
        );
        let text = stub.explanation().join("\n");
        assert!(text.contains("systemd-resolved's stub"), "{text}");
        assert!(!text.contains("rotate"), "{text}");
    }

    #[test]
    fn notes_say_where_a_name_comes_from() {
        let config = ResolverConfig::from_texts(Some(NSSWITCH), None, Some(HOSTS_TEXT), None);
        let note = |n: &str| config.note_for(&n.parse().unwrap());
        assert_eq!(
            note("localhost:http"),
            "in /etc/hosts (127.0.0.1, ::1): files comes first, so it answers and DNS is not asked"
        );
        assert_eq!(
            note("example.com"),
            "not in /etc/hosts, so the next sources answer: mdns4_minimal, dns"
        );
        assert!(note("::1").starts_with("an IP address"));
        assert!(note("fe80::1%eth0").starts_with("an IP address"));
        let dns_first =
            ResolverConfig::from_texts(Some("hosts: dns files\n"), None, Some(HOSTS_TEXT), None);
        assert_eq!(
            dns_first.note_for(&"nas".parse().unwrap()),
            "in /etc/hosts (192.168.1.10), but dns comes first in the hosts: line"
        );
    }
}
