//! The echo server: RFC 862's service, the socket guide's first program.
//!
//! [`run`] takes listeners that are already bound (so a caller, or a test,
//! knows the real port before serving) and a [`Shutdown`] handle, and
//! returns what was served once shutdown has drained the loops. Stream
//! listeners (TCP, Unix) share one event loop per CPU the process may run
//! on (`crate::serve`, one connection's echo in `conn.rs`); each datagram
//! socket (UDP, Unix datagram) has a loop of its own (`datagram.rs`).

use std::io;
use std::sync::Arc;
use std::time::Duration;

use super::conn::EchoService;
use super::datagram::{DatagramLoop, DatagramStats};
use super::limit::RateLimits;
use crate::endpoint::SocketType;
use crate::metrics::{Metrics, ServerKind};
use crate::net::Listener;
use crate::serve::{self, StreamConfig, StreamStats};

use crate::serve::{ConnLimits, DEFAULT_GRACE, ServerError, default_threads};
use crate::shutdown::Shutdown;

/// How the server runs.
#[derive(Clone, Debug)]
pub struct ServerConfig {
    /// Event loops; `None` gives one per CPU the process may run on.
    pub threads: Option<usize>,
    /// How long shutdown waits for open connections.
    pub grace: Duration,
    /// Serve one client, then exit (the socket guide's server).
    pub once: bool,
    /// TCP keepalive idle time for accepted connections.
    pub keepalive: Option<Duration>,
    /// Who gets answers on UDP sockets, how often.
    pub udp_limits: RateLimits,
    /// Mute datagram peers that send every echo straight back (echo loops).
    pub loop_guard: bool,
    /// Connection limits and timeouts of the stream listeners.
    pub limits: ConnLimits,
    /// Where the loops count (what `--metrics` shows).
    pub metrics: Arc<Metrics>,
}

impl Default for ServerConfig {
    fn default() -> ServerConfig {
        ServerConfig {
            threads: None,
            grace: DEFAULT_GRACE,
            once: false,
            keepalive: None,
            udp_limits: RateLimits::default(),
            loop_guard: true,
            limits: ConnLimits::default(),
            metrics: Metrics::new(ServerKind::Echo),
        }
    }
}

/// What a run served.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ServerStats {
    /// Connections accepted and served.
    pub connections: u64,
    /// Bytes sent back, over connections and in datagrams.
    pub bytes_echoed: u64,
    /// Connections still open at the end of the grace period, then closed.
    pub cut_off: u64,
    /// Datagrams echoed.
    pub datagrams: u64,
    /// Datagrams not answered (refused, over a rate, or not sendable).
    pub dropped: u64,
}

impl ServerConfig {
    /// How the stream loops run this server's stream listeners.
    pub(crate) fn stream_config(&self, threads: usize, once: bool) -> StreamConfig {
        StreamConfig {
            threads,
            once,
            keepalive: self.keepalive,
            grace: self.grace,
            limits: self.limits,
            metrics: Arc::clone(&self.metrics),
            name: "echo-server",
            quiet: false,
        }
    }
}

impl From<StreamStats> for ServerStats {
    fn from(stats: StreamStats) -> ServerStats {
        ServerStats {
            connections: stats.connections,
            bytes_echoed: stats.bytes,
            cut_off: stats.cut_off,
            ..ServerStats::default()
        }
    }
}

/// Serves the listeners until `shutdown` is requested and the open
/// connections have finished or the grace period has ended (or, with
/// `once`, until the first client leaves).
pub fn run(
    listeners: Vec<Listener>,
    config: &ServerConfig,
    shutdown: &Shutdown,
) -> Result<ServerStats, ServerError> {
    let (streams, datagrams): (Vec<Listener>, Vec<Listener>) = listeners
        .into_iter()
        .partition(|l| l.socket_type() == SocketType::Stream);
    std::thread::scope(|scope| {
        // Each loop is made on its own thread: its batch headers hold raw
        // pointers into its buffers, and never leave it.
        let handles: Vec<_> = datagrams
            .into_iter()
            .enumerate()
            .map(|(i, listener)| {
                let shutdown = shutdown.clone();
                let limits = config.udp_limits;
                let loop_guard = config.loop_guard;
                let shard = config.metrics.shard();
                std::thread::Builder::new()
                    .name(format!("datagram-loop-{i}"))
                    .spawn_scoped(scope, move || {
                        let result = DatagramLoop::new(
                            listener,
                            limits,
                            loop_guard,
                            shard,
                            shutdown.clone(),
                        )
                        .and_then(super::datagram::DatagramLoop::run);
                        if result.is_err() {
                            // The server does not go on without one of its sockets.
                            shutdown.request();
                        }
                        result
                    })
            })
            .collect();
        let streamed = if streams.is_empty() {
            Ok(ServerStats::default())
        } else {
            let threads = config.threads.unwrap_or_else(default_threads);
            let loops = config.stream_config(threads, config.once);
            serve::run(streams, &loops, Arc::new(EchoService), shutdown)
                .map(ServerStats::from)
                .map_err(ServerError::from)
        };
        if streamed.is_err() {
            shutdown.request();
        }
        let mut stats = streamed?;
        for handle in handles {
            let handle = handle.inspect_err(|_| shutdown.request())?;
            let d: DatagramStats = handle
                .join()
                .unwrap_or_else(|_| Err(io::Error::other("a datagram loop panicked")))?;
            stats.datagrams += d.datagrams;
            stats.bytes_echoed += d.bytes;
            stats.dropped += d.dropped;
        }
        Ok(stats)
    })
}
