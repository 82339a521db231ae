//! Who is at an address of this host, from the socket table. A bind that
//! finds its address in use names the processes holding it; a refused
//! connect says whether anything listens on the port asked for (on another
//! address: `::1` rather than `127.0.0.1`), or what listens on the ports
//! nearest to it, so that it names the server the user probably meant.

use std::net::{IpAddr, SocketAddr};
use std::path::Path;

use super::{Address, Entry, Kind, State, snapshot};
use crate::os::PortHolder;

/// Listeners named at most in one hint.
const NAMED: usize = 2;

/// A sentence on what listens here instead of `wanted` (addresses of this
/// host that refused), or `None` when they are not this host's or the
/// socket table cannot be read.
pub fn refused_here(kind: Kind, wanted: &[SocketAddr]) -> Option<String> {
    if wanted.is_empty() || !wanted.iter().all(|a| is_this_host(a.ip())) {
        return None;
    }
    let snapshot = snapshot(&[kind]).ok()?;
    let listeners: Vec<&Entry> = snapshot
        .sockets
        .iter()
        .filter(|e| e.is_listening())
        .collect();
    Some(describe(wanted, &listeners))
}

/// The processes whose socket keeps `addr` from being bound: a TCP
/// listener, or any UDP socket, on its port and its address or a wildcard.
/// Empty when nothing is visible (another user's processes hide their
/// descriptors) or the table cannot be read.
pub fn holders(kind: Kind, addr: SocketAddr) -> Vec<PortHolder> {
    let conflicts = |e: &Entry| match e.local {
        Address::Ip(local) => {
            local.port() == addr.port()
                && (local.ip() == addr.ip()
                    || local.ip().is_unspecified()
                    || addr.ip().is_unspecified())
                && (kind != Kind::Tcp || e.state == State::Listen)
        }
        Address::Unix(_) => false,
    };
    owners_of(&[kind], conflicts)
}

/// The processes holding the Unix socket bound at `name`: a path, or `@NAME`
/// for an abstract name.
pub fn unix_holders(name: &Path) -> Vec<PortHolder> {
    let absolute = std::path::absolute(name).ok();
    let named = |e: &Entry| match &e.local {
        Address::Unix(Some(bound)) => {
            let bound = Path::new(bound);
            bound == name || Some(bound) == absolute.as_deref()
        }
        _ => false,
    };
    owners_of(
        &[Kind::UnixStream, Kind::UnixDgram, Kind::UnixSeqpacket],
        named,
    )
}

/// The holders of the sockets of these kinds that `matches`, each once.
fn owners_of(kinds: &[Kind], matches: impl Fn(&Entry) -> bool) -> Vec<PortHolder> {
    let Ok(snapshot) = snapshot(kinds) else {
        return Vec::new();
    };
    let mut holders: Vec<PortHolder> = Vec::new();
    for owner in snapshot
        .sockets
        .iter()
        .filter(|e| matches(e))
        .flat_map(|e| &e.owners)
    {
        if !holders.contains(owner) {
            holders.push(owner.clone());
        }
    }
    holders
}

/// Whether `ip` is one of this host's: loopback, a wildcard, or an
/// interface's address.
fn is_this_host(ip: IpAddr) -> bool {
    if ip.is_loopback() || ip.is_unspecified() {
        return true;
    }
    nix::ifaddrs::getifaddrs().is_ok_and(|mut all| {
        all.any(|ifa| {
            ifa.address.is_some_and(|a| {
                a.as_sockaddr_in().map(|v4| IpAddr::V4(v4.ip())) == Some(ip)
                    || a.as_sockaddr_in6().map(|v6| IpAddr::V6(v6.ip())) == Some(ip)
            })
        })
    })
}

/// The sentence, from the listeners of this host.
pub fn describe(wanted: &[SocketAddr], listeners: &[&Entry]) -> String {
    let names: Vec<String> = wanted.iter().map(ToString::to_string).collect();
    let nothing = format!("nothing listens on {} on this host", names.join(" or "));
    let port = wanted[0].port();
    let ip_of = |e: &Entry| match e.local {
        Address::Ip(a) => Some(a),
        Address::Unix(_) => None,
    };
    // The same port on another address: the usual IPv4/IPv6 or
    // 127.0.0.1/0.0.0.0 mix-up.
    let same_port: Vec<&&Entry> = listeners
        .iter()
        .filter(|e| ip_of(e).is_some_and(|a| a.port() == port))
        .collect();
    if !same_port.is_empty() {
        let found: Vec<String> = same_port.iter().take(NAMED).map(|e| who(e)).collect();
        return format!(
            "{nothing}, but {}: connect to that address",
            found.join(" and ")
        );
    }
    let mut near: Vec<&&Entry> = listeners
        .iter()
        .filter(|e| ip_of(e).is_some_and(|a| reaches(a.ip(), wanted)))
        .collect();
    near.sort_by_key(|e| {
        let p = ip_of(e).map_or(0, |a| a.port());
        (p.abs_diff(port), p)
    });
    if near.is_empty() {
        return format!("{nothing}, nor on any other port of that address");
    }
    let found: Vec<String> = near.iter().take(NAMED).map(|e| who(e)).collect();
    format!("{nothing}; on another port, {}", found.join(", and "))
}

/// Whether a listener on `local` takes connections to one of `wanted`'s addresses.
fn reaches(local: IpAddr, wanted: &[SocketAddr]) -> bool {
    wanted
        .iter()
        .any(|w| local == w.ip() || (local.is_unspecified() && local.is_ipv4() == w.ip().is_ipv4()))
}

/// `echokit echo-server (pid 12) listens on 127.0.0.1:65433`.
fn who(e: &Entry) -> String {
    let holder = match e.owners.first() {
        Some(o) => format!("{} (pid {})", short_command(&o.command, &o.name), o.pid),
        None => "a process not visible here".into(),
    };
    format!("{holder} listens on {}", e.local)
}

/// The program's file name and its first argument when it is a word (a
/// subcommand or a script): `echokit echo-server`, `python3 echo-server.py`.
fn short_command(command: &str, name: &str) -> String {
    let mut words = command.split_whitespace();
    let Some(program) = words.next() else {
        return name.to_string();
    };
    let program = program.rsplit('/').next().unwrap_or(program);
    match words.next() {
        Some(arg) if !arg.starts_with('-') && !arg.contains(':') => {
            format!("{program} {}", arg.rsplit('/').next().unwrap_or(arg))
        }
        _ => program.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::os::PortHolder;
    use crate::sockets::State;

    fn listener(local: &str, command: &str, pid: u32) -> Entry {
        Entry {
            kind: Kind::Tcp,
            local: Address::Ip(local.parse().unwrap()),
            peer: Address::Ip("0.0.0.0:0".parse().unwrap()),
            state: State::Listen,
            recv_q: 0,
            send_q: 0,
            listen: None,
            inode: 1,
            peer_inode: None,
            uid: None,
            owners: vec![PortHolder {
                pid,
                name: command
                    .split(' ')
                    .next()
                    .unwrap()
                    .rsplit('/')
                    .next()
                    .unwrap()
                    .into(),
                command: command.into(),
            }],
        }
    }

    fn addr(s: &str) -> Vec<SocketAddr> {
        vec![s.parse().unwrap()]
    }

    #[test]
    fn the_nearest_port_of_the_address_is_named() {
        let a = listener(
            "127.0.0.1:65433",
            "/work/target/release/echokit echo-server 127.0.0.1:65433",
            12,
        );
        let far = listener("127.0.0.1:8000", "python3 -m http.server", 13);
        let other_ip = listener("10.0.0.1:65431", "sshd", 14);
        let hint = describe(&addr("127.0.0.1:65432"), &[&far, &other_ip, &a]);
        assert_eq!(
            hint,
            "nothing listens on 127.0.0.1:65432 on this host; on another port, echokit \
             echo-server (pid 12) listens on 127.0.0.1:65433, and python3 (pid 13) listens on 127.0.0.1:8000"
        );
    }

    #[test]
    fn the_same_port_on_another_address_comes_first() {
        let v6 = listener("[::1]:65432", "python3 echo-server.py", 7);
        let near = listener("127.0.0.1:65433", "echokit echo-server", 8);
        let hint = describe(&addr("127.0.0.1:65432"), &[&near, &v6]);
        assert_eq!(
            hint,
            "nothing listens on 127.0.0.1:65432 on this host, but python3 echo-server.py \
             (pid 7) listens on [::1]:65432: connect to that address"
        );
    }

    #[test]
    fn a_wildcard_listener_reaches_its_family() {
        let any = listener("0.0.0.0:9000", "nginx", 3);
        let hint = describe(&addr("127.0.0.1:9001"), &[&any]);
        assert!(
            hint.ends_with("nginx (pid 3) listens on 0.0.0.0:9000"),
            "{hint}"
        );
        let none = describe(&addr("[::1]:9001"), &[&any]);
        assert!(
            none.ends_with("nor on any other port of that address"),
            "{none}"
        );
    }

    #[test]
    fn a_remote_address_gets_no_hint() {
        assert_eq!(refused_here(Kind::Tcp, &addr("192.0.2.1:80")), None);
    }
}
