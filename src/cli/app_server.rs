//! `echokit app-server`'s flags.

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

use super::shared::ServerArgs;
use super::values::{parse_duration, parse_header_limit, parse_size};
use echokit::Endpoint;
use echokit::app::SearchTable;
use echokit::app::conn::AppConfig;
use echokit::app::server::AppServerConfig;
use echokit::net::ListenOptions;
use echokit::proto::Limits;

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

impl AppServerArgs {
    /// The listening options and the server's config these flags ask for,
    /// answering from `table`, `--max-conns` defaulting to `fd_limit`.
    pub fn config(
        &self,
        table: SearchTable,
        fd_limit: Option<u64>,
    ) -> (ListenOptions, AppServerConfig) {
        let config = AppServerConfig {
            threads: self.server.threads.map(usize::from),
            grace: self.server.grace,
            app: AppConfig {
                table,
                limits: Limits {
                    max_content: self.max_content as u64,
                    max_header: self.max_header,
                },
                header_timeout: self.header_timeout,
                request_timeout: self.request_timeout,
                keep_alive: self.keep_alive,
                max_buffered: self.max_buffered as u64,
            },
            limits: self.server.limits.limits(fd_limit),
            ..AppServerConfig::default()
        };
        (self.server.listen_options(), config)
    }
}
