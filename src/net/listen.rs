//! Listening sockets: `socket`, `setsockopt`, `bind` and `listen`, with the
//! options people tune and errors that say what to do, for every transport.
//!
//! Every TCP listener gets `SO_REUSEADDR` (a restarted server can bind while
//! old connections sit in TIME_WAIT) and, for IPv6, `IPV6_V6ONLY` (so `[::]:P`
//! and `0.0.0.0:P` are two sockets that can both be bound). No socket gets
//! `SO_REUSEPORT`, and UDP sockets not even `SO_REUSEADDR` (which on UDP
//! lets two sockets share a port): a second server on a served port must
//! fail with "address in use" rather than silently share it.
//!
//! A UDP socket bound to a wildcard address asks for each datagram's
//! destination address (`IP_PKTINFO`, `IPV6_RECVPKTINFO`), so that the echo
//! leaves from the address the client wrote to. Unix sockets are in
//! `unix.rs`.

use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use socket2::{Domain, Protocol, Socket, Type};

use super::unix::{self, SocketFile};
use crate::calls;
use crate::endpoint::{Endpoint, Purpose, ResolveError, SocketType};
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
    /// Permissions of a Unix socket file.
    pub mode: u32,
}

impl Default for ListenOptions {
    fn default() -> ListenOptions {
        ListenOptions {
            backlog: DEFAULT_BACKLOG,
            keepalive: None,
            sndbuf: None,
            rcvbuf: None,
            mode: unix::DEFAULT_MODE,
        }
    }
}

/// A bound socket in non-blocking mode, ready to serve: a listening stream
/// socket (TCP, `unix:`) or a bound datagram socket (UDP, `unixgram:`).
#[derive(Debug)]
pub struct Listener {
    socket: Socket,
    endpoint: Endpoint,
    local: Option<SocketAddr>,
    /// Removed when the listener closes (dropped after the socket).
    file: Option<SocketFile>,
}

impl Listener {
    /// The IP address the kernel bound, with the real port; `None` for a
    /// Unix socket.
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.local
    }

    /// The endpoint to print in the `listening on` line, with the real port.
    pub fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }

    /// Stream or datagram.
    pub fn socket_type(&self) -> SocketType {
        self.endpoint.socket_type()
    }

    /// The socket itself.
    pub fn socket(&self) -> &Socket {
        &self.socket
    }

    /// The listener's socket file, if it has one: removed when the
    /// listener closes if this process created it, never if it was inherited.
    pub fn file(&self) -> Option<&SocketFile> {
        self.file.as_ref()
    }

    /// A socket someone else bound (socket activation, inetd), made ready
    /// by `activation`; its file, if any, is not ours to remove.
    pub(crate) fn inherited(
        socket: Socket,
        endpoint: Endpoint,
        local: Option<SocketAddr>,
        file: Option<SocketFile>,
    ) -> Listener {
        Listener {
            socket,
            endpoint,
            local,
            file,
        }
    }
}

/// Why an endpoint could not be listened on.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BindError {
    /// Another socket already listens there (`EADDRINUSE`).
    #[error("address in use: {at} is already served{}", held_by(.holders))]
    InUse {
        /// The endpoint asked for.
        at: Endpoint,
        /// The address that was taken, to look up who holds it.
        taken: Taken,
        /// Who holds it: `None` until somebody looks (`net` does not; the
        /// command asks the socket table), then the processes `/proc` shows.
        holders: Option<Vec<PortHolder>>,
    },
    /// The port is privileged (`EACCES`).
    #[error(
        "permission denied binding {addr}: ports below {first_free} need privileges. Start \
         as root with --user NAME (the server binds, then runs as NAME), give the binary the \
         capability (sudo setcap cap_net_bind_service=+ep \"$(command -v echokit)\"), or \
         lower the limit (sudo sysctl net.ipv4.ip_unprivileged_port_start={}); or use a port \
         of {first_free} or above",
        .addr.port()
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
    /// A Unix socket path names something that is not a socket.
    #[error(
        "{} exists and is not a socket: echokit never removes it; \
         choose another path, or move the file away",
        .path.display()
    )]
    NotASocket {
        /// The path asked for.
        path: PathBuf,
    },
    /// A Unix socket path in a directory that does not exist (`ENOENT`).
    #[error(
        "cannot bind {at}: the directory {} does not exist; create it (mkdir -p {}) or put \
         the socket in one that does, such as /tmp",
        .dir.display(),
        .dir.display()
    )]
    NoDirectory {
        /// The endpoint asked for.
        at: Endpoint,
        /// The directory the path names.
        dir: PathBuf,
    },
    /// A Unix socket path in a directory this user may not create files
    /// in (`EACCES`).
    #[error(
        "cannot bind {at}: permission denied: this user may not create files in {}; put the \
         socket in a directory it may write to, such as /tmp or $XDG_RUNTIME_DIR",
        .dir.display()
    )]
    DirectoryDenied {
        /// The endpoint asked for.
        at: Endpoint,
        /// The directory the path names.
        dir: PathBuf,
    },
    /// The host name did not resolve.
    #[error(transparent)]
    Resolve(#[from] ResolveError),
    /// Anything else the kernel refused.
    #[error("cannot bind {at}")]
    Other {
        /// The endpoint asked for.
        at: Endpoint,
        /// The kernel's error.
        source: io::Error,
    },
}

/// The address a bind found taken: what to look up in the socket table to
/// name who holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Taken {
    /// A port at an address: a TCP listener, or any UDP socket, holds it.
    Port(SocketType, SocketAddr),
    /// A Unix socket: its path, or `@NAME` for an abstract name.
    Unix(PathBuf),
}

fn held_by(holders: &Option<Vec<PortHolder>>) -> String {
    match holders.as_deref() {
        None => String::new(),
        Some([]) => " (by a process this user cannot see; `ss -ltnp` as root names it)".into(),
        Some(holders) => {
            let names: Vec<String> = holders.iter().map(ToString::to_string).collect();
            format!(" by {}", names.join(", "))
        }
    }
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
    fn from_io(at: Endpoint, addr: SocketAddr, source: io::Error) -> BindError {
        match source.raw_os_error() {
            Some(libc::EADDRINUSE) => BindError::InUse {
                taken: Taken::Port(at.socket_type(), addr),
                at,
                holders: None,
            },
            Some(libc::EACCES | libc::EPERM) => BindError::Permission {
                addr,
                first_free: os::unprivileged_port_start(),
            },
            Some(libc::EADDRNOTAVAIL) => BindError::NotAvailable { addr },
            _ => BindError::Other { at, source },
        }
    }
}

/// Binds (and, for a stream socket, listens on) every address an endpoint
/// stands for: one socket per address a host name resolves to, all on the
/// same port when port 0 asks the kernel to pick one; one socket for a Unix
/// endpoint.
pub fn bind(endpoint: &Endpoint, opts: &ListenOptions) -> Result<Vec<Listener>, BindError> {
    let Some(hp) = endpoint.host_port() else {
        let (socket, file) = unix::bind(endpoint, opts)?;
        return Ok(vec![Listener {
            socket,
            endpoint: endpoint.clone(),
            local: None,
            file,
        }]);
    };
    let addrs = hp.resolve(Purpose::Bind)?;
    if endpoint.socket_type() == SocketType::Stream {
        warn_if_backlog_capped(opts.backlog);
    }
    let bind_one = |addr| bind_addr(&endpoint.with_addr(addr), addr, opts);
    if hp.port != 0 || addrs.len() == 1 {
        return addrs.iter().map(|&addr| bind_one(addr)).collect();
    }
    let mut last_err = None;
    for _ in 0..SAME_PORT_TRIES {
        match bind_same_port(&addrs, &bind_one) {
            Ok(listeners) => return Ok(listeners),
            Err(e @ BindError::InUse { .. }) => last_err = Some(e),
            Err(e) => return Err(e),
        }
    }
    Err(last_err.expect("the loop ran at least once and kept its error"))
}

/// Binds the first address on a kernel-picked port, the others on that port.
fn bind_same_port(
    addrs: &[SocketAddr],
    bind_one: &dyn Fn(SocketAddr) -> Result<Listener, BindError>,
) -> Result<Vec<Listener>, BindError> {
    let first = bind_one(addrs[0])?;
    let port = first.local.map_or(0, |a| a.port());
    let mut listeners = vec![first];
    for addr in &addrs[1..] {
        listeners.push(bind_one(SocketAddr::new(addr.ip(), port))?);
    }
    Ok(listeners)
}

/// One socket on one IP address, of the endpoint's transport.
fn bind_addr(at: &Endpoint, addr: SocketAddr, opts: &ListenOptions) -> Result<Listener, BindError> {
    let fail = |e| BindError::from_io(at.clone(), addr, e);
    let stream = at.socket_type() == SocketType::Stream;
    let (ty, proto) = if stream {
        (Type::STREAM, Protocol::TCP)
    } else {
        (Type::DGRAM, Protocol::UDP)
    };
    let socket = calls::socket(Domain::for_address(addr), ty, Some(proto)).map_err(fail)?;
    let s = &socket;
    if stream {
        calls::option(s, "SO_REUSEADDR", 1, s.set_reuse_address(true)).map_err(fail)?;
    }
    if addr.is_ipv6() {
        calls::option(s, "IPV6_V6ONLY", 1, s.set_only_v6(true)).map_err(fail)?;
    }
    set_lasting_options(s, at.socket_type(), addr, opts).map_err(fail)?;
    calls::nonblocking(s).map_err(fail)?;
    calls::bind(s, &addr.into()).map_err(fail)?;
    if stream {
        let backlog = i32::try_from(opts.backlog).unwrap_or(i32::MAX);
        calls::listen(s, backlog).map_err(fail)?;
    }
    let local = socket
        .local_addr()
        .map_err(fail)?
        .as_socket()
        .ok_or_else(|| fail(io::Error::other("the bound address is not an IP address")))?;
    let endpoint = at.with_addr(local);
    tracing::debug!("bound {endpoint}");
    Ok(Listener {
        socket,
        endpoint,
        local: Some(local),
        file: None,
    })
}

/// The options of echokit's own IP bind that still mean something after
/// `listen`, so that an inherited socket (socket activation) gets them too:
/// `SO_OOBINLINE` on a stream, the destination address of each datagram on
/// a wildcard datagram socket, `--sndbuf` and `--rcvbuf`.
pub(super) fn set_lasting_options(
    s: &Socket,
    ty: SocketType,
    addr: SocketAddr,
    opts: &ListenOptions,
) -> io::Result<()> {
    match ty {
        SocketType::Stream => {
            // TCP urgent data stays in the byte stream (and so is echoed in
            // its place) instead of being set apart; accepted sockets
            // inherit this.
            calls::option(s, "SO_OOBINLINE", 1, s.set_out_of_band_inline(true))?;
        }
        SocketType::Datagram if addr.ip().is_unspecified() => ask_destination_address(s, addr)?,
        SocketType::Datagram => {}
    }
    set_buffers(s, opts)
}

/// `--sndbuf` and `--rcvbuf`, when given.
pub(super) fn set_buffers(s: &Socket, opts: &ListenOptions) -> io::Result<()> {
    if let Some(size) = opts.sndbuf {
        calls::option(s, "SO_SNDBUF", size, s.set_send_buffer_size(size))?;
    }
    if let Some(size) = opts.rcvbuf {
        calls::option(s, "SO_RCVBUF", size, s.set_recv_buffer_size(size))?;
    }
    Ok(())
}

/// Each datagram comes with the address it was sent to (`IP_PKTINFO`,
/// `IPV6_RECVPKTINFO`), so a wildcard socket can answer from it.
fn ask_destination_address(socket: &Socket, addr: SocketAddr) -> io::Result<()> {
    use nix::sys::socket::{setsockopt, sockopt};
    let (name, done) = if addr.is_ipv6() {
        let done = setsockopt(socket, sockopt::Ipv6RecvPacketInfo, &true);
        ("IPV6_RECVPKTINFO", done)
    } else {
        (
            "IP_PKTINFO",
            setsockopt(socket, sockopt::Ipv4PacketInfo, &true),
        )
    };
    calls::option(socket, name, 1, done.map_err(io::Error::from))
}

/// `TCP_DEFER_ACCEPT` on a TCP listener: the kernel completes a
/// connection's handshake but hands it to `accept` only once its first
/// bytes have come in, or after about `wait` (counted in SYN-ACK resends,
/// so rounded up to 1, 3, 7, 15... s), when it is handed over silent. A
/// client that connects and sends nothing holds no descriptor and no place
/// of the server's meanwhile, and a connection is accepted with its request
/// already there to read. A `wait` of zero turns it off.
pub fn defer_accept(socket: &Socket, wait: Duration) -> io::Result<()> {
    // Whole seconds, a part of one counting as one.
    let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    let secs = libc::c_int::try_from(secs).unwrap_or(libc::c_int::MAX);
    // SAFETY: setsockopt(2) on a descriptor the socket owns, with a pointer
    // to an int that lives across the call and that int's size.
    let rc = unsafe {
        libc::setsockopt(
            std::os::fd::AsRawFd::as_raw_fd(socket),
            libc::IPPROTO_TCP,
            libc::TCP_DEFER_ACCEPT,
            (&raw const secs).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    let result = if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    };
    calls::option(socket, "TCP_DEFER_ACCEPT", secs, result)
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

    fn bind1(endpoint: &str) -> Result<Listener, BindError> {
        let mut listeners = bind(&endpoint.parse().unwrap(), &ListenOptions::default())?;
        assert_eq!(listeners.len(), 1);
        Ok(listeners.remove(0))
    }

    #[test]
    fn ipv6_listeners_are_v6_only_and_reuse_addresses() {
        let v6 = bind1("[::1]:0").unwrap();
        assert!(v6.socket.only_v6().unwrap());
        assert!(v6.socket.reuse_address().unwrap());
        assert!(!v6.socket.reuse_port().unwrap());
    }

    #[test]
    fn defer_accept_is_set_in_whole_resends() {
        let tcp = bind1("127.0.0.1:0").unwrap();
        let read = || {
            let mut secs: libc::c_int = -1;
            let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
            // SAFETY: getsockopt(2) on the listener's descriptor into an
            // int and its size, both alive across the call.
            let rc = unsafe {
                libc::getsockopt(
                    std::os::fd::AsRawFd::as_raw_fd(&tcp.socket),
                    libc::IPPROTO_TCP,
                    libc::TCP_DEFER_ACCEPT,
                    (&raw mut secs).cast(),
                    &raw mut len,
                )
            };
            assert_eq!(rc, 0, "{}", io::Error::last_os_error());
            secs
        };
        // 3 s is two SYN-ACK resends, after 1 s and 2 s more: 3 s.
        defer_accept(&tcp.socket, Duration::from_secs(3)).unwrap();
        assert_eq!(read(), 3);
        // 2.5 s round up to 3 s, and 2 s too (no number of resends is 2 s).
        defer_accept(&tcp.socket, Duration::from_millis(2500)).unwrap();
        assert_eq!(read(), 3);
        defer_accept(&tcp.socket, Duration::from_secs(2)).unwrap();
        assert_eq!(read(), 3);
        defer_accept(&tcp.socket, Duration::ZERO).unwrap();
        assert_eq!(read(), 0, "off");
    }

    #[test]
    fn udp_sockets_share_no_port() {
        let udp = bind1("udp://127.0.0.1:0").unwrap();
        assert!(!udp.socket.reuse_address().unwrap());
        assert!(!udp.socket.reuse_port().unwrap());
        assert_eq!(udp.socket_type(), SocketType::Datagram);
        let again = format!("udp://{}", udp.local_addr().unwrap());
        let err = bind1(&again).unwrap_err();
        assert!(matches!(err, BindError::InUse { .. }), "{err:?}");
    }

    #[test]
    fn second_bind_on_a_served_port_is_address_in_use_saying_what_was_taken() {
        for (scheme, ty) in [("tcp", SocketType::Stream), ("udp", SocketType::Datagram)] {
            let first = bind1(&format!("{scheme}://127.0.0.1:0")).unwrap();
            let err = bind1(&first.endpoint().to_string()).unwrap_err();
            let BindError::InUse { taken, holders, .. } = &err else {
                panic!("expected InUse, got {err:?}");
            };
            assert_eq!(*taken, Taken::Port(ty, first.local_addr().unwrap()));
            assert_eq!(*holders, None, "net does not look: the command does");
            assert_eq!(err.exit_code(), ExitCode::CannotBind);
            assert!(
                err.to_string()
                    .starts_with(&format!("address in use: {scheme}://127.0.0.1:")),
                "{err}"
            );
        }
    }
}
