//! The datagram echo: UDP (RFC 862's UDP service) and Unix datagram sockets.
//! Each datagram goes back to its sender whole. Datagrams are taken and
//! answered [`BATCH`] at a time (`recvmmsg`, `sendmmsg`): on loopback the
//! system calls are most of the cost, and batching saves all but one in 32.
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
//!   name), and only to a socket the sender owns (see `DatagramLoop`'s
//!   return path). A sender that did not bind has no address to answer
//!   to; that is logged, not answered.
//! - Over both, the loop guard (`loop_guard.rs`) mutes a peer that sends
//!   every echo straight back, and no echo goes to a socket this process
//!   serves on (`served.rs`).
//! - Nothing is truncated: the buffer holds the largest UDP datagram, and a
//!   Unix datagram larger than [`UNIX_DATAGRAM_MAX`] is dropped and logged.
//! - Drops are counted, and reported at most once a second ([`REPORT_EVERY`]),
//!   so a flood cannot flood the log.
//! - Sends never block: a datagram the socket cannot take now is dropped,
//!   as the network itself would.
//! - For `--metrics`, each loop counts into a shard of its own: datagrams
//!   and bytes received, echoed and dropped, once per batch.

use std::io::{self, IoSlice, IoSliceMut};
use std::net::{IpAddr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use mio::{Events, Interest, Token};
use nix::fcntl::OFlag;
use nix::sys::socket::{
    ControlMessage, ControlMessageOwned, MsgFlags, MultiHeaders, RecvMsg, SockaddrLike,
    SockaddrStorage, UnixAddr, recvmmsg, sendmmsg, sendmsg,
};
use nix::sys::stat::Mode;

use super::limit::{Gate, RateLimits, Refusal};
use super::loop_guard::{LoopGuard, Verdict};
use super::served::{self, Served};
use crate::driver::Driver;
use crate::endpoint::{Endpoint, LocalName};
use crate::metrics::{ErrorClass, Shard};
use crate::net::Listener;
use crate::net::{UDP_MAX_V6, UNIX_DATAGRAM_MAX};
use crate::ratelog::RateLog;
use crate::shutdown::Shutdown;
use crate::text;

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
    /// A Unix sender's path that is relative, is not a socket, or is a
    /// socket this process serves on.
    UnsafePath,
    /// A Unix sender's path names a socket another user owns.
    NotSenders,
    /// The peer sends every echo straight back: an echo loop.
    Loop,
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
            Drop::UnsafePath => {
                "whose sender's path is relative, not a socket, or a socket of this server's \
                 (echokit answers absolute paths of the sender's own sockets, and abstract names)"
            }
            Drop::NotSenders => {
                "whose sender's path names a socket another user owns (an echo goes only to \
                 the sender's own socket)"
            }
            Drop::Loop => {
                "to a peer that sent every echo straight back, muted as an echo loop \
                 (--no-loop-guard turns this off)"
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
            %endpoint,
            last_peer = %self.last_from,
            "dropped {} datagram{} in {}: {}",
            text::count(total),
            if total == 1 { "" } else { "s" },
            text::duration(now - self.since),
            parts.join("; ")
        );
        self.counts.clear();
        self.since = now;
    }
}

/// One datagram socket's echo loop.
pub(crate) struct DatagramLoop {
    listener: Listener,
    driver: Driver,
    /// The UDP rules; `None` for a Unix datagram socket.
    gate: Option<Gate>,
    /// The loop guard; `None` with `--no-loop-guard`.
    guard: Option<LoopGuard>,
    /// Mutes, logged once a second at most.
    mute_log: RateLog,
    /// This socket's port or file, in the process's list (kept until the
    /// loop ends).
    _served: Option<Served>,
    /// The largest datagram echoed.
    max: usize,
    /// The bound address: the datagram's own address unless it is a wildcard.
    local: Option<SocketAddr>,
    /// [`BATCH`] slots of `slot` bytes: one datagram each. One mapping,
    /// touched only as far as datagrams fill it.
    bufs: Vec<u8>,
    slot: usize,
    /// The `recvmmsg`/`sendmmsg` headers, typed by address family.
    headers: Headers,
    /// The datagrams of the batch being answered.
    got: Vec<Received>,
    /// Those of them to echo, by slot.
    keep: Vec<usize>,
    /// The Unix senders of this batch checked, by address and user, and
    /// where their echoes go: a batch from one client checks its path once,
    /// not once per datagram.
    return_paths: Vec<(UnixAddr, Option<u32>, Result<UnixAddr, Drop>)>,
    /// The sockets those echoes go to, held open until the batch is sent.
    pins: Vec<OwnedFd>,
    drops: DropLog,
    shutdown: Shutdown,
    stats: DatagramStats,
    /// What `--metrics` shows of this loop.
    shard: Arc<Shard>,
}

/// Message headers for sending a batch, reused from batch to batch (those
/// for receiving are made for each batch: nix leaves each header's address
/// length as the last datagram in that slot set it, so a reused header
/// would cut the next sender's address short). Unix sockets take
/// `UnixAddr`, which keeps an address's length (nix's `SockaddrStorage`
/// loses it for AF_UNIX).
enum Headers {
    Ip { send: MultiHeaders<SockaddrStorage> },
    Unix { send: MultiHeaders<UnixAddr> },
}

/// Where a datagram came from.
#[derive(Clone, Copy, Debug)]
enum Source {
    Ip(SocketAddr),
    Unix(UnixAddr),
    /// No address came with it (an unbound Unix sender).
    Unknown,
}

impl std::fmt::Display for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Source::Ip(a) => write!(f, "{a}"),
            Source::Unix(a) => match (a.path(), a.as_abstract()) {
                (Some(p), _) => write!(f, "{}", p.display()),
                (None, Some(name)) => write!(f, "@{}", String::from_utf8_lossy(name)),
                (None, None) => f.write_str("an unnamed socket"),
            },
            Source::Unknown => f.write_str("an unnamed socket"),
        }
    }
}

/// What the kernel said of one received datagram.
struct Received {
    len: usize,
    truncated: bool,
    from: Source,
    /// The address it was sent to, and the interface, from IP_PKTINFO.
    to: Option<(IpAddr, u32)>,
    /// The sender's user id, from SCM_CREDENTIALS (Unix sockets).
    uid: Option<u32>,
    /// Where a Unix datagram's echo goes, once its return path is checked.
    reply_to: Option<UnixAddr>,
    /// Why it gets no echo, once that is known.
    dropped: Option<Drop>,
}

impl DatagramLoop {
    /// A loop for a bound datagram socket; `limits` apply to UDP, and
    /// `loop_guard` says whether peers that send every echo back are muted.
    /// It counts into `shard`.
    pub(crate) fn new(
        listener: Listener,
        limits: RateLimits,
        loop_guard: bool,
        shard: Arc<Shard>,
        shutdown: Shutdown,
    ) -> io::Result<DatagramLoop> {
        let driver = Driver::new()?;
        shutdown.register(driver.waker(WAKER)?);
        driver.watch(listener.socket().as_raw_fd(), SOCKET, Interest::READABLE)?;
        let local = listener.local_addr();
        let now = Instant::now();
        // One byte more than the largest datagram would show a truncation.
        let (max, headers) = if local.is_some() {
            let headers = Headers::Ip {
                send: MultiHeaders::preallocate(BATCH, None),
            };
            (UDP_MAX_V6, headers)
        } else {
            let headers = Headers::Unix {
                send: MultiHeaders::preallocate(BATCH, None),
            };
            (UNIX_DATAGRAM_MAX, headers)
        };
        let slot = max + 1;
        let served = match (local, listener.file()) {
            (Some(addr), _) => Some(Served::port(addr.port())),
            (None, Some(file)) => {
                let (dev, ino) = file.id();
                Some(Served::file(dev, ino))
            }
            (None, None) => None,
        };
        Ok(DatagramLoop {
            gate: local.map(|_| Gate::new(limits, now)),
            guard: loop_guard.then(|| LoopGuard::new(now)),
            mute_log: RateLog::default(),
            _served: served,
            max,
            local,
            bufs: vec![0; slot * BATCH],
            slot,
            headers,
            got: Vec::with_capacity(BATCH),
            keep: Vec::with_capacity(BATCH),
            return_paths: Vec::new(),
            pins: Vec::new(),
            drops: DropLog::new(now),
            driver,
            listener,
            shutdown,
            stats: DatagramStats::default(),
            shard,
        })
    }

    /// Echoes until shutdown is requested; returns what it counted. The
    /// socket (and its file, for a Unix socket) closes when this returns.
    pub(crate) fn run(mut self) -> io::Result<DatagramStats> {
        let mut events = Events::with_capacity(8);
        let mut more = false;
        loop {
            let until = if more {
                Some(Instant::now())
            } else {
                (!self.drops.is_empty()).then(|| self.drops.due())
            };
            self.driver.wait_until(&mut events, until)?;
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
            endpoint = %self.listener.endpoint(),
            "echoed {} datagrams ({}), dropped {}",
            text::count(self.stats.datagrams),
            text::byte_count(self.stats.bytes),
            text::count(self.stats.dropped)
        );
        Ok(self.stats)
    }

    /// Echoes what is queued, up to the budget. Returns whether more may wait.
    fn serve(&mut self) -> io::Result<bool> {
        for _ in 0..BUDGET / BATCH {
            let n = match self.receive() {
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                // An ICMP error for an earlier answer, reported on this socket:
                // it concerns that peer, not the service.
                Err(e) if is_peer_error(&e) => {
                    tracing::debug!(
                        endpoint = %self.listener.endpoint(),
                        "{}",
                        crate::text::os_error(&e)
                    );
                    self.shard.error(ErrorClass::of_connection(&e));
                    continue;
                }
                // Short of kernel memory: this batch waits for the next wake-up.
                Err(e) if matches!(e.raw_os_error(), Some(libc::ENOBUFS | libc::ENOMEM)) => {
                    tracing::warn!(
                        endpoint = %self.listener.endpoint(),
                        "receive: {}",
                        crate::text::os_error(&e)
                    );
                    return Ok(false);
                }
                Err(e) => return Err(e),
            };
            self.answer();
            if n < BATCH {
                // The queue ran dry during the call; a datagram that comes
                // later raises a new edge.
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// Takes up to [`BATCH`] datagrams with one `recvmmsg`.
    fn receive(&mut self) -> io::Result<usize> {
        let result = self.receive_batch();
        if crate::calls::on() {
            let each: Vec<String> = self
                .got
                .iter()
                .map(|g| format!("{} bytes from {}", g.len, g.from))
                .collect();
            let fd = self.listener.socket().as_raw_fd();
            crate::calls::batch("recvmmsg", fd, &BATCH.to_string(), &result, &each);
        }
        result
    }

    fn receive_batch(&mut self) -> io::Result<usize> {
        let fd = self.listener.socket().as_raw_fd();
        let mut iovs: Vec<[IoSliceMut<'_>; 1]> = self
            .bufs
            .chunks_mut(self.slot)
            .map(|b| [IoSliceMut::new(b)])
            .collect();
        self.got.clear();
        let flags = MsgFlags::MSG_DONTWAIT;
        match &self.headers {
            Headers::Ip { .. } => {
                let cmsg = Some(nix::cmsg_space!(libc::in6_pktinfo));
                let mut recv = MultiHeaders::<SockaddrStorage>::preallocate(BATCH, cmsg);
                let msgs = recvmmsg(fd, &mut recv, iovs.iter_mut(), flags, None)?;
                for msg in msgs {
                    let from = match msg.address.as_ref().and_then(ip_of) {
                        Some(ip) => Source::Ip(ip),
                        None => Source::Unknown,
                    };
                    self.got.push(received(&msg, from));
                }
            }
            Headers::Unix { .. } => {
                let cmsg = Some(nix::cmsg_space!(libc::ucred));
                let mut recv = MultiHeaders::<UnixAddr>::preallocate(BATCH, cmsg);
                let msgs = recvmmsg(fd, &mut recv, iovs.iter_mut(), flags, None)?;
                for msg in msgs {
                    let from = match msg.address {
                        Some(a) if is_named(&a) => Source::Unix(a),
                        _ => Source::Unknown,
                    };
                    self.got.push(received(&msg, from));
                }
            }
        }
        Ok(self.got.len())
    }

    /// Sends back the datagrams of the batch that the rules let through:
    /// with one `sendmmsg`, or one `sendmsg` each where the source address
    /// must be set (a wildcard socket).
    fn answer(&mut self) {
        let now = Instant::now();
        self.keep.clear();
        self.return_paths.clear();
        if let Some(guard) = &mut self.guard {
            guard.tick(now);
        }
        for i in 0..self.got.len() {
            match self.admit(i, now) {
                Ok(()) => self.keep.push(i),
                Err(why) => self.got[i].dropped = Some(why),
            }
        }
        let fd = self.listener.socket().as_raw_fd();
        let (bufs, slot, got) = (&self.bufs, self.slot, &self.got);
        let payload = |i: usize| &bufs[i * slot..][..got[i].len];
        let wildcard = self.local.is_some_and(|l| l.ip().is_unspecified());
        let refused: Vec<usize> = if wildcard {
            self.keep
                .iter()
                .copied()
                .filter(|&i| {
                    let Source::Ip(to) = got[i].from else {
                        return false;
                    };
                    send_to(fd, payload(i), got[i].to, to)
                        .inspect_err(|e| {
                            tracing::trace!(
                                peer = %to,
                                "send: {}",
                                crate::text::os_error(&std::io::Error::from(*e))
                            );
                        })
                        .is_err()
                })
                .collect()
        } else {
            let iovs: Vec<[IoSlice<'_>; 1]> = self
                .keep
                .iter()
                .map(|&i| [IoSlice::new(payload(i))])
                .collect();
            let by_slot = match &mut self.headers {
                Headers::Ip { send } => {
                    let addrs: Vec<Option<SockaddrStorage>> = self
                        .keep
                        .iter()
                        .map(|&i| match got[i].from {
                            Source::Ip(a) => Some(SockaddrStorage::from(a)),
                            _ => None,
                        })
                        .collect();
                    send_batch(fd, send, &iovs, &addrs)
                }
                Headers::Unix { send } => {
                    let addrs: Vec<Option<UnixAddr>> =
                        self.keep.iter().map(|&i| got[i].reply_to).collect();
                    send_batch(fd, send, &iovs, &addrs)
                }
            };
            by_slot.into_iter().map(|k| self.keep[k]).collect()
        };
        // The return sockets are sent to: they may close.
        self.pins.clear();
        for i in refused {
            self.got[i].dropped = Some(Drop::SendFailed);
        }
        let (mut echoed, mut bytes_in, mut bytes_out) = (0, 0, 0);
        for i in 0..self.got.len() {
            let len = self.got[i].len as u64;
            bytes_in += len;
            match self.got[i].dropped {
                None => {
                    echoed += 1;
                    bytes_out += len;
                }
                Some(why) => self.drop(i, why),
            }
        }
        let received = self.got.len() as u64;
        self.stats.datagrams += echoed;
        self.stats.bytes += bytes_out;
        let shard = &self.shard;
        shard.datagrams_in.add(received);
        shard.datagrams_out.add(echoed);
        shard.datagrams_dropped.add(received - echoed);
        shard.bytes_in.add(bytes_in);
        shard.bytes_out.add(bytes_out);
    }

    /// Whether datagram `i` of the batch gets an answer.
    fn admit(&mut self, i: usize, now: Instant) -> Result<(), Drop> {
        let r = &self.got[i];
        if r.truncated || r.len > self.max {
            return Err(Drop::TooBig);
        }
        let len = r.len;
        let digest = match r.from {
            Source::Unknown => return Err(Drop::Unbound),
            Source::Unix(addr) => {
                let uid = r.uid;
                let known = self
                    .return_paths
                    .iter()
                    .find(|(a, u, _)| *a == addr && *u == uid);
                let to = match known {
                    Some((_, _, verdict)) => *verdict,
                    None => {
                        let verdict = self.return_path(&addr, uid);
                        self.return_paths.push((addr, uid, verdict));
                        verdict
                    }
                }?;
                self.got[i].reply_to = Some(to);
                let payload = &self.bufs[i * self.slot..][..len];
                self.guard
                    .as_ref()
                    .map(|g| g.digest(unix_bytes(&addr), payload))
            }
            Source::Ip(source) => {
                if let (Some(gate), Some(local)) = (&mut self.gate, self.local) {
                    gate.check(source, local.port(), now)
                        .map_err(Drop::Refused)?;
                }
                let payload = &self.bufs[i * self.slot..][..len];
                self.guard.as_ref().map(|g| g.digest_ip(source, payload))
            }
        };
        let (Some(guard), Some(digest)) = (&mut self.guard, digest) else {
            return Ok(());
        };
        match guard.arrived(digest, now) {
            Verdict::Answer => {
                guard.answered(digest);
                Ok(())
            }
            Verdict::Muted => Err(Drop::Loop),
            Verdict::NowMuted(mute) => {
                if let Some(more) = self.mute_log.allow(now) {
                    tracing::warn!(
                        endpoint = %self.listener.endpoint(),
                        peer = %describe(&self.got[i].from),
                        "sent back {} echoes in a row as they arrived, as an echo \
                         server would: the two would loop for ever (CERT CA-1996-01); no \
                         answers to it for {}{}",
                        super::loop_guard::MUTE_AFTER,
                        text::duration(mute),
                        match more {
                            0 => String::new(),
                            n => format!(" ({n} more peers muted in the last second)"),
                        }
                    );
                }
                Err(Drop::Loop)
            }
        }
    }

    /// Where the echo to a Unix sender goes, if anywhere. The echo is sent
    /// with this process's rights, so it must reach the sender's own socket
    /// and nothing else, whatever the sender does to its path meanwhile:
    /// - an abstract name is bound by the sender itself, and no one can
    ///   redirect it: answered (unless it is this socket's own);
    /// - a path is opened (`O_PATH`: the socket file itself, not a
    ///   connection), and the file it opened is judged: a socket, owned by
    ///   the sender's user as the kernel reports it (`SO_PASSCRED`), or the
    ///   sender is root, and not a socket this process serves on. The echo
    ///   is then sent through `/proc/self/fd/N`, to that very file: a link
    ///   or a rename swapped in after the check changes nothing, and a
    ///   hard link to another user's socket is that user's socket;
    /// - a relative path would be taken from this server's directory, not
    ///   the sender's: refused.
    fn return_path(&mut self, addr: &UnixAddr, uid: Option<u32>) -> Result<UnixAddr, Drop> {
        if let Some(name) = addr.as_abstract() {
            let own = match self.listener.endpoint().local_name() {
                Some(LocalName::Abstract(own)) => own.as_bytes() == name,
                _ => false,
            };
            return if own {
                Err(Drop::UnsafePath)
            } else {
                Ok(*addr)
            };
        }
        let Some(path) = addr.path() else {
            return Err(Drop::Unbound);
        };
        if !path.is_absolute() {
            return Err(Drop::UnsafePath);
        }
        let Some(uid) = uid else {
            // SO_PASSCRED gives every datagram its sender's credentials.
            return Err(Drop::UnsafePath);
        };
        let fd = match nix::fcntl::open(path, OFlag::O_PATH | OFlag::O_CLOEXEC, Mode::empty()) {
            Ok(fd) => fd,
            // The sender's socket is gone.
            Err(nix::errno::Errno::ENOENT) => return Err(Drop::SendFailed),
            Err(_) => return Err(Drop::UnsafePath),
        };
        let Ok(stat) = nix::sys::stat::fstat(&fd) else {
            return Err(Drop::UnsafePath);
        };
        let is_socket = stat.st_mode & libc::S_IFMT == libc::S_IFSOCK;
        if !is_socket || served::serves_file(stat.st_dev, stat.st_ino) {
            return Err(Drop::UnsafePath);
        }
        if stat.st_uid != uid && uid != 0 {
            return Err(Drop::NotSenders);
        }
        let through = format!("/proc/self/fd/{}", fd.as_raw_fd());
        let to = UnixAddr::new(through.as_str()).map_err(|_| Drop::UnsafePath)?;
        self.pins.push(fd);
        Ok(to)
    }

    fn drop(&mut self, i: usize, why: Drop) {
        self.stats.dropped += 1;
        let from = self.got[i].from;
        self.drops.add(why, || describe(&from));
    }
}

/// Datagrams taken and sent per system call: a 32nd of the calls, while a
/// batch of small datagrams still fits in the L1 and L2 caches.
pub const BATCH: usize = 32;

/// What `recvmmsg` said of one datagram, with its source as `from`.
fn received<S: SockaddrLike + Copy>(msg: &RecvMsg<'_, '_, S>, from: Source) -> Received {
    let (mut to, mut uid) = (None, None);
    if let Ok(cmsgs) = msg.cmsgs() {
        for cmsg in cmsgs {
            match cmsg {
                ControlMessageOwned::ScmCredentials(creds) => uid = Some(creds.uid()),
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
    Received {
        len: msg.bytes,
        truncated: msg.flags.contains(MsgFlags::MSG_TRUNC),
        from,
        to,
        uid,
        reply_to: None,
        dropped: None,
    }
}

/// Whether a Unix datagram's sender has an address to answer to. An unbound
/// sender's address is empty, or only a family; nix asserts on such an
/// address, so its length is looked at first.
fn is_named(addr: &UnixAddr) -> bool {
    addr.len() as usize > std::mem::offset_of!(libc::sockaddr_un, sun_path)
        && (addr.path().is_some() || addr.as_abstract().is_some())
}

/// Sends `iovs[k]` to `addrs[k]` with as few `sendmmsg` calls as the kernel
/// allows. Returns the indexes it refused (a full buffer, a gone peer).
fn send_batch<S: SockaddrLike + Copy>(
    fd: std::os::fd::RawFd,
    headers: &mut MultiHeaders<S>,
    iovs: &[[IoSlice<'_>; 1]],
    addrs: &[Option<S>],
) -> Vec<usize> {
    let no_cmsgs: [ControlMessage<'_>; 0] = [];
    let mut refused = Vec::new();
    let mut start = 0;
    while start < iovs.len() {
        let sent = sendmmsg(
            fd,
            headers,
            &iovs[start..],
            &addrs[start..],
            no_cmsgs,
            MsgFlags::MSG_DONTWAIT,
        )
        .map(Iterator::count);
        if crate::calls::on() {
            let each: Vec<String> = iovs[start..]
                .iter()
                .map(|iov| format!("{} bytes", iov[0].len()))
                .collect();
            let result = sent.map_err(io::Error::from);
            let args = (iovs.len() - start).to_string();
            crate::calls::batch("sendmmsg", fd, &args, &result, &each);
        }
        match sent {
            Ok(k) if k > 0 => start += k,
            Ok(_) | Err(_) => {
                // The first of the rest could not be sent: skip it, go on.
                refused.push(start);
                start += 1;
            }
        }
    }
    refused
}

/// Sends one datagram to `to`, from the address `from` (with the
/// interface it came in on) when the socket is bound to a wildcard.
fn send_to(
    fd: std::os::fd::RawFd,
    payload: &[u8],
    from: Option<(IpAddr, u32)>,
    to: SocketAddr,
) -> nix::Result<usize> {
    let result = send_from(fd, payload, from, &SockaddrStorage::from(to));
    if crate::calls::on() {
        let args = format!("{} bytes to {to}", payload.len());
        let logged = result.map_err(io::Error::from);
        crate::calls::batch("sendmsg", fd, &args, &logged, &[]);
    }
    result
}

fn send_from<S: SockaddrLike>(
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

/// A Unix peer as the loop guard knows it: its path, or its abstract name.
fn unix_bytes(addr: &UnixAddr) -> &[u8] {
    match (addr.path(), addr.as_abstract()) {
        (Some(path), _) => path.as_os_str().as_bytes(),
        (None, Some(name)) => name,
        (None, None) => &[],
    }
}

/// A datagram's source as the logs show it.
fn describe(from: &Source) -> String {
    match from {
        Source::Ip(ip) => ip.to_string(),
        // A sender chooses its name: control characters are escaped, not logged.
        Source::Unix(u) => match (u.path(), u.as_abstract()) {
            (Some(path), _) => format!("unixgram:{}", path.to_string_lossy().escape_debug()),
            (None, Some(name)) => {
                format!("unixgram:@{}", String::from_utf8_lossy(name).escape_debug())
            }
            (None, None) => "an unbound Unix socket".into(),
        },
        Source::Unknown => "an unbound Unix socket".into(),
    }
}
