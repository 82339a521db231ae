//! `echokit bench`: flags to a load generator config, the runs (one per
//! cell of the grid, or `--compare`'s), progress, and the reports.

use std::io::IsTerminal;

use super::failure::{Context, FailsAs, Outcome};

use super::{say, usage_error, watch_signals};
use crate::cli::BenchArgs;
use echokit::Endpoint;
use echokit::bench::{self, BenchConfig, Target, Workload, compare};
use echokit::exit::ExitCode;
use echokit::shutdown::Shutdown;

pub(crate) fn bench(args: BenchArgs) -> Outcome<ExitCode> {
    let endpoints = match (args.compare, args.endpoints.len()) {
        (true, 2) => args.endpoints.clone(),
        (true, _) => usage_error("--compare needs two endpoints: ENDPOINT_A ENDPOINT_B".into()),
        (false, 0) => vec![Endpoint::default_tcp()],
        (false, 1) => args.endpoints.clone(),
        (false, _) => usage_error("two endpoints are for --compare; give one to load".into()),
    };
    let targets = endpoints
        .iter()
        .map(|e| Target::resolve(e, args.bind.as_ref().map_or(&[][..], |b| &b.0[..])))
        .collect::<Result<Vec<_>, _>>()?;
    let datagram = targets[0].is_datagram();
    if targets.iter().any(|t| t.is_datagram() != datagram) {
        usage_error(
            "--compare runs the same cells: both endpoints must be streams, or both datagrams"
                .into(),
        );
    }
    let workload = match args.proto.as_str() {
        "app" => Workload::App {
            query: args.query.clone(),
            keep_alive: args.keep_alive,
        },
        _ => Workload::Echo,
    };
    if let Err(msg) = args.check(&targets, &workload) {
        usage_error(msg);
    }
    if let Some(usable) = echokit::os::usable_cpus()
        && let Some(bad) = args.cpu.iter().find(|c| !usable.contains(c))
    {
        let list: Vec<String> = usable.iter().map(usize::to_string).collect();
        usage_error(format!(
            "--cpu {bad}: this process may run on CPUs {} only",
            list.join(",")
        ));
    }
    let cells = compare::Cell::grid(&args.connections, &args.size, &args.depth);
    let base = args.config(&targets[0], workload, &cells[0]);
    for cell in &cells {
        for warning in bench::preflight::check(&cell.apply(&base))? {
            eprintln!("warning: {warning}");
        }
    }
    let shutdown = Shutdown::new();
    watch_signals(shutdown.clone())?;

    if args.compare {
        let names = [endpoints[0].to_string(), endpoints[1].to_string()];
        let results = compare::run(
            &base,
            [&targets[0], &targets[1]],
            &cells,
            args.reps,
            &shutdown,
            &mut |rep, side, cell, report| {
                eprintln!(
                    "run {rep}/{} {side} {cell}: {} msg/s, p99 {}, errors {}",
                    args.reps,
                    bench::report::count(report.messages_per_second),
                    echokit::text::micros(report.latency_us.p99),
                    report.errors().total()
                );
            },
        )?;
        if args.json || args.ndjson {
            say(compare::json(&results, &names[0], &names[1]))?;
        } else {
            print!("{}", compare::table(&results, &names[0], &names[1]));
        }
        let passed = results.iter().all(compare::CellResult::passed);
        return Ok(if passed {
            ExitCode::Success
        } else {
            ExitCode::Failures
        });
    }

    let mut codes = Vec::with_capacity(cells.len());
    for cell in &cells {
        codes.push(run_one(&cell.apply(&base), &args, &shutdown)?.exit_code());
        if shutdown.is_requested() {
            break;
        }
    }
    Ok(ExitCode::agreed(codes))
}

/// One run: progress on a terminal, the report on stdout, the HTML page.
fn run_one(cfg: &BenchConfig, args: &BenchArgs, shutdown: &Shutdown) -> Outcome<bench::Report> {
    let progress = if std::io::stderr().is_terminal() {
        let bar = indicatif::ProgressBar::new_spinner();
        bar.set_style(
            indicatif::ProgressStyle::with_template("{spinner} [{elapsed}] {msg}")
                .expect("the template is valid"),
        );
        bar
    } else {
        indicatif::ProgressBar::hidden()
    };
    let mut on_interval = |i: &bench::Interval| {
        progress.set_message(format!(
            "{}: {} msg/s, {} out, {} in, {} open, {} errors",
            i.phase,
            bench::report::count(i.messages_per_second),
            bench::report::mb(i.bytes_per_second.sent),
            bench::report::mb(i.bytes_per_second.received),
            i.open_connections,
            i.errors
        ));
        progress.tick();
        if args.ndjson {
            let mut line = serde_json::json!({"type": "interval"});
            if let (Some(obj), Ok(serde_json::Value::Object(fields))) =
                (line.as_object_mut(), serde_json::to_value(i))
            {
                obj.extend(fields);
            }
            let _ = say(line);
        }
    };
    let report = bench::run(cfg, shutdown, &mut on_interval)?;
    progress.finish_and_clear();
    if args.json || args.ndjson {
        let mut value = serde_json::to_value(&report)
            .fails_as(ExitCode::Failures, "cannot serialise the report")?;
        if args.ndjson
            && let Some(obj) = value.as_object_mut()
        {
            obj.insert("type".into(), "summary".into());
        }
        say(value)?;
    } else {
        print!("{}", report.text(cfg));
    }
    if let Some(path) = &args.report {
        std::fs::write(path, report.html(cfg, &provenance()))
            .with_context(|| format!("cannot write the report to {}", path.display()))?;
        if !(args.json || args.ndjson) {
            println!("  report       {}", path.display());
        }
    }
    Ok(report)
}

/// What made this run, for the HTML report: now, this host, this version,
/// the command line as typed.
fn provenance() -> echokit::bench::html::Provenance {
    let quote = |word: String| {
        let plain = !word.is_empty()
            && word
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_./:,=@%+[]".contains(c));
        if plain {
            word
        } else {
            format!("'{}'", word.replace('\'', r"'\''"))
        }
    };
    echokit::bench::html::Provenance {
        date: humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string(),
        host: echokit::resolve::hostname().unwrap_or_else(|_| "an unknown host".into()),
        version: env!("CARGO_PKG_VERSION").into(),
        command: std::env::args().map(quote).collect::<Vec<_>>().join(" "),
    }
}
