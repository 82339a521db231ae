//! `app-server`: the guide's application server on the stream event loops
//! of `crate::serve` (the echo server's design: a loop per CPU, one
//! accepting socket, no lock on the data path).

use std::sync::Arc;
use std::time::Duration;

use super::conn::{AppConfig, AppService, DEFAULT_MAX_BUFFERED, Shared};
use crate::metrics::{Metrics, ServerKind};
use crate::net::Listener;
use crate::serve::{self, ConnLimits, StreamConfig, StreamStats};
use crate::serve::{DEFAULT_GRACE, ServerError, default_threads};
use crate::shutdown::Shutdown;

/// The longest a request's header may take to arrive by default.
pub const DEFAULT_HEADER_TIMEOUT: Duration = Duration::from_secs(10);

/// The longest a whole request may take to arrive by default.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// How the app-server runs.
#[derive(Debug)]
pub struct AppServerConfig {
    /// Event loops; `None` gives one per CPU the process may run on.
    pub threads: Option<usize>,
    /// How long shutdown waits for open connections.
    pub grace: Duration,
    /// What each connection does.
    pub app: AppConfig,
    /// Connection limits and timeouts.
    pub limits: ConnLimits,
    /// Where the loops count (what `--metrics` shows).
    pub metrics: Arc<Metrics>,
}

impl Default for AppServerConfig {
    fn default() -> AppServerConfig {
        AppServerConfig {
            threads: None,
            grace: DEFAULT_GRACE,
            app: AppConfig {
                table: super::SearchTable::default(),
                limits: crate::proto::Limits::default(),
                header_timeout: DEFAULT_HEADER_TIMEOUT,
                request_timeout: DEFAULT_REQUEST_TIMEOUT,
                keep_alive: false,
                max_buffered: DEFAULT_MAX_BUFFERED,
            },
            limits: ConnLimits::default(),
            metrics: Metrics::new(ServerKind::App),
        }
    }
}

/// What a run served.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AppStats {
    /// Connections accepted.
    pub connections: u64,
    /// Response bytes sent.
    pub bytes_sent: u64,
    /// Connections still open at the end of the grace period.
    pub cut_off: u64,
}

/// Serves the guide's application on stream listeners until `shutdown`.
pub fn run(
    listeners: Vec<Listener>,
    config: AppServerConfig,
    shutdown: &Shutdown,
) -> Result<AppStats, ServerError> {
    let threads = config.threads.unwrap_or_else(default_threads);
    let (loops, service) = config.into_loops(threads, false);
    let stats = serve::run(listeners, &loops, service, shutdown)?;
    Ok(AppStats::from(stats))
}

impl AppServerConfig {
    /// How the stream loops run this server, and its service.
    pub(crate) fn into_loops(self, threads: usize, once: bool) -> (StreamConfig, Arc<AppService>) {
        let loops = StreamConfig {
            threads,
            once,
            keepalive: None,
            grace: self.grace,
            limits: self.limits,
            metrics: self.metrics,
            name: "app-server",
            quiet: false,
        };
        let service = Arc::new(AppService(Arc::new(Shared {
            config: self.app,
            buffered: Default::default(),
        })));
        (loops, service)
    }
}

impl From<StreamStats> for AppStats {
    fn from(stats: StreamStats) -> AppStats {
        AppStats {
            connections: stats.connections,
            bytes_sent: stats.bytes,
            cut_off: stats.cut_off,
        }
    }
}
