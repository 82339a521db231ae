//! `echo-server` and `app-server`: their flags turned into configs, the
//! sockets to serve (bound, passed by socket activation, or inetd's on
//! stdin), `--user`, the `--metrics` endpoint, and the summary line.

use std::time::Instant;

use super::failure::{Context, Outcome};

use super::{say, usage_error, watch_signals};
use crate::cli::{AppServerArgs, Command, EchoServerArgs};
use echokit::app;
use echokit::echo::server;
use echokit::endpoint::{HostPort, SocketType};
use echokit::exit::ExitCode;
use echokit::metrics::{self, Metrics};
use echokit::net::activation::{self, Activated, ActivationError, Inherited, Stdin};
use echokit::net::{self, ListenOptions, Listener};
use echokit::os::privileges;
use echokit::shutdown::Shutdown;
use echokit::{Endpoint, os, text};

/// Binds `--metrics` (before the servers bind, so a bad address fails
/// before anything is served).
fn bind_metrics(at: Option<&HostPort>) -> Outcome<Option<metrics::http::MetricsListener>> {
    at.map(|at| metrics::http::bind(at).with_context(|| format!("cannot serve --metrics on {at}")))
        .transpose()
}

/// Prints `metrics on http://ADDR/metrics` for each bound address (after
/// the `listening on` lines) and serves the endpoint until the returned
/// handle is dropped.
fn serve_metrics(
    listener: Option<metrics::http::MetricsListener>,
    metrics: &std::sync::Arc<Metrics>,
) -> Outcome<Option<metrics::http::Serving>> {
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

pub(crate) fn echo_server(
    args: EchoServerArgs,
    activated: Result<Option<Activated>, ActivationError>,
) -> Outcome<ExitCode> {
    // Raised first: `--max-conns` defaults to the limit (no log line here,
    // so inetd's stderr is not touched yet).
    let fd_limit = os::raise_fd_limit();
    let (options, config) = args.config(fd_limit);
    if args.server.service.inetd {
        // Before any log line: stderr may be the connection.
        return echo_inetd(&args, &options, &config, activated?);
    }
    if let Some(limit) = fd_limit {
        tracing::debug!("descriptor limit: {limit}");
    }
    let metrics_listener = bind_metrics(args.server.service.metrics.as_ref())?;
    let listeners = listeners(&args.endpoints, &options, activated?, |endpoints| {
        args.check(endpoints)
    })?;
    let shutdown = announce(&listeners, args.server.service.user.as_deref())?;
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
            text::count(stats.datagrams),
            if stats.datagrams == 1 { "" } else { "s" },
            text::count(stats.dropped)
        )
    } else {
        String::new()
    };
    format!(
        "{}{datagrams}, echoed {} in {}{cut}",
        served(stats.connections),
        text::byte_count(stats.bytes_echoed),
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
) -> Outcome<ExitCode> {
    let stdin = activation::take_stdin(options)?;
    close_activated_for_inetd(activated, &stdin)?;
    become_user(args.server.service.user.as_deref())?;
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
) -> Outcome<Vec<Listener>> {
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
fn announce(listeners: &[Listener], user: Option<&str>) -> Outcome<Shutdown> {
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
fn become_user(user: Option<&str>) -> Outcome<()> {
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
pub(crate) fn take_activated(command: &Command) -> Result<Option<Activated>, ActivationError> {
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
fn close_activated_for_inetd(activated: Option<Activated>, stdin: &Stdin) -> Outcome<()> {
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

/// The guide's application server.
pub(crate) fn app_server(
    args: AppServerArgs,
    activated: Result<Option<Activated>, ActivationError>,
) -> Outcome<ExitCode> {
    let fd_limit = os::raise_fd_limit();
    let table = match &args.data {
        Some(path) => app::table::SearchTable::from_file(path)?,
        None => app::SearchTable::default(),
    };
    let (options, config) = args.config(table, fd_limit);
    if args.server.service.inetd {
        return app_inetd(&args, &options, config, activated?);
    }
    let metrics_listener = bind_metrics(args.server.service.metrics.as_ref())?;
    let listeners = listeners(&args.endpoints, &options, activated?, streams_only)?;
    let shutdown = announce(&listeners, args.server.service.user.as_deref())?;
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

/// A summary's start: `served 1 connection`, `served 1,024 connections`.
fn served(connections: u64) -> String {
    let s = if connections == 1 { "" } else { "s" };
    format!("served {} connection{s}", text::count(connections))
}

/// The app-server's last line: what it served.
fn app_summary(stats: &app::server::AppStats, started: Instant) -> String {
    format!(
        "{}, sent {} in {}{}",
        served(stats.connections),
        text::byte_count(stats.bytes_sent),
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
) -> Outcome<ExitCode> {
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
            become_user(args.server.service.user.as_deref())?;
            let shutdown = Shutdown::new();
            watch_signals(shutdown.clone())?;
            app::inetd::serve_connection(stream, peer, config, &shutdown)?
        }
        Stdin::Socket(Inherited::Listener(listener)) => {
            if let Err(msg) = streams_only(std::slice::from_ref(listener.endpoint())) {
                usage_error(msg);
            }
            become_user(args.server.service.user.as_deref())?;
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
