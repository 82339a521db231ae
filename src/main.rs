//! The `echokit` binary: parse the command line, start logging, run the
//! subcommand, and turn its outcome into an exit code. The flags are in
//! `cli`, each subcommand's handler in `commands`; the work is in the library.

mod cli;
mod commands;

use std::io::IsTerminal;
use std::process::ExitCode as ProcessExit;

use clap::{CommandFactory, FromArgMatches};
use tracing_appender::non_blocking::{NonBlockingBuilder, WorkerGuard};
use tracing_subscriber::EnvFilter;

use cli::{Cli, Command, LogFormat};
use commands::{clients, inspect, load, servers};

/// Log lines held while stderr cannot take them; past this they are
/// dropped rather than stall an event loop (about 1 MB of lines).
const LOG_LINES_BUFFERED: usize = 10_000;

fn main() -> ProcessExit {
    let parsed = Cli::command()
        .try_get_matches()
        .and_then(|matches| Ok((Cli::from_arg_matches(&matches)?, matches)));
    let (cli, matches) = parsed.unwrap_or_else(|e| {
        // Parsing failed, so the flag is read from the raw arguments.
        if asks_for_json_logs(std::env::args_os()) {
            let _ = LOG_FORMAT.set(LogFormat::Json);
        }
        usage_exit(e)
    });
    let _ = LOG_FORMAT.set(cli.log_format);
    let _ = SUBCOMMAND.set(matches.subcommand_name().map(str::to_owned));
    // First, while no other thread runs: taking them unsets LISTEN_*.
    let activated = servers::take_activated(&cli.command);
    let log_guard = init_logging(&cli);
    if cli.command.traces_calls() {
        commands::trace::to_stderr(cli.log_format);
    }
    let outcome = match cli.command {
        Command::EchoServer(args) => servers::echo_server(args, activated),
        Command::EchoClient(args) => clients::echo_client(args),
        Command::AppClient(args) => clients::app_client(args),
        Command::AppServer(args) => servers::app_server(args, activated),
        Command::Bench(args) => load::bench(args),
        Command::Sockets(args) => inspect::sockets(args),
        Command::Probe(args) => inspect::probe(args),
        Command::Resolve(args) => inspect::resolve(args),
    };
    // Flush the logs before the last word.
    drop(log_guard);
    let code = match outcome {
        Ok(code) => code,
        Err(failure) => {
            let err = commands::hint::add(failure.error);
            last_word("ERROR", &in_words(&err));
            failure.code
        }
    };
    ProcessExit::from(code.code())
}

/// Logs go to stderr. Servers log each client at info; clients are quiet on
/// success unless asked: -v shows how they connected and what they sent.
///
/// A thread writes them, so an event loop never waits on a slow terminal or
/// a pipe nobody reads; when stderr stays blocked, lines are dropped.
fn init_logging(cli: &Cli) -> WorkerGuard {
    let quiet_default = match cli.command {
        Command::EchoServer(_) | Command::AppServer(_) => "info",
        Command::EchoClient(_)
        | Command::AppClient(_)
        | Command::Bench(_)
        | Command::Sockets(_)
        | Command::Probe(_)
        | Command::Resolve(_) => "warn",
    };
    let level = match (cli.quiet, cli.verbose) {
        (true, _) => "error",
        (false, 0) => quiet_default,
        (false, 1) => "debug",
        (false, _) => "trace",
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(level));
    let (writer, guard) = NonBlockingBuilder::default()
        .lossy(true)
        .buffered_lines_limit(LOG_LINES_BUFFERED)
        .thread_name("log-writer")
        .finish(std::io::stderr());
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer)
        .with_target(false);
    match cli.log_format {
        LogFormat::Text => logs.with_ansi(std::io::stderr().is_terminal()).init(),
        // One object a line, the message and fields at its top level beside
        // timestamp and level, and the span the event happened in.
        LogFormat::Json => logs
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .init(),
    }
    guard
}

/// An error and its causes, `: ` between them, as anyhow's `{:#}` writes
/// them (each error states its own part, the causes added once), but a
/// system error in words alone: `No such file or directory`, not std's
/// `No such file or directory (os error 2)`.
fn in_words(err: &anyhow::Error) -> String {
    let parts: Vec<String> = err
        .chain()
        .map(|e| match e.downcast_ref::<std::io::Error>() {
            Some(io) => echokit::text::os_words(io),
            None => e.to_string(),
        })
        .collect();
    parts.join(": ")
}

/// Whether the raw arguments ask for `--log-format json`, in either spelling.
fn asks_for_json_logs(args: impl Iterator<Item = std::ffi::OsString>) -> bool {
    let args: Vec<_> = args.collect();
    args.iter().enumerate().any(|(i, a)| {
        a == "--log-format=json"
            || (a == "--log-format" && args.get(i + 1).is_some_and(|v| v == "json"))
    })
}

/// Exits on a usage error (2) as clap words it, through `--log-format`: an
/// object under `json`, clap's own text otherwise. `--help` and `--version`
/// print as usual.
fn usage_exit(e: clap::Error) -> ! {
    if e.use_stderr() && LOG_FORMAT.get() == Some(&LogFormat::Json) {
        let text = e.render().to_string();
        let message = text
            .trim_end()
            .strip_prefix("error: ")
            .unwrap_or(text.trim_end());
        last_word("ERROR", message);
        std::process::exit(e.exit_code());
    }
    e.exit()
}

/// The subcommand run, for the usage a usage error found later shows.
static SUBCOMMAND: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();

/// `--log-format`, for the lines written past the logger.
static LOG_FORMAT: std::sync::OnceLock<LogFormat> = std::sync::OnceLock::new();

/// A line on stderr written past the logger (the last error, once the
/// logger has flushed; a line just before exiting, which the logger could
/// not flush in time): as text (an error as `error: MESSAGE`), or an object
/// of the logger's shape.
fn last_word(level: &str, message: &str) {
    match LOG_FORMAT.get() {
        Some(LogFormat::Json) => eprintln!(
            "{}",
            serde_json::json!({
                "timestamp":
                    humantime::format_rfc3339_micros(std::time::SystemTime::now()).to_string(),
                "level": level,
                "message": message,
            })
        ),
        Some(LogFormat::Text) | None if level == "ERROR" => eprintln!("error: {message}"),
        Some(LogFormat::Text) | None => eprintln!("{message}"),
    }
}
