//! Sockets a service manager opened for us, instead of binding our own:
//! systemd's socket activation and inetd's standard input.
//!
//! - **Socket activation** (`sd_listen_fds(3)`): when `LISTEN_PID` is this
//!   process, `LISTEN_FDS` sockets start at descriptor 3, named by the
//!   optional `LISTEN_FDNAMES`. [`from_env`] takes them (through the
//!   `sd-notify` crate, which also marks them close-on-exec) and unsets the
//!   three variables, so a child never takes them for its own.
//! - **inetd** (`nowait`) and systemd's `Accept=yes` with
//!   `StandardInput=socket` give one connected socket on descriptors 0 and 1;
//!   inetd's `wait` mode gives the listening or datagram socket itself.
//!   [`take_stdin`] takes it, and points every standard descriptor that
//!   held it at `/dev/null`, so that nothing printed can reach the client
//!   and our close is the last one (the FIN goes out then).
//!
//! [`inherit`] turns a descriptor into what it is, read from the kernel
//! rather than trusted: `SO_TYPE`, `SO_PROTOCOL`, `SO_ACCEPTCONN`,
//! `getsockname` and `getpeername`. A listener gets the options echokit's
//! own bind sets that still mean something after `listen`: non-blocking,
//! `SO_OOBINLINE` on TCP (accepted sockets inherit it), `IP_PKTINFO` on a
//! wildcard UDP socket, the send buffer a Unix datagram socket needs,
//! `--sndbuf` and `--rcvbuf`. What only `bind` and `listen` choose
//! (`IPV6_V6ONLY`, the backlog) is the socket unit's (`BindIPv6Only=`,
//! `Backlog=`). An inherited Unix socket's file is never removed: it is the
//! service manager's, and outlives this process.

use std::io;
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::path::Path;

use socket2::{Protocol, SockAddr, Socket, Type};

use super::Peer;
use super::listen::{ListenOptions, Listener, set_buffers, set_lasting_options};
use super::unix::{self, SocketFile};
use crate::calls;
use crate::endpoint::{Endpoint, LocalName, SocketType};
use crate::exit::{Classify, ExitCode};

/// The descriptors socket activation passed to this process, in the order
/// of the socket unit, each with its name (`LISTEN_FDNAMES`; systemd's
/// default is the socket unit's name, and `unknown` when none was given).
#[derive(Debug)]
pub struct Activated {
    fds: Vec<(OwnedFd, String)>,
}

impl Activated {
    /// How many descriptors were passed.
    pub fn len(&self) -> usize {
        self.fds.len()
    }

    /// Whether none was passed (`LISTEN_FDS=0`).
    pub fn is_empty(&self) -> bool {
        self.fds.is_empty()
    }

    /// The descriptors with their names, to take one by one.
    pub fn into_fds(self) -> Vec<(OwnedFd, String)> {
        self.fds
    }

    /// Every passed descriptor as a listener, in the unit's order: what a
    /// server serves instead of binding.
    pub fn listeners(self, opts: &ListenOptions) -> Result<Vec<Listener>, ActivationError> {
        let mut listeners = Vec::with_capacity(self.fds.len());
        for (fd, name) in self.fds {
            let number = fd.as_raw_fd();
            match inherit(fd, opts)? {
                Inherited::Listener(listener) => {
                    tracing::debug!(
                        "socket activation: descriptor {number} ({name}) is {}",
                        listener.endpoint()
                    );
                    listeners.push(listener);
                }
                Inherited::Connection(..) => {
                    return Err(ActivationError::Connected { fd: number });
                }
            }
        }
        Ok(listeners)
    }
}

/// What an inherited socket is.
#[derive(Debug)]
pub enum Inherited {
    /// A listening stream socket or a bound datagram socket: serve it as
    /// echokit's own bind would.
    Listener(Listener),
    /// A connected stream socket: one client (inetd's `nowait`, systemd's
    /// `Accept=yes`), non-blocking.
    Connection(Socket, Peer),
}

/// What standard input is, for `--inetd`.
#[derive(Debug)]
pub enum Stdin {
    /// A socket, taken: descriptors 0, 1 and 2 no longer refer to it.
    Socket(Inherited),
    /// Not a socket (a pipe, a file, a terminal): descriptors 0 and 1 are
    /// left as they are.
    NotASocket,
}

/// Why an inherited descriptor cannot be served.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ActivationError {
    /// `LISTEN_PID`, `LISTEN_FDS` or `LISTEN_FDNAMES` is malformed, or a
    /// descriptor they name is not open.
    #[error(
        "socket activation: LISTEN_PID, LISTEN_FDS or LISTEN_FDNAMES is malformed or names a \
         descriptor that is not open"
    )]
    Environment(#[source] io::Error),
    /// The descriptor is not a socket (a FIFO of `ListenFIFO=`, a file).
    #[error("descriptor {fd} is not a socket: echokit serves sockets only")]
    NotASocket {
        /// The descriptor number.
        fd: RawFd,
    },
    /// A socket of a kind echokit does not serve.
    #[error(
        "descriptor {fd} is {what}: echokit serves TCP and Unix stream sockets that listen, \
         and bound UDP and Unix datagram sockets"
    )]
    Unsupported {
        /// The descriptor number.
        fd: RawFd,
        /// What it is, e.g. `a SOCK_SEQPACKET socket`.
        what: String,
    },
    /// Socket activation passed a connection, not a listening socket: the
    /// unit has `Accept=yes`.
    #[error(
        "descriptor {fd} is a connected socket, not a listening one: the socket unit has \
         Accept=yes, which starts one process per connection; give it --inetd (with \
         StandardInput=socket), or set Accept=no"
    )]
    Connected {
        /// The descriptor number.
        fd: RawFd,
    },
    /// A system call on the descriptor failed.
    #[error("cannot take descriptor {fd}")]
    Io {
        /// The descriptor number.
        fd: RawFd,
        /// The kernel's error.
        source: io::Error,
    },
}

impl Classify for ActivationError {
    fn exit_code(&self) -> ExitCode {
        match self {
            ActivationError::Io { .. } => ExitCode::Failures,
            // The service manager's configuration does not fit: a usage error.
            _ => ExitCode::Usage,
        }
    }
}

/// The sockets systemd passed, if `LISTEN_PID` names this process and
/// `LISTEN_FDS` names one or more; `None` otherwise. `LISTEN_PID`, `LISTEN_FDS` and
/// `LISTEN_FDNAMES` are unset in every case.
///
/// # Safety
///
/// It changes the environment: no other thread may be running (or read the
/// environment) while it does, so call it first thing in `main`.
pub unsafe fn from_env() -> Result<Option<Activated>, ActivationError> {
    // SAFETY: the caller promises that no other thread runs. sd-notify
    // returns nothing when LISTEN_PID names another process.
    let fds = unsafe { sd_notify::listen_fds_with_names_and_unset_env() }
        .map_err(ActivationError::Environment)?;
    let fds: Vec<(OwnedFd, String)> = fds
        // SAFETY: the protocol hands these descriptors to this process,
        // open (sd-notify checked with F_GETFD); they are taken once, here,
        // and nothing else in the process knows their numbers.
        .map(|(fd, name)| (unsafe { OwnedFd::from_raw_fd(fd) }, name))
        .collect();
    Ok((!fds.is_empty()).then_some(Activated { fds }))
}

/// Takes standard input for `--inetd`: the socket, if it is one, with
/// descriptors 0, 1 and 2 that referred to it pointed at `/dev/null`.
pub fn take_stdin(opts: &ListenOptions) -> Result<Stdin, ActivationError> {
    let stdin = io::stdin();
    let io_err = |source| ActivationError::Io { fd: 0, source };
    let Some(id) = socket_id(stdin.as_fd()).map_err(io_err)? else {
        return Ok(Stdin::NotASocket);
    };
    let dup = stdin.as_fd().try_clone_to_owned().map_err(io_err)?;
    // First away from the standard descriptors, so that not even a
    // --trace-calls line of `inherit` can reach the client.
    let null = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/null")
        .map_err(io_err)?;
    for fd in 0..=2 {
        // SAFETY: 0, 1 and 2 are open for the whole process (the runtime
        // opens /dev/null on any that was closed at start); borrowed for
        // this check only.
        let std_fd = unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) };
        if socket_id(std_fd).ok().flatten() != Some(id) {
            continue;
        }
        let pointed = match fd {
            0 => nix::unistd::dup2_stdin(&null),
            1 => nix::unistd::dup2_stdout(&null),
            _ => nix::unistd::dup2_stderr(&null),
        };
        pointed.map_err(|e| ActivationError::Io {
            fd,
            source: e.into(),
        })?;
    }
    Ok(Stdin::Socket(inherit(dup, opts)?))
}

/// A socket's identity (device and inode), or `None` if it is not a socket.
fn socket_id(fd: std::os::fd::BorrowedFd<'_>) -> io::Result<Option<(u64, u64)>> {
    let stat = nix::sys::stat::fstat(fd).map_err(io::Error::from)?;
    let is_socket = stat.st_mode & libc::S_IFMT == libc::S_IFSOCK;
    Ok(is_socket.then_some((stat.st_dev, stat.st_ino)))
}

/// Whether two descriptors are the same socket (one a `dup` of the other):
/// with `Accept=yes`, systemd passes the connection both as standard input
/// and as descriptor 3.
pub fn same_socket(a: impl AsFd, b: impl AsFd) -> bool {
    match (socket_id(a.as_fd()), socket_id(b.as_fd())) {
        (Ok(Some(a)), Ok(Some(b))) => a == b,
        _ => false,
    }
}

/// What an inherited descriptor is, made ready to serve.
pub fn inherit(fd: OwnedFd, opts: &ListenOptions) -> Result<Inherited, ActivationError> {
    let number = fd.as_raw_fd();
    let io_err = |source| ActivationError::Io { fd: number, source };
    let unsupported = |what: &str| ActivationError::Unsupported {
        fd: number,
        what: what.to_string(),
    };
    let socket = Socket::from(fd);
    let ty = match socket.r#type() {
        Ok(ty) => ty,
        Err(e) if e.raw_os_error() == Some(libc::ENOTSOCK) => {
            return Err(ActivationError::NotASocket { fd: number });
        }
        Err(e) => return Err(io_err(e)),
    };
    let ty = if ty == Type::STREAM {
        SocketType::Stream
    } else if ty == Type::DGRAM {
        SocketType::Datagram
    } else if ty == Type::SEQPACKET {
        return Err(unsupported("a SOCK_SEQPACKET socket"));
    } else {
        return Err(unsupported("a raw socket, or of another type"));
    };
    let local = socket.local_addr().map_err(io_err)?;
    let peer = socket.peer_addr().ok();
    if ty == SocketType::Stream && !socket.is_listener().map_err(io_err)? {
        return match peer {
            Some(peer_addr) => {
                calls::nonblocking(&socket).map_err(io_err)?;
                let peer = Peer::of(&socket, &peer_addr);
                Ok(Inherited::Connection(socket, peer))
            }
            None => Err(unsupported(
                "a stream socket that neither listens nor is connected",
            )),
        };
    }
    if peer.is_some() {
        return Err(unsupported("a connected datagram socket"));
    }
    let mut file = None;
    let endpoint = if let Some(addr) = local.as_socket() {
        check_ip_protocol(&socket, ty).map_err(|e| match e {
            Ok(what) => unsupported(&what),
            Err(e) => io_err(e),
        })?;
        set_lasting_options(&socket, ty, addr, opts).map_err(io_err)?;
        match ty {
            SocketType::Stream => Endpoint::tcp(addr),
            SocketType::Datagram => Endpoint::udp(addr),
        }
    } else if local.is_unix() {
        let name = local_name(&local)
            .ok_or_else(|| unsupported("an unbound Unix socket: no client can reach it"))?;
        if ty == SocketType::Datagram {
            unix::room_for_largest_datagram(&socket).map_err(io_err)?;
            unix::pass_credentials(&socket).map_err(io_err)?;
        }
        if let LocalName::Path(path) = &name {
            // Known by its inode, so that the datagram echo can tell it from
            // a sender's path (never removed: it is the service manager's).
            // A file renamed or gone since bind is simply not known.
            file = SocketFile::inherited(path.clone()).ok();
        }
        set_buffers(&socket, opts).map_err(io_err)?;
        match ty {
            SocketType::Stream => Endpoint::Unix(name),
            SocketType::Datagram => Endpoint::UnixGram(name),
        }
    } else {
        return Err(unsupported(&format!(
            "of address family {}",
            local.family()
        )));
    };
    calls::nonblocking(&socket).map_err(io_err)?;
    let local = local.as_socket();
    Ok(Inherited::Listener(Listener::inherited(
        socket, endpoint, local, file,
    )))
}

/// TCP for a stream, UDP for a datagram socket; otherwise what it is.
fn check_ip_protocol(socket: &Socket, ty: SocketType) -> Result<(), Result<String, io::Error>> {
    let protocol = socket.protocol().map_err(Err)?;
    let expected = match ty {
        SocketType::Stream => Protocol::TCP,
        SocketType::Datagram => Protocol::UDP,
    };
    match protocol {
        // 0 is the type's default protocol: TCP or UDP.
        None => Ok(()),
        Some(p) if p == expected || i32::from(p) == 0 => Ok(()),
        Some(p) => Err(Ok(format!("an IP socket of protocol {}", i32::from(p)))),
    }
}

/// The path or abstract name a Unix socket is bound to; `None` if unbound.
fn local_name(addr: &SockAddr) -> Option<LocalName> {
    if let Some(path) = addr.as_pathname() {
        return Some(LocalName::Path(Path::to_path_buf(path)));
    }
    addr.as_abstract_namespace()
        .map(|name| LocalName::Abstract(String::from_utf8_lossy(name).into_owned()))
}

#[cfg(test)]
mod tests {
    use std::net::{TcpListener, TcpStream, UdpSocket};
    use std::os::unix::net::{UnixDatagram, UnixListener};

    use super::*;

    fn listener_of(fd: impl Into<OwnedFd>) -> Listener {
        match inherit(fd.into(), &ListenOptions::default()).unwrap() {
            Inherited::Listener(l) => l,
            Inherited::Connection(..) => panic!("a listener was taken for a connection"),
        }
    }

    #[test]
    fn a_tcp_listener_keeps_its_address_and_gets_oobinline_and_nonblocking() {
        let std_listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = std_listener.local_addr().unwrap();
        let listener = listener_of(std_listener);
        assert_eq!(listener.endpoint(), &Endpoint::tcp(addr));
        assert_eq!(listener.local_addr(), Some(addr));
        assert!(listener.socket().out_of_band_inline().unwrap());
        assert!(listener.socket().nonblocking().unwrap());
        assert!(listener.file().is_none(), "a TCP socket has no file");
    }

    #[test]
    fn a_wildcard_udp_socket_asks_for_destination_addresses() {
        let udp = UdpSocket::bind("0.0.0.0:0").unwrap();
        let addr = udp.local_addr().unwrap();
        let listener = listener_of(udp);
        assert_eq!(listener.endpoint(), &Endpoint::udp(addr));
        assert_eq!(listener.socket_type(), SocketType::Datagram);
        let pktinfo = nix::sys::socket::getsockopt(
            listener.socket(),
            nix::sys::socket::sockopt::Ipv4PacketInfo,
        )
        .unwrap();
        assert!(pktinfo);
    }

    #[test]
    fn unix_sockets_keep_their_path_and_their_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.sock");
        let listener = listener_of(UnixListener::bind(&path).unwrap());
        assert_eq!(
            listener.endpoint().to_string(),
            format!("unix:{}", path.display())
        );
        drop(listener);
        assert!(
            path.exists(),
            "an inherited socket's file is not ours to remove"
        );

        let gram = dir.path().join("g.sock");
        let listener = listener_of(UnixDatagram::bind(&gram).unwrap());
        assert_eq!(
            listener.endpoint().to_string(),
            format!("unixgram:{}", gram.display())
        );
    }

    #[test]
    fn a_connected_stream_is_one_connection() {
        let server = TcpListener::bind("127.0.0.1:0").unwrap();
        let client = TcpStream::connect(server.local_addr().unwrap()).unwrap();
        let (accepted, _) = server.accept().unwrap();
        match inherit(accepted.into(), &ListenOptions::default()).unwrap() {
            Inherited::Connection(socket, peer) => {
                assert_eq!(peer, Peer::Ip(client.local_addr().unwrap()));
                assert!(socket.nonblocking().unwrap());
            }
            Inherited::Listener(l) => panic!("a connection was taken for {}", l.endpoint()),
        }
    }

    #[test]
    fn what_cannot_be_served_says_what_it_is() {
        let (pipe_read, _pipe_write) = std::io::pipe().unwrap();
        let err = inherit(pipe_read.into(), &ListenOptions::default()).unwrap_err();
        assert!(matches!(err, ActivationError::NotASocket { .. }), "{err:?}");
        assert_eq!(err.exit_code(), ExitCode::Usage);

        let seqpacket = Socket::new(socket2::Domain::UNIX, Type::SEQPACKET, None).unwrap();
        let err = inherit(seqpacket.into(), &ListenOptions::default()).unwrap_err();
        assert!(err.to_string().contains("SOCK_SEQPACKET"), "{err}");

        let unbound = UnixDatagram::unbound().unwrap();
        let err = inherit(unbound.into(), &ListenOptions::default()).unwrap_err();
        assert!(err.to_string().contains("unbound Unix socket"), "{err}");

        let fresh = Socket::new(socket2::Domain::IPV4, Type::STREAM, None).unwrap();
        let err = inherit(fresh.into(), &ListenOptions::default()).unwrap_err();
        assert!(err.to_string().contains("neither listens"), "{err}");
    }

    #[test]
    fn activation_refuses_a_connection_and_names_accept_yes() {
        let server = TcpListener::bind("127.0.0.1:0").unwrap();
        let _client = TcpStream::connect(server.local_addr().unwrap()).unwrap();
        let (accepted, _) = server.accept().unwrap();
        let activated = Activated {
            fds: vec![(accepted.into(), "echokit.socket".into())],
        };
        let err = activated.listeners(&ListenOptions::default()).unwrap_err();
        assert!(matches!(err, ActivationError::Connected { .. }), "{err:?}");
        assert!(err.to_string().contains("Accept=yes"), "{err}");
    }

    #[test]
    fn a_dup_is_the_same_socket_and_another_is_not() {
        let a = UdpSocket::bind("127.0.0.1:0").unwrap();
        let b = UdpSocket::bind("127.0.0.1:0").unwrap();
        let dup = a.try_clone().unwrap();
        assert!(same_socket(&a, &dup));
        assert!(!same_socket(&a, &b));
    }
}
