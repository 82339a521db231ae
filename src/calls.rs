//! `--trace-calls`: each socket call printed on stderr as it happens, with
//! its arguments and result, so that a run shows the socket guide's sequence
//! (`socket`, `bind`, `listen`, `accept`, `recv`, `send`, `close`) on real
//! sockets, the way `strace` would, and says what each call means the first
//! time it appears.
//!
//! The functions here make the call and then, if a [`Sink`] is installed,
//! hand it the call. The library never prints: the binary installs the sink
//! (`--trace-calls` writes each call on stderr, as text or as JSON under
//! `--log-format json`). It is installed once for the whole process, like
//! the logger: when none is (the default) each call costs one predictable
//! branch on an atomic load, next to a system call that costs microseconds.
//!
//! The names are those of the system calls made: a socket2 `Socket` reads
//! with `recv(2)` and writes with `send(2)` (`MSG_NOSIGNAL`), and the
//! servers accept with `accept4(2)`, printed `accept` as the guide calls it.

use std::fmt::{self, Write as _};
use std::io::{self, Read, Write};
use std::net::Shutdown;
use std::os::fd::AsRawFd;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};

use socket2::{Domain, Protocol, SockAddr, Socket, Type};

/// One socket call as it happened.
#[derive(Clone, Copy, Debug)]
pub struct Call<'a> {
    /// The call, its arguments and its result, as strace writes them:
    /// `accept(3) = 9 from 127.0.0.1:46212`.
    pub line: &'a str,
    /// What it means, the first time a call (or one of its outcomes) appears.
    pub meaning: Option<&'static str>,
    /// The lines under a batch call (`recvmmsg`, `sendmmsg`): one per
    /// datagram, its size and its peer.
    pub each: &'a [String],
}

impl Call<'_> {
    /// The call as a terminal shows it: the line, its meaning after a `#`
    /// in a column of its own, then each batch line indented.
    pub fn text(&self) -> String {
        let mut text = self.line.to_string();
        if let Some(meaning) = self.meaning {
            let pad = 44usize.saturating_sub(text.chars().count());
            let _ = write!(text, "{:pad$}  # {meaning}", "");
        }
        for line in self.each {
            let _ = write!(text, "\n    {line}");
        }
        text
    }
}

/// Where traced calls go; the binary installs one ([`install`]).
pub trait Sink: Send + Sync {
    /// Takes one call, as it happens, on the thread that made it.
    fn call(&self, call: &Call<'_>);
}

static SINK: OnceLock<Box<dyn Sink>> = OnceLock::new();

/// Which explanations were given already: one bit per [`Gloss`].
static EXPLAINED: AtomicU32 = AtomicU32::new(0);

/// Installs the sink every socket call of the process goes to from now
/// on. Returns false (and drops `sink`) if one was installed already.
pub fn install(sink: Box<dyn Sink>) -> bool {
    SINK.set(sink).is_ok()
}

/// Whether calls are traced (a sink is installed).
#[inline]
pub fn on() -> bool {
    SINK.get().is_some()
}

/// What a first occurrence of a call (or of one of its outcomes) means.
#[derive(Clone, Copy, Debug)]
enum Gloss {
    Socket,
    ReuseAddr,
    OobInline,
    V6Only,
    NoDelay,
    Option,
    Nonblocking,
    Bind,
    Listen,
    Accept,
    AcceptEmpty,
    Connect,
    ConnectPending,
    Connected,
    Recv,
    RecvEmpty,
    RecvEof,
    Send,
    SendFull,
    Shutdown,
    Close,
    Batch,
    SendBatch,
}

impl Gloss {
    fn text(self) -> &'static str {
        match self {
            Gloss::Socket => "a new socket; the number is its file descriptor",
            Gloss::ReuseAddr => "bind even while old connections on the port are in TIME_WAIT",
            Gloss::OobInline => "urgent data stays in the byte stream",
            Gloss::V6Only => "IPv6 only: an IPv4 socket may take the same port",
            Gloss::NoDelay => "small writes leave at once (no Nagle delay)",
            Gloss::Option => "a socket option",
            Gloss::Nonblocking => {
                "non-blocking: calls return EAGAIN instead of waiting (setblocking(False))"
            }
            Gloss::Bind => "the socket takes this address",
            Gloss::Listen => {
                "now it takes connections; the kernel finishes handshakes into a queue of this size"
            }
            Gloss::Accept => "a connection from the queue: a new socket for this client",
            Gloss::AcceptEmpty => "no connection waiting: epoll will say when one comes",
            Gloss::Connect => "connected",
            Gloss::ConnectPending => {
                "the handshake is under way; the socket turns writable when it ends"
            }
            Gloss::Connected => "the handshake ended: 0 means connected",
            Gloss::Recv => "bytes read, at most the number asked",
            Gloss::RecvEmpty => "nothing to read now: epoll will say when there is",
            Gloss::RecvEof => "the peer shut down its side: no more data will come",
            Gloss::Send => "bytes handed to the kernel, which sends them",
            Gloss::SendFull => "the send buffer is full: wait until the socket is writable",
            Gloss::Shutdown => "no more sending: the peer reads end of stream (a FIN)",
            Gloss::Close => "the descriptor is released",
            Gloss::Batch => "up to this many datagrams in one call, each from its own sender",
            Gloss::SendBatch => "the echoes, each to its sender, in one call",
        }
    }

    /// Whether this is its first time (and marks it done).
    fn first(self) -> bool {
        let bit = 1 << self as u32;
        EXPLAINED.fetch_or(bit, Ordering::Relaxed) & bit == 0
    }
}

/// Hands one call to the sink, with its gloss the first time.
#[cold]
fn emit(line: fmt::Arguments<'_>, gloss: Gloss) {
    emit_with(line, gloss, &[]);
}

/// The same, with the lines under a batch call.
#[cold]
fn emit_with(line: fmt::Arguments<'_>, gloss: Gloss, each: &[String]) {
    if let Some(sink) = SINK.get() {
        let line = line.to_string();
        sink.call(&Call {
            line: &line,
            meaning: gloss.first().then(|| gloss.text()),
            each,
        });
    }
}

/// Hands over a call whose success returns 0: as the guide writes it, without
/// strace's `= 0`; a failure shows its errno.
#[cold]
fn emit_done<T>(call: fmt::Arguments<'_>, result: &io::Result<T>, gloss: Gloss) {
    match result {
        Ok(_) => emit(call, gloss),
        Err(e) => emit(format_args!("{call} = {}", failure(e)), gloss),
    }
}

/// Hands over a call that returns a count (bytes, datagrams), or its
/// failure; `EAGAIN` has its own explanation.
#[cold]
fn emit_counted(call: fmt::Arguments<'_>, result: &io::Result<usize>, done: Gloss, waiting: Gloss) {
    emit_counted_with(call, result, (done, waiting), &[]);
}

/// The same, with the lines under a batch call.
#[cold]
fn emit_counted_with(
    call: fmt::Arguments<'_>,
    result: &io::Result<usize>,
    (done, waiting): (Gloss, Gloss),
    each: &[String],
) {
    match result {
        Ok(n) => emit_with(format_args!("{call} = {n}"), done, each),
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
            emit_with(format_args!("{call} = {}", failure(e)), waiting, each);
        }
        Err(e) => emit_with(format_args!("{call} = {}", failure(e)), done, each),
    }
}

/// `-1 EAGAIN (Resource temporarily unavailable)`, as strace shows a failure.
fn failure(e: &io::Error) -> String {
    match e.raw_os_error() {
        Some(_) => format!("-1 {}", crate::text::os_error(e)),
        None => format!("-1 ({e})"),
    }
}

/// An address as the tools print it: `127.0.0.1:65432`, `[::1]:80`, a
/// Unix path, `@NAME`.
fn address(addr: &SockAddr) -> String {
    if let Some(ip) = addr.as_socket() {
        return ip.to_string();
    }
    if let Some(path) = addr.as_pathname() {
        return path.display().to_string();
    }
    if let Some(name) = addr.as_abstract_namespace() {
        return format!("@{}", String::from_utf8_lossy(name));
    }
    "(unnamed)".into()
}

fn fd(socket: &Socket) -> i32 {
    socket.as_raw_fd()
}

/// `socket(2)`.
#[inline]
pub fn socket(domain: Domain, ty: Type, protocol: Option<Protocol>) -> io::Result<Socket> {
    let result = Socket::new(domain, ty, protocol);
    if on() {
        match &result {
            Ok(s) => emit(
                format_args!("socket({domain:?}, {ty:?}) = {}", fd(s)),
                Gloss::Socket,
            ),
            Err(e) => emit(
                format_args!("socket({domain:?}, {ty:?}) = {}", failure(e)),
                Gloss::Socket,
            ),
        }
    }
    result
}

/// Reports a `setsockopt(2)` made through one of socket2's setters:
/// `setsockopt(3, SO_REUSEADDR, 1)`.
#[inline]
pub fn option<T>(
    socket: &Socket,
    name: &str,
    value: impl fmt::Display,
    result: io::Result<T>,
) -> io::Result<T> {
    if on() {
        let gloss = match name {
            "SO_REUSEADDR" => Gloss::ReuseAddr,
            "SO_OOBINLINE" => Gloss::OobInline,
            "IPV6_V6ONLY" => Gloss::V6Only,
            "TCP_NODELAY" => Gloss::NoDelay,
            _ => Gloss::Option,
        };
        emit_done(
            format_args!("setsockopt({}, {name}, {value})", fd(socket)),
            &result,
            gloss,
        );
    }
    result
}

/// `fcntl(2)` setting `O_NONBLOCK`.
#[inline]
pub fn nonblocking(socket: &Socket) -> io::Result<()> {
    let result = socket.set_nonblocking(true);
    if on() {
        emit_done(
            format_args!("fcntl({}, F_SETFL, O_NONBLOCK)", fd(socket)),
            &result,
            Gloss::Nonblocking,
        );
    }
    result
}

/// `bind(2)`.
#[inline]
pub fn bind(socket: &Socket, addr: &SockAddr) -> io::Result<()> {
    let result = socket.bind(addr);
    if on() {
        emit_done(
            format_args!("bind({}, {})", fd(socket), address(addr)),
            &result,
            Gloss::Bind,
        );
    }
    result
}

/// `listen(2)`.
#[inline]
pub fn listen(socket: &Socket, backlog: i32) -> io::Result<()> {
    let result = socket.listen(backlog);
    if on() {
        emit_done(
            format_args!("listen({}, {backlog})", fd(socket)),
            &result,
            Gloss::Listen,
        );
    }
    result
}

/// `accept4(2)` with `SOCK_NONBLOCK | SOCK_CLOEXEC`: the new socket is
/// non-blocking from the start.
#[inline]
pub fn accept(listener: &Socket) -> io::Result<(Socket, SockAddr)> {
    let result = listener.accept4(libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC);
    if on() {
        match &result {
            Ok((s, from)) => emit(
                format_args!(
                    "accept({}) = {} from {}",
                    fd(listener),
                    fd(s),
                    peer_name(s, from)
                ),
                Gloss::Accept,
            ),
            Err(e) => emit(
                format_args!("accept({}) = {}", fd(listener), failure(e)),
                if e.kind() == io::ErrorKind::WouldBlock {
                    Gloss::AcceptEmpty
                } else {
                    Gloss::Accept
                },
            ),
        }
    }
    result
}

/// A Unix client has no address: its credentials say who it is.
fn peer_name(socket: &Socket, from: &SockAddr) -> String {
    if from.as_socket().is_some() {
        return address(from);
    }
    match crate::os::peer_credentials(socket) {
        Some(creds) => format!("a local client, {creds}"),
        None => "a local client".into(),
    }
}

/// `connect(2)`.
#[inline]
pub fn connect(socket: &Socket, addr: &SockAddr) -> io::Result<()> {
    let result = socket.connect(addr);
    if on() {
        match &result {
            Ok(()) => emit(
                format_args!("connect({}, {}) = 0", fd(socket), address(addr)),
                Gloss::Connect,
            ),
            Err(e) => emit(
                format_args!(
                    "connect({}, {}) = {}",
                    fd(socket),
                    address(addr),
                    failure(e)
                ),
                if e.raw_os_error() == Some(libc::EINPROGRESS) {
                    Gloss::ConnectPending
                } else {
                    Gloss::Connect
                },
            ),
        }
    }
    result
}

/// Reports how a non-blocking connect ended, as `getsockopt(SO_ERROR)` told.
#[inline]
pub fn connect_ended(socket: &Socket, result: &io::Result<bool>) {
    if on() {
        match result {
            Ok(false) => {}
            Ok(true) => emit(
                format_args!("getsockopt({}, SO_ERROR) = 0", fd(socket)),
                Gloss::Connected,
            ),
            Err(e) => emit(
                format_args!(
                    "getsockopt({}, SO_ERROR) = {}",
                    fd(socket),
                    crate::text::os_error(e)
                ),
                Gloss::Connected,
            ),
        }
    }
}

/// `recv(2)`.
#[inline]
pub fn recv(socket: &Socket, buf: &mut [u8]) -> io::Result<usize> {
    let result = (&*socket).read(buf);
    received(socket, buf.len(), &result);
    result
}

/// Reports a `recv(2)` (one made elsewhere too: a datagram client's, through nix).
#[inline]
pub fn received(socket: &Socket, asked: usize, result: &io::Result<usize>) {
    if on() {
        let fd = fd(socket);
        match result {
            Ok(0) => emit(
                format_args!("recv({fd}, {asked}) = 0 (peer closed)"),
                Gloss::RecvEof,
            ),
            _ => emit_counted(
                format_args!("recv({fd}, {asked})"),
                result,
                Gloss::Recv,
                Gloss::RecvEmpty,
            ),
        }
    }
}

/// Reports a batch call on a datagram socket (`recvmmsg`, `sendmmsg`,
/// `sendmsg`) and, under it, one line per datagram. Call it only when
/// [`on`]: the lines are made by the caller.
#[cold]
pub fn batch(call: &str, fd: i32, args: &str, result: &io::Result<usize>, each: &[String]) {
    let gloss = if call == "recvmmsg" {
        Gloss::Batch
    } else {
        Gloss::SendBatch
    };
    emit_counted_with(
        format_args!("{call}({fd}, {args})"),
        result,
        (gloss, Gloss::RecvEmpty),
        each,
    );
}

/// `send(2)` (with `MSG_NOSIGNAL`: a closed peer is an error, not a SIGPIPE).
#[inline]
pub fn send(socket: &Socket, buf: &[u8]) -> io::Result<usize> {
    let result = (&*socket).write(buf);
    if on() {
        let (fd, len) = (fd(socket), buf.len());
        emit_counted(
            format_args!("send({fd}, {len})"),
            &result,
            Gloss::Send,
            Gloss::SendFull,
        );
    }
    result
}

/// `shutdown(2)`.
#[inline]
pub fn shutdown(socket: &Socket, how: Shutdown) -> io::Result<()> {
    let result = socket.shutdown(how);
    if on() {
        let how = match how {
            Shutdown::Read => "SHUT_RD",
            Shutdown::Write => "SHUT_WR",
            Shutdown::Both => "SHUT_RDWR",
        };
        emit_done(
            format_args!("shutdown({}, {how})", fd(socket)),
            &result,
            Gloss::Shutdown,
        );
    }
    result
}

/// Reports the `close(2)` that dropping `socket` is about to make.
#[inline]
pub fn close(socket: &Socket) {
    if on() {
        emit(format_args!("close({})", fd(socket)), Gloss::Close);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_read_as_strace_prints_them() {
        let e = io::Error::from_raw_os_error(libc::EAGAIN);
        assert_eq!(failure(&e), "-1 EAGAIN (Resource temporarily unavailable)");
        let e = io::Error::from_raw_os_error(libc::ECONNREFUSED);
        assert_eq!(failure(&e), "-1 ECONNREFUSED (Connection refused)");
    }

    #[test]
    fn addresses_read_as_the_tools_print_them() {
        let ip: std::net::SocketAddr = "127.0.0.1:65432".parse().unwrap();
        assert_eq!(address(&ip.into()), "127.0.0.1:65432");
        let path = SockAddr::unix("/tmp/echo.sock").unwrap();
        assert_eq!(address(&path), "/tmp/echo.sock");
        assert_eq!(
            format!("{:?} {:?}", Domain::IPV4, Type::STREAM),
            "AF_INET SOCK_STREAM"
        );
    }
}
