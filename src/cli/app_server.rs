//! `echokit app-server`'s flags.

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

use super::shared::ServerArgs;
use super::values::{parse_duration, parse_header_limit, parse_size};
use echokit::Endpoint;

/// `echokit app-server`.
#[derive(Debug, Args)]
pub struct AppServerArgs {
    /// Where to listen (stream endpoints: tcp://, unix:); several may be
    /// given [default: tcp://127.0.0.1:65432]
    #[arg(value_name = "ENDPOINT")]
    pub endpoints: Vec<Endpoint>,
    /// A JSON object of search terms and answers, instead of the guide's table
    #[arg(long, value_name = "FILE.json")]
    pub data: Option<PathBuf>,
    /// The longest a request's header may take to arrive
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, default_value = "10s")]
    pub header_timeout: Duration,
    /// The longest a whole request may take to arrive
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, default_value = "30s")]
    pub request_timeout: Duration,
    /// Let one connection carry many requests (the guide's server closes after one)
    #[arg(long)]
    pub keep_alive: bool,
    /// The largest request content accepted, in bytes (K and M suffixes allowed)
    #[arg(long, value_name = "BYTES", value_parser = parse_size, default_value = "16M")]
    pub max_content: usize,
    /// The longest request header accepted, in bytes (at most 65535, the protocol's)
    #[arg(long, value_name = "BYTES", value_parser = parse_header_limit, default_value = "16K")]
    pub max_header: usize,
    /// The most bytes of unfinished requests all clients together may make the
    /// server hold; past it, a growing request is rejected
    #[arg(long, value_name = "BYTES", value_parser = parse_size, default_value = "256M")]
    pub max_buffered: usize,
    #[command(flatten)]
    pub server: ServerArgs,
}
