//! `echokit sockets`'s flags.

use std::time::Duration;

use clap::Args;

use super::values::parse_duration;
use echokit::sockets::{Filter, Kind, State};

/// `echokit sockets`.
#[derive(Debug, Args)]
pub struct SocketsArgs {
    /// Only sockets with this local or foreign port
    #[arg(long, value_name = "PORT")]
    pub port: Option<u16>,
    /// Only sockets in these states (a comma list: listen, established,
    /// time-wait, close-wait, syn-sent, unconn, ...)
    #[arg(long, value_name = "STATE", value_delimiter = ',', value_parser = parse_state)]
    pub state: Vec<State>,
    /// Only sockets this process holds
    #[arg(long, value_name = "PID")]
    pub pid: Option<u32>,
    /// Only listeners, and bound datagram sockets that are not connected
    #[arg(short = 'l', long)]
    pub listening: bool,
    /// TCP sockets (with --udp and --unix: any of them; none of the three: all)
    #[arg(short = 't', long)]
    pub tcp: bool,
    /// UDP sockets
    #[arg(short = 'u', long)]
    pub udp: bool,
    /// Unix sockets
    #[arg(short = 'x', long)]
    pub unix: bool,
    /// IPv4 sockets only
    #[arg(short = '4', long, conflicts_with_all = ["ipv6", "unix"])]
    pub ipv4: bool,
    /// IPv6 sockets only
    #[arg(short = '6', long, conflicts_with = "unix")]
    pub ipv6: bool,
    /// Show the table again every INTERVAL until Ctrl-C, and flag send
    /// queues that grow (a peer that does not read)
    #[arg(long, value_name = "INTERVAL", num_args = 0..=1, default_missing_value = "1s", value_parser = parse_duration)]
    pub watch: Option<Duration>,
    /// With --watch: stop after this many tables
    #[arg(short = 'n', long, value_name = "N", requires = "watch", value_parser = clap::value_parser!(u64).range(1..))]
    pub count: Option<u64>,
    /// Say what each state and queue means for the program
    #[arg(long)]
    pub explain: bool,
    /// Print one JSON object (one per refresh with --watch)
    #[arg(long)]
    pub json: bool,
}

impl SocketsArgs {
    /// The kinds of socket to read.
    pub fn kinds(&self) -> Vec<Kind> {
        let ip_only = self.ipv4 || self.ipv6;
        if !(self.tcp || self.udp || self.unix) {
            return if ip_only {
                vec![Kind::Tcp, Kind::Udp]
            } else {
                Kind::ALL.to_vec()
            };
        }
        Kind::ALL
            .into_iter()
            .filter(|k| match k {
                Kind::Tcp => self.tcp,
                Kind::Udp => self.udp,
                _ => self.unix,
            })
            .collect()
    }

    /// Which of them to show.
    pub fn filter(&self) -> Filter {
        Filter {
            port: self.port,
            states: self.state.clone(),
            pid: self.pid,
            listening: self.listening,
            ipv4: match (self.ipv4, self.ipv6) {
                (true, _) => Some(true),
                (_, true) => Some(false),
                _ => None,
            },
        }
    }
}

fn parse_state(s: &str) -> Result<State, String> {
    State::parse(s).ok_or_else(|| {
        format!(
            "`{s}` is not a socket state: expected listen, established, syn-sent, syn-recv, \
             fin-wait1, fin-wait2, time-wait, close-wait, last-ack, closing or unconn"
        )
    })
}
