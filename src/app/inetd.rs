//! `app-server --inetd`: the guide's application for the one client inetd
//! (`nowait`) or systemd (`Accept=yes`) accepted and passed on standard
//! input, on the server's own connection code (`conn.rs`, one loop of
//! `crate::serve`): one request, or many with keep-alive, under the same
//! deadlines and limits as on a listener.

use socket2::Socket;

use super::server::{AppServerConfig, AppStats};
use crate::net::Peer;
use crate::serve;
use crate::serve::ServerError;
use crate::shutdown::Shutdown;

/// Serves one open connection until it closes (or `shutdown` and the grace
/// period end it); `config`'s threads do not apply.
pub fn serve_connection(
    stream: Socket,
    peer: Peer,
    config: AppServerConfig,
    shutdown: &Shutdown,
) -> Result<AppStats, ServerError> {
    let (loops, service) = config.into_loops(1, true);
    let stats = serve::run_one(stream, peer, &loops, service, shutdown)?;
    Ok(AppStats::from(stats))
}
