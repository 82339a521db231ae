//! `echokit echo-client`'s flags, and what its positional arguments ask for.

use std::net::IpAddr;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use clap::Args;

use super::shared::TraceArgs;
use super::values::parse_duration;
use echokit::Endpoint;
use echokit::echo::datagram_client::{DEFAULT_REPLY_TIMEOUT, DEFAULT_RETRIES};
use echokit::endpoint::SocketType;
use echokit::net::connect::DEFAULT_CONNECT_TIMEOUT;

/// A positional argument of `echo-client`: an endpoint, or `-` for stdin.
#[derive(Clone, Debug)]
pub enum Target {
    /// Where to connect.
    Endpoint(Endpoint),
    /// Stream stdin.
    Stdin,
}

impl FromStr for Target {
    type Err = echokit::endpoint::ParseError;

    fn from_str(s: &str) -> Result<Target, Self::Err> {
        if s == "-" {
            Ok(Target::Stdin)
        } else {
            s.parse().map(Target::Endpoint)
        }
    }
}

/// `echokit echo-client`.
#[derive(Debug, Args)]
pub struct EchoClientArgs {
    /// `[ENDPOINT] [-]`: where to connect [default: tcp://127.0.0.1:65432],
    /// and `-` to stream stdin instead of sending messages
    #[arg(value_name = "ENDPOINT", num_args = 0..=2)]
    pub targets: Vec<Target>,
    /// A message to send (repeatable; default `Hello, world`)
    #[arg(short, long = "message", value_name = "TEXT")]
    pub messages: Vec<String>,
    /// Send this file's content as one message
    #[arg(long, value_name = "PATH", conflicts_with = "messages")]
    pub file: Option<PathBuf>,
    /// The echo is always checked now (exit 1 if it differs); kept so that
    /// scripts written for it still run
    #[arg(long, hide = true)]
    pub expect: bool,
    /// Concurrent connections, each sending the messages (default: the guide's
    /// `Message 1 from client.` and `Message 2 from client.`) and checking its echo
    #[arg(short = 'c', long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub connections: Option<u32>,
    /// The longest a connect may take
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, default_value = humantime::format_duration(DEFAULT_CONNECT_TIMEOUT).to_string())]
    pub connect_timeout: Duration,
    /// The longest the whole exchange may take over a stream [default: 30s;
    /// none when streaming stdin]; datagrams use --reply-timeout and --retries
    #[arg(short = 'w', long, value_name = "DURATION", value_parser = parse_duration)]
    pub timeout: Option<Duration>,
    /// The local address to connect from
    #[arg(long, value_name = "ADDR")]
    pub bind: Option<IpAddr>,
    /// The local port to connect from (firewall rules are often per port)
    #[arg(long, value_name = "PORT")]
    pub source_port: Option<u16>,
    /// Datagrams: how long to wait for each echo before sending again [default: 1s]
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub reply_timeout: Option<Duration>,
    /// Datagrams: how many times to send a datagram again when its echo does not come [default: 2]
    #[arg(long, value_name = "N")]
    pub retries: Option<u32>,
    /// Datagrams: send a numbered series of N datagrams and report loss and
    /// round-trip times, as ping does
    #[arg(short = 'n', long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..=u32::MAX as u64))]
    pub count: Option<u64>,
    /// Datagrams: the time between two datagrams of a --count series [default: 1s]
    #[arg(short = 'i', long, value_name = "DURATION", value_parser = parse_duration, requires = "count")]
    pub interval: Option<Duration>,
    #[command(flatten)]
    pub trace: TraceArgs,
}

/// What `echo-client`'s positional arguments ask for.
#[derive(Debug)]
pub struct ClientTarget {
    /// Where to connect.
    pub endpoint: Endpoint,
    /// Stream stdin rather than send messages.
    pub stream: bool,
}

impl EchoClientArgs {
    /// Interprets `[ENDPOINT] [-]`.
    pub fn target(&self) -> Result<ClientTarget, String> {
        let (endpoint, stream) = match self.targets.as_slice() {
            [] => (Endpoint::default_tcp(), false),
            [Target::Stdin] => (Endpoint::default_tcp(), true),
            [Target::Endpoint(ep)] => (ep.clone(), false),
            [Target::Endpoint(ep), Target::Stdin] => (ep.clone(), true),
            [Target::Stdin, _] => {
                return Err("`-` comes after the endpoint: echo-client ENDPOINT -".into());
            }
            [_, Target::Endpoint(ep)] => {
                return Err(format!(
                    "one endpoint at a time (got a second one, {ep}); after the endpoint only `-` may follow"
                ));
            }
            _ => return Err("at most two arguments: [ENDPOINT] [-]".into()),
        };
        if stream
            && (!self.messages.is_empty() || self.file.is_some() || self.connections.is_some())
        {
            return Err(
                "`-` streams stdin: it does not go with --message, --file or --connections".into(),
            );
        }
        match endpoint.socket_type() {
            SocketType::Stream => {
                let datagram_only = [
                    ("--reply-timeout", self.reply_timeout.is_some()),
                    ("--retries", self.retries.is_some()),
                    ("--count", self.count.is_some()),
                ];
                if let Some((flag, _)) = datagram_only.iter().find(|(_, given)| *given) {
                    return Err(format!(
                        "{flag} is for datagrams: it needs a udp:// or unixgram: endpoint, not {endpoint}"
                    ));
                }
            }
            SocketType::Datagram => {
                if self.reply_timeout.is_some_and(|t| t.is_zero()) {
                    return Err(
                        "--reply-timeout must be more than 0: it is how long an echo may take"
                            .into(),
                    );
                }
                if self.count.is_some() && (stream || self.connections.is_some()) {
                    return Err(
                        "--count sends one series: it does not go with `-` or --connections".into(),
                    );
                }
                if self.count.is_some() && self.retries.is_some() {
                    return Err(
                        "--count measures loss, which --retries would hide: use one or the other"
                            .into(),
                    );
                }
            }
        }
        if endpoint.local_name().is_some() && (self.bind.is_some() || self.source_port.is_some()) {
            return Err(format!(
                "--bind and --source-port are for IP endpoints; {endpoint} is a Unix socket"
            ));
        }
        if let (Some(port), Some(n @ 2..)) = (self.source_port, self.connections) {
            return Err(format!(
                "--source-port {port} can carry one connection to a server, not {n}: \
                 leave it out with --connections, or use --bind for the address alone"
            ));
        }
        Ok(ClientTarget { endpoint, stream })
    }
}

/// The datagram client's waiting rules, with their defaults.
impl EchoClientArgs {
    /// How long each datagram waits for its echo.
    pub fn reply_timeout(&self) -> Duration {
        self.reply_timeout.unwrap_or(DEFAULT_REPLY_TIMEOUT)
    }

    /// Tries after the first.
    pub fn retries(&self) -> u32 {
        self.retries.unwrap_or(DEFAULT_RETRIES)
    }

    /// The time between datagrams of a series.
    pub fn interval(&self) -> Duration {
        self.interval.unwrap_or(Duration::from_secs(1))
    }
}
