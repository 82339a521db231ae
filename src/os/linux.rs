//! Linux: `/proc/sys` knobs, the owners of bound sockets, read from
//! `/proc/net/{tcp,udp,unix}` (socket inodes) and `/proc/PID/fd` (who holds
//! them), and the credentials of a Unix socket's peer (`SO_PEERCRED`).

use std::collections::HashSet;
use std::net::SocketAddr;
use std::os::fd::AsFd;
use std::path::Path;

use procfs::net::TcpState;
use procfs::process::FDTarget;

use super::{PeerCredentials, PortHolder, Proto};

pub(super) fn read_number(path: &str) -> Option<u32> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

pub(super) fn port_holders(proto: Proto, addr: SocketAddr) -> Vec<PortHolder> {
    let conflicts = |local: SocketAddr| {
        local.port() == addr.port()
            && (local.ip() == addr.ip()
                || local.ip().is_unspecified()
                || addr.ip().is_unspecified())
    };
    let mut inodes = HashSet::new();
    match proto {
        Proto::Tcp => {
            let tables = [procfs::net::tcp(), procfs::net::tcp6()];
            for entry in tables.into_iter().flatten().flatten() {
                if entry.state == TcpState::Listen && conflicts(entry.local_address) {
                    inodes.insert(entry.inode);
                }
            }
        }
        Proto::Udp => {
            let tables = [procfs::net::udp(), procfs::net::udp6()];
            for entry in tables.into_iter().flatten().flatten() {
                if conflicts(entry.local_address) {
                    inodes.insert(entry.inode);
                }
            }
        }
    }
    holders_of(&inodes)
}

/// Who holds the Unix socket bound at `name` (a path, or `@NAME` as
/// `/proc/net/unix` shows abstract names).
pub(super) fn unix_holders(name: &Path) -> Vec<PortHolder> {
    let absolute = std::path::absolute(name).ok();
    let inodes: HashSet<u64> = procfs::net::unix()
        .into_iter()
        .flatten()
        .filter(|entry| {
            entry
                .path
                .as_deref()
                .is_some_and(|p| p == name || Some(p) == absolute.as_deref())
        })
        .map(|entry| entry.inode)
        .collect();
    holders_of(&inodes)
}

pub(super) fn peer_credentials(socket: &impl AsFd) -> Option<PeerCredentials> {
    let creds =
        nix::sys::socket::getsockopt(socket, nix::sys::socket::sockopt::PeerCredentials).ok()?;
    Some(PeerCredentials {
        pid: u32::try_from(creds.pid()).ok()?,
        uid: creds.uid(),
    })
}

/// The processes with a descriptor on one of these socket inodes.
fn holders_of(inodes: &HashSet<u64>) -> Vec<PortHolder> {
    if inodes.is_empty() {
        return Vec::new();
    }
    let mut holders = Vec::new();
    let Ok(processes) = procfs::process::all_processes() else {
        return holders;
    };
    for process in processes.flatten() {
        let Ok(fds) = process.fd() else { continue };
        let holds = fds
            .flatten()
            .any(|fd| matches!(fd.target, FDTarget::Socket(inode) if inodes.contains(&inode)));
        if !holds {
            continue;
        }
        let command = match process.cmdline() {
            Ok(args) if !args.is_empty() => args.join(" "),
            _ => process.stat().map(|s| s.comm).unwrap_or_default(),
        };
        holders.push(PortHolder {
            pid: process.pid() as u32,
            command,
        });
    }
    holders
}

pub(super) fn ephemeral_ports() -> Option<(u16, u16)> {
    let text = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range").ok()?;
    let mut parts = text.split_whitespace().map(str::parse);
    match (parts.next()?, parts.next()?) {
        (Ok(lo), Ok(hi)) if lo <= hi => Some((lo, hi)),
        _ => None,
    }
}
