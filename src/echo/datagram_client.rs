//! The datagram echo client: UDP and Unix datagram sockets, `sendto` and
//! `recvfrom` with the care the socket guide leaves out.
//!
//! A datagram may be lost, duplicated, or answered late, and nothing tells
//! the sender. So the client:
//! - connects its socket to the server, so that only the server's answers
//!   arrive and an ICMP "port unreachable" shows as "connection refused";
//! - waits for each echo for a time ([`DEFAULT_REPLY_TIMEOUT`]) and sends
//!   again up to `--retries` times ([`exchange`](DatagramClient::exchange));
//! - tells a late answer to an earlier datagram (stale) from an answer that
//!   matches nothing sent (mismatched);
//! - or, as `ping` does, sends a numbered series and reports loss,
//!   duplicates and round-trip times ([`series`](DatagramClient::series)).
//!
//! A Unix datagram client binds a path of its own in the temporary
//! directory (the server answers to it) and removes it when done.

use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use nix::sys::socket::MsgFlags;
use socket2::Socket;

use super::client::{ClientError, ConnReport, Plan, Report};
use super::stream::StreamReport;
use crate::endpoint::{Endpoint, Purpose, SocketType};
use crate::exit::ExitCode;
use crate::net::connect::{self, ConnectError, ConnectOptions};
use crate::net::unix::{self, SocketFile};
use crate::net::{UDP_MAX_V4, UDP_MAX_V6, UNIX_DATAGRAM_MAX};
use crate::text;

/// How long a client waits for one datagram's echo before it sends again:
/// a thousand times a loopback round trip, a few times a continent's.
pub const DEFAULT_REPLY_TIMEOUT: Duration = Duration::from_secs(1);

/// How many times a datagram is sent again when its echo does not come:
/// three tries in all, as DNS clients make.
pub const DEFAULT_RETRIES: u32 = 2;

/// After a series' last echo, duplicates are waited for twice the slowest
/// round trip, and at least this long (at most the reply timeout).
const DUPLICATE_WAIT_MIN: Duration = Duration::from_millis(1);

/// How a datagram waits for its echo.
#[derive(Clone, Copy, Debug)]
pub struct DatagramOptions {
    /// How long each try waits for the echo.
    pub reply_timeout: Duration,
    /// Tries after the first.
    pub retries: u32,
}

impl Default for DatagramOptions {
    fn default() -> DatagramOptions {
        DatagramOptions {
            reply_timeout: DEFAULT_REPLY_TIMEOUT,
            retries: DEFAULT_RETRIES,
        }
    }
}

/// A datagram socket connected to an echo server.
#[derive(Debug)]
pub struct DatagramClient {
    socket: Socket,
    server: Endpoint,
    local: Option<SocketAddr>,
    max: usize,
    buf: Vec<u8>,
    /// The last datagram sent before the current one: an echo of it now is stale.
    previous: Vec<u8>,
    /// Echoes of an earlier datagram that came after it was done with.
    pub stale: u64,
    /// Answers that match nothing sent.
    pub mismatched: u64,
    /// The client's own socket file (unixgram), removed when the client is dropped.
    file: Option<SocketFile>,
}

/// One datagram's echo.
#[derive(Clone, Debug)]
pub struct Echo {
    /// The echoed bytes (equal to what was sent).
    pub bytes: Vec<u8>,
    /// From the send that was answered to its echo.
    pub rtt: Duration,
    /// Sends it took.
    pub tries: u32,
}

impl DatagramClient {
    /// A socket connected to a datagram endpoint (UDP or Unix datagram).
    pub fn connect(
        endpoint: &Endpoint,
        opts: &ConnectOptions,
    ) -> Result<DatagramClient, ClientError> {
        let (socket, server, local, file, max) = match endpoint.host_port() {
            Some(hp) => {
                let addrs = hp.resolve(Purpose::Connect).map_err(ConnectError::from)?;
                // The first the name resolved to (in --bind's family).
                let addr = connect::candidates(&addrs, opts)?[0];
                let socket = connect::connect_udp(addr, opts)?;
                let local = socket.local_addr().ok().and_then(|a| a.as_socket());
                let max = if addr.is_ipv6() {
                    UDP_MAX_V6
                } else {
                    UDP_MAX_V4
                };
                (socket, endpoint.with_addr(addr), local, None, max)
            }
            None => {
                let (socket, file) = unix::bind_temp_datagram().map_err(ClientError::Io)?;
                tracing::debug!("bound {} to receive echoes", file.path().display());
                connect::connect_local_with(&socket, endpoint, opts.timeout)?;
                (
                    socket,
                    endpoint.clone(),
                    None,
                    Some(file),
                    UNIX_DATAGRAM_MAX,
                )
            }
        };
        socket.set_nonblocking(false)?;
        tracing::debug!("sending datagrams to {server}");
        Ok(DatagramClient {
            socket,
            server,
            local,
            max,
            buf: vec![0; max + 1],
            previous: Vec::new(),
            stale: 0,
            mismatched: 0,
            file,
        })
    }

    /// Where the datagrams go.
    pub fn server(&self) -> &Endpoint {
        &self.server
    }

    /// The client's own address and port (UDP).
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.local
    }

    /// The largest datagram this socket can send whole.
    pub fn max_datagram(&self) -> usize {
        self.max
    }

    /// Keeps `payload` to recognise a late echo of it, in the same buffer.
    fn remember(&mut self, payload: &[u8]) {
        self.previous.clear();
        self.previous.extend_from_slice(payload);
    }

    /// Sends `payload` as one datagram and waits for its echo, sending again
    /// after each `reply_timeout`, `retries` times at most.
    pub fn exchange(
        &mut self,
        payload: &[u8],
        opts: &DatagramOptions,
    ) -> Result<Echo, ClientError> {
        self.check_size(payload.len())?;
        let tries = opts.retries.saturating_add(1);
        let mismatched_before = self.mismatched;
        for attempt in 1..=tries {
            if attempt > 1 {
                tracing::debug!(
                    "no echo within {}: sending again ({attempt} of {tries})",
                    text::duration(opts.reply_timeout)
                );
            }
            // Timed before the send: on loopback the echo can be queued
            // before `send` returns.
            let sent_at = Instant::now();
            self.send(payload)?;
            let until = crate::deadline::after(sent_at, opts.reply_timeout);
            while let Some(n) = self.receive(until)? {
                let reply = &self.buf[..n.min(self.buf.len())];
                if reply == payload {
                    let echo = Echo {
                        bytes: reply.to_vec(),
                        rtt: sent_at.elapsed(),
                        tries: attempt,
                    };
                    self.remember(payload);
                    return Ok(echo);
                }
                if reply == self.previous.as_slice() {
                    self.stale += 1;
                    tracing::debug!("a late echo of the previous datagram; ignored");
                } else {
                    self.mismatched += 1;
                    tracing::debug!("an answer of {n} bytes that matches nothing sent");
                }
            }
        }
        self.remember(payload);
        if self.mismatched > mismatched_before {
            return Err(ClientError::DatagramMismatch {
                answers: self.mismatched - mismatched_before,
            });
        }
        Err(ClientError::Lost {
            target: self.server.to_string(),
            tries,
            wait: opts.reply_timeout,
        })
    }

    /// Sends `count` numbered datagrams (`message #1`, `message #2`...) one
    /// `interval` apart, and waits `reply_timeout` after the last one for
    /// stragglers; `on_reply` hears of each echo as it comes.
    pub fn series(
        &mut self,
        message: &[u8],
        count: u64,
        interval: Duration,
        reply_timeout: Duration,
        mut on_reply: impl FnMut(&Reply),
    ) -> Result<SeriesReport, ClientError> {
        let longest = message.len() + format!(" #{count}").len();
        self.check_size(longest)?;
        let started = Instant::now();
        let mut report = SeriesReport::default();
        let mut sent_at: Vec<Instant> = Vec::new();
        let mut answered: Vec<bool> = Vec::new();
        let mut payload = Vec::with_capacity(longest);
        // Once every echo is in, duplicates are waited for a little longer.
        let mut linger_until: Option<Instant> = None;
        loop {
            let now = Instant::now();
            let next_send =
                crate::deadline::after(started, interval.saturating_mul(report.sent as u32));
            if report.sent < count && now >= next_send {
                payload.clear();
                payload.extend_from_slice(message);
                payload.extend_from_slice(format!(" #{}", report.sent + 1).as_bytes());
                // Timed before the send: on loopback the echo can be queued
                // before `send` returns.
                sent_at.push(Instant::now());
                self.send(&payload)?;
                answered.push(false);
                report.sent += 1;
            }
            let until = if report.sent < count {
                // Whatever has come back, before the next send is due.
                crate::deadline::after(started, interval.saturating_mul(report.sent as u32))
            } else if report.received == count {
                *linger_until.get_or_insert_with(|| {
                    let slowest = report.rtts.iter().max().copied().unwrap_or_default();
                    now + (slowest * 2).max(DUPLICATE_WAIT_MIN).min(reply_timeout)
                })
            } else {
                let last = *sent_at
                    .last()
                    .expect("count is at least 1, so one was sent");
                crate::deadline::after(last, reply_timeout)
            };
            if report.sent == count && now >= until {
                break;
            }
            let Some(n) = self.receive(until)? else {
                continue;
            };
            let arrived = Instant::now();
            let seq = parse_seq(&self.buf[..n.min(self.buf.len())], message, report.sent);
            match seq {
                Some(seq) if answered[seq as usize - 1] => report.duplicated += 1,
                Some(seq) => {
                    answered[seq as usize - 1] = true;
                    report.received += 1;
                    let rtt = arrived - sent_at[seq as usize - 1];
                    report.rtts.push(rtt);
                    on_reply(&Reply { seq, bytes: n, rtt });
                }
                None => report.mismatched += 1,
            }
        }
        report.elapsed = started.elapsed();
        Ok(report)
    }

    fn check_size(&self, len: usize) -> Result<(), ClientError> {
        if len > self.max {
            return Err(ClientError::TooBig {
                len,
                max: self.max,
                target: self.server.to_string(),
            });
        }
        Ok(())
    }

    fn send(&self, payload: &[u8]) -> Result<(), ClientError> {
        loop {
            match crate::calls::send(&self.socket, payload) {
                Ok(_) => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.raw_os_error() == Some(libc::EMSGSIZE) => {
                    return Err(ClientError::TooBig {
                        len: payload.len(),
                        max: self.max,
                        target: self.server.to_string(),
                    });
                }
                Err(e) => return Err(self.failed(e)),
            }
        }
    }

    /// The client's own socket file (Unix datagrams), removed when the
    /// client is dropped; a signal handler may remove it sooner.
    pub fn own_path(&self) -> Option<&std::path::Path> {
        self.file.as_ref().map(SocketFile::path)
    }

    /// Waits until `until` for a datagram; its length (which may exceed the
    /// buffer, when it was truncated), or `None` at the deadline.
    fn receive(&mut self, until: Instant) -> Result<Option<usize>, ClientError> {
        loop {
            let left = until.saturating_duration_since(Instant::now());
            let flags = if left.is_zero() {
                MsgFlags::MSG_TRUNC | MsgFlags::MSG_DONTWAIT
            } else {
                // SO_RCVTIMEO counts whole microseconds, and zero means
                // "wait for ever": never less than one.
                self.socket
                    .set_read_timeout(Some(left.max(Duration::from_micros(1))))?;
                MsgFlags::MSG_TRUNC
            };
            let result = nix::sys::socket::recv(self.socket.as_raw_fd(), &mut self.buf, flags);
            crate::calls::received(
                &self.socket,
                self.buf.len(),
                &result.map_err(io::Error::from),
            );
            match result {
                Ok(n) => return Ok(Some(n)),
                Err(nix::errno::Errno::EAGAIN) => {
                    if left.is_zero() || Instant::now() >= until {
                        return Ok(None);
                    }
                }
                Err(nix::errno::Errno::EINTR) => {}
                Err(e) => return Err(self.failed(io::Error::from(e))),
            }
        }
    }

    fn failed(&self, e: io::Error) -> ClientError {
        let target = self.server.to_string();
        match e.raw_os_error() {
            Some(libc::ECONNREFUSED) if self.local.is_some() => {
                let server = self.socket.peer_addr().ok().and_then(|a| a.as_socket());
                ClientError::Connect(ConnectError::Refused {
                    target,
                    tried: server.into_iter().collect(),
                    over: SocketType::Datagram,
                    here: None,
                })
            }
            Some(libc::ECONNREFUSED | libc::ENOENT) => {
                ClientError::Connect(ConnectError::NoLocalServer {
                    target,
                    why: "the server's socket closed (did the server stop?)",
                })
            }
            _ => ClientError::from(e),
        }
    }
}

/// Streams `input` as datagrams, one per read (up to the largest datagram;
/// a line at a time from a terminal), each echo written to `output` before
/// the next is sent.
pub fn stream<R: Read, W: Write>(
    client: &mut DatagramClient,
    mut input: R,
    output: &mut W,
    opts: &DatagramOptions,
) -> Result<StreamReport, ClientError> {
    let mut buf = vec![0; client.max_datagram()];
    let mut report = StreamReport::default();
    loop {
        let n = match input.read(&mut buf) {
            Ok(0) => return Ok(report),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => {
                return Err(ClientError::Io(io::Error::new(
                    e.kind(),
                    format!("reading the input: {}", crate::text::os_error(&e)),
                )));
            }
        };
        let echo = client.exchange(&buf[..n], opts)?;
        report.sent += n as u64;
        report.received += echo.bytes.len() as u64;
        match output.write_all(&echo.bytes).and_then(|()| output.flush()) {
            Ok(()) => {}
            // Whoever read the output stopped (`| head`): not a failure.
            Err(e) if e.kind() == io::ErrorKind::BrokenPipe => return Ok(report),
            Err(e) => return Err(e.into()),
        }
    }
}

/// The multi-connection client over datagrams: `plan.connections` sockets at
/// once, each sending the messages in turn and waiting for each echo. Fails
/// as a whole only when the first socket cannot be set up.
pub fn run_many(
    endpoint: &Endpoint,
    plan: &Plan,
    connect: &ConnectOptions,
    opts: &DatagramOptions,
) -> Result<Report, ClientError> {
    /// Each socket's thread needs little stack: it sends and waits.
    const STACK: usize = 256 * 1024;
    let started = Instant::now();
    let first = DatagramClient::connect(endpoint, connect)?;
    let server = first.server().clone();
    let mut first = Some(first);
    let connections = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..plan.connections)
            .map(|i| {
                let client = if i == 0 { first.take() } else { None };
                let server = &server;
                std::thread::Builder::new()
                    .stack_size(STACK)
                    .spawn_scoped(scope, move || {
                        let client = match client {
                            Some(c) => Ok(c),
                            None => DatagramClient::connect(server, connect),
                        };
                        one_of_many(i + 1, client, plan, opts, started)
                    })
            })
            .collect();
        handles
            .into_iter()
            .enumerate()
            .map(|(i, handle)| {
                let failed = |e: ClientError| ConnReport {
                    elapsed: started.elapsed(),
                    outcome: Err(e),
                    ..ConnReport::start(i + 1)
                };
                match handle {
                    Ok(h) => h.join().unwrap_or_else(|_| {
                        failed(ClientError::Io(io::Error::other(
                            "a client thread panicked",
                        )))
                    }),
                    Err(e) => failed(ClientError::Io(e)),
                }
            })
            .collect()
    });
    Ok(Report {
        server,
        connections,
        elapsed: started.elapsed(),
    })
}

fn one_of_many(
    id: usize,
    client: Result<DatagramClient, ClientError>,
    plan: &Plan,
    opts: &DatagramOptions,
    started: Instant,
) -> ConnReport {
    let mut report = ConnReport::start(id);
    match client {
        Ok(mut client) => {
            report.local = client.local_addr();
            for message in &plan.messages {
                report.sent += message.len() as u64;
                match client.exchange(message, opts) {
                    Ok(echo) => {
                        report.received += echo.bytes.len() as u64;
                        if plan.keep_echo {
                            report.echo.extend_from_slice(&echo.bytes);
                        }
                    }
                    Err(e) => {
                        report.outcome = Err(e);
                        break;
                    }
                }
            }
        }
        Err(e) => report.outcome = Err(e),
    }
    report.elapsed = started.elapsed();
    report
}

/// The sequence number of a series echo (`message #N`, N at most `sent`).
fn parse_seq(reply: &[u8], message: &[u8], sent: u64) -> Option<u64> {
    let rest = reply.strip_prefix(message)?.strip_prefix(b" #")?;
    if rest.is_empty() || !rest.iter().all(u8::is_ascii_digit) || rest[0] == b'0' {
        return None;
    }
    let seq: u64 = std::str::from_utf8(rest).ok()?.parse().ok()?;
    (1..=sent).contains(&seq).then_some(seq)
}

/// One echo of a series.
#[derive(Clone, Copy, Debug)]
pub struct Reply {
    /// Its sequence number, from 1.
    pub seq: u64,
    /// Its size.
    pub bytes: usize,
    /// Its round trip.
    pub rtt: Duration,
}

/// How a series went.
#[derive(Clone, Debug, Default)]
pub struct SeriesReport {
    /// Datagrams sent.
    pub sent: u64,
    /// Distinct datagrams echoed.
    pub received: u64,
    /// Echoes of a datagram already echoed.
    pub duplicated: u64,
    /// Answers that match no datagram sent.
    pub mismatched: u64,
    /// Round trips of the echoed datagrams.
    pub rtts: Vec<Duration>,
    /// The whole series.
    pub elapsed: Duration,
}

impl SeriesReport {
    /// Datagrams that got no echo.
    pub fn lost(&self) -> u64 {
        self.sent - self.received
    }

    /// The summary, as `ping` prints it: counts, then round trips.
    pub fn summary(&self, server: &Endpoint) -> String {
        let loss = if self.sent == 0 {
            0.0
        } else {
            100.0 * self.lost() as f64 / self.sent as f64
        };
        let mut out = format!(
            "--- {server} echo statistics ---\n\
             {} sent, {} received, {loss:.1}% lost, {} duplicated, {} mismatched, time {}",
            text::count(self.sent),
            text::count(self.received),
            text::count(self.duplicated),
            text::count(self.mismatched),
            text::duration(self.elapsed)
        );
        if let (Some(min), Some(max)) = (self.rtts.iter().min(), self.rtts.iter().max()) {
            let ms = |d: Duration| d.as_secs_f64() * 1000.0;
            let avg = self.rtts.iter().map(|d| ms(*d)).sum::<f64>() / self.rtts.len() as f64;
            out.push_str(&format!(
                "\nrtt min/avg/max = {:.3}/{avg:.3}/{:.3} ms",
                ms(*min),
                ms(*max)
            ));
        }
        out
    }

    /// Success when every datagram came back once and nothing else did; a
    /// protocol error when an answer was not an echo (as a single datagram's
    /// wrong answer is); timed out when none came back; otherwise "ran, but
    /// found failures".
    pub fn exit_code(&self) -> ExitCode {
        if self.mismatched > 0 {
            ExitCode::Protocol
        } else if self.sent > 0 && self.received == 0 {
            ExitCode::TimedOut
        } else if self.lost() > 0 {
            ExitCode::Failures
        } else {
            ExitCode::Success
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn series_echoes_are_numbered() {
        assert_eq!(parse_seq(b"Hello #3", b"Hello", 5), Some(3));
        assert_eq!(parse_seq(b"Hello #6", b"Hello", 5), None, "not sent yet");
        assert_eq!(parse_seq(b"Hello #0", b"Hello", 5), None);
        assert_eq!(parse_seq(b"Hello #03", b"Hello", 5), None);
        assert_eq!(parse_seq(b"Hullo #3", b"Hello", 5), None);
        assert_eq!(parse_seq(b"Hello #", b"Hello", 5), None);
    }

    #[test]
    fn series_exit_codes() {
        let mut r = SeriesReport {
            sent: 3,
            received: 3,
            ..SeriesReport::default()
        };
        assert_eq!(r.exit_code(), ExitCode::Success);
        r.duplicated = 1;
        assert_eq!(
            r.exit_code(),
            ExitCode::Success,
            "a duplicate is reported, not failed"
        );
        r.received = 2;
        assert_eq!(r.exit_code(), ExitCode::Failures);
        r.received = 0;
        assert_eq!(r.exit_code(), ExitCode::TimedOut);
        // Answers that are not echoes: the server is wrong, whatever else.
        r.mismatched = 1;
        assert_eq!(r.exit_code(), ExitCode::Protocol);
        r.received = 3;
        assert_eq!(r.exit_code(), ExitCode::Protocol);
    }
}
