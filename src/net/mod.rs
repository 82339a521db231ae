//! Sockets before the data flows: listening sockets with their options
//! ([`listen`]), Unix socket files ([`unix`]), sockets a service manager
//! passed ([`activation`]: systemd, inetd) and outgoing connections with
//! Happy Eyeballs ([`connect`]). They turn kernel errors into typed errors
//! that name the cause and the fix.
//!
//! Sockets are `socket2::Socket`s once made: one type for TCP, UDP and Unix
//! sockets, so that the echo code above does not care which it serves.

use std::fmt;
use std::net::SocketAddr;

use crate::os::{self, PeerCredentials};

pub mod activation;
pub mod connect;
pub mod listen;
pub mod unix;

pub use connect::{ConnectError, ConnectOptions};
pub use listen::{BindError, ListenOptions, Listener};

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
