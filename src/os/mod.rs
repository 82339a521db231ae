//! What only the operating system can tell: kernel limits and which process
//! holds a port. Linux reads `/proc`; another OS gets its own module beside
//! `linux.rs` and the fallbacks below keep the rest of echokit portable.

use std::net::SocketAddr;

#[cfg(target_os = "linux")]
mod linux;

/// A process that holds a socket, as far as `/proc` tells.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PortHolder {
    /// Its process id.
    pub pid: u32,
    /// Its command line (or command name when the line is empty).
    pub command: String,
}

impl std::fmt::Display for PortHolder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "pid {} ({})", self.pid, self.command)
    }
}

/// The kernel's cap on a `listen()` backlog (`net.core.somaxconn`), if known.
pub fn somaxconn() -> Option<u32> {
    #[cfg(target_os = "linux")]
    return linux::read_number("/proc/sys/net/core/somaxconn");
    #[cfg(not(target_os = "linux"))]
    return None;
}

/// The lowest port an unprivileged process may bind
/// (`net.ipv4.ip_unprivileged_port_start`; 1024 where there is no such knob).
pub fn unprivileged_port_start() -> u32 {
    #[cfg(target_os = "linux")]
    return linux::read_number("/proc/sys/net/ipv4/ip_unprivileged_port_start").unwrap_or(1024);
    #[cfg(not(target_os = "linux"))]
    return 1024;
}

/// The processes whose TCP listening socket conflicts with binding `addr`:
/// the same port, on the same address or a wildcard. Empty when nothing is
/// visible (another user's processes hide their descriptors).
pub fn tcp_port_holders(addr: SocketAddr) -> Vec<PortHolder> {
    #[cfg(target_os = "linux")]
    return linux::tcp_port_holders(addr);
    #[cfg(not(target_os = "linux"))]
    return {
        let _ = addr;
        Vec::new()
    };
}

/// Raises the soft limit on open descriptors to the hard limit, so a server
/// can hold tens of thousands of clients without the user running `ulimit`.
/// Returns the soft limit now in force.
pub fn raise_fd_limit() -> Option<u64> {
    rlimit::increase_nofile_limit(u64::MAX).ok()
}
