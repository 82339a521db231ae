//! Sockets before the data flows: listening sockets with their options
//! ([`listen`]), Unix socket files ([`unix`]), sockets a service manager
//! passed ([`activation`]: systemd, inetd) and outgoing connections with
//! Happy Eyeballs ([`connect`]). They turn kernel errors into typed errors
//! that name the cause and the fix.
//!
//! Sockets are `socket2::Socket`s once made: one type for TCP, UDP and Unix
//! sockets, so that the echo code above does not care which it serves.

use std::fmt;
use std::net::{IpAddr, SocketAddr};

use crate::os::{self, PeerCredentials};

pub mod activation;
pub mod connect;
pub mod listen;
pub mod unix;

pub use connect::{ConnectError, ConnectOptions};
pub use listen::{BindError, ListenOptions, Listener, Taken};

/// The largest UDP payload over IPv4: 65,535 less the IPv4 (20) and UDP (8) headers.
pub const UDP_MAX_V4: usize = 65_507;
/// The largest UDP payload over IPv6: 65,535 less the UDP header (the IPv6
/// header is not counted in its payload length).
pub const UDP_MAX_V6: usize = 65_527;
/// The largest Unix datagram echoed: Linux allows a datagram up to the
/// sender's `SO_SNDBUF` (208 KiB by default, `net.core.wmem_max`).
pub const UNIX_DATAGRAM_MAX: usize = 256 * 1024;

/// Who is at the other end of an accepted connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Peer {
    /// A TCP client's address and port.
    Ip(SocketAddr),
    /// A Unix socket client, as the kernel recorded it at connect (if it tells).
    Local(Option<PeerCredentials>),
}

impl Peer {
    /// The peer of a connection accepted from `addr`.
    pub fn of(socket: &socket2::Socket, addr: &socket2::SockAddr) -> Peer {
        match addr.as_socket() {
            Some(ip) => Peer::Ip(ip),
            None => Peer::Local(os::peer_credentials(socket)),
        }
    }

    /// The address limits count this peer under: an IPv4-mapped IPv6
    /// address (`::ffff:10.0.0.1`, a v4 client of a dual-stack socket) is
    /// its IPv4 address. Unix peers have none.
    pub fn ip(&self) -> Option<IpAddr> {
        match self {
            Peer::Ip(addr) => Some(addr.ip().to_canonical()),
            Peer::Local(_) => None,
        }
    }
}

impl fmt::Display for Peer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Peer::Ip(addr) => write!(f, "{addr}"),
            Peer::Local(Some(creds)) => write!(f, "{creds}"),
            Peer::Local(None) => f.write_str("a local client"),
        }
    }
}
