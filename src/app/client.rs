//! `app-client`: the guide's application client, with what its code leaves
//! out: one deadline for the whole exchange (connect, send, response), the
//! codec's limits on what it reads, and typed errors for the exit codes.
//! (What it prints, the server's text escaped as Python's `repr` escapes
//! it, is [`super::Response::line`].)

use std::io;
use std::time::{Duration, Instant};

use socket2::Socket;

use super::service::ContentError;
use crate::endpoint::Endpoint;
use crate::exit::{Classify, ExitCode};
use crate::net::connect::{self, ConnectError, ConnectOptions};
use crate::proto::{DecodeError, Decoder, Limits, Message, encode};

/// The whole exchange's limit when none is given.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// How the client runs.
#[derive(Clone, Debug)]
pub struct AppClientOptions {
    /// How to connect.
    pub connect: ConnectOptions,
    /// The longest the whole exchange may take, the connect included.
    pub timeout: Duration,
    /// What a response may be.
    pub limits: Limits,
}

impl Default for AppClientOptions {
    fn default() -> AppClientOptions {
        AppClientOptions {
            connect: ConnectOptions::default(),
            timeout: DEFAULT_TIMEOUT,
            limits: Limits::default(),
        }
    }
}

/// Why an exchange failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AppError {
    /// The connection could not be made.
    #[error(transparent)]
    Connect(#[from] ConnectError),
    /// The exchange did not finish in time.
    #[error(
        "timed out after {} {stage} (--timeout sets the limit)",
        crate::text::duration(*after)
    )]
    TimedOut {
        /// The limit.
        after: Duration,
        /// What it was waiting for.
        stage: &'static str,
    },
    /// The response is not a well-formed message.
    #[error("malformed response from {server}")]
    Malformed {
        /// Where it came from.
        server: Endpoint,
        /// What is wrong.
        source: DecodeError,
    },
    /// A `text/json` response that is not what the guide's client reads.
    #[error("malformed response from {server}")]
    BadContent {
        /// Where it came from.
        server: Endpoint,
        /// What is wrong.
        source: ContentError,
    },
    /// The server reset the connection.
    #[error("the server {0} reset the connection before its response was whole")]
    Reset(Endpoint),
    /// The server sent the request back, byte for byte.
    #[error(
        "{server} sent the request back unchanged: it looks like an echo server, not an \
         app-server (start one with `echokit app-server`, which listens on 127.0.0.1:65432)"
    )]
    EchoedBack {
        /// Where it came from.
        server: Endpoint,
    },
    /// Any other socket error.
    #[error(transparent)]
    Io(#[from] io::Error),
}

impl Classify for AppError {
    fn exit_code(&self) -> ExitCode {
        match self {
            AppError::Connect(e) => e.exit_code(),
            AppError::TimedOut { .. } => ExitCode::TimedOut,
            AppError::Malformed { .. }
            | AppError::BadContent { .. }
            | AppError::Reset(_)
            | AppError::EchoedBack { .. } => ExitCode::Protocol,
            AppError::Io(_) => ExitCode::Failures,
        }
    }
}

/// Sends one request to a stream endpoint and reads the one response.
/// Returns the response and the endpoint it came from.
pub fn exchange(
    endpoint: &Endpoint,
    request: &Message,
    opts: &AppClientOptions,
) -> Result<(Message, Endpoint), AppError> {
    let started = Instant::now();
    let deadline = crate::deadline::after(started, opts.timeout);
    let connect_opts = opts.connect.within(Some(opts.timeout));
    let (socket, server) = connect::connect_stream(endpoint, &connect_opts)?;
    socket.set_nonblocking(false)?;
    let bytes = encode(request).map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    tracing::debug!("sending {} bytes to {server}", bytes.len());
    let left = |stage| {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            Err(AppError::TimedOut {
                after: opts.timeout,
                stage,
            })
        } else {
            Ok(left)
        }
    };
    let timed_out = |e: &io::Error| {
        matches!(
            e.kind(),
            io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
        )
    };
    let mut sent = 0;
    while sent < bytes.len() {
        socket.set_write_timeout(Some(left("sending the request")?))?;
        match crate::calls::send(&socket, &bytes[sent..]) {
            Ok(n) => sent += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) if timed_out(&e) => {
                return Err(AppError::TimedOut {
                    after: opts.timeout,
                    stage: "sending the request",
                });
            }
            Err(e) if matches!(e.raw_os_error(), Some(libc::ECONNRESET | libc::EPIPE)) => {
                return Err(AppError::Reset(server));
            }
            Err(e) => return Err(e.into()),
        }
    }
    let response = read_response(&socket, &server, &bytes, opts, &left, &timed_out)?;
    crate::calls::close(&socket);
    Ok((response, server))
}

/// Reads one response; one that is the request itself, byte for byte, is
/// an echo server's answer, not an app-server's.
fn read_response(
    socket: &Socket,
    server: &Endpoint,
    request: &[u8],
    opts: &AppClientOptions,
    left: &dyn Fn(&'static str) -> Result<Duration, AppError>,
    timed_out: &dyn Fn(&io::Error) -> bool,
) -> Result<Message, AppError> {
    const STAGE: &str = "waiting for the response";
    let malformed = |source| AppError::Malformed {
        server: server.clone(),
        source,
    };
    let mut decoder = Decoder::new(opts.limits);
    let mut buf = vec![0; 64 * 1024];
    // How much of what came so far is the request's own bytes, while it is.
    let mut echoed = Some(0);
    loop {
        socket.set_read_timeout(Some(left(STAGE)?.max(Duration::from_micros(1))))?;
        let n = match crate::calls::recv(socket, &mut buf) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) if timed_out(&e) => {
                return Err(AppError::TimedOut {
                    after: opts.timeout,
                    stage: STAGE,
                });
            }
            Err(e) if e.raw_os_error() == Some(libc::ECONNRESET) => {
                return Err(AppError::Reset(server.clone()));
            }
            Err(e) => return Err(e.into()),
        };
        if n == 0 {
            decoder.finish().map_err(malformed)?;
            // Closed before a single byte of a response.
            return Err(malformed(DecodeError::Truncated {
                part: "length prefix",
                have: 0,
                need: 2,
            }));
        }
        let decoded = decoder.decode(&buf[..n]).map_err(malformed)?;
        echoed = echoed.and_then(|k| {
            let got = &buf[..decoded.consumed];
            request[k..].starts_with(got).then_some(k + got.len())
        });
        if let Some(message) = decoded.message {
            if echoed == Some(request.len()) {
                return Err(AppError::EchoedBack {
                    server: server.clone(),
                });
            }
            if decoded.consumed < n {
                tracing::debug!("{} bytes after the response, ignored", n - decoded.consumed);
            }
            return Ok(message);
        }
    }
}
