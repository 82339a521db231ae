//! Between the socket and the service: a transport turns the socket's
//! bytes into the service's and back. The loop reads and writes through
//! one, so a service never knows which it runs over. [`Plain`] is the bytes
//! as they are, with no state (a zero-sized type: an idle connection pays
//! nothing for it). TLS (rustls) will be a transport with state per
//! connection; fault injection one that wraps another and delays,
//! truncates or resets.

use std::io;

use socket2::Socket;

/// How a connection's bytes cross its socket.
pub(crate) trait Transport: Send + 'static {
    /// The transport of a connection just accepted.
    fn open(socket: &Socket) -> Self;

    /// Reads what arrived into `buf`: `Ok(0)` is the end of the stream,
    /// `WouldBlock` that nothing is there now.
    fn recv(&mut self, socket: &Socket, buf: &mut [u8]) -> io::Result<usize>;

    /// Sends as much of `buf` as the socket takes now, and says how much.
    fn send(&mut self, socket: &Socket, buf: &[u8]) -> io::Result<usize>;
}

/// The bytes as they are: `recv` and `send`.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Plain;

impl Transport for Plain {
    fn open(_socket: &Socket) -> Plain {
        Plain
    }

    fn recv(&mut self, socket: &Socket, buf: &mut [u8]) -> io::Result<usize> {
        crate::calls::recv(socket, buf)
    }

    fn send(&mut self, socket: &Socket, buf: &[u8]) -> io::Result<usize> {
        write_some(socket, buf)
    }
}

/// Writes as much of `buf` as the socket takes now. A short write means the
/// send buffer is full, so it stops there rather than make a write that
/// would only return `EAGAIN`.
pub(crate) fn write_some(stream: &Socket, buf: &[u8]) -> io::Result<usize> {
    let mut done = 0;
    while done < buf.len() {
        match crate::calls::send(stream, &buf[done..]) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => {
                done += n;
                if done < buf.len() {
                    break;
                }
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    }
    Ok(done)
}
