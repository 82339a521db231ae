//! Linux: `/proc/sys` knobs and the owners of listening sockets, read from
//! `/proc/net/tcp{,6}` (socket inodes) and `/proc/PID/fd` (who holds them).

use std::collections::HashSet;
use std::net::SocketAddr;

use procfs::net::TcpState;
use procfs::process::FDTarget;

use super::PortHolder;

pub(super) fn read_number(path: &str) -> Option<u32> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

pub(super) fn tcp_port_holders(addr: SocketAddr) -> Vec<PortHolder> {
    let mut inodes = HashSet::new();
    let tables = [procfs::net::tcp(), procfs::net::tcp6()];
    for entry in tables.into_iter().flatten().flatten() {
        let local = entry.local_address;
        let conflicts = local.port() == addr.port()
            && (local.ip() == addr.ip()
                || local.ip().is_unspecified()
                || addr.ip().is_unspecified());
        if entry.state == TcpState::Listen && conflicts {
            inodes.insert(entry.inode);
        }
    }
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
