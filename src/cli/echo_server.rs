//! `echokit echo-server`'s flags.

use std::time::Duration;

use clap::Args;

use super::shared::ServerArgs;
use super::values::{parse_keepalive, parse_size};
use echokit::Endpoint;
use echokit::endpoint::SocketType;

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
