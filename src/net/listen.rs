//! Listening sockets: `socket`, `setsockopt`, `bind` and `listen`, with the
//! options people tune and errors that say what to do.
//!
//! Every listener gets `SO_REUSEADDR` (a restarted server can bind while old
//! connections sit in TIME_WAIT) and, for IPv6, `IPV6_V6ONLY` (so `[::]:P` and
//! `0.0.0.0:P` are two sockets that can both be bound). It never gets
//! `SO_REUSEPORT`: a second server on a served port must fail with "address in
//! use" rather than silently share it.

use std::io;
use std::net::{SocketAddr, TcpListener};
use std::time::Duration;

use socket2::{Domain, Protocol, Socket, Type};

use crate::endpoint::{Endpoint, Purpose, ResolveError};
use crate::exit::{Classify, ExitCode};
use crate::os::{self, PortHolder};

/// The `listen()` backlog when none is given. The socket guide's Python calls
/// `listen()` with its default (128 at most); a server meant for tens of
/// thousands of clients wants room for connection bursts, and Linux caps the
/// value at `net.core.somaxconn` (4096 since Linux 5.4) anyway.
pub const DEFAULT_BACKLOG: u32 = 1024;

/// How many times a host name with port 0 is bound again when the port the
/// kernel picked for its first address is taken on another.
const SAME_PORT_TRIES: usize = 8;

/// Socket options for listening sockets and the connections they accept.
#[derive(Clone, Debug)]
pub struct ListenOptions {
    /// The `listen()` backlog: connections the kernel completes before `accept`.
    pub backlog: u32,
    /// `SO_KEEPALIVE` with this idle time before the first probe, on accepted connections.
    pub keepalive: Option<Duration>,
    /// `SO_SNDBUF`, inherited by accepted connections.
    pub sndbuf: Option<usize>,
    /// `SO_RCVBUF`, inherited by accepted connections (set before `listen` so
    /// that the window scale is negotiated for it).
    pub rcvbuf: Option<usize>,
}

impl Default for ListenOptions {
    fn default() -> ListenOptions {
        ListenOptions {
            backlog: DEFAULT_BACKLOG,
            keepalive: None,
            sndbuf: None,
            rcvbuf: None,
        }
    }
}

/// A bound, listening TCP socket in non-blocking mode.
#[derive(Debug)]
pub struct Listener {
    socket: TcpListener,
    local: SocketAddr,
}

impl Listener {
    /// The address the kernel bound, with the real port.
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// The endpoint to print in the `listening on` line.
    pub fn endpoint(&self) -> Endpoint {
        Endpoint::tcp(self.local)
    }

    /// The socket itself.
    pub fn into_std(self) -> TcpListener {
        self.socket
    }
}

/// Why an endpoint could not be listened on.
#[derive(Debug, thiserror::Error)]
pub enum BindError {
    /// Another socket already listens there (`EADDRINUSE`).
    #[error("address in use: {addr} is already served{}", held_by(.holders))]
    InUse {
        /// The address asked for.
        addr: SocketAddr,
        /// Who holds it, when `/proc` tells.
        holders: Vec<PortHolder>,
    },
    /// The port is privileged (`EACCES`).
    #[error(
        "permission denied binding {addr}: ports below {first_free} need root or the \
         CAP_NET_BIND_SERVICE capability; use a port of {first_free} or above"
    )]
    Permission {
        /// The address asked for.
        addr: SocketAddr,
        /// The first port anyone may bind (`net.ipv4.ip_unprivileged_port_start`).
        first_free: u32,
    },
    /// The address is not one of this host's (`EADDRNOTAVAIL`).
    #[error(
        "address not available: {addr} is not an address of this host \
         (`ip addr` lists them; 127.0.0.1 is loopback, 0.0.0.0 is every interface)"
    )]
    NotAvailable {
        /// The address asked for.
        addr: SocketAddr,
    },
    /// The host name did not resolve.
    #[error(transparent)]
    Resolve(#[from] ResolveError),
    /// Anything else the kernel refused.
    #[error("cannot listen on {addr}")]
    Other {
        /// The address asked for.
        addr: SocketAddr,
        /// The kernel's error.
        source: io::Error,
    },
}

fn held_by(holders: &[PortHolder]) -> String {
    if holders.is_empty() {
        return " (by a process this user cannot see; `ss -ltnp` as root names it)".into();
    }
    let names: Vec<String> = holders.iter().map(ToString::to_string).collect();
    format!(" by {}", names.join(", "))
}

impl Classify for BindError {
    fn exit_code(&self) -> ExitCode {
        match self {
            BindError::Resolve(e) => e.exit_code(),
            _ => ExitCode::CannotBind,
        }
    }
}

impl BindError {
    fn from_io(addr: SocketAddr, source: io::Error) -> BindError {
        match source.raw_os_error() {
            Some(libc::EADDRINUSE) => BindError::InUse {
                addr,
                holders: os::tcp_port_holders(addr),
            },
            Some(libc::EACCES) | Some(libc::EPERM) => BindError::Permission {
                addr,
                first_free: os::unprivileged_port_start(),
            },
            Some(libc::EADDRNOTAVAIL) => BindError::NotAvailable { addr },
            _ => BindError::Other { addr, source },
        }
    }
}

/// Binds and listens on every address an endpoint stands for: one socket per
/// address a host name resolves to, all on the same port when port 0 asks
/// the kernel to pick one.
pub fn bind(endpoint: &Endpoint, opts: &ListenOptions) -> Result<Vec<Listener>, BindError> {
    let Endpoint::Tcp(hp) = endpoint;
    let addrs = hp.resolve(Purpose::Bind)?;
    warn_if_backlog_capped(opts.backlog);
    if hp.port != 0 || addrs.len() == 1 {
        return addrs.iter().map(|&addr| bind_addr(addr, opts)).collect();
    }
    let mut last_err = None;
    for _ in 0..SAME_PORT_TRIES {
        match bind_same_port(&addrs, opts) {
            Ok(listeners) => return Ok(listeners),
            Err(e @ BindError::InUse { .. }) => last_err = Some(e),
            Err(e) => return Err(e),
        }
    }
    Err(last_err.expect("the loop ran at least once and kept its error"))
}

/// Binds the first address on a kernel-picked port, the others on that port.
fn bind_same_port(addrs: &[SocketAddr], opts: &ListenOptions) -> Result<Vec<Listener>, BindError> {
    let first = bind_addr(addrs[0], opts)?;
    let port = first.local.port();
    let mut listeners = vec![first];
    for addr in &addrs[1..] {
        listeners.push(bind_addr(SocketAddr::new(addr.ip(), port), opts)?);
    }
    Ok(listeners)
}

/// One listening socket on one address.
pub fn bind_addr(addr: SocketAddr, opts: &ListenOptions) -> Result<Listener, BindError> {
    let fail = |e| BindError::from_io(addr, e);
    let socket =
        Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP)).map_err(fail)?;
    socket.set_reuse_address(true).map_err(fail)?;
    // TCP urgent data stays in the byte stream (and so is echoed in its
    // place) instead of being set apart; accepted sockets inherit this.
    socket.set_out_of_band_inline(true).map_err(fail)?;
    if addr.is_ipv6() {
        socket.set_only_v6(true).map_err(fail)?;
    }
    if let Some(size) = opts.sndbuf {
        socket.set_send_buffer_size(size).map_err(fail)?;
    }
    if let Some(size) = opts.rcvbuf {
        socket.set_recv_buffer_size(size).map_err(fail)?;
    }
    socket.set_nonblocking(true).map_err(fail)?;
    socket.bind(&addr.into()).map_err(fail)?;
    let backlog = i32::try_from(opts.backlog).unwrap_or(i32::MAX);
    socket.listen(backlog).map_err(fail)?;
    let socket: TcpListener = socket.into();
    let local = socket.local_addr().map_err(fail)?;
    tracing::debug!("bound {local} with backlog {}", opts.backlog);
    Ok(Listener { socket, local })
}

fn warn_if_backlog_capped(backlog: u32) {
    if let Some(max) = os::somaxconn()
        && backlog > max
    {
        tracing::warn!(
            "--backlog {backlog} is above net.core.somaxconn ({max}): the kernel silently caps it to {max} \
             (raise it with `sysctl net.core.somaxconn={backlog}`)"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{Ipv4Addr, Ipv6Addr};

    #[test]
    fn ipv6_listeners_are_v6_only_and_reuse_addresses() {
        let v6 = bind_addr(
            SocketAddr::from((Ipv6Addr::LOCALHOST, 0)),
            &ListenOptions::default(),
        )
        .unwrap();
        let sock = socket2::SockRef::from(&v6.socket);
        assert!(sock.only_v6().unwrap());
        assert!(sock.reuse_address().unwrap());
        assert!(!sock.reuse_port().unwrap());
    }

    #[test]
    fn second_bind_on_a_served_port_is_address_in_use_naming_this_process() {
        let first = bind_addr(
            SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
            &ListenOptions::default(),
        )
        .unwrap();
        let err = bind_addr(first.local_addr(), &ListenOptions::default()).unwrap_err();
        let BindError::InUse { holders, .. } = &err else {
            panic!("expected InUse, got {err:?}");
        };
        assert!(
            holders.iter().any(|h| h.pid == std::process::id()),
            "{holders:?}"
        );
        assert_eq!(err.exit_code(), ExitCode::CannotBind);
    }
}
