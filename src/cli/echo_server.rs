//! `echokit echo-server`'s flags.

use std::time::Duration;

use clap::Args;

use super::shared::ServerArgs;
use super::values::{parse_keepalive, parse_size};
use echokit::Endpoint;
use echokit::echo::limit::RateLimits;
use echokit::echo::server::ServerConfig;
use echokit::endpoint::SocketType;
use echokit::net::ListenOptions;

/// `echokit echo-server`.
#[derive(Debug, Args)]
pub struct EchoServerArgs {
    /// Where to listen; several may be given [default: tcp://127.0.0.1:65432]
    #[arg(value_name = "ENDPOINT")]
    pub endpoints: Vec<Endpoint>,
    /// Serve one client, then exit (the socket guide's server).
    #[arg(long)]
    pub once: bool,
    /// Turn on TCP keepalive, probing after this much idle time (e.g. 60s)
    #[arg(long, alias = "keepalive", value_name = "DURATION", value_parser = parse_keepalive)]
    pub tcp_keepalive: Option<Duration>,
    /// SO_SNDBUF for each connection, in bytes (K and M suffixes allowed)
    #[arg(long, value_name = "BYTES", value_parser = parse_size)]
    pub sndbuf: Option<usize>,
    /// SO_RCVBUF for each connection, in bytes (K and M suffixes allowed)
    #[arg(long, value_name = "BYTES", value_parser = parse_size)]
    pub rcvbuf: Option<usize>,
    /// UDP answers per second to each source address; 0 for no limit
    /// [default: 1000 for sources off this host, none on loopback; a value
    /// given here applies to loopback too]
    #[arg(long, value_name = "PPS")]
    pub udp_rate_per_source: Option<u32>,
    /// UDP answers per second to all sources together; 0 for no limit
    #[arg(long, value_name = "PPS", default_value_t = 0)]
    pub udp_rate_total: u32,
    /// Answer datagram peers that send every echo straight back. By default
    /// such a peer (another echo server: an endless loop) is muted after
    /// 1,000 in a row for 1 s, doubling if it goes on; turn this off only
    /// for a client that re-sends one message the instant its echo arrives
    #[arg(long)]
    pub no_loop_guard: bool,
    #[command(flatten)]
    pub server: ServerArgs,
}

impl EchoServerArgs {
    /// The listening options and the server's config these flags ask for,
    /// `--max-conns` defaulting to `fd_limit` (the descriptor limit).
    pub fn config(&self, fd_limit: Option<u64>) -> (ListenOptions, ServerConfig) {
        let options = ListenOptions {
            keepalive: self.tcp_keepalive,
            sndbuf: self.sndbuf,
            rcvbuf: self.rcvbuf,
            ..self.server.listen_options()
        };
        let udp_limits = match self.udp_rate_per_source {
            // Asked for: it applies to every source, loopback included.
            Some(pps) => RateLimits {
                per_source: pps,
                total: self.udp_rate_total,
                exempt_loopback: false,
            },
            None => RateLimits {
                total: self.udp_rate_total,
                ..RateLimits::default()
            },
        };
        let config = ServerConfig {
            threads: self.server.threads.map(usize::from),
            grace: self.server.grace,
            once: self.once,
            keepalive: self.tcp_keepalive,
            udp_limits,
            loop_guard: !self.no_loop_guard,
            limits: self.server.limits.limits(fd_limit),
            ..ServerConfig::default()
        };
        (options, config)
    }

    /// Checks what clap cannot: flags that need a kind of endpoint.
    pub fn check(&self, endpoints: &[Endpoint]) -> Result<(), String> {
        if self.once
            && !endpoints
                .iter()
                .any(|e| e.socket_type() == SocketType::Stream)
        {
            return Err(
                "--once serves one connection: it needs a stream endpoint (tcp:// or unix:)".into(),
            );
        }
        Ok(())
    }
}
