//! What only the operating system can tell: kernel limits, which process
//! holds a socket, the listen-queue counters; and what only it can do:
//! dropping root ([`privileges`]). Linux reads `/proc`; another OS
//! gets its own module beside `linux.rs` and the fallbacks below keep the
//! rest of echokit portable.

use std::collections::HashMap;
use std::os::fd::AsFd;

#[cfg(target_os = "linux")]
mod linux;
pub mod privileges;

/// A process that holds a socket, as far as `/proc` tells.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct PortHolder {
    /// Its process id.
    pub pid: u32,
    /// Its command name (`comm`, as `ps -o comm` shows it).
    pub name: String,
    /// Its command line (or command name when the line is empty).
    pub command: String,
}

/// The kernel's counts, since boot, of connections a full listener turned
/// away (`/proc/net/netstat`'s TcpExt).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub struct ListenCounters {
    /// `ListenOverflows`: a completed handshake found the accept queue full.
    pub listen_overflows: u64,
    /// `ListenDrops`: SYNs dropped at a listener, overflows included.
    pub listen_drops: u64,
}

impl std::fmt::Display for PortHolder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "pid {} ({})", self.pid, self.command)
    }
}

/// Who is at the other end of a Unix socket, as the kernel recorded at connect.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PeerCredentials {
    /// The peer's process id.
    pub pid: u32,
    /// The peer's user id.
    pub uid: u32,
}

impl std::fmt::Display for PeerCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "pid {} (uid {})", self.pid, self.uid)
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

/// Every process holding each socket, by socket inode (`socket:[INODE]` in
/// `/proc/PID/fd`). Another user's processes are missing unless run as root.
pub fn socket_owners() -> HashMap<u64, Vec<PortHolder>> {
    #[cfg(target_os = "linux")]
    return linux::socket_owners();
    #[cfg(not(target_os = "linux"))]
    return HashMap::new();
}

/// The listen-queue overflow counters, if the kernel tells.
pub fn listen_counters() -> Option<ListenCounters> {
    #[cfg(target_os = "linux")]
    return linux::listen_counters_of(&linux::tcp_ext()?);
    #[cfg(not(target_os = "linux"))]
    return None;
}

/// The kernel's TCP counters since boot (`/proc/net/netstat`'s TcpExt:
/// `SyncookiesSent`, `ListenOverflows`, ...) by name, if it tells.
pub fn tcp_ext_counters() -> Option<HashMap<String, u64>> {
    #[cfg(target_os = "linux")]
    return linux::tcp_ext();
    #[cfg(not(target_os = "linux"))]
    return None;
}

/// The process and user at the other end of a connected Unix socket.
pub fn peer_credentials(socket: &impl AsFd) -> Option<PeerCredentials> {
    #[cfg(target_os = "linux")]
    return linux::peer_credentials(socket);
    #[cfg(not(target_os = "linux"))]
    return {
        let _ = socket;
        None
    };
}

/// Raises the soft limit on open descriptors to the hard limit, so a server
/// can hold tens of thousands of clients without the user running `ulimit`.
/// Returns the soft limit now in force.
pub fn raise_fd_limit() -> Option<u64> {
    rlimit::increase_nofile_limit(u64::MAX).ok()
}

/// The ephemeral port range a connect draws its local port from
/// (`net.ipv4.ip_local_port_range`), if known.
pub fn ephemeral_ports() -> Option<(u16, u16)> {
    #[cfg(target_os = "linux")]
    return linux::ephemeral_ports();
    #[cfg(not(target_os = "linux"))]
    return None;
}

/// The IP addresses of this host's interfaces (`getifaddrs`); empty if
/// they cannot be read.
pub fn host_addresses() -> Vec<std::net::IpAddr> {
    let Ok(interfaces) = nix::ifaddrs::getifaddrs() else {
        return Vec::new();
    };
    interfaces
        .filter_map(|i| i.address)
        .filter_map(|a| {
            if let Some(v4) = a.as_sockaddr_in() {
                return Some(std::net::IpAddr::V4(v4.ip()));
            }
            a.as_sockaddr_in6().map(|v6| std::net::IpAddr::V6(v6.ip()))
        })
        .collect()
}

/// The CPUs this process may run on (its affinity mask), if known.
pub fn usable_cpus() -> Option<Vec<usize>> {
    #[cfg(target_os = "linux")]
    return linux::usable_cpus();
    #[cfg(not(target_os = "linux"))]
    return None;
}

/// The open-descriptor limits of this process: (soft, hard).
pub fn fd_limits() -> Option<(u64, u64)> {
    rlimit::getrlimit(rlimit::Resource::NOFILE).ok()
}

/// A descriptor held for when the process has none left (`/dev/null`).
pub(crate) fn reserve_descriptor() -> Option<std::fs::File> {
    std::fs::File::open("/dev/null")
        .inspect_err(|e| tracing::debug!("cannot open a reserve descriptor: {e}"))
        .ok()
}
