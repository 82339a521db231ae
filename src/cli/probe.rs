//! `echokit probe`'s flags.

use std::net::IpAddr;
use std::time::Duration;

use clap::Args;

use super::values::{parse_duration, parse_timeout};
use echokit::net::ConnectOptions;
use echokit::probe::{self, DEFAULT_CONCURRENCY, DEFAULT_TIMEOUT};

/// `echokit probe`.
#[derive(Debug, Args)]
pub struct ProbeArgs {
    /// What to probe: HOST:PORT, HOST:8000-8100, HOST:22,80,443, PORT,
    /// [IPv6]:PORT, udp://HOST:PORT(S), unix:PATH, unixgram:PATH
    #[arg(value_name = "TARGET", required = true)]
    pub targets: Vec<String>,
    /// How long a try waits for an answer (a SYN is sent again after 1s)
    #[arg(short = 'w', short_alias = 't', long, value_name = "DURATION", value_parser = parse_timeout, default_value = humantime::format_duration(DEFAULT_TIMEOUT).to_string())]
    pub timeout: Duration,
    /// Tries in flight at once, at most (each holds a socket)
    #[arg(short = 'C', long, value_name = "N", default_value_t = DEFAULT_CONCURRENCY as u32, value_parser = clap::value_parser!(u32).range(1..=65536))]
    pub concurrency: u32,
    /// Try each target N times and print connect times and statistics, as ping does
    #[arg(short = 'n', short_alias = 'c', long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub count: Option<u32>,
    /// With --count: the time from one round of tries to the next [default: 1s]
    #[arg(short = 'i', long, value_name = "DURATION", value_parser = parse_duration, requires = "count")]
    pub interval: Option<Duration>,
    /// The local address to connect from
    #[arg(long, value_name = "ADDR")]
    pub bind: Option<IpAddr>,
    /// The local port to connect from (firewall rules are often per port); a
    /// TCP try from it closes with a reset, so the next one can reuse it
    #[arg(long, value_name = "PORT", value_parser = clap::value_parser!(u16).range(1..))]
    pub source_port: Option<u16>,
    /// List every probe, not only the open ones, when there are many
    #[arg(long)]
    pub all: bool,
    /// Print one JSON object with every probe and the summary instead
    #[arg(long)]
    pub json: bool,
}

impl ProbeArgs {
    /// The probe's config these flags ask for.
    pub fn config(&self) -> probe::Config {
        probe::Config {
            timeout: self.timeout,
            concurrency: self.concurrency as usize,
            connect: ConnectOptions {
                bind: self.bind,
                source_port: self.source_port,
                ..ConnectOptions::default()
            },
            count: self.count,
            interval: self.interval(),
        }
    }

    /// The time between rounds of tries.
    pub fn interval(&self) -> Duration {
        self.interval.unwrap_or(Duration::from_secs(1))
    }
}
