//! The `echokit` binary: parse the command line, start logging, run the
//! subcommand, and turn its outcome into an exit code. The work is in the library.

mod cli;

use std::io::{IsTerminal, Write};
use std::process::ExitCode as ProcessExit;
use std::time::Instant;

use anyhow::Context;
use clap::{CommandFactory, Parser};
use signal_hook::consts::{SIGINT, SIGTERM};
use tracing_appender::non_blocking::{NonBlockingBuilder, WorkerGuard};
use tracing_subscriber::EnvFilter;

use cli::{
    AppClientArgs, AppServerArgs, BenchArgs, Cli, ClientTarget, Command, EchoClientArgs,
    EchoServerArgs, LogFormat, ProbeArgs, ResolveArgs, SocketsArgs,
};
use echokit::app::client::{AppClientOptions, AppError};
use echokit::app::{self, Response};
use echokit::bench::{self, BenchConfig, BenchError, Stop, Target, Workload, compare};
use echokit::echo::client::{self, ClientError, ClientOptions, Plan};
use echokit::echo::datagram_client::{self, DatagramClient, DatagramOptions};
use echokit::echo::limit::RateLimits;
use echokit::echo::{server, stream};
use echokit::endpoint::{HostPort, ParseError, ResolveError, SocketType};
use echokit::exit::{Classify, ExitCode};
use echokit::metrics::{self, Metrics};
use echokit::net::activation::{self, Activated, ActivationError, Inherited, Stdin};
use echokit::net::{self, BindError, ConnectError, ConnectOptions, ListenOptions, Listener};
use echokit::os::privileges::{self, PrivilegeError};
use echokit::probe::{self, ProbeError};
use echokit::resolve::{self, LookupError};
use echokit::shutdown::Shutdown;
use echokit::{Endpoint, os, text};

/// What the guide's client sends.
const HELLO: &str = "Hello, world";

/// Log lines held while stderr cannot take them; past this they are
/// dropped rather than stall an event loop (about 1 MB of lines).
const LOG_LINES_BUFFERED: usize = 10_000;

fn main() -> ProcessExit {
    let cli = Cli::parse();
    let _ = LOG_FORMAT.set(cli.log_format);
    // First, while no other thread runs: taking them unsets LISTEN_*.
    let activated = take_activated(&cli.command);
    let log_guard = init_logging(&cli);
    if cli.command.traces_calls() {
        echokit::calls::enable();
    }
    let outcome = match cli.command {
        Command::EchoServer(args) => echo_server(args, activated),
        Command::EchoClient(args) => echo_client(args),
        Command::AppClient(args) => app_client(args),
        Command::AppServer(args) => app_server(args, activated),
        Command::Bench(args) => bench(args),
        Command::Sockets(args) => sockets(args),
        Command::Probe(args) => probe(args),
        Command::Resolve(args) => resolve(args),
    };
    // Flush the logs before the last word.
    drop(log_guard);
    let code = match outcome {
        Ok(code) => code,
        Err(err) => {
            // Each error states its own part; `{:#}` adds the causes, once.
            last_word("ERROR", &format!("{err:#}"));
            classify(&err)
        }
    };
    ProcessExit::from(code.code())
}

/// The exit code of the first error in the chain that knows its own.
fn classify(err: &anyhow::Error) -> ExitCode {
    for cause in err.chain() {
        let code = if let Some(e) = cause.downcast_ref::<BindError>() {
            e.exit_code()
        } else if let Some(e) = cause.downcast_ref::<ConnectError>() {
            e.exit_code()
        } else if let Some(e) = cause.downcast_ref::<ClientError>() {
            e.exit_code()
        } else if let Some(e) = cause.downcast_ref::<ResolveError>() {
            e.exit_code()
        } else if let Some(e) = cause.downcast_ref::<ParseError>() {
            e.exit_code()
        } else if let Some(e) = cause.downcast_ref::<AppError>() {
            e.exit_code()
        } else if let Some(e) = cause.downcast_ref::<BenchError>() {
            e.exit_code()
        } else if let Some(e) = cause.downcast_ref::<echokit::sockets::SocketsError>() {
            e.exit_code()
        } else if let Some(e) = cause.downcast_ref::<ProbeError>() {
            e.exit_code()
        } else if let Some(e) = cause.downcast_ref::<server::ServerError>() {
            e.exit_code()
        } else if let Some(e) = cause.downcast_ref::<LookupError>() {
            e.exit_code()
        } else if let Some(e) = cause.downcast_ref::<ActivationError>() {
            e.exit_code()
        } else if let Some(e) = cause.downcast_ref::<PrivilegeError>() {
            e.exit_code()
        } else {
            continue;
        };
        return code;
    }
    ExitCode::Failures
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

/// Binds `--metrics` (before the servers bind, so a bad address fails
/// before anything is served).
fn bind_metrics(at: Option<&HostPort>) -> anyhow::Result<Option<metrics::http::MetricsListener>> {
    at.map(|at| metrics::http::bind(at).with_context(|| format!("cannot serve --metrics on {at}")))
        .transpose()
}

/// Prints `metrics on http://ADDR/metrics` for each bound address (after
/// the `listening on` lines) and serves the endpoint until the returned
/// handle is dropped.
fn serve_metrics(
    listener: Option<metrics::http::MetricsListener>,
    metrics: &std::sync::Arc<Metrics>,
) -> anyhow::Result<Option<metrics::http::Serving>> {
    let Some(listener) = listener else {
        return Ok(None);
    };
    for url in listener.urls() {
        say(format_args!("metrics on {url}"))?;
    }
    let serving = listener
        .serve(std::sync::Arc::clone(metrics))
        .context("cannot start the metrics endpoint")?;
    Ok(Some(serving))
}

fn echo_server(
    args: EchoServerArgs,
    activated: Result<Option<Activated>, ActivationError>,
) -> anyhow::Result<ExitCode> {
    // Raised first: `--max-conns` defaults to the limit (no log line here,
    // so inetd's stderr is not touched yet).
    let fd_limit = os::raise_fd_limit();
    let options = ListenOptions {
        backlog: args.backlog,
        keepalive: args.keepalive,
        sndbuf: args.sndbuf,
        rcvbuf: args.rcvbuf,
        mode: args.mode,
    };
    let udp_limits = match args.udp_rate_per_source {
        // Asked for: it applies to every source, loopback included.
        Some(pps) => RateLimits {
            per_source: pps,
            total: args.udp_rate_total,
            exempt_loopback: false,
        },
        None => RateLimits {
            total: args.udp_rate_total,
            ..RateLimits::default()
        },
    };
    let config = server::ServerConfig {
        threads: args.threads.map(usize::from),
        grace: args.grace,
        once: args.once,
        keepalive: args.keepalive,
        udp_limits,
        limits: args.limits.limits(fd_limit),
        ..server::ServerConfig::default()
    };
    if args.service.inetd {
        // Before any log line: stderr may be the connection.
        return echo_inetd(&args, &options, &config, activated?);
    }
    if let Some(limit) = fd_limit {
        tracing::debug!("descriptor limit: {limit}");
    }
    let metrics_listener = bind_metrics(args.metrics.as_ref())?;
    let listeners = listeners(&args.endpoints, &options, activated?, |endpoints| {
        args.check(endpoints)
    })?;
    let shutdown = announce(&listeners, args.service.user.as_deref())?;
    // Served through the grace period, so a drain can be watched.
    let metrics_endpoint = serve_metrics(metrics_listener, &config.metrics)?;
    let has_datagrams = listeners
        .iter()
        .any(|l| l.socket_type() == SocketType::Datagram);
    let started = Instant::now();
    let stats = server::run(listeners, &config, &shutdown)?;
    drop(metrics_endpoint);
    say(echo_summary(&stats, has_datagrams, started))?;
    Ok(ExitCode::Success)
}

/// The echo server's last line: what it served.
fn echo_summary(stats: &server::ServerStats, has_datagrams: bool, started: Instant) -> String {
    let cut = cut_off_note(stats.cut_off);
    let datagrams = if has_datagrams {
        format!(
            " and {} datagram{} ({} dropped)",
            stats.datagrams,
            if stats.datagrams == 1 { "" } else { "s" },
            stats.dropped
        )
    } else {
        String::new()
    };
    format!(
        "served {} connection{}{datagrams}, echoed {} bytes ({}) in {}{cut}",
        stats.connections,
        if stats.connections == 1 { "" } else { "s" },
        stats.bytes_echoed,
        text::bytes(stats.bytes_echoed),
        text::duration(started.elapsed()),
    )
}

/// `echo-server --inetd`: the connection on stdin, a socket inetd's `wait`
/// mode passes there, or stdin copied to stdout. Nothing goes to stdout but
/// the echo: the summary is logged.
fn echo_inetd(
    args: &EchoServerArgs,
    options: &ListenOptions,
    config: &server::ServerConfig,
    activated: Option<Activated>,
) -> anyhow::Result<ExitCode> {
    let stdin = activation::take_stdin(options)?;
    close_activated_for_inetd(activated, &stdin)?;
    become_user(args.service.user.as_deref())?;
    let started = Instant::now();
    let stats = match stdin {
        // A pipe or a terminal: SIGINT and SIGTERM keep their default
        // action (exit at once), which loses nothing: each read is written
        // out before the next.
        Stdin::NotASocket => {
            echokit::echo::inetd::copy_stdin().context("cannot copy stdin to stdout")?;
            return Ok(ExitCode::Success);
        }
        Stdin::Socket(Inherited::Connection(stream, peer)) => {
            let shutdown = Shutdown::new();
            watch_signals(shutdown.clone())?;
            echokit::echo::inetd::serve_connection(stream, peer, config, &shutdown)?
        }
        Stdin::Socket(Inherited::Listener(listener)) => {
            if let Err(msg) = args.check(std::slice::from_ref(listener.endpoint())) {
                usage_error(msg);
            }
            let has_datagrams = listener.socket_type() == SocketType::Datagram;
            let shutdown = Shutdown::new();
            watch_signals(shutdown.clone())?;
            tracing::info!("listening on {} (from stdin)", listener.endpoint());
            let stats = server::run(vec![listener], config, &shutdown)?;
            tracing::info!("{}", echo_summary(&stats, has_datagrams, started));
            return Ok(ExitCode::Success);
        }
    };
    tracing::info!("{}", echo_summary(&stats, false, started));
    Ok(ExitCode::Success)
}

/// The sockets to serve: those socket activation passed (checked with
/// `check`), or else the endpoints given (the default one if none), bound.
/// Both at once is a usage error: which to serve would be a guess.
fn listeners(
    given: &[Endpoint],
    options: &ListenOptions,
    activated: Option<Activated>,
    check: impl Fn(&[Endpoint]) -> Result<(), String>,
) -> anyhow::Result<Vec<Listener>> {
    if let Some(activated) = activated {
        if !given.is_empty() {
            usage_error(format!(
                "socket activation passed {} socket{} (LISTEN_FDS): serve them, or ENDPOINT \
                 arguments, not both (leave out the ENDPOINTs, or the socket unit)",
                activated.len(),
                if activated.len() == 1 { "" } else { "s" }
            ));
        }
        let listeners = activated.listeners(options)?;
        let endpoints: Vec<Endpoint> = listeners.iter().map(|l| l.endpoint().clone()).collect();
        if let Err(msg) = check(&endpoints) {
            usage_error(msg);
        }
        return Ok(listeners);
    }
    let endpoints = if given.is_empty() {
        vec![Endpoint::default_tcp()]
    } else {
        given.to_vec()
    };
    if let Err(msg) = check(&endpoints) {
        usage_error(msg);
    }
    let mut listeners = Vec::new();
    for endpoint in &endpoints {
        listeners.extend(net::listen::bind(endpoint, options)?);
    }
    Ok(listeners)
}

/// With the sockets in hand: signal handlers in place (a script may signal
/// as soon as it reads a line), then `--user`, then a `listening on` line
/// for each socket, then READY=1 for systemd's Type=notify. Returns the
/// shutdown handle the signals set.
fn announce(listeners: &[Listener], user: Option<&str>) -> anyhow::Result<Shutdown> {
    let shutdown = Shutdown::new();
    watch_signals(shutdown.clone())?;
    become_user(user)?;
    for listener in listeners {
        say(format_args!("listening on {}", listener.endpoint()))?;
    }
    if let Err(e) = sd_notify::notify(&[sd_notify::NotifyState::Ready]) {
        tracing::warn!("cannot tell systemd the server is ready (NOTIFY_SOCKET): {e}");
    }
    Ok(shutdown)
}

/// `--user NAME`: drops root for good, or fails saying why.
fn become_user(user: Option<&str>) -> anyhow::Result<()> {
    if let Some(name) = user {
        let dropped = privileges::drop_to(name)?;
        tracing::info!(
            "running as user {} (uid {}, gid {})",
            dropped.name,
            dropped.uid,
            dropped.gid
        );
    }
    Ok(())
}

/// The sockets systemd passed, for a server; nothing for other commands.
/// Runs before any thread starts.
fn take_activated(command: &Command) -> Result<Option<Activated>, ActivationError> {
    match command {
        Command::EchoServer(_) | Command::AppServer(_) => {
            // SAFETY: called first thing in main, before logging, signal
            // handling or anything else starts a thread.
            unsafe { activation::from_env() }
        }
        _ => Ok(None),
    }
}

/// `--inetd` under systemd's `Accept=yes`: the connection comes as stdin
/// and as descriptor 3 too; that copy is closed, so that ours is the last
/// and closing it ends the connection. Any other socket passed is an error:
/// `--inetd` would leave it unserved.
fn close_activated_for_inetd(activated: Option<Activated>, stdin: &Stdin) -> anyhow::Result<()> {
    let Some(activated) = activated else {
        return Ok(());
    };
    let ours = match stdin {
        Stdin::Socket(Inherited::Connection(socket, _)) => Some(socket),
        Stdin::Socket(Inherited::Listener(listener)) => Some(listener.socket()),
        Stdin::NotASocket => None,
    };
    for (fd, name) in activated.into_fds() {
        if !ours.is_some_and(|s| activation::same_socket(s, &fd)) {
            usage_error(format!(
                "--inetd serves the socket on stdin, but socket activation also passed \
                 descriptor {} ({name}), another socket: leave out --inetd to serve the sockets \
                 systemd passed",
                std::os::fd::AsRawFd::as_raw_fd(&fd)
            ));
        }
    }
    Ok(())
}

/// Writes a line of results to stdout, flushed so a script sees it at once.
/// A reader that went away (`| head`) is no failure: the rest of the output
/// is dropped and the exit code stands.
fn say(line: impl std::fmt::Display) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    match writeln!(out, "{line}").and_then(|()| out.flush()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        result => result.context("cannot write to stdout"),
    }
}

/// SIGTERM and a first SIGINT ask for a graceful shutdown; a SIGINT during
/// it exits at once.
fn watch_signals(shutdown: Shutdown) -> anyhow::Result<()> {
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

/// Exits with clap's usage error (exit 2) and this message.
fn usage_error(msg: String) -> ! {
    Cli::command()
        .error(clap::error::ErrorKind::ArgumentConflict, msg)
        .exit()
}

/// What the client sends in message mode.
fn messages(args: &EchoClientArgs) -> anyhow::Result<Vec<Vec<u8>>> {
    Ok(if let Some(path) = &args.file {
        vec![std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?]
    } else if !args.messages.is_empty() {
        args.messages
            .iter()
            .map(|m| m.clone().into_bytes())
            .collect()
    } else if args.connections.is_some() {
        client::MULTI_MESSAGES
            .iter()
            .map(|m| m.as_bytes().to_vec())
            .collect()
    } else {
        vec![HELLO.as_bytes().to_vec()]
    })
}

/// A Unix datagram client's own socket file goes when Ctrl-C or SIGTERM
/// ends the client early (the normal end removes it too).
fn remove_on_signal(path: std::path::PathBuf) -> anyhow::Result<()> {
    let mut signals = signal_hook::iterator::Signals::new([SIGINT, SIGTERM])
        .context("cannot install signal handlers")?;
    std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            if let Some(signal) = signals.forever().next() {
                let _ = std::fs::remove_file(&path);
                std::process::exit(128 + signal);
            }
        })
        .context("cannot start the signal thread")?;
    Ok(())
}

fn echo_client(args: EchoClientArgs) -> anyhow::Result<ExitCode> {
    let target = args.target().unwrap_or_else(|msg| usage_error(msg));
    let connect = ConnectOptions {
        timeout: args.connect_timeout,
        bind: args.bind,
        source_port: args.source_port,
    };
    if target.endpoint.socket_type() == SocketType::Datagram {
        return datagram_echo_client(&args, &target, &connect);
    }
    if target.stream {
        // --timeout bounds the whole run, the connect included.
        let started = Instant::now();
        let connect = connect.within(args.timeout);
        let (socket, server) = net::connect::connect_stream(&target.endpoint, &connect)?;
        tracing::debug!("streaming stdin to {server}");
        let left = args.timeout.map(|t| t.saturating_sub(started.elapsed()));
        let report = stream::run(
            socket,
            std::io::stdin(),
            &mut std::io::stdout().lock(),
            left,
        )?;
        tracing::debug!("sent {} bytes, received {}", report.sent, report.received);
        return Ok(ExitCode::Success);
    }
    let connections = args.connections.map_or(1, |n| n as usize);
    if connections > 1 {
        os::raise_fd_limit();
    }
    let messages = messages(&args)?;
    let plan = Plan {
        keep_echo: args.connections.is_none() && args.file.is_none(),
        verify: args.expect || args.connections.is_some(),
        messages,
        connections,
    };
    let options = ClientOptions {
        connect,
        timeout: args.timeout.unwrap_or(client::DEFAULT_TIMEOUT),
    };
    let mut report = client::run(&target.endpoint, &plan, &options)?;
    if args.connections.is_some() {
        for conn in &report.connections {
            say(conn.line())?;
        }
        say(report.summary())?;
        return Ok(report.exit_code());
    }
    let conn = report.connections.remove(0);
    conn.outcome?;
    print_echo(
        &args,
        &plan.messages,
        conn.received,
        conn.first_difference,
        &conn.echo,
    )
}

/// Prints a one-connection echo: `Received b'...'` per message, or how a
/// file's echo compares.
fn print_echo(
    args: &EchoClientArgs,
    messages: &[Vec<u8>],
    received: u64,
    first_difference: Option<u64>,
    echo: &[u8],
) -> anyhow::Result<ExitCode> {
    if let Some(path) = &args.file {
        match first_difference {
            None => say(format_args!(
                "Received {received} bytes, identical to {}",
                path.display()
            ))?,
            Some(at) => say(format_args!(
                "Received {received} bytes, differing from {} at byte {at}",
                path.display()
            ))?,
        }
        return Ok(ExitCode::Success);
    }
    let mut echo = echo;
    for message in messages {
        let (this, rest) = echo.split_at(message.len().min(echo.len()));
        say(format_args!("Received {}", text::py_bytes_repr(this)))?;
        echo = rest;
    }
    Ok(ExitCode::Success)
}

/// The client over UDP or a Unix datagram socket.
fn datagram_echo_client(
    args: &EchoClientArgs,
    target: &ClientTarget,
    connect: &ConnectOptions,
) -> anyhow::Result<ExitCode> {
    let opts = DatagramOptions {
        reply_timeout: args.reply_timeout(),
        retries: args.retries(),
    };
    let messages = messages(args)?;
    if let Some(n) = args.connections {
        let plan = Plan {
            messages,
            connections: n as usize,
            keep_echo: false,
            verify: true,
        };
        let report = datagram_client::run_many(&target.endpoint, &plan, connect, &opts)?;
        for conn in &report.connections {
            say(conn.line())?;
        }
        say(report.summary())?;
        return Ok(report.exit_code());
    }
    let mut client = DatagramClient::connect(&target.endpoint, connect)?;
    if let Some(path) = client.own_path() {
        remove_on_signal(path.to_path_buf())?;
    }
    if target.stream {
        let report = datagram_client::stream(
            &mut client,
            std::io::stdin().lock(),
            &mut std::io::stdout().lock(),
            &opts,
        )?;
        tracing::debug!("sent {} bytes, received {}", report.sent, report.received);
        return Ok(ExitCode::Success);
    }
    if let Some(count) = args.count {
        let server = client.server().clone();
        let message = messages.concat();
        say(format_args!(
            "ECHO {server}: {count} datagram{} of {}+ bytes",
            if count == 1 { "" } else { "s" },
            message.len()
        ))?;
        let mut printed = Ok(());
        let report = client.series(
            &message,
            count,
            args.interval(),
            opts.reply_timeout,
            |reply| {
                if printed.is_ok() {
                    printed = say(format_args!(
                        "{} bytes from {server}: seq={} time={:.3} ms",
                        reply.bytes,
                        reply.seq,
                        reply.rtt.as_secs_f64() * 1000.0
                    ));
                }
            },
        )?;
        printed?;
        say(report.summary(&server))?;
        return Ok(report.exit_code());
    }
    let mut echo = Vec::new();
    for message in &messages {
        let reply = client.exchange(message, &opts)?;
        tracing::debug!(
            "echo of {} bytes in {} ({} tr{})",
            reply.bytes.len(),
            text::duration(reply.rtt),
            reply.tries,
            if reply.tries == 1 { "y" } else { "ies" }
        );
        echo.extend_from_slice(&reply.bytes);
    }
    if client.stale > 0 {
        tracing::info!(
            "{} late echo(es) of earlier datagrams ignored",
            client.stale
        );
    }
    print_echo(args, &messages, echo.len() as u64, None, &echo)
}

/// The guide's application client.
fn app_client(args: AppClientArgs) -> anyhow::Result<ExitCode> {
    if args.endpoint.socket_type() != SocketType::Stream {
        usage_error(format!(
            "app-client speaks over a stream: tcp://HOST:PORT or unix:PATH, not {}",
            args.endpoint
        ));
    }
    let opts = AppClientOptions {
        connect: ConnectOptions {
            timeout: args.connect_timeout,
            ..ConnectOptions::default()
        },
        timeout: args.timeout,
        limits: echokit::proto::Limits {
            max_content: args.max_content as u64,
            max_header: args.max_header,
        },
    };
    let request = app::request(&args.action, &args.value);
    let (response, server) = app::client::exchange(&args.endpoint, &request, &opts)?;
    let Some(decoded) = Response::of(&response) else {
        return Err(AppError::NotJson(server).into());
    };
    tracing::info!(
        "received a {} response of {} bytes from {server}",
        response.header.content_type,
        response.content.len()
    );
    if args.json {
        say(decoded.json(&response.header, &server))?;
    } else {
        say(decoded.line())?;
    }
    Ok(ExitCode::Success)
}

/// The guide's application server.
fn app_server(
    args: AppServerArgs,
    activated: Result<Option<Activated>, ActivationError>,
) -> anyhow::Result<ExitCode> {
    let fd_limit = os::raise_fd_limit();
    let table = match &args.data {
        Some(path) => app::table::SearchTable::from_file(path)?,
        None => app::SearchTable::default(),
    };
    let options = ListenOptions {
        backlog: args.backlog,
        mode: args.mode,
        ..ListenOptions::default()
    };
    let config = app::server::AppServerConfig {
        threads: args.threads.map(usize::from),
        grace: args.grace,
        app: app::conn::AppConfig {
            table,
            limits: echokit::proto::Limits {
                max_content: args.max_content as u64,
                max_header: args.max_header,
            },
            header_timeout: args.header_timeout,
            request_timeout: args.request_timeout,
            keep_alive: args.keep_alive,
            max_buffered: args.max_buffered as u64,
        },
        limits: args.limits.limits(fd_limit),
        ..app::server::AppServerConfig::default()
    };
    if args.service.inetd {
        return app_inetd(&args, &options, config, activated?);
    }
    let metrics_listener = bind_metrics(args.metrics.as_ref())?;
    let listeners = listeners(&args.endpoints, &options, activated?, streams_only)?;
    let shutdown = announce(&listeners, args.service.user.as_deref())?;
    let metrics_endpoint = serve_metrics(metrics_listener, &config.metrics)?;
    let started = Instant::now();
    let stats = app::server::run(listeners, config, &shutdown)?;
    drop(metrics_endpoint);
    say(app_summary(&stats, started))?;
    Ok(ExitCode::Success)
}

/// The app-server's endpoints must be streams.
fn streams_only(endpoints: &[Endpoint]) -> Result<(), String> {
    match endpoints
        .iter()
        .find(|e| e.socket_type() != SocketType::Stream)
    {
        Some(e) => Err(format!(
            "app-server speaks over a stream: tcp://HOST:PORT or unix:PATH, not {e}"
        )),
        None => Ok(()),
    }
}

/// The app-server's last line: what it served.
fn app_summary(stats: &app::server::AppStats, started: Instant) -> String {
    format!(
        "served {} connection{}, sent {} bytes in {}{}",
        stats.connections,
        if stats.connections == 1 { "" } else { "s" },
        stats.bytes_sent,
        text::duration(started.elapsed()),
        cut_off_note(stats.cut_off),
    )
}

/// `app-server --inetd`: the connection on stdin (or the listening socket
/// inetd's `wait` mode passes there). The summary is logged.
fn app_inetd(
    args: &AppServerArgs,
    options: &ListenOptions,
    config: app::server::AppServerConfig,
    activated: Option<Activated>,
) -> anyhow::Result<ExitCode> {
    let stdin = activation::take_stdin(options)?;
    close_activated_for_inetd(activated, &stdin)?;
    let started = Instant::now();
    let stats = match stdin {
        Stdin::NotASocket => usage_error(
            "app-server --inetd serves a socket on stdin (inetd, or systemd's Accept=yes with \
             StandardInput=socket, pass one); stdin is a pipe, a file or a terminal: to try the \
             server by hand, run `echokit app-server` and `echokit app-client`"
                .into(),
        ),
        Stdin::Socket(Inherited::Connection(stream, peer)) => {
            become_user(args.service.user.as_deref())?;
            let shutdown = Shutdown::new();
            watch_signals(shutdown.clone())?;
            app::inetd::serve_connection(stream, peer, config, &shutdown)?
        }
        Stdin::Socket(Inherited::Listener(listener)) => {
            if let Err(msg) = streams_only(std::slice::from_ref(listener.endpoint())) {
                usage_error(msg);
            }
            become_user(args.service.user.as_deref())?;
            let shutdown = Shutdown::new();
            watch_signals(shutdown.clone())?;
            tracing::info!("listening on {} (from stdin)", listener.endpoint());
            app::server::run(vec![listener], config, &shutdown)?
        }
    };
    tracing::info!("{}", app_summary(&stats, started));
    Ok(ExitCode::Success)
}

/// The summary's note on connections the grace period cut off, if any.
fn cut_off_note(cut_off: u64) -> String {
    if cut_off > 0 {
        format!(", {cut_off} cut off at the end of the grace period")
    } else {
        String::new()
    }
}

fn bench(args: BenchArgs) -> anyhow::Result<ExitCode> {
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
    let cells = compare::Cell::grid(&args.connections, &args.size, &args.depth);
    let base = BenchConfig {
        target: targets[0].clone(),
        connections: cells[0].connections,
        sizes: cells[0].size,
        depth: cells[0].depth,
        stop: args.count.map_or(Stop::After(args.duration), Stop::Count),
        warmup: args.warmup,
        rate: args.rate,
        churn: args.churn,
        workload,
        connect_rate: args.connect_rate,
        connect_timeout: args.connect_timeout,
        timeout: args.timeout.unwrap_or(if datagram {
            bench::DEFAULT_DATAGRAM_TIMEOUT
        } else {
            bench::DEFAULT_STREAM_TIMEOUT
        }),
        bind: args.bind.clone().map(|b| b.0).unwrap_or_default(),
        threads: args.threads,
        cpus: args.cpu.clone(),
        max_loss: args.max_loss,
        interval: args.interval,
    };
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
                    bench::report::us(report.latency_us.p99),
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

    let mut passed = true;
    for cell in &cells {
        let report = run_one(&cell.apply(&base), &args, &shutdown)?;
        passed &= report.passed;
        if shutdown.is_requested() {
            break;
        }
    }
    Ok(if passed {
        ExitCode::Success
    } else {
        ExitCode::Failures
    })
}

/// One run: progress on a terminal, the report on stdout, the HTML page.
fn run_one(
    cfg: &BenchConfig,
    args: &BenchArgs,
    shutdown: &Shutdown,
) -> anyhow::Result<bench::Report> {
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
        let mut value = serde_json::to_value(&report).context("cannot serialise the report")?;
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
        std::fs::write(path, report.html(cfg))
            .with_context(|| format!("cannot write the report to {}", path.display()))?;
        if !(args.json || args.ndjson) {
            println!("  report       {}", path.display());
        }
    }
    Ok(report)
}

/// `echokit sockets`: the table once, or again every --watch interval.
fn sockets(args: SocketsArgs) -> anyhow::Result<ExitCode> {
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
fn probe(args: ProbeArgs) -> anyhow::Result<ExitCode> {
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
    let connect = ConnectOptions {
        bind: args.bind,
        source_port: args.source_port,
        ..ConnectOptions::default()
    };
    let probes = match probe::resolve(&targets, &connect) {
        Ok(probes) => probes,
        Err(e) => usage_error(e.to_string()),
    };
    let cfg = probe::Config {
        timeout: args.timeout,
        concurrency: args.concurrency as usize,
        connect,
        count: args.count,
        interval: args.interval(),
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
fn resolve(args: ResolveArgs) -> anyhow::Result<ExitCode> {
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
