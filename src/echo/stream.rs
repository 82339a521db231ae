//! Streaming echo: standard input to the server, the echo to standard
//! output, raw bytes both ways (`echokit echo-client -`).
//!
//! A thread copies the input to the socket and half-closes it when the
//! input ends; the calling thread copies the echo to the output and flushes
//! each chunk, so on a terminal every line comes back as it is typed. The
//! run ends when the server closes its side, and is checked: as many bytes
//! must come back as went out.

use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use super::buffer::BUF_SIZE;
use super::client::ClientError;

/// What went each way.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StreamReport {
    /// Bytes read from the input and sent.
    pub sent: u64,
    /// Bytes echoed and written to the output.
    pub received: u64,
}

/// Streams `input` through the connection into `output` until the server
/// closes after the input's end. `timeout` bounds the whole run.
pub fn run<R, W>(
    stream: TcpStream,
    input: R,
    output: &mut W,
    timeout: Option<Duration>,
) -> Result<StreamReport, ClientError>
where
    R: Read + Send + 'static,
    W: Write,
{
    stream.set_nonblocking(false)?;
    let deadline = timeout.map(|t| (Instant::now() + t, t));
    let writer = stream.try_clone()?;
    let (done_tx, done_rx) = mpsc::channel();
    // Not a scoped thread: when the server ends the run first, this thread may
    // still be blocked reading a terminal, and the process must not wait for it.
    std::thread::Builder::new()
        .name("stdin-to-socket".into())
        .spawn(move || {
            let result = send_all(input, &writer);
            let sent_all = result.is_ok();
            // Report before the FIN: the server closes only after it, so the
            // count is there when the echo ends.
            let _ = done_tx.send(result);
            if sent_all && let Err(e) = writer.shutdown(Shutdown::Write) {
                tracing::debug!("half-close: {e}");
            }
        })?;
    let mut report = StreamReport::default();
    let mut buf = vec![0; BUF_SIZE];
    loop {
        if let Some((at, limit)) = deadline {
            let left = at.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(timed_out(limit, &report, &done_rx));
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
                ) =>
            {
                if let Some((_, limit)) = deadline {
                    return Err(timed_out(limit, &report, &done_rx));
                }
                return Err(e.into());
            }
            Err(e) => {
                let sent = done_rx
                    .try_recv()
                    .ok()
                    .and_then(Result::ok)
                    .unwrap_or(report.received);
                return Err(match e.raw_os_error() {
                    Some(libc::ECONNRESET) => ClientError::Reset {
                        received: report.received,
                        expected: sent,
                    },
                    _ => e.into(),
                });
            }
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
    // The server closed. Did the whole input go out, and come back?
    match done_rx.try_recv() {
        Ok(Ok(sent)) => {
            report.sent = sent;
            if report.received < sent {
                return Err(ClientError::Truncated {
                    received: report.received,
                    expected: sent,
                });
            }
            if report.received > sent {
                return Err(ClientError::Surplus {
                    extra: report.received - sent,
                });
            }
            Ok(report)
        }
        Ok(Err(e)) => Err(e),
        Err(_) => Err(ClientError::ClosedEarly {
            received: report.received,
        }),
    }
}

/// Copies the input to the socket. Returns the bytes sent.
fn send_all<R: Read>(mut input: R, mut socket: &TcpStream) -> Result<u64, ClientError> {
    let mut buf = vec![0; BUF_SIZE];
    let mut sent = 0u64;
    loop {
        let n = match input.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => {
                return Err(ClientError::Io(io::Error::new(
                    e.kind(),
                    format!("reading the input: {e}"),
                )));
            }
        };
        socket
            .write_all(&buf[..n])
            .map_err(|e| match e.raw_os_error() {
                Some(libc::ECONNRESET | libc::EPIPE) => ClientError::Reset {
                    received: 0,
                    expected: sent,
                },
                _ => e.into(),
            })?;
        sent += n as u64;
    }
    Ok(sent)
}

fn timed_out(
    limit: Duration,
    report: &StreamReport,
    done: &mpsc::Receiver<Result<u64, ClientError>>,
) -> ClientError {
    let expected = match done.try_recv() {
        Ok(Ok(sent)) => sent,
        _ => report.received,
    };
    ClientError::TimedOut {
        after: limit,
        received: report.received,
        expected,
    }
}
