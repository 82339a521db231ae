//! `echokit resolve`'s flags.

use std::time::Duration;

use clap::Args;

use super::values::parse_timeout;
use echokit::resolve::{self, Name};

/// `echokit resolve`.
#[derive(Debug, Args)]
pub struct ResolveArgs {
    /// HOST, HOST:SERVICE, an IP address, or [IPv6]:SERVICE (several may be given)
    #[arg(value_name = "NAME", required = true)]
    pub names: Vec<Name>,
    /// Also look up the name of each address (getnameinfo: a PTR record in
    /// DNS or a line in /etc/hosts), as Python's socket.gethostbyaddr
    #[arg(long)]
    pub reverse: bool,
    /// The longest each NAME may take: a DNS server that does not answer is
    /// given up on after this
    #[arg(short = 'w', long, value_name = "DURATION", value_parser = parse_timeout, default_value = humantime::format_duration(resolve::DEFAULT_TIMEOUT).to_string())]
    pub timeout: Duration,
    /// Print one JSON object instead
    #[arg(long)]
    pub json: bool,
}
