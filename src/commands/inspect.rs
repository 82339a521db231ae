//! The inspection tools `sockets`, `probe` and `resolve`: flags to the
//! library's config, and its report printed.

use super::failure::Outcome;
use std::io::IsTerminal;

use super::{say, usage_error, watch_signals};
use crate::cli::{ProbeArgs, ResolveArgs, SocketsArgs};
use echokit::exit::ExitCode;
use echokit::probe;
use echokit::resolve;
use echokit::shutdown::Shutdown;
use echokit::{os, text};

/// `echokit sockets`: the table once, or again every --watch interval.
pub(crate) fn sockets(args: SocketsArgs) -> Outcome<ExitCode> {
    use echokit::sockets::{self, render::View};
    let kinds = args.kinds();
    let filter = args.filter();
    let clear_screen = args.watch.is_some() && !args.json && std::io::stdout().is_terminal();
    let mut previous: Option<sockets::Snapshot> = None;
    let mut shown = 0u64;
    loop {
        let snapshot = sockets::snapshot(&kinds)?;
        let growth = previous
            .as_ref()
            .map(|p| sockets::send_queue_growth(p, &snapshot))
            .unwrap_or_default();
        let view = View {
            snapshot: &snapshot,
            rows: sockets::select(&snapshot, &filter),
            explain: args.explain,
            growth,
        };
        if args.json {
            say(view.json())?;
        } else {
            if clear_screen {
                // Home the cursor and clear, as watch(1) does.
                print!("\x1b[H\x1b[2J");
            }
            if let Some(every) = args.watch {
                if shown > 0 && !clear_screen {
                    say("")?;
                }
                say(format_args!(
                    "{} (every {}; Ctrl-C stops)",
                    humantime::format_rfc3339_seconds(std::time::SystemTime::now()),
                    text::duration(every)
                ))?;
            }
            say(view.table().trim_end())?;
        }
        shown += 1;
        let Some(every) = args.watch else { break };
        if args.count.is_some_and(|n| shown >= n) {
            break;
        }
        std::thread::sleep(every);
        previous = Some(snapshot);
    }
    Ok(ExitCode::Success)
}

/// `echokit probe`: the library probes and renders; this turns flags into
/// its config and prints.
pub(crate) fn probe(args: ProbeArgs) -> Outcome<ExitCode> {
    let targets = match probe::target::expand(&args.targets) {
        Ok(targets) => targets,
        Err(e) => usage_error(e.to_string()),
    };
    if (args.bind.is_some() || args.source_port.is_some())
        && let Some(t) = targets.iter().find(|t| t.endpoint.local_name().is_some())
    {
        usage_error(format!(
            "--bind and --source-port are for IP targets; {} is a Unix socket",
            t.endpoint
        ));
    }
    os::raise_fd_limit();
    let cfg = args.config();
    let probes = match probe::resolve(&targets, &cfg.connect) {
        Ok(probes) => probes,
        Err(e) => usage_error(e.to_string()),
    };
    // Ctrl-C during --count ends the tries and prints the statistics, as ping does.
    let shutdown = Shutdown::new();
    watch_signals(shutdown.clone())?;
    let ping = args.count.is_some() && !args.json;
    let mut printed = Ok(());
    let report = probe::run(&probes, &cfg, &shutdown, &mut |p, t| {
        if ping && printed.is_ok() {
            printed = say(probe::report::try_line(p, t));
        }
    })?;
    printed?;
    if args.json {
        say(probe::report::json(&report))?;
    } else {
        for line in probe::report::text(&report, args.all) {
            say(line)?;
        }
    }
    Ok(report.exit_code())
}

/// `echokit resolve`: the report on stdout, each failure on stderr.
pub(crate) fn resolve(args: ResolveArgs) -> Outcome<ExitCode> {
    let options = resolve::Options {
        timeout: args.timeout,
        reverse: args.reverse,
    };
    let report = resolve::run(&args.names, &options)?;
    if args.json {
        say(report.json())?;
    } else {
        say(report.text().trim_end())?;
    }
    for error in report.errors() {
        eprintln!("error: {error}");
    }
    Ok(report.exit_code())
}
