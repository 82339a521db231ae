//! The datagram echo: UDP (RFC 862's UDP service) and Unix datagram sockets.
//! Each datagram goes back to its sender whole, with `recvmsg`/`sendmsg`.
//!
//! One loop (a thread with its own epoll) per datagram socket: a datagram
//! socket has no connections to spread over loops, and one owner keeps the
//! per-source rate state free of locks. On the loopback path the kernel's
//! UDP stack is the cost, not this loop (see BENCHMARKS.md).
//!
//! - UDP: the rules of `limit.rs` decide who gets an answer. A socket bound
//!   to a wildcard address learns each datagram's destination (`IP_PKTINFO`,
//!   `IPV6_PKTINFO`) and answers from it, so a multi-homed host answers from
//!   the address the client asked.
//! - Unix datagrams: the echo goes to the sender's bound path (or abstract
//!   name). A sender that did not bind has no address to answer to; that is
//!   logged, not answered.
//! - Nothing is truncated: the buffer holds the largest UDP datagram, and a
//!   Unix datagram larger than [`UNIX_DATAGRAM_MAX`] is dropped and logged.
//! - Drops are counted, and reported at most once a second ([`REPORT_EVERY`]),
//!   so a flood cannot flood the log.
//! - Sends never block: a datagram the socket cannot take now is dropped,
//!   as the network itself would.

use std::io::{self, IoSlice, IoSliceMut};
use std::net::{IpAddr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::time::{Duration, Instant};

use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Token, Waker};
use nix::sys::socket::{
    ControlMessage, ControlMessageOwned, MsgFlags, SockaddrLike, SockaddrStorage, UnixAddr,
    recvmsg, sendmsg,
};

use super::limit::{Gate, RateLimits, Refusal};
use crate::endpoint::Endpoint;
use crate::net::Listener;
use crate::shutdown::Shutdown;
use crate::text;

/// The largest UDP payload over IPv4: 65,535 less the IPv4 (20) and UDP (8) headers.
pub const UDP_MAX_V4: usize = 65_507;
/// The largest UDP payload over IPv6: 65,535 less the UDP header (the IPv6
/// header is not counted in its payload length).
pub const UDP_MAX_V6: usize = 65_527;
/// The largest Unix datagram echoed: Linux allows a datagram up to the
/// sender's `SO_SNDBUF` (208 KiB by default, `net.core.wmem_max`).
pub const UNIX_DATAGRAM_MAX: usize = 256 * 1024;

/// How often drops are reported, at most.
pub const REPORT_EVERY: Duration = Duration::from_secs(1);

/// Datagrams handled per wake-up before the loop looks at its waker again.
const BUDGET: usize = 1024;

const SOCKET: Token = Token(0);
const WAKER: Token = Token(1);

/// What a datagram loop counted.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct DatagramStats {
    pub(crate) datagrams: u64,
    pub(crate) bytes: u64,
    pub(crate) dropped: u64,
}

/// Why a datagram was not echoed, beyond the rules of `limit.rs`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Drop {
    Refused(Refusal),
    /// A Unix datagram from an unbound socket: nowhere to answer.
    Unbound,
    /// Larger than this server echoes whole.
    TooBig,
    /// The answer could not be sent (the socket or the peer is full, the
    /// peer is gone).
    SendFailed,
}

impl Drop {
    fn describe(self) -> &'static str {
        match self {
            Drop::Refused(r) => r.describe(),
            Drop::Unbound => {
                "from an unbound Unix socket, with no address to answer to \
                 (the client must bind its socket to a path or an abstract name)"
            }
            Drop::TooBig => "larger than the 256 KiB this server echoes whole (never truncated)",
            Drop::SendFailed => {
                "whose echo could not be sent (a full buffer, or the sender is gone)"
            }
        }
    }
}

/// Drops since the last report.
#[derive(Debug)]
struct DropLog {
    counts: Vec<(Drop, u64)>,
    last_from: String,
    since: Instant,
}

impl DropLog {
    fn new(now: Instant) -> DropLog {
        DropLog {
            counts: Vec::new(),
            last_from: String::new(),
            since: now,
        }
    }

    fn add(&mut self, why: Drop, from: impl FnOnce() -> String) {
        match self.counts.iter_mut().find(|(d, _)| *d == why) {
            Some((_, n)) => *n += 1,
            None => {
                self.counts.push((why, 1));
                // The first of its kind since the last report is named.
                self.last_from = from();
            }
        }
    }

    fn is_empty(&self) -> bool {
        self.counts.is_empty()
    }

    /// When the next report may go out.
    fn due(&self) -> Instant {
        self.since + REPORT_EVERY
    }

    fn report(&mut self, endpoint: &Endpoint, now: Instant) {
        if self.counts.is_empty() {
            self.since = now;
            return;
        }
        let total: u64 = self.counts.iter().map(|(_, n)| n).sum();
        let parts: Vec<String> = self
            .counts
            .iter()
            .map(|(why, n)| format!("{n} {}", why.describe()))
            .collect();
        tracing::warn!(
            "{endpoint}: dropped {total} datagram{} in {}: {} (one from {})",
            if total == 1 { "" } else { "s" },
            text::duration(now - self.since),
            parts.join("; "),
            self.last_from
        );
        self.counts.clear();
        self.since = now;
    }
}

/// One datagram socket's echo loop.
pub(crate) struct DatagramLoop {
    listener: Listener,
    poll: Poll,
    /// The UDP rules; `None` for a Unix datagram socket.
    gate: Option<Gate>,
    /// The bound address: the datagram's own address unless it is a wildcard.
    local: Option<SocketAddr>,
    buf: Vec<u8>,
    /// Room for the destination-address control message.
    cmsg: Vec<u8>,
    drops: DropLog,
    shutdown: Shutdown,
    stats: DatagramStats,
}

/// Where a datagram came from.
#[derive(Clone, Copy, Debug)]
enum Source {
    Ip(SocketAddr),
    Unix(UnixAddr),
    /// No address came with it (an unbound Unix sender).
    Unknown,
}

/// What one `recvmsg` brought.
struct Received {
    len: usize,
    truncated: bool,
    from: Source,
    /// The address it was sent to, and the interface, from IP_PKTINFO.
    to: Option<(IpAddr, u32)>,
}

impl DatagramLoop {
    /// A loop for a bound datagram socket; `limits` apply to UDP.
    pub(crate) fn new(
        listener: Listener,
        limits: RateLimits,
        shutdown: Shutdown,
    ) -> io::Result<DatagramLoop> {
        let poll = Poll::new()?;
        let waker = Arc::new(Waker::new(poll.registry(), WAKER)?);
        shutdown.register(waker);
        poll.registry().register(
            &mut SourceFd(&listener.socket().as_raw_fd()),
            SOCKET,
            Interest::READABLE,
        )?;
        let local = listener.local_addr();
        let now = Instant::now();
        let size = if local.is_some() {
            // One byte more than the largest payload shows a truncation.
            UDP_MAX_V6 + 1
        } else {
            UNIX_DATAGRAM_MAX + 1
        };
        Ok(DatagramLoop {
            gate: local.map(|_| Gate::new(limits, now)),
            local,
            buf: vec![0; size],
            cmsg: nix::cmsg_space!(libc::in6_pktinfo),
            drops: DropLog::new(now),
            poll,
            listener,
            shutdown,
            stats: DatagramStats::default(),
        })
    }

    /// Echoes until shutdown is requested; returns what it counted. The
    /// socket (and its file, for a Unix socket) closes when this returns.
    pub(crate) fn run(mut self) -> io::Result<DatagramStats> {
        let mut events = Events::with_capacity(8);
        let mut more = false;
        loop {
            let timeout = if more {
                Some(Duration::ZERO)
            } else if self.drops.is_empty() {
                None
            } else {
                Some(self.drops.due().saturating_duration_since(Instant::now()))
            };
            if let Err(e) = self.poll.poll(&mut events, timeout) {
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(e);
            }
            if self.shutdown.is_requested() {
                break;
            }
            if more || events.iter().any(|e| e.token() == SOCKET) {
                more = self.serve()?;
            }
            let now = Instant::now();
            if now >= self.drops.due() {
                self.drops.report(self.listener.endpoint(), now);
            }
        }
        self.drops.report(self.listener.endpoint(), Instant::now());
        tracing::debug!(
            "{}: echoed {} datagrams ({} bytes), dropped {}",
            self.listener.endpoint(),
            self.stats.datagrams,
            self.stats.bytes,
            self.stats.dropped
        );
        Ok(self.stats)
    }

    /// Echoes what is queued, up to the budget. Returns whether more may wait.
    fn serve(&mut self) -> io::Result<bool> {
        for _ in 0..BUDGET {
            let received = match self.receive() {
                Ok(r) => r,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                // An ICMP error for an earlier answer, reported on this socket:
                // it concerns that peer, not the service.
                Err(e) if is_peer_error(&e) => {
                    tracing::debug!("{}: {e}", self.listener.endpoint());
                    continue;
                }
                Err(e) => return Err(e),
            };
            if let Err(why) = self.echo(&received) {
                self.stats.dropped += 1;
                let from = received.from;
                self.drops.add(why, || describe(&from));
            }
        }
        Ok(true)
    }

    fn receive(&mut self) -> io::Result<Received> {
        if self.local.is_some() {
            self.receive_as::<SockaddrStorage>(|a| match ip_of(a) {
                Some(ip) => Source::Ip(ip),
                None => Source::Unknown,
            })
        } else {
            // Unix sockets take `UnixAddr`, which keeps the address length.
            self.receive_as::<UnixAddr>(|a| {
                // An unbound sender's address is empty, or only a family;
                // nix asserts on such an address, so it is not looked into.
                let named = a.len() as usize > std::mem::offset_of!(libc::sockaddr_un, sun_path);
                if named && (a.path().is_some() || a.as_abstract().is_some()) {
                    Source::Unix(*a)
                } else {
                    Source::Unknown
                }
            })
        }
    }

    fn receive_as<S: SockaddrLike>(
        &mut self,
        source: impl FnOnce(&S) -> Source,
    ) -> io::Result<Received> {
        let fd = self.listener.socket().as_raw_fd();
        let mut iov = [IoSliceMut::new(&mut self.buf)];
        let msg = recvmsg::<S>(fd, &mut iov, Some(&mut self.cmsg), MsgFlags::MSG_DONTWAIT)
            .map_err(io::Error::from)?;
        let mut to = None;
        if let Ok(cmsgs) = msg.cmsgs() {
            for cmsg in cmsgs {
                match cmsg {
                    ControlMessageOwned::Ipv4PacketInfo(info) => {
                        let ip = std::net::Ipv4Addr::from(u32::from_be(info.ipi_addr.s_addr));
                        to = Some((IpAddr::V4(ip), info.ipi_ifindex as u32));
                    }
                    ControlMessageOwned::Ipv6PacketInfo(info) => {
                        let ip = std::net::Ipv6Addr::from(info.ipi6_addr.s6_addr);
                        to = Some((IpAddr::V6(ip), info.ipi6_ifindex));
                    }
                    _ => {}
                }
            }
        }
        Ok(Received {
            len: msg.bytes,
            truncated: msg.flags.contains(MsgFlags::MSG_TRUNC),
            from: msg.address.as_ref().map_or(Source::Unknown, source),
            to,
        })
    }

    fn echo(&mut self, received: &Received) -> Result<(), Drop> {
        if received.truncated {
            return Err(Drop::TooBig);
        }
        let fd = self.listener.socket().as_raw_fd();
        let payload = &self.buf[..received.len];
        let sent = match received.from {
            Source::Unknown => return Err(Drop::Unbound),
            Source::Unix(ref addr) => send_to(fd, payload, None, addr),
            Source::Ip(source) => {
                if let Some(gate) = &mut self.gate {
                    let own = match (received.to, self.local) {
                        (Some((ip, _)), Some(local)) => Some(SocketAddr::new(ip, local.port())),
                        (_, local) => local,
                    };
                    gate.check(source, own, Instant::now())
                        .map_err(Drop::Refused)?;
                }
                send_to(fd, payload, received.to, &SockaddrStorage::from(source))
            }
        };
        match sent {
            Ok(_) => {
                self.stats.datagrams += 1;
                self.stats.bytes += received.len as u64;
                Ok(())
            }
            Err(e) => {
                tracing::trace!("{}: send: {e}", describe(&received.from));
                Err(Drop::SendFailed)
            }
        }
    }
}

/// Sends one datagram to `addr`, from the address `from` (with the
/// interface it came in on) when the socket is bound to a wildcard.
fn send_to<S: SockaddrLike>(
    fd: std::os::fd::RawFd,
    payload: &[u8],
    from: Option<(IpAddr, u32)>,
    addr: &S,
) -> nix::Result<usize> {
    let iov = [IoSlice::new(payload)];
    let flags = MsgFlags::MSG_DONTWAIT;
    match from {
        Some((IpAddr::V4(ip), _)) => {
            let info = libc::in_pktinfo {
                ipi_ifindex: 0,
                ipi_spec_dst: libc::in_addr {
                    s_addr: u32::from(ip).to_be(),
                },
                ipi_addr: libc::in_addr { s_addr: 0 },
            };
            sendmsg(
                fd,
                &iov,
                &[ControlMessage::Ipv4PacketInfo(&info)],
                flags,
                Some(addr),
            )
        }
        Some((IpAddr::V6(ip), ifindex)) => {
            let info = libc::in6_pktinfo {
                ipi6_addr: libc::in6_addr {
                    s6_addr: ip.octets(),
                },
                ipi6_ifindex: ifindex,
            };
            sendmsg(
                fd,
                &iov,
                &[ControlMessage::Ipv6PacketInfo(&info)],
                flags,
                Some(addr),
            )
        }
        None => sendmsg(fd, &iov, &[], flags, Some(addr)),
    }
}

/// Errors on a datagram socket that a peer caused (an ICMP message for an
/// earlier answer), not the socket itself.
fn is_peer_error(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(
            libc::ECONNREFUSED
                | libc::EHOSTUNREACH
                | libc::ENETUNREACH
                | libc::EHOSTDOWN
                | libc::ECONNRESET
        )
    )
}

/// The IP address and port of a datagram's source.
fn ip_of(addr: &SockaddrStorage) -> Option<SocketAddr> {
    if let Some(v4) = addr.as_sockaddr_in() {
        return Some(SocketAddr::V4(SocketAddrV4::from(*v4)));
    }
    addr.as_sockaddr_in6()
        .map(|v6| SocketAddr::V6(SocketAddrV6::from(*v6)))
}

/// A datagram's source as the logs show it.
fn describe(from: &Source) -> String {
    match from {
        Source::Ip(ip) => ip.to_string(),
        Source::Unix(u) => match (u.path(), u.as_abstract()) {
            (Some(path), _) => format!("unixgram:{}", path.display()),
            (None, Some(name)) => format!("unixgram:@{}", String::from_utf8_lossy(name)),
            (None, None) => "an unbound Unix socket".into(),
        },
        Source::Unknown => "an unbound Unix socket".into(),
    }
}
