//! Outgoing connections: `connect` with Happy Eyeballs (RFC 8305), an overall
//! timeout, an optional local address, and errors that name the cause and the
//! likely fix.
//!
//! A name that resolves to several addresses (`localhost` to `::1` and
//! `127.0.0.1`, say) is tried in the resolver's order with the families
//! interleaved; the next attempt starts when the previous one fails or after
//! [`ATTEMPT_DELAY`], whichever comes first, and the first to connect wins.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use mio::{Events, Interest, Token};
use socket2::{Domain, Protocol, Socket, Type};

use super::unix;
use crate::calls;
use crate::driver::Driver;
use crate::endpoint::{Endpoint, LocalName, Purpose, ResolveError, SocketType};
use crate::exit::{Classify, ExitCode};

/// How long one connect may take when no `--connect-timeout` is given. Long
/// enough for a far host and a retransmitted SYN (the first retry comes after
/// 1 s, the second after 3 s), short enough that a dropped SYN is reported
/// before a person gives up on the tool.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// RFC 8305's recommended Connection Attempt Delay: how long an attempt has
/// before the next address is tried beside it.
pub const ATTEMPT_DELAY: Duration = Duration::from_millis(250);

/// How to connect.
#[derive(Clone, Debug)]
pub struct ConnectOptions {
    /// The longest a connect may take, all attempts together.
    pub timeout: Duration,
    /// The local address to connect from (`--bind`).
    pub bind: Option<IpAddr>,
    /// The local port to connect from (`--source-port`).
    pub source_port: Option<u16>,
}

impl ConnectOptions {
    /// These options with the connect bounded by `limit` too: a limit on a
    /// whole exchange covers its connect.
    pub fn within(&self, limit: Option<Duration>) -> ConnectOptions {
        ConnectOptions {
            timeout: limit.map_or(self.timeout, |l| l.min(self.timeout)),
            ..self.clone()
        }
    }
}

impl Default for ConnectOptions {
    fn default() -> ConnectOptions {
        ConnectOptions {
            timeout: DEFAULT_CONNECT_TIMEOUT,
            bind: None,
            source_port: None,
        }
    }
}

/// Why a connection could not be made.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConnectError {
    /// A RST answered the SYN (`ECONNREFUSED`).
    #[error("connection refused by {target}: {}", refused_why(.here))]
    Refused {
        /// The addresses tried, as written.
        target: String,
        /// The addresses that refused, to look up what listens here instead.
        tried: Vec<SocketAddr>,
        /// TCP or UDP (a UDP "refusal" is an ICMP port unreachable).
        over: SocketType,
        /// What listens here instead, when the addresses are this host's:
        /// `None` until somebody looks (`net` does not; the command asks the
        /// socket table).
        here: Option<String>,
    },
    /// Nothing answered in time.
    #[error(
        "timed out connecting to {target} after {}: nothing answered \
         (a firewall dropping packets, a full listen backlog, or a wrong address); \
         --connect-timeout sets the limit",
        crate::text::duration(*after)
    )]
    TimedOut {
        /// The addresses tried.
        target: String,
        /// How long it waited.
        after: Duration,
    },
    /// No route to the host or network.
    #[error("host unreachable: {target} (check the address, the routes and the network)")]
    Unreachable {
        /// The addresses tried.
        target: String,
        /// The kernel's error.
        source: io::Error,
    },
    /// No Unix socket answers at the path or name.
    #[error("nothing listens at {target}: {why}")]
    NoLocalServer {
        /// The endpoint tried.
        target: String,
        /// What the kernel's answer means.
        why: &'static str,
    },
    /// The Unix socket file's permissions keep this user out.
    #[error(
        "permission denied connecting to {target}: the socket file's mode or its directory \
         keeps this user out (the server sets it with --mode)"
    )]
    Denied {
        /// The endpoint tried.
        target: String,
    },
    /// The socket at the path is of the other type (stream or datagram).
    #[error("{target} is a {found} socket: use {hint}")]
    WrongType {
        /// The endpoint tried.
        target: String,
        /// "stream" or "datagram".
        found: &'static str,
        /// The endpoint to use instead.
        hint: String,
    },
    /// The name did not resolve.
    #[error(transparent)]
    Resolve(#[from] ResolveError),
    /// The local address or port could not be used.
    #[error("cannot bind the local address {local}{}", local_hint(.source))]
    LocalBind {
        /// The local address asked for.
        local: SocketAddr,
        /// The kernel's error.
        source: io::Error,
    },
    /// `--bind` names an address family that the target does not have.
    #[error("{target} has no {family} address to reach from --bind {bind}")]
    FamilyMismatch {
        /// The addresses the target resolved to.
        target: String,
        /// The local address asked for.
        bind: IpAddr,
        /// "IPv4" or "IPv6".
        family: &'static str,
    },
    /// Anything else.
    #[error("cannot connect to {target}")]
    Other {
        /// The addresses tried.
        target: String,
        /// The kernel's error.
        source: io::Error,
    },
}

fn refused_why(here: &Option<String>) -> &str {
    match here {
        Some(here) => here,
        None => {
            "nothing is listening there: is the server running, is the port right, \
             is a firewall in the way?"
        }
    }
}

fn local_hint(e: &io::Error) -> &'static str {
    match e.raw_os_error() {
        Some(libc::EADDRINUSE) => {
            " (another socket uses that source port: pick another --source-port)"
        }
        Some(libc::EADDRNOTAVAIL) => {
            " (it is not an address of this host, or the ephemeral ports are used up: \
             see net.ipv4.ip_local_port_range)"
        }
        _ => "",
    }
}

impl Classify for ConnectError {
    fn exit_code(&self) -> ExitCode {
        match self {
            ConnectError::Refused { .. } | ConnectError::NoLocalServer { .. } => ExitCode::Refused,
            ConnectError::Denied { .. } => ExitCode::PermissionDenied,
            ConnectError::WrongType { .. } => ExitCode::Usage,
            ConnectError::TimedOut { .. } => ExitCode::TimedOut,
            ConnectError::Unreachable { .. } | ConnectError::Resolve(_) => ExitCode::Unreachable,
            ConnectError::LocalBind { .. } => ExitCode::CannotBind,
            ConnectError::FamilyMismatch { .. } => ExitCode::Usage,
            ConnectError::Other { .. } => ExitCode::Failures,
        }
    }
}

impl ConnectError {
    /// The errno behind the error, when there is one: `ECONNREFUSED` for a
    /// refusal and `ETIMEDOUT` for a timeout (whose kernel errors are not
    /// kept), the kernel's own otherwise.
    pub fn errno(&self) -> Option<i32> {
        match self {
            ConnectError::Refused { .. } => Some(libc::ECONNREFUSED),
            ConnectError::TimedOut { .. } => Some(libc::ETIMEDOUT),
            ConnectError::Unreachable { source, .. }
            | ConnectError::LocalBind { source, .. }
            | ConnectError::Other { source, .. } => source.raw_os_error(),
            _ => None,
        }
    }

    /// Classifies the error of a connect attempt to `target`.
    pub fn from_io(target: String, source: io::Error) -> ConnectError {
        match source.raw_os_error() {
            Some(libc::ECONNREFUSED | libc::ECONNRESET) => ConnectError::Refused {
                target,
                tried: Vec::new(),
                over: SocketType::Stream,
                here: None,
            },
            Some(libc::ETIMEDOUT) => ConnectError::TimedOut {
                target,
                after: Duration::ZERO,
            },
            Some(libc::EHOSTUNREACH | libc::ENETUNREACH | libc::EHOSTDOWN | libc::ENETDOWN) => {
                ConnectError::Unreachable { target, source }
            }
            _ => ConnectError::Other { target, source },
        }
    }

    /// How strongly this error tells what is wrong, to choose one to report
    /// when every address failed: a refusal proves the host is there.
    fn weight(&self) -> u8 {
        match self {
            ConnectError::Refused { .. } | ConnectError::NoLocalServer { .. } => 4,
            ConnectError::TimedOut { .. } => 3,
            ConnectError::LocalBind { .. } => 2,
            ConnectError::Unreachable { .. } => 1,
            _ => 0,
        }
    }
}

/// Connects to a stream endpoint: TCP (resolved, with Happy Eyeballs) or a
/// Unix stream socket. Returns the connected, non-blocking socket and the
/// endpoint it reached.
pub fn connect_stream(
    endpoint: &Endpoint,
    opts: &ConnectOptions,
) -> Result<(Socket, Endpoint), ConnectError> {
    debug_assert_eq!(endpoint.socket_type(), SocketType::Stream);
    match endpoint.host_port() {
        Some(hp) => {
            let addrs = hp.resolve(Purpose::Connect)?;
            let (socket, addr) = connect(&addrs, opts)?;
            Ok((socket, endpoint.with_addr(addr)))
        }
        None => Ok((connect_local(endpoint, opts.timeout)?, endpoint.clone())),
    }
}

/// Connects a socket to a Unix endpoint (stream or datagram). A Unix
/// connect does not wait on a network: it succeeds, or fails at once,
/// or waits for room in a full listen backlog, at most `timeout`.
pub fn connect_local(endpoint: &Endpoint, timeout: Duration) -> Result<Socket, ConnectError> {
    let name = endpoint
        .local_name()
        .expect("connect_local is called with Unix endpoints only");
    let fail = |e| local_error(endpoint, name, e);
    let socket =
        calls::socket(Domain::UNIX, endpoint.socket_type().socket2(), None).map_err(fail)?;
    connect_local_with(&socket, endpoint, timeout)?;
    Ok(socket)
}

/// Connects an existing Unix socket (a datagram client's, bound to its own
/// path first) to a Unix endpoint; the socket is left non-blocking.
pub fn connect_local_with(
    socket: &Socket,
    endpoint: &Endpoint,
    timeout: Duration,
) -> Result<(), ConnectError> {
    let name = endpoint
        .local_name()
        .expect("connect_local_with is called with Unix endpoints only");
    let target = endpoint.to_string();
    let fail = |e| local_error(endpoint, name, e);
    let addr = unix::sock_addr(name).map_err(fail)?;
    socket.set_write_timeout(Some(timeout)).map_err(fail)?;
    match calls::connect(socket, &addr) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
            return Err(ConnectError::TimedOut {
                target,
                after: timeout,
            });
        }
        Err(e) => return Err(fail(e)),
    }
    socket.set_write_timeout(None).map_err(fail)?;
    calls::nonblocking(socket).map_err(fail)?;
    Ok(())
}

fn local_error(endpoint: &Endpoint, name: &LocalName, e: io::Error) -> ConnectError {
    let target = endpoint.to_string();
    let is_file = matches!(name, LocalName::Path(_));
    match e.raw_os_error() {
        // ENOTDIR: a directory on the way is a regular file.
        Some(libc::ENOENT | libc::ENOTDIR) if is_file => ConnectError::NoLocalServer {
            target,
            why: "no such socket file (is the server running, is the path right?)",
        },
        Some(libc::ECONNREFUSED) if is_file => ConnectError::NoLocalServer {
            target,
            why: "the socket file is there but no server listens on it \
                  (left behind by a server that stopped?)",
        },
        Some(libc::ECONNREFUSED) => ConnectError::NoLocalServer {
            target,
            why: "no socket has that abstract name (is the server running?)",
        },
        Some(libc::EACCES | libc::EPERM) => ConnectError::Denied { target },
        Some(libc::EPROTOTYPE) => {
            let (found, hint) = match endpoint {
                Endpoint::Unix(n) => ("datagram", format!("unixgram:{n}")),
                _ => ("stream", format!("unix:{name}")),
            };
            ConnectError::WrongType {
                target,
                found,
                hint,
            }
        }
        _ => ConnectError::from_io(target, e),
    }
}

/// Orders addresses as RFC 8305 section 4 asks: the resolver's order, with
/// the two families interleaved, starting with the family it put first.
pub fn interleave_families(addrs: &[SocketAddr]) -> Vec<SocketAddr> {
    let Some(first) = addrs.first() else {
        return Vec::new();
    };
    let (mut lead, mut other): (Vec<SocketAddr>, Vec<SocketAddr>) =
        addrs.iter().partition(|a| a.is_ipv6() == first.is_ipv6());
    lead.reverse();
    other.reverse();
    let mut out = Vec::with_capacity(addrs.len());
    while !lead.is_empty() || !other.is_empty() {
        out.extend(lead.pop());
        out.extend(other.pop());
    }
    out
}

/// The local address a socket of `addr`'s family binds before connecting,
/// if the options ask for one.
pub fn local_addr_for(addr: SocketAddr, opts: &ConnectOptions) -> Option<SocketAddr> {
    if opts.bind.is_none() && opts.source_port.is_none() {
        return None;
    }
    let port = opts.source_port.unwrap_or(0);
    let ip = opts.bind.unwrap_or(if addr.is_ipv6() {
        IpAddr::V6(Ipv6Addr::UNSPECIFIED)
    } else {
        IpAddr::V4(Ipv4Addr::UNSPECIFIED)
    });
    Some(SocketAddr::new(ip, port))
}

/// Creates a non-blocking socket, binds it if asked, and starts a connect to
/// `addr`. The connect completes when the socket becomes writable.
pub fn start(addr: SocketAddr, opts: &ConnectOptions) -> Result<Socket, ConnectError> {
    let target = addr.to_string();
    let fail = |e| ConnectError::from_io(target.clone(), e);
    let socket = calls::socket(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))
        .map_err(fail)?;
    let s = &socket;
    calls::nonblocking(s).map_err(fail)?;
    // Echo clients send small messages and wait for them: Nagle's algorithm
    // would hold the second message of a pipeline back for an ACK.
    calls::option(s, "TCP_NODELAY", 1, s.set_tcp_nodelay(true)).map_err(fail)?;
    if let Some(local) = local_addr_for(addr, opts) {
        let bind_fail = |source| ConnectError::LocalBind { local, source };
        if local.port() != 0 {
            calls::option(s, "SO_REUSEADDR", 1, s.set_reuse_address(true)).map_err(bind_fail)?;
        }
        calls::bind(s, &local.into()).map_err(bind_fail)?;
    }
    match calls::connect(s, &addr.into()) {
        Ok(()) => Ok(socket),
        Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => Ok(socket),
        Err(e) if e.raw_os_error() == Some(libc::EADDRNOTAVAIL) => Err(ConnectError::LocalBind {
            local: local_addr_for(addr, opts)
                .unwrap_or_else(|| SocketAddr::new(unspecified(addr), 0)),
            source: e,
        }),
        Err(e) => Err(fail(e)),
    }
}

/// A UDP socket connected to `addr`, bound first if the options ask (with
/// `SO_REUSEADDR` for a fixed port, as [`start`] does). Connected, it sends
/// to `addr` alone, takes datagrams from it alone, and is handed the ICMP
/// errors its datagrams cause (`ECONNREFUSED` for a closed port).
pub fn connect_udp(addr: SocketAddr, opts: &ConnectOptions) -> Result<Socket, ConnectError> {
    let target = addr.to_string();
    let fail = |e| ConnectError::from_io(target.clone(), e);
    let socket =
        calls::socket(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP)).map_err(fail)?;
    let s = &socket;
    if let Some(local) = local_addr_for(addr, opts) {
        let bind_fail = |source| ConnectError::LocalBind { local, source };
        if local.port() != 0 {
            calls::option(s, "SO_REUSEADDR", 1, s.set_reuse_address(true)).map_err(bind_fail)?;
        }
        calls::bind(s, &local.into()).map_err(bind_fail)?;
    }
    calls::connect(s, &addr.into()).map_err(fail)?;
    Ok(socket)
}

fn unspecified(addr: SocketAddr) -> IpAddr {
    if addr.is_ipv6() {
        IpAddr::V6(Ipv6Addr::UNSPECIFIED)
    } else {
        IpAddr::V4(Ipv4Addr::UNSPECIFIED)
    }
}

/// Whether a started connect has finished: `Ok(true)` connected, `Ok(false)`
/// still in progress, `Err` failed.
pub fn finished(socket: &Socket) -> io::Result<bool> {
    let result = connect_outcome(socket);
    calls::connect_ended(socket, &result);
    result
}

fn connect_outcome(socket: &Socket) -> io::Result<bool> {
    if let Some(e) = socket.take_error()? {
        return Err(e);
    }
    match socket.peer_addr() {
        Ok(_) => Ok(true),
        Err(e) if e.raw_os_error() == Some(libc::ENOTCONN) => Ok(false),
        Err(e) => Err(e),
    }
}

/// The addresses to try, in order: those of `--bind`'s family if given
/// (an error when there are none), else both families interleaved (RFC 8305).
pub fn candidates(
    addrs: &[SocketAddr],
    opts: &ConnectOptions,
) -> Result<Vec<SocketAddr>, ConnectError> {
    let Some(bind) = opts.bind else {
        return Ok(interleave_families(addrs));
    };
    let fitting: Vec<SocketAddr> = addrs
        .iter()
        .copied()
        .filter(|a| a.is_ipv6() == bind.is_ipv6())
        .collect();
    if fitting.is_empty() {
        return Err(ConnectError::FamilyMismatch {
            target: join(addrs),
            bind,
            family: if bind.is_ipv6() { "IPv6" } else { "IPv4" },
        });
    }
    Ok(fitting)
}

fn join(addrs: &[SocketAddr]) -> String {
    let all: Vec<String> = addrs.iter().map(ToString::to_string).collect();
    all.join(", ")
}

/// Connects to the first of `addrs` that answers, Happy Eyeballs style.
/// Returns the connected (non-blocking) socket and the address it reached.
pub fn connect(
    addrs: &[SocketAddr],
    opts: &ConnectOptions,
) -> Result<(Socket, SocketAddr), ConnectError> {
    let all = join(addrs);
    let ordered = candidates(addrs, opts)?;
    let started = Instant::now();
    let deadline = crate::deadline::after(started, opts.timeout);
    let mut driver = Driver::new().map_err(|e| ConnectError::from_io(all.clone(), e))?;
    let mut events = Events::with_capacity(8);
    let mut attempts: Vec<Option<Socket>> = Vec::with_capacity(ordered.len());
    let mut errors: Vec<ConnectError> = Vec::new();
    let mut next_start = started;
    loop {
        let now = Instant::now();
        let live = attempts.iter().filter(|a| a.is_some()).count();
        if attempts.len() < ordered.len() && (now >= next_start || live == 0) {
            let addr = ordered[attempts.len()];
            tracing::debug!("connecting to {addr}");
            match start(addr, opts) {
                Ok(socket) => {
                    let token = Token(attempts.len());
                    driver
                        .watch(socket.as_raw_fd(), token, Interest::WRITABLE)
                        .map_err(|e| ConnectError::from_io(all.clone(), e))?;
                    attempts.push(Some(socket));
                }
                Err(e) => {
                    tracing::debug!(
                        error = &e as &dyn std::error::Error,
                        "{addr}: attempt failed"
                    );
                    attempts.push(None);
                    errors.push(e);
                }
            }
            next_start = Instant::now() + ATTEMPT_DELAY;
            continue;
        }
        if live == 0 {
            return Err(pick_error(errors, &ordered));
        }
        if now >= deadline {
            return Err(ConnectError::TimedOut {
                target: all,
                after: opts.timeout,
            });
        }
        let mut wait = deadline - now;
        if attempts.len() < ordered.len() {
            wait = wait.min(next_start.saturating_duration_since(now));
        }
        if let Err(e) = driver.wait(&mut events, Some(wait)) {
            return Err(ConnectError::from_io(all, e));
        }
        for event in &events {
            let i = event.token().0;
            let Some(socket) = &attempts[i] else { continue };
            match finished(socket) {
                Ok(false) => {}
                Ok(true) => {
                    let socket = attempts[i].take().expect("checked to be Some just above");
                    tracing::debug!(
                        "connected to {} in {}",
                        ordered[i],
                        crate::text::duration(started.elapsed())
                    );
                    return Ok((socket, ordered[i]));
                }
                Err(e) => {
                    tracing::debug!("{}: {}", ordered[i], crate::text::os_error(&e));
                    errors.push(ConnectError::from_io(ordered[i].to_string(), e));
                    attempts[i] = None;
                    // A failure starts the next attempt at once (RFC 8305 section 5).
                    next_start = Instant::now();
                }
            }
        }
    }
}

/// The error to report when every attempt failed: the most telling one, with
/// every address tried as its target.
fn pick_error(errors: Vec<ConnectError>, tried: &[SocketAddr]) -> ConnectError {
    let best = errors
        .into_iter()
        .enumerate()
        .max_by_key(|(i, e)| (e.weight(), std::cmp::Reverse(*i)))
        .map(|(_, e)| e);
    let target = join(tried);
    match best {
        Some(ConnectError::Refused { .. }) => ConnectError::Refused {
            target,
            tried: tried.to_vec(),
            over: SocketType::Stream,
            here: None,
        },
        Some(ConnectError::Unreachable { source, .. }) => {
            ConnectError::Unreachable { target, source }
        }
        Some(ConnectError::Other { source, .. }) => ConnectError::Other { target, source },
        Some(other) => other,
        None => ConnectError::Other {
            target,
            source: io::Error::new(io::ErrorKind::NotFound, "no address to connect to"),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    fn a(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn families_are_interleaved_starting_with_the_first() {
        let addrs = [
            a("[::1]:1"),
            a("[::2]:1"),
            a("1.0.0.1:1"),
            a("1.0.0.2:1"),
            a("1.0.0.3:1"),
        ];
        let want = [
            a("[::1]:1"),
            a("1.0.0.1:1"),
            a("[::2]:1"),
            a("1.0.0.2:1"),
            a("1.0.0.3:1"),
        ];
        assert_eq!(interleave_families(&addrs), want);
    }

    #[test]
    fn refused_when_nothing_listens() {
        // A bound socket that does not listen answers SYNs with RST.
        let holder = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
        holder.bind(&a("127.0.0.1:0").into()).unwrap();
        let addr = holder.local_addr().unwrap().as_socket().unwrap();
        let err = connect(&[addr], &ConnectOptions::default()).unwrap_err();
        assert!(matches!(err, ConnectError::Refused { .. }), "{err:?}");
        assert_eq!(err.exit_code(), ExitCode::Refused);
    }

    #[test]
    fn a_refused_address_falls_through_to_one_that_listens() {
        let holder = Socket::new(Domain::IPV6, Type::STREAM, None).unwrap();
        holder.bind(&a("[::1]:0").into()).unwrap();
        let dead = holder.local_addr().unwrap().as_socket().unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let live = listener.local_addr().unwrap();
        let (_stream, reached) = connect(&[dead, live], &ConnectOptions::default()).unwrap();
        assert_eq!(reached, live);
    }

    /// A listener whose accept queue is full: further SYNs are dropped, so a
    /// connect to it hangs (as to a host behind a dropping firewall).
    fn black_hole(addr: &str) -> (Socket, Vec<Socket>, SocketAddr) {
        let listener = Socket::new(Domain::for_address(a(addr)), Type::STREAM, None).unwrap();
        listener.bind(&a(addr).into()).unwrap();
        listener.listen(0).unwrap();
        let at = listener.local_addr().unwrap().as_socket().unwrap();
        let mut fillers = Vec::new();
        loop {
            let s = Socket::new(Domain::for_address(at), Type::STREAM, None).unwrap();
            if s.connect_timeout(&at.into(), Duration::from_millis(300))
                .is_err()
            {
                return (listener, fillers, at);
            }
            fillers.push(s);
            assert!(fillers.len() < 64, "the accept queue never filled");
        }
    }

    #[test]
    fn a_silent_address_does_not_hold_up_the_next_one() {
        let (_listener, _fillers, silent) = black_hole("[::1]:0");
        let live = TcpListener::bind("127.0.0.1:0").unwrap();
        let live_addr = live.local_addr().unwrap();
        // The silent attempt would retry its SYN for minutes; the second
        // address starts after ATTEMPT_DELAY, beside it, and wins.
        let opts = ConnectOptions {
            timeout: Duration::from_secs(20),
            ..ConnectOptions::default()
        };
        let (_stream, reached) = connect(&[silent, live_addr], &opts).unwrap();
        assert_eq!(reached, live_addr);
    }

    #[test]
    fn a_silent_address_times_out_at_the_limit() {
        let (_listener, _fillers, silent) = black_hole("127.0.0.1:0");
        let opts = ConnectOptions {
            timeout: Duration::from_millis(300),
            ..ConnectOptions::default()
        };
        let err = connect(&[silent], &opts).unwrap_err();
        assert_eq!(err.exit_code(), ExitCode::TimedOut, "{err}");
    }

    #[test]
    fn bind_family_mismatch_is_a_usage_error() {
        let opts = ConnectOptions {
            bind: Some("::1".parse().unwrap()),
            ..ConnectOptions::default()
        };
        let err = connect(&[a("127.0.0.1:9")], &opts).unwrap_err();
        assert_eq!(err.exit_code(), ExitCode::Usage, "{err}");
    }
}
