//! `app-server --inetd`: the guide's application for the one client inetd
//! (`nowait`) or systemd (`Accept=yes`) accepted and passed on standard
//! input, on the server's own connection code (`conn.rs`, one loop of
//! `crate::serve`): one request, or many with keep-alive, under the same
//! deadlines and limits as on a listener.

use std::sync::Arc;

use socket2::Socket;

use super::conn::{AppService, Shared};
use super::server::{AppServerConfig, AppStats};
use crate::echo::server::ServerError;
use crate::net::Peer;
use crate::serve::{self, StreamConfig};
use crate::shutdown::Shutdown;

/// Serves one open connection until it closes (or `shutdown` and the grace
/// period end it); `config`'s threads do not apply.
pub fn serve_connection(
    stream: Socket,
    peer: Peer,
    config: AppServerConfig,
    shutdown: &Shutdown,
) -> Result<AppStats, ServerError> {
    let stream_config = StreamConfig {
        threads: 1,
        once: true,
        keepalive: None,
        grace: config.grace,
        limits: config.limits,
        metrics: Arc::clone(&config.metrics),
    };
    let service = Arc::new(AppService(Arc::new(Shared {
        config: config.app,
        buffered: Default::default(),
    })));
    let stats = serve::run_one(stream, peer, &stream_config, service, shutdown)?;
    Ok(AppStats {
        connections: stats.connections,
        bytes_sent: stats.bytes,
        cut_off: stats.cut_off,
    })
}
