//! `echo-server --inetd`: the echo for the one client inetd (`nowait`) or
//! systemd (`Accept=yes`) accepted and passed on standard input.
//!
//! A connection runs on the stream server's own code (`crate::serve`, one
//! loop, `conn.rs`'s echo): the same back-pressure and half-close (the
//! echo, then a FIN), and SIGTERM lets it finish within the grace period.
//! Standard input that is not a socket (a pipe, a file, a terminal) is
//! copied to standard output until its end, so that the mode can be tried
//! by hand: `printf hi | echokit echo-server --inetd`.

use std::io;
use std::os::fd::AsFd;
use std::sync::Arc;

use socket2::Socket;

use super::conn::EchoService;
use super::server::{ServerConfig, ServerStats};
use crate::net::Peer;
use crate::serve;
use crate::serve::ServerError;
use crate::shutdown::Shutdown;

/// Echoes one open connection until its client closes (or `shutdown` and
/// the grace period end it); `config`'s threads and `once` do not apply.
pub fn serve_connection(
    stream: Socket,
    peer: Peer,
    config: &ServerConfig,
    shutdown: &Shutdown,
) -> Result<ServerStats, ServerError> {
    let loops = config.stream_config(1, true);
    let stats = serve::run_one(stream, peer, &loops, Arc::new(EchoService), shutdown)?;
    Ok(ServerStats::from(stats))
}

/// Copies standard input to standard output until the input ends, each
/// read written out before the next (no line buffering: a pipe's bytes
/// come back as they arrive). A reader that went away (`EPIPE`) ends the
/// copy as the input's end does.
pub fn copy_stdin() -> io::Result<()> {
    let mut input = std::fs::File::from(io::stdin().as_fd().try_clone_to_owned()?);
    let mut output = std::fs::File::from(io::stdout().as_fd().try_clone_to_owned()?);
    match io::copy(&mut input, &mut output) {
        Ok(bytes) => {
            tracing::debug!("copied {bytes} bytes from stdin to stdout");
            Ok(())
        }
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Ok(()),
        Err(e) => Err(e),
    }
}
