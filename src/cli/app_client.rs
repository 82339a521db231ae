//! `echokit app-client`'s flags.

use std::time::Duration;

use clap::Args;

use super::shared::TraceArgs;
use super::values::{parse_duration, parse_header_limit, parse_size};
use echokit::Endpoint;
use echokit::net::connect::DEFAULT_CONNECT_TIMEOUT;

/// `echokit app-client`.
#[derive(Debug, Args)]
pub struct AppClientArgs {
    /// `[ENDPOINT] ACTION VALUE`: where the app-server listens
    /// (tcp://HOST:PORT, HOST:PORT or unix:PATH) [default:
    /// tcp://127.0.0.1:65432]; `search`, or any other word for a binary
    /// request; what to search for, or the binary request's text
    #[arg(value_name = "ARGS", num_args = 2..=3, required = true)]
    pub args: Vec<String>,
    /// The longest the whole exchange may take, the connect included
    #[arg(short = 'w', long, value_name = "DURATION", value_parser = parse_duration, default_value = "30s")]
    pub timeout: Duration,
    /// The longest a connect may take
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, default_value = humantime::format_duration(DEFAULT_CONNECT_TIMEOUT).to_string())]
    pub connect_timeout: Duration,
    /// The largest response content accepted, in bytes (K and M suffixes allowed)
    #[arg(long, value_name = "BYTES", value_parser = parse_size, default_value = "16M")]
    pub max_content: usize,
    /// The longest response header accepted, in bytes (at most 65535, the protocol's)
    #[arg(long, value_name = "BYTES", value_parser = parse_header_limit, default_value = "16K")]
    pub max_header: usize,
    /// Print the response's header and content as JSON instead
    #[arg(long)]
    pub json: bool,
    /// Print the server's text as it came, control characters and escape
    /// sequences included, as the guide's client does (by default what
    /// Python's repr would escape is escaped: `\x1b`, `\n`, `\u200b`)
    #[arg(long, conflicts_with = "json")]
    pub raw: bool,
    #[command(flatten)]
    pub trace: TraceArgs,
}

impl AppClientArgs {
    /// Interprets `[ENDPOINT] ACTION VALUE`: the endpoint, the action, the value.
    pub fn request(&self) -> Result<(Endpoint, &str, &str), String> {
        match self.args.as_slice() {
            // An endpoint with one word after it is a request cut short,
            // not an action named like an address.
            [first, _] if first.contains(':') && first.parse::<Endpoint>().is_ok() => Err(format!(
                "`{first}` is an endpoint: ACTION and VALUE follow it \
                 (app-client [ENDPOINT] ACTION VALUE, as `app-client {first} search morpheus`)"
            )),
            [action, value] => Ok((Endpoint::default_tcp(), action, value)),
            [endpoint, action, value] => {
                let endpoint = endpoint.parse::<Endpoint>().map_err(|e| e.to_string())?;
                Ok((endpoint, action, value))
            }
            _ => Err("app-client takes [ENDPOINT] ACTION VALUE".into()),
        }
    }
}
