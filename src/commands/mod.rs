//! The subcommands' handlers, one module per role, and the helpers they
//! share: a line on stdout, a usage error, graceful shutdown on signals.
//! Each handler turns its flags into the library's config, calls it, and
//! prints; `main` dispatches to them and maps their errors to exit codes.

pub(crate) mod clients;
pub(crate) mod failure;
pub(crate) mod hint;
pub(crate) mod inspect;
pub(crate) mod load;
pub(crate) mod servers;
pub(crate) mod trace;

use std::io::Write;

use self::failure::{Context, Outcome};
use clap::CommandFactory;
use signal_hook::consts::{SIGINT, SIGTERM};

use crate::cli::Cli;
use crate::last_word;
use echokit::shutdown::Shutdown;

/// Writes a line of results to stdout, flushed so a script sees it at once.
/// A reader that went away (`| head`) is no failure: the rest of the output
/// is dropped and the exit code stands.
fn say(line: impl std::fmt::Display) -> Outcome<()> {
    let mut out = std::io::stdout().lock();
    match writeln!(out, "{line}").and_then(|()| out.flush()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        result => result.context("cannot write to stdout"),
    }
}

/// SIGTERM and a first SIGINT ask for a graceful shutdown; a SIGINT during
/// it exits at once.
fn watch_signals(shutdown: Shutdown) -> Outcome<()> {
    let mut signals = signal_hook::iterator::Signals::new([SIGINT, SIGTERM])
        .context("cannot install signal handlers")?;
    std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            for signal in signals.forever() {
                if shutdown.is_requested() {
                    if signal == SIGINT {
                        last_word("WARN", "second interrupt: exiting now");
                        std::process::exit(130);
                    }
                    continue;
                }
                let name = if signal == SIGINT {
                    "interrupt"
                } else {
                    "SIGTERM"
                };
                tracing::info!("{name}: shutting down gracefully (Ctrl-C again to exit at once)");
                shutdown.request();
            }
        })
        .context("cannot start the signal thread")?;
    Ok(())
}

/// Exits with clap's usage error (exit 2) and this message, under the
/// usage of the subcommand that was run, through `--log-format`.
fn usage_error(msg: String) -> ! {
    let kind = clap::error::ErrorKind::ArgumentConflict;
    let mut cli = Cli::command();
    // Built, a subcommand knows its full name (`echokit probe`) for its usage.
    cli.build();
    let ran = crate::SUBCOMMAND.get().and_then(Option::as_deref);
    let error = match ran.and_then(|name| cli.find_subcommand_mut(name)) {
        Some(sub) => sub.error(kind, msg),
        None => cli.error(kind, msg),
    };
    crate::usage_exit(error)
}
