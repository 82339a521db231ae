//! Flags that several commands share, each written once and flattened
//! into every command that takes it: the stream servers' listening and
//! running flags, their connection limits, running as a service.

use std::time::Duration;

use clap::Args;

use super::values::{parse_duration, parse_metrics_addr, parse_mode};
use echokit::endpoint::HostPort;
use echokit::net::ListenOptions;
use echokit::net::listen::DEFAULT_BACKLOG;
use echokit::serve::{
    ConnLimits, DEFAULT_GRACE, DEFAULT_IDLE_TIMEOUT, DEFAULT_STALL_TIMEOUT, WhenFull,
};

/// What every server takes: how it listens, how many loops run it, how it
/// stops, its limits, and running under a service manager.
#[derive(Debug, Args)]
pub struct ServerArgs {
    /// The listen() backlog: connections the kernel completes before accept().
    /// The kernel caps it at net.core.somaxconn.
    #[arg(long, value_name = "N", default_value_t = DEFAULT_BACKLOG)]
    pub backlog: u32,
    /// Event loops [default: one per CPU this process may run on]
    #[arg(short = 'T', long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=1024))]
    pub threads: Option<u16>,
    /// On SIGTERM or Ctrl-C, how long open connections may take to finish
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, default_value = humantime::format_duration(DEFAULT_GRACE).to_string())]
    pub grace: Duration,
    /// Permissions of a Unix socket file, in octal (0600: only its owner may connect)
    #[arg(long, value_name = "MODE", value_parser = parse_mode, default_value = "0600")]
    pub mode: u32,
    #[command(flatten)]
    pub trace: TraceArgs,
    #[command(flatten)]
    pub limits: LimitArgs,
    /// Under a service manager (inetd, systemd), and watched (`--metrics`).
    #[command(flatten)]
    pub service: ServiceArgs,
}

impl ServerArgs {
    /// How every server's sockets listen: the backlog, a Unix socket
    /// file's mode (the rest as the defaults, for a server to add to).
    pub fn listen_options(&self) -> ListenOptions {
        ListenOptions {
            backlog: self.backlog,
            mode: self.mode,
            ..ListenOptions::default()
        }
    }
}

/// `--trace-calls`, the same on every command that makes socket calls.
#[derive(Debug, Args)]
pub struct TraceArgs {
    /// Print each socket call on stderr as it happens (socket, bind, listen,
    /// accept, connect, recv, send, close), with its arguments and result
    #[arg(long)]
    pub trace_calls: bool,
}

/// Connection limits and timeouts, the same on every stream server.
#[derive(Debug, Args)]
pub struct LimitArgs {
    /// Connections open at once; more are accepted and closed at once
    /// [default: the descriptor limit, so a full descriptor table is the limit]
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub max_conns: Option<u64>,
    /// Connections open at once from one IP address (an IPv4-mapped IPv6
    /// client counts as its IPv4 address); more are accepted and closed at
    /// once [default: no limit]
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub max_conns_per_ip: Option<u64>,
    /// Close a connection that sends and receives nothing for this long; 0 for never
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, default_value = humantime::format_duration(DEFAULT_IDLE_TIMEOUT).to_string())]
    pub idle_timeout: Duration,
    /// Close a connection whose client does not read what it is sent for
    /// this long (its echo or response waits, unread); 0 for never
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, default_value = humantime::format_duration(DEFAULT_STALL_TIMEOUT).to_string())]
    pub stall_timeout: Duration,
}

impl LimitArgs {
    /// The limits, with `--max-conns` defaulting to `fd_limit` (the
    /// descriptor limit, if known).
    pub fn limits(&self, fd_limit: Option<u64>) -> ConnLimits {
        let to_usize = |n: u64| usize::try_from(n).unwrap_or(usize::MAX);
        let max_conns = self.max_conns.or(fd_limit).map_or(usize::MAX, to_usize);
        ConnLimits {
            max_conns,
            max_per_ip: self.max_conns_per_ip.map(to_usize),
            idle_timeout: Some(self.idle_timeout).filter(|d| !d.is_zero()),
            stall_timeout: Some(self.stall_timeout).filter(|d| !d.is_zero()),
            when_full: WhenFull::TurnAway,
        }
    }
}

/// The servers' flags for running as a service: under a service manager
/// (socket activation, systemd's `LISTEN_FDS`, needs none: it is read from
/// the environment), and watched through `--metrics`.
#[derive(Debug, Args)]
#[command(next_help_heading = "Running as a service (inetd, systemd, metrics)")]
pub struct ServiceArgs {
    /// Serve the one connection on stdin and stdout, as inetd (nowait) and
    /// systemd's Accept=yes with StandardInput=socket pass it; a listening
    /// or datagram socket on stdin (inetd's wait) is served as a listener.
    /// Nothing is printed on stdout; logs stay on stderr (dropped if stderr
    /// is the connection too)
    #[arg(long, conflicts_with = "endpoints")]
    pub inetd: bool,
    /// Once the sockets are bound (or taken from systemd or inetd), run as
    /// this user: its groups, its group, its uid, for good. Needs root; for
    /// a port below 1024 such as the echo's 7
    #[arg(long, value_name = "NAME")]
    pub user: Option<String>,
    /// Serve counters in the Prometheus text format at http://ADDR/metrics
    /// (e.g. 127.0.0.1:9100; port 0 picks one; the URL is printed after the
    /// `listening on` lines)
    #[arg(long, value_name = "ADDR", value_parser = parse_metrics_addr, conflicts_with = "inetd")]
    pub metrics: Option<HostPort>,
}
