//! The command line, ripgrep-style: one file per subcommand's flags, the
//! flags several commands share written once (`shared`), the value parsers
//! in `values`. Raw flags live here; each command's handler in `commands`
//! turns them into the library's configs. What each short flag means, in
//! every command, is in `docs/cli-conventions.md`, and a test holds the
//! definitions to it.

mod app_client;
mod app_server;
mod bench;
mod echo_client;
mod echo_server;
mod probe;
mod resolve;
mod shared;
mod sockets;
#[cfg(test)]
mod tests;
mod values;

use clap::{Parser, Subcommand, ValueEnum};

use echokit::exit::ExitCode;

pub use app_client::AppClientArgs;
pub use app_server::AppServerArgs;
pub use bench::BenchArgs;
pub use echo_client::{ClientTarget, EchoClientArgs};
pub use echo_server::EchoServerArgs;
pub use probe::ProbeArgs;
pub use resolve::ResolveArgs;
pub use sockets::SocketsArgs;

/// The socket guide's echo server and clients, made real (fast, safe against
/// bad peers, clear about every failure), and tools that show what sockets do.
#[derive(Debug, Parser)]
#[command(name = "echokit", version, after_help = ExitCode::help_table(), after_long_help = exit_help())]
pub struct Cli {
    /// More logs on stderr: -v for debug, -vv for trace (RUST_LOG overrides).
    #[arg(short, long, action = clap::ArgAction::Count, global = true, help_heading = "Global options")]
    pub verbose: u8,
    /// Only errors on stderr.
    #[arg(
        short,
        long,
        global = true,
        help_heading = "Global options",
        conflicts_with = "verbose"
    )]
    pub quiet: bool,
    /// How log lines on stderr are written: `text` for people, `json` for
    /// log collectors (one object a line: timestamp, level, message, fields)
    #[arg(long, value_name = "FORMAT", value_enum, global = true, help_heading = "Global options", default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    /// What to run.
    #[command(subcommand)]
    pub command: Command,
}

/// `--log-format`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// One readable line per event.
    Text,
    /// One JSON object per line.
    Json,
}

fn exit_help() -> String {
    format!(
        "{}\nEndpoints: tcp://HOST:PORT, HOST:PORT, [IPv6]:PORT, :PORT (every interface) or PORT \
         (127.0.0.1:PORT); udp://HOST:PORT; unix:PATH and unixgram:PATH (Unix stream and datagram \
         sockets), unix:@NAME (Linux abstract names). Port 0 picks a free port.",
        ExitCode::help_table()
    )
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Echo every byte back to its sender, to many clients at once.
    ///
    /// Prints `listening on ENDPOINT` on stdout for each bound address (with
    /// the real port when port 0 was asked), then logs each client on stderr.
    /// SIGTERM or Ctrl-C stops accepting and lets open connections finish
    /// within --grace; a second Ctrl-C exits at once. Started by systemd's
    /// socket activation (LISTEN_FDS), it serves the sockets passed instead
    /// of binding.
    #[command(after_help = ExitCode::help_table())]
    EchoServer(EchoServerArgs),
    /// Send messages to an echo server and check that they come back.
    ///
    /// With no arguments it does what the socket guide's client does: connects
    /// to 127.0.0.1:65432, sends `Hello, world` and prints
    /// `Received b'Hello, world'`. A lone `-` streams stdin to the server and
    /// the echo to stdout instead.
    #[command(after_help = ExitCode::help_table(), override_usage = "echokit echo-client [OPTIONS] [ENDPOINT] [-]")]
    EchoClient(EchoClientArgs),
    /// The guide's application client: one request, one response.
    ///
    /// `search VALUE` sends `{"action": "search", "value": VALUE}` as text/json
    /// and prints `Got result: ...`; any other ACTION sends ACTION and VALUE as
    /// binary content and prints `Got response: b'...'`, as the guide's
    /// app-client.py does, byte for byte on the wire. The endpoint may be
    /// left out: the guide's 127.0.0.1:65432.
    #[command(after_help = ExitCode::help_table(), override_usage = "echokit app-client [OPTIONS] [ENDPOINT] ACTION VALUE")]
    AppClient(AppClientArgs),
    /// The guide's application server: answers framed requests, many clients at once.
    ///
    /// Prints `listening on ENDPOINT` for each bound address, then logs each
    /// request and its answer on stderr. `search` requests are answered from
    /// the guide's table (or --data), binary requests with their first 10
    /// bytes. A request whose header is not whole within --header-timeout, or
    /// that is not whole within --request-timeout, malformed or over a limit,
    /// is logged and its connection closed. Started by systemd's socket
    /// activation (LISTEN_FDS), it serves the sockets passed instead of
    /// binding.
    #[command(after_help = ExitCode::help_table())]
    AppServer(AppServerArgs),
    /// Load-test a server: messages/s, latency percentiles, errors by class.
    ///
    /// Opens --connections connections (sockets, over udp:// and unixgram:)
    /// and keeps --depth messages in flight on each (closed loop), or sends
    /// --rate messages/s on a schedule whatever comes back (open loop, the
    /// latency counted from the scheduled send so that a stalled server
    /// cannot hide its stall). Every echoed byte is checked; a short read is
    /// normal, a wrong byte, a reset or an early close is an error. The
    /// measured window opens once every connection has echoed once and
    /// --warmup is over. Exit 0 when the run had no errors, 1 when it had
    /// some (or lost more datagrams than --max-loss), 3 or 4 when no
    /// connection was ever made because every connect was refused or timed
    /// out, 2 on bad usage.
    #[command(
        after_help = ExitCode::help_table(),
        override_usage = "echokit bench [OPTIONS] [ENDPOINT]\n       echokit bench --compare [OPTIONS] ENDPOINT_A ENDPOINT_B"
    )]
    Bench(BenchArgs),
    /// List sockets with their state and process, as netstat and lsof do, explained.
    ///
    /// Every TCP, UDP and Unix socket of this host, IPv4 and IPv6: protocol,
    /// Recv-Q and Send-Q, local and foreign address, state, and the PID and
    /// program holding it. Addresses stay numeric, so it never waits on DNS.
    /// A LISTEN row shows its accept queue (connections the kernel has
    /// completed that accept() has not taken yet) against its backlog and
    /// net.core.somaxconn; the summary counts connections that full accept
    /// queues turned away since boot. --explain says what each state means
    /// for the program (CLOSE_WAIT: the peer closed and this program has
    /// not). Other users' processes are only named when run as root.
    #[command(after_help = ExitCode::help_table())]
    Sockets(SocketsArgs),
    /// Is anything listening? Connect to each TARGET as the guide's
    /// connect_ex does, and say what happened and why.
    ///
    /// One line per probe: the endpoint, `open`, `refused`, `timed out` or
    /// `unreachable`, the errno connect_ex would return (ECONNREFUSED is 111)
    /// and what it means. A host name is probed on each of its addresses
    /// (localhost is ::1 and 127.0.0.1: a server may listen on one only).
    /// TARGET takes any endpoint, and a port range or list:
    /// 127.0.0.1:8000-8100, localhost:22,80,443, udp://HOST:53, unix:PATH.
    /// With more than 24 probes, the open ones are listed and the rest
    /// counted (--all lists every one). UDP sends one datagram: an answer is
    /// open, an ICMP port unreachable is refused, silence is `no reply` and
    /// proves nothing. Unix sockets may also be `missing`, `denied` or of
    /// the `wrong type`. --count N tries each target N times, --interval
    /// apart, and prints each connect time and min/avg/max/p99, as ping
    /// does. One target exits with what was found, as a client would: open
    /// 0, refused 3, timed out 4, unreachable or unresolved 5, denied 8.
    /// Several exit 0 when every try found its target open, 1 when any did
    /// not. Bad usage exits 2.
    #[command(
        after_help = ExitCode::help_table(),
        override_usage = "echokit probe [OPTIONS] TARGET..."
    )]
    Probe(ProbeArgs),
    /// Show what the system resolver answers for names, as Python's socket calls see it.
    ///
    /// For each NAME: gethostbyname's answer (the first IPv4 address), the
    /// whole getaddrinfo list in the resolver's order (family, socket type,
    /// protocol, address: what socket() and connect() take), the canonical
    /// name, and where the answer comes from; first this host's own name
    /// (gethostname), last why a name can resolve differently on another host
    /// or in another run (/etc/nsswitch.conf, /etc/hosts, /etc/resolv.conf,
    /// /etc/gai.conf). A NAME is HOST, HOST:SERVICE (a port, or a name from
    /// /etc/services: localhost:http is port 80), an IP address, or
    /// [IPv6]:SERVICE. Exit 0 when every NAME resolved, else the first
    /// failure's code; with --reverse, an IP address without a name fails.
    #[command(after_help = ExitCode::help_table())]
    Resolve(ResolveArgs),
}

impl Command {
    /// Whether `--trace-calls` was given.
    pub fn traces_calls(&self) -> bool {
        match self {
            Command::EchoServer(a) => a.server.trace.trace_calls,
            Command::EchoClient(a) => a.trace.trace_calls,
            Command::AppServer(a) => a.server.trace.trace_calls,
            Command::AppClient(a) => a.trace.trace_calls,
            _ => false,
        }
    }
}
