//! Linux: `/proc/sys` knobs, who holds each socket (`/proc/PID/fd`), the
//! listen-queue counters of `/proc/net/netstat`, and the
//! credentials of a Unix socket's peer (`SO_PEERCRED`).

use std::collections::HashMap;
use std::os::fd::AsFd;

use procfs::process::FDTarget;

use super::{ListenCounters, PeerCredentials, PortHolder};

pub(super) fn read_number(path: &str) -> Option<u32> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

pub(super) fn peer_credentials(socket: &impl AsFd) -> Option<PeerCredentials> {
    let creds =
        nix::sys::socket::getsockopt(socket, nix::sys::socket::sockopt::PeerCredentials).ok()?;
    Some(PeerCredentials {
        pid: u32::try_from(creds.pid()).ok()?,
        uid: creds.uid(),
    })
}

pub(super) fn socket_owners() -> HashMap<u64, Vec<PortHolder>> {
    let mut owners: HashMap<u64, Vec<PortHolder>> = HashMap::new();
    each_socket_descriptor(|inode, holder| {
        let list = owners.entry(inode).or_default();
        // A process with two descriptors on one socket (dup, fork) is listed once.
        if !list.iter().any(|h| h.pid == holder.pid) {
            list.push(holder.clone());
        }
    });
    owners
}

/// Calls `found` for every socket descriptor of every process this user
/// can see, with the socket's inode and the process.
fn each_socket_descriptor(mut found: impl FnMut(u64, &PortHolder)) {
    let Ok(processes) = procfs::process::all_processes() else {
        return;
    };
    for process in processes.flatten() {
        let Ok(fds) = process.fd() else { continue };
        let mut holder = None;
        for fd in fds.flatten() {
            let FDTarget::Socket(inode) = fd.target else {
                continue;
            };
            let holder = holder.get_or_insert_with(|| describe(&process));
            found(inode, holder);
        }
    }
}

fn describe(process: &procfs::process::Process) -> PortHolder {
    let name = process.stat().map(|s| s.comm).unwrap_or_default();
    let command = match process.cmdline() {
        Ok(args) if !args.is_empty() => args.join(" "),
        _ => name.clone(),
    };
    PortHolder {
        pid: process.pid() as u32,
        name,
        command,
    }
}

pub(super) fn tcp_ext() -> Option<HashMap<String, u64>> {
    parse_tcp_ext(&std::fs::read_to_string("/proc/net/netstat").ok()?)
}

/// The `TcpExt` counters of `/proc/net/netstat`'s text, by name: a
/// `TcpExt:` line of names, then a `TcpExt:` line of values.
fn parse_tcp_ext(text: &str) -> Option<HashMap<String, u64>> {
    let mut lines = text.lines().filter(|l| l.starts_with("TcpExt:"));
    let names = lines.next()?.split_whitespace().skip(1);
    let values = lines.next()?.split_whitespace().skip(1);
    Some(
        names
            .zip(values)
            .filter_map(|(n, v)| Some((n.to_string(), v.parse().ok()?)))
            .collect(),
    )
}

/// `ListenOverflows` and `ListenDrops` of a [`parse_tcp_ext`] table.
pub(super) fn listen_counters_of(table: &HashMap<String, u64>) -> Option<ListenCounters> {
    Some(ListenCounters {
        listen_overflows: *table.get("ListenOverflows")?,
        listen_drops: *table.get("ListenDrops")?,
    })
}

pub(super) fn ephemeral_ports() -> Option<(u16, u16)> {
    let text = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range").ok()?;
    let mut parts = text.split_whitespace().map(str::parse);
    match (parts.next()?, parts.next()?) {
        (Ok(lo), Ok(hi)) if lo <= hi => Some((lo, hi)),
        _ => None,
    }
}

pub(super) fn usable_cpus() -> Option<Vec<usize>> {
    let allowed = nix::sched::sched_getaffinity(nix::unistd::Pid::from_raw(0)).ok()?;
    Some(
        (0..nix::sched::CpuSet::count())
            .filter(|&c| allowed.is_set(c).unwrap_or(false))
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listen_counters_are_read_by_name() {
        let text = "TcpExt: SyncookiesSent ListenOverflows ListenDrops TCPHPHits\n\
                    TcpExt: 0 12 15 99\n\
                    IpExt: InNoRoutes\n\
                    IpExt: 0\n";
        assert_eq!(
            parse_tcp_ext(text).as_ref().and_then(listen_counters_of),
            Some(ListenCounters {
                listen_overflows: 12,
                listen_drops: 15
            })
        );
        assert_eq!(parse_tcp_ext("IpExt: A\nIpExt: 1\n"), None);
    }

    #[test]
    fn this_process_holds_its_sockets() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let owners = socket_owners();
        let me = std::process::id();
        assert!(
            owners.values().flatten().any(|h| h.pid == me),
            "no socket of pid {me} among {} inodes",
            owners.len()
        );
        drop(listener);
    }
}
