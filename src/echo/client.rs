//! The echo client: the socket guide's echo client and its multi-connection
//! client, with timeouts, verification and errors that explain themselves.
//!
//! One loop serves both: `connections` non-blocking sockets waiting on one
//! `driver`, each sending the whole message list and reading its echo at
//! the same time (a client that sends everything before reading would
//! deadlock with a server that applies back-pressure once the echo fills
//! both sides' buffers). A connection is a `client::Link` (its socket, the
//! read and write loops) and a `client::Script` session (the message list
//! and the check of its echo), the parts the bench's connections are made of too.
//! A connection's echo is complete when as many bytes came back as were sent
//! (never a single `recv`: it reads exactly what the echo still lacks); the
//! client then shuts down its write side and waits briefly for the server's
//! FIN, so that surplus bytes are caught and the server sees an orderly
//! close.
//!
//! The first TCP connection is made with Happy Eyeballs over every address
//! the endpoint resolves to; the others go to the address that answered.
//! Unix stream sockets go through the same engine.

use std::io;
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use mio::{Events, Interest, Token};
use socket2::Socket;

use crate::client::{Link, ReadEnd, Script, Session};
use crate::driver::Driver;
use crate::endpoint::{Endpoint, HostPort};
use crate::exit::{Classify, ExitCode};
use crate::net::connect::{self, ConnectError, ConnectOptions};
use crate::text;

/// The whole exchange's limit when no `--timeout` is given: generous for a
/// few messages, and a hung server is still reported rather than waited on.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// How long a client waits for the server's FIN after its own, once the echo
/// is complete. Not getting it is no failure (some servers ignore a
/// half-close); this only bounds how long surplus bytes are watched for.
pub const CLOSE_WAIT: Duration = Duration::from_secs(2);

/// The guide's multi-connection client sends these two messages on each connection.
pub const MULTI_MESSAGES: [&str; 2] = ["Message 1 from client.", "Message 2 from client."];

/// What to send, and over how many connections.
#[derive(Clone, Debug)]
pub struct Plan {
    /// Sent in order on every connection.
    pub messages: Vec<Vec<u8>>,
    /// Concurrent connections.
    pub connections: usize,
    /// Keep the echoed bytes in the report (to print them).
    pub keep_echo: bool,
    /// An echo that differs from what was sent is a failure.
    pub verify: bool,
}

/// Limits of a run.
#[derive(Clone, Debug)]
pub struct ClientOptions {
    /// How to connect.
    pub connect: ConnectOptions,
    /// The longest the whole exchange may take, connects included.
    pub timeout: Duration,
}

impl Default for ClientOptions {
    fn default() -> ClientOptions {
        ClientOptions {
            connect: ConnectOptions::default(),
            timeout: DEFAULT_TIMEOUT,
        }
    }
}

/// Why an exchange failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// The connection could not be made.
    #[error(transparent)]
    Connect(#[from] ConnectError),
    /// The exchange did not finish in time.
    #[error(
        "timed out after {}: {received} of {expected} bytes echoed (--timeout sets the limit)",
        text::duration(*after)
    )]
    TimedOut {
        /// How long it waited.
        after: Duration,
        /// Bytes echoed so far.
        received: u64,
        /// Bytes sent.
        expected: u64,
    },
    /// The server closed the connection before the whole echo came back.
    #[error(
        "the server closed the connection after echoing {received} of {expected} bytes{}",
        if *received == 0 {
            " (nothing came back: is it an echo server? an app-server, for one, reads its \
             protocol's header and closes on anything else)"
        } else {
            ""
        }
    )]
    Truncated {
        /// Bytes echoed.
        received: u64,
        /// Bytes sent.
        expected: u64,
    },
    /// The server closed the connection while the input was still being sent.
    #[error(
        "the server closed the connection before the input ended, after echoing {received} bytes"
    )]
    ClosedEarly {
        /// Bytes echoed.
        received: u64,
    },
    /// The server reset the connection.
    #[error(
        "connection reset by the server after {received} of {expected} bytes echoed \
         (it crashed, hit a limit, or closed with unread data)"
    )]
    Reset {
        /// Bytes echoed.
        received: u64,
        /// Bytes sent.
        expected: u64,
    },
    /// The server sent more bytes than it was sent.
    #[error("the server sent {extra} more bytes than it was sent")]
    Surplus {
        /// Bytes beyond the echo.
        extra: u64,
    },
    /// The echo is not what was sent.
    #[error(
        "the echo differs from what was sent, first at byte {offset} \
         (is it an echo server? it changed what it sent back)"
    )]
    Mismatch {
        /// Offset of the first differing byte.
        offset: u64,
    },
    /// No echo of a datagram came back, however often it was sent.
    #[error(
        "no echo from {target} after {tries} tr{}, {} each: the datagram or its echo was lost \
         (a firewall dropping it, a rate limit, or nothing listening and no ICMP error to say so); \
         --retries and --reply-timeout set the limits",
        if *tries == 1 { "y" } else { "ies" },
        text::duration(*wait)
    )]
    Lost {
        /// Where the datagrams went.
        target: String,
        /// Sends made.
        tries: u32,
        /// How long each waited.
        wait: Duration,
    },
    /// Answers came, but none was the datagram sent.
    #[error("{answers} answer(s) came back, but none was the datagram sent")]
    DatagramMismatch {
        /// Answers that matched nothing sent.
        answers: u64,
    },
    /// A message too large for one datagram.
    #[error(
        "a message of {len} bytes does not fit in one datagram to {target}: at most {max} bytes"
    )]
    TooBig {
        /// The message's size (0 when the kernel refused it without saying).
        len: usize,
        /// The largest datagram.
        max: usize,
        /// Where it was to go.
        target: String,
    },
    /// The network between client and server failed during the exchange
    /// (retransmissions timed out, the route went away).
    #[error("the network path to the server failed during the exchange: {0}")]
    PathFailed(io::Error),
    /// Any other socket or local error.
    #[error(transparent)]
    Io(#[from] io::Error),
}

impl Classify for ClientError {
    fn exit_code(&self) -> ExitCode {
        match self {
            ClientError::Connect(e) => e.exit_code(),
            ClientError::TimedOut { .. } | ClientError::Lost { .. } => ExitCode::TimedOut,
            ClientError::TooBig { .. } => ExitCode::Usage,
            ClientError::DatagramMismatch { .. } => ExitCode::Protocol,
            ClientError::Truncated { .. }
            | ClientError::ClosedEarly { .. }
            | ClientError::Reset { .. }
            | ClientError::Surplus { .. } => ExitCode::Protocol,
            ClientError::PathFailed(e) if e.raw_os_error() == Some(libc::ETIMEDOUT) => {
                ExitCode::TimedOut
            }
            ClientError::PathFailed(_) => ExitCode::Unreachable,
            ClientError::Mismatch { .. } | ClientError::Io(_) => ExitCode::Failures,
        }
    }
}

impl ClientError {
    fn from_exchange(e: io::Error, received: u64, expected: u64) -> ClientError {
        match e.raw_os_error() {
            Some(libc::ECONNRESET) => ClientError::Reset { received, expected },
            Some(libc::EPIPE) => ClientError::Truncated { received, expected },
            Some(
                libc::ETIMEDOUT
                | libc::EHOSTUNREACH
                | libc::ENETUNREACH
                | libc::EHOSTDOWN
                | libc::ENETDOWN,
            ) => ClientError::PathFailed(e),
            _ => ClientError::Io(e),
        }
    }
}

/// How one connection went.
#[derive(Debug)]
pub struct ConnReport {
    /// 1-based, in the order connections were started.
    pub id: usize,
    /// The client's own address, once connected.
    pub local: Option<SocketAddr>,
    /// Bytes sent.
    pub sent: u64,
    /// Bytes echoed.
    pub received: u64,
    /// The echoed bytes, when the plan keeps them.
    pub echo: Vec<u8>,
    /// Where the echo first differs from what was sent, if it does.
    pub first_difference: Option<u64>,
    /// From start to the echo complete (or the failure).
    pub elapsed: Duration,
    /// Success, or why not.
    pub outcome: Result<(), ClientError>,
}

/// How a run went.
#[derive(Debug)]
pub struct Report {
    /// Where the connections went.
    pub server: Endpoint,
    /// One per connection, by id.
    pub connections: Vec<ConnReport>,
    /// The whole run.
    pub elapsed: Duration,
}

impl Report {
    /// Connections that succeeded.
    pub fn ok(&self) -> usize {
        self.connections
            .iter()
            .filter(|c| c.outcome.is_ok())
            .count()
    }

    /// The exit code: success, the failure's own code when every connection
    /// failed the same way, otherwise "ran, but found failures".
    pub fn exit_code(&self) -> ExitCode {
        ExitCode::agreed(self.connections.iter().map(|c| match &c.outcome {
            Ok(()) => ExitCode::Success,
            Err(e) => e.exit_code(),
        }))
    }

    /// One line for the whole run.
    pub fn summary(&self) -> String {
        let echoed: u64 = self.connections.iter().map(|c| c.received).sum();
        let n = self.connections.len();
        format!(
            "{n} connection{} to {}: {} ok, {} failed; {} echoed in {}",
            if n == 1 { "" } else { "s" },
            self.server,
            self.ok(),
            n - self.ok(),
            text::bytes(echoed),
            text::duration(self.elapsed)
        )
    }
}

impl ConnReport {
    /// A connection's report before anything happened on it.
    pub(crate) fn start(id: usize) -> ConnReport {
        ConnReport {
            id,
            local: None,
            sent: 0,
            received: 0,
            echo: Vec::new(),
            first_difference: None,
            elapsed: Duration::ZERO,
            outcome: Ok(()),
        }
    }

    /// One line for this connection, as the multi-connection client prints it.
    pub fn line(&self) -> String {
        let from = self.local.map(|a| format!(" from {a}")).unwrap_or_default();
        let result = match &self.outcome {
            Ok(()) => "echo ok".to_string(),
            Err(e) => format!("FAILED: {e}"),
        };
        format!(
            "connection {}{from}: sent {} B, received {} B in {}: {result}",
            self.id,
            self.sent,
            self.received,
            text::duration(self.elapsed)
        )
    }
}

/// Runs the plan against a stream endpoint (TCP or Unix). Fails as a whole
/// only when the first connection cannot be made; later failures are in the
/// report.
pub fn run(endpoint: &Endpoint, plan: &Plan, opts: &ClientOptions) -> Result<Report, ClientError> {
    let started = Instant::now();
    let connect_opts = opts.connect.within(Some(opts.timeout));
    let (first, server) = connect::connect_stream(endpoint, &connect_opts)?;
    let mut engine = Engine {
        driver: Driver::new()?,
        conns: Vec::with_capacity(plan.connections),
        expected: plan.messages.concat(),
        keep_echo: plan.keep_echo,
        verify: plan.verify,
        scratch: vec![0; 64 * 1024],
        server: server.clone(),
        deadline: crate::deadline::after(started, opts.timeout),
        timeout: opts.timeout,
        connect_timeout: connect_opts.timeout,
    };
    engine.add(Ok(first), engine.deadline)?;
    // Connected already: its connect has nothing left to report.
    engine.conns[0].phase = Phase::Exchanging;
    for _ in 1..plan.connections {
        // The others go where the first one went.
        let socket = match server.host_port().and_then(HostPort::addr) {
            Some(addr) => connect::start(addr, &connect_opts),
            None => connect::connect_local(&server, connect_opts.timeout),
        };
        engine.add(socket, crate::deadline::from_now(connect_opts.timeout))?;
    }
    engine.run()?;
    let connections = engine
        .conns
        .into_iter()
        .enumerate()
        .map(|(i, c)| c.into_report(i + 1, started))
        .collect();
    Ok(Report {
        server,
        connections,
        elapsed: started.elapsed(),
    })
}

enum Phase {
    /// Waiting for the connect to complete, until this time.
    Connecting(Instant),
    /// Sending and reading the echo.
    Exchanging,
    /// Echo complete and FIN sent; waiting for the server's FIN until this time.
    Closing(Instant),
    Done,
}

struct ClientConn {
    link: Link,
    script: Script,
    phase: Phase,
    local: Option<SocketAddr>,
    finished_at: Option<Instant>,
    outcome: Result<(), ClientError>,
}

impl ClientConn {
    fn into_report(self, id: usize, started: Instant) -> ConnReport {
        ConnReport {
            id,
            local: self.local,
            sent: self.link.written,
            received: self.link.received,
            echo: self.script.echo.unwrap_or_default(),
            first_difference: self.script.first_difference,
            elapsed: self.finished_at.map_or(Duration::ZERO, |t| t - started),
            outcome: self.outcome,
        }
    }
}

struct Engine {
    driver: Driver,
    conns: Vec<ClientConn>,
    /// The messages, concatenated: what each connection sends and expects.
    expected: Vec<u8>,
    keep_echo: bool,
    verify: bool,
    scratch: Vec<u8>,
    server: Endpoint,
    deadline: Instant,
    /// The limits, as the errors report them.
    timeout: Duration,
    connect_timeout: Duration,
}

impl Engine {
    /// Adds a connection: connected (the first) or connecting (the others,
    /// until `connect_by`), or failed at once. Its whole message list is
    /// issued at once.
    fn add(&mut self, stream: Result<Socket, ConnectError>, connect_by: Instant) -> io::Result<()> {
        let token = Token(self.conns.len());
        let mut conn = ClientConn {
            link: Link::default(),
            script: Script::new(self.keep_echo),
            phase: Phase::Connecting(connect_by),
            local: None,
            finished_at: None,
            outcome: Ok(()),
        };
        match stream {
            Ok(stream) => {
                self.driver.watch(
                    stream.as_raw_fd(),
                    token,
                    Interest::READABLE | Interest::WRITABLE,
                )?;
                conn.link = Link::new(stream);
                conn.link.issued = conn.script.next_len(&self.expected);
            }
            Err(e) => {
                conn.phase = Phase::Done;
                conn.outcome = Err(e.into());
                conn.finished_at = Some(Instant::now());
            }
        }
        self.conns.push(conn);
        Ok(())
    }

    fn run(&mut self) -> io::Result<()> {
        let mut events = Events::with_capacity(1024);
        let mut open = self
            .conns
            .iter()
            .filter(|c| !matches!(c.phase, Phase::Done))
            .count();
        while open > 0 {
            let wake_at = self
                .conns
                .iter()
                .filter_map(|c| match c.phase {
                    Phase::Connecting(t) | Phase::Closing(t) => Some(t),
                    _ => None,
                })
                .fold(self.deadline, Instant::min);
            self.driver.wait_until(&mut events, Some(wake_at))?;
            for event in &events {
                let closed = event.is_read_closed() || event.is_error();
                if self.step(event.token().0, closed) {
                    open -= 1;
                }
            }
            open -= self.expire(Instant::now());
        }
        Ok(())
    }

    /// Advances connection `i` as far as its socket allows (`closed`: the
    /// event said the server closed). Returns true when this call finished it.
    fn step(&mut self, i: usize, closed: bool) -> bool {
        let conn = &mut self.conns[i];
        if matches!(conn.phase, Phase::Done) {
            return false;
        }
        let ctx = Ctx {
            driver: &self.driver,
            token: Token(i),
            server: &self.server,
        };
        let result = advance(conn, &ctx, &mut self.expected, &mut self.scratch, closed);
        match result {
            Ok(false) => false,
            Ok(true) => {
                self.finish(i, Ok(()));
                true
            }
            Err(e) => {
                self.finish(i, Err(e));
                true
            }
        }
    }

    fn finish(&mut self, i: usize, outcome: Result<(), ClientError>) {
        let conn = &mut self.conns[i];
        conn.phase = Phase::Done;
        conn.finished_at = Some(Instant::now());
        let script = &conn.script;
        conn.outcome = match (outcome, script.first_difference) {
            (Ok(()), _) if script.surplus > 0 => Err(ClientError::Surplus {
                extra: script.surplus,
            }),
            (Ok(()), Some(offset)) if self.verify => Err(ClientError::Mismatch { offset }),
            (outcome, _) => outcome,
        };
        let driver = &self.driver;
        conn.link.close(|s| driver.unwatch(s.as_raw_fd()));
    }

    /// Ends what has run out of time. Returns how many it ended.
    fn expire(&mut self, now: Instant) -> usize {
        let mut ended = 0;
        for i in 0..self.conns.len() {
            let conn = &self.conns[i];
            let expected = self.expected.len() as u64;
            let outcome = match conn.phase {
                Phase::Done => continue,
                Phase::Connecting(by) if now >= by || now >= self.deadline => {
                    Err(ClientError::Connect(ConnectError::TimedOut {
                        target: self.server.to_string(),
                        after: self.connect_timeout.min(self.timeout),
                    }))
                }
                Phase::Closing(by) if now >= by || now >= self.deadline => {
                    tracing::debug!(
                        "connection {}: no FIN from the server after ours; closing",
                        i + 1
                    );
                    Ok(())
                }
                _ if now >= self.deadline => Err(ClientError::TimedOut {
                    after: self.timeout,
                    received: conn.link.received,
                    expected,
                }),
                _ => continue,
            };
            self.finish(i, outcome);
            ended += 1;
        }
        ended
    }
}

/// What a connection's step reads from the engine.
struct Ctx<'a> {
    driver: &'a Driver,
    token: Token,
    server: &'a Endpoint,
}

/// One connection's state machine. `Ok(true)` when it is done.
fn advance(
    conn: &mut ClientConn,
    ctx: &Ctx<'_>,
    expected: &mut Vec<u8>,
    scratch: &mut [u8],
    closed: bool,
) -> Result<bool, ClientError> {
    let total = expected.len() as u64;
    let Some(stream) = conn.link.socket.as_ref() else {
        return Ok(true);
    };
    if let Phase::Connecting(_) = conn.phase {
        match connect::finished(stream) {
            Ok(false) => return Ok(false),
            Ok(true) => {
                conn.local = local_ip(stream);
                conn.phase = Phase::Exchanging;
            }
            Err(e) => return Err(ConnectError::from_io(ctx.server.to_string(), e).into()),
        }
    }
    if conn.local.is_none() {
        conn.local = local_ip(stream);
    }
    let fd = stream.as_raw_fd();
    if matches!(conn.phase, Phase::Exchanging) && conn.link.unsent() {
        let all = conn
            .link
            .flush(&conn.script, expected, |_, _| {})
            .map_err(|e| ClientError::from_exchange(e, conn.link.received, total))?;
        if all {
            ctx.driver.rewatch(fd, ctx.token, Interest::READABLE)?;
        }
    }
    loop {
        let pass = conn.link.read(&mut conn.script, expected, scratch, closed);
        let closing = matches!(conn.phase, Phase::Closing(_));
        match pass.end {
            ReadEnd::Drained => {}
            ReadEnd::Closed if closing => return Ok(true),
            ReadEnd::Closed => {
                return Err(ClientError::Truncated {
                    received: conn.link.received,
                    expected: total,
                });
            }
            ReadEnd::Failed(e) if closing => {
                // The echo was complete; how the server ends the connection
                // after our FIN is its business.
                tracing::debug!("after the echo: {}", crate::text::os_error(&e));
                return Ok(true);
            }
            ReadEnd::Failed(e) => {
                return Err(ClientError::from_exchange(e, conn.link.received, total));
            }
            // A script takes every read (see `client::Script`).
            ReadEnd::Wrong(what) => return Err(ClientError::Io(io::Error::other(what))),
        }
        if closing || conn.link.received < total {
            return Ok(false);
        }
        // The whole echo is back: half-close, and read on for the server's
        // FIN (it may be here already) and any surplus.
        conn.link.finish_sending()?;
        conn.phase = Phase::Closing(Instant::now() + CLOSE_WAIT);
        conn.script.closing = true;
    }
}

/// The client's own IP address and port; `None` for a Unix socket.
fn local_ip(socket: &Socket) -> Option<SocketAddr> {
    socket.local_addr().ok()?.as_socket()
}
