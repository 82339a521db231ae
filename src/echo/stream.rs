//! Streaming echo: standard input to the server, the echo to standard
//! output, raw bytes both ways (`echokit echo-client -`).
//!
//! A thread copies the input to the socket and half-closes it when the
//! input ends; the calling thread copies the echo to the output and flushes
//! each chunk, so on a terminal every line comes back as it is typed. The
//! run ends when the server closes its side, and is checked: as many bytes
//! must come back as went out.

use std::io::{self, Read, Write};
use std::net::Shutdown;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::time::Duration;

use socket2::Socket;

use super::client::ClientError;
use crate::serve::buffer::BUF_SIZE;

/// What went each way.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StreamReport {
    /// Bytes read from the input and sent.
    pub sent: u64,
    /// Bytes echoed and written to the output.
    pub received: u64,
}

/// How the sending side ended.
enum Sent {
    /// The input ended and all of it was sent.
    All,
    /// The input could not be read.
    InputFailed(io::Error),
    /// The socket refused more bytes: the server closed or reset (the
    /// reading side reports how).
    SocketFailed,
}

/// Streams `input` through the connection (TCP or Unix stream) into
/// `output` until the server closes after the input's end. `timeout` bounds
/// the whole run.
pub fn run<R, W>(
    stream: Socket,
    input: R,
    output: &mut W,
    timeout: Option<Duration>,
) -> Result<StreamReport, ClientError>
where
    R: Read + Send + 'static,
    W: Write,
{
    stream.set_nonblocking(false)?;
    let deadline = timeout.map(|t| (crate::deadline::from_now(t), t));
    let writer = stream.try_clone()?;
    let sent = Arc::new(AtomicU64::new(0));
    let (done_tx, done_rx) = mpsc::channel();
    // Not a scoped thread: when the server ends the run first, this thread may
    // still be blocked reading a terminal, and the process must not wait for it.
    let counter = Arc::clone(&sent);
    std::thread::Builder::new()
        .name("stdin-to-socket".into())
        .spawn(move || {
            let result = send_all(input, &writer, &counter);
            // Tell the outcome before the FIN: the server closes only after
            // it, so the outcome is known when the echo ends.
            let how = match &result {
                Sent::All => Shutdown::Write,
                // Nothing more will be sent or wanted: wake the reader.
                Sent::InputFailed(_) | Sent::SocketFailed => Shutdown::Both,
            };
            let _ = done_tx.send(result);
            if let Err(e) = writer.shutdown(how) {
                tracing::debug!("shutdown: {}", crate::text::os_error(&e));
            }
        })?;
    let mut report = StreamReport::default();
    let mut buf = vec![0; BUF_SIZE];
    loop {
        if let Some((at, limit)) = deadline {
            let left = at.saturating_duration_since(std::time::Instant::now());
            if left.is_zero() {
                return Err(timed_out(limit, &report, &sent));
            }
            stream.set_read_timeout(Some(left))?;
        }
        let n = match (&stream).read(&mut buf) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) && deadline.is_some() =>
            {
                return Err(timed_out(
                    deadline.map_or(Duration::ZERO, |d| d.1),
                    &report,
                    &sent,
                ));
            }
            Err(e) if e.raw_os_error() == Some(libc::ECONNRESET) => {
                return Err(ClientError::Reset {
                    received: report.received,
                    expected: sent.load(Ordering::Acquire),
                });
            }
            Err(e) => return Err(e.into()),
        };
        if n == 0 {
            break;
        }
        report.received += n as u64;
        let written = output.write_all(&buf[..n]).and_then(|()| output.flush());
        if let Err(e) = written {
            if e.kind() == io::ErrorKind::BrokenPipe {
                // Whoever read the output stopped (`| head`): not a failure.
                return Ok(report);
            }
            return Err(e.into());
        }
    }
    // The stream ended. Did the whole input go out, and come back?
    report.sent = sent.load(Ordering::Acquire);
    match done_rx.try_recv() {
        Ok(Sent::All) if report.received < report.sent => Err(ClientError::Truncated {
            received: report.received,
            expected: report.sent,
        }),
        Ok(Sent::All) if report.received > report.sent => Err(ClientError::Surplus {
            extra: report.received - report.sent,
        }),
        Ok(Sent::All) => Ok(report),
        Ok(Sent::InputFailed(e)) => Err(ClientError::Io(io::Error::new(
            e.kind(),
            format!("reading the input: {}", crate::text::os_error(&e)),
        ))),
        // The server closed while input was still being read or sent.
        Ok(Sent::SocketFailed) | Err(_) => Err(ClientError::ClosedEarly {
            received: report.received,
        }),
    }
}

/// Copies the input to the socket, counting what was sent.
fn send_all<R: Read>(mut input: R, mut socket: &Socket, sent: &AtomicU64) -> Sent {
    let mut buf = vec![0; BUF_SIZE];
    loop {
        let n = match input.read(&mut buf) {
            Ok(0) => return Sent::All,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Sent::InputFailed(e),
        };
        if let Err(e) = socket.write_all(&buf[..n]) {
            tracing::debug!("sending: {}", crate::text::os_error(&e));
            return Sent::SocketFailed;
        }
        sent.fetch_add(n as u64, Ordering::Release);
    }
}

fn timed_out(limit: Duration, report: &StreamReport, sent: &AtomicU64) -> ClientError {
    ClientError::TimedOut {
        after: limit,
        received: report.received,
        expected: sent.load(Ordering::Acquire),
    }
}
