//! `echo-client` (messages, many connections, stdin streamed, over streams
//! or datagrams) and `app-client`: flags to options, the exchange, and the
//! lines they print.

use std::time::Instant;

use signal_hook::consts::{SIGINT, SIGTERM};

use super::failure::{Context, Outcome};
use super::{say, usage_error};
use crate::cli::{AppClientArgs, ClientTarget, EchoClientArgs};
use echokit::app::client::{AppClientOptions, AppError};
use echokit::app::{self, Response};
use echokit::echo::client::{self, ClientError, ClientOptions, Plan};
use echokit::echo::datagram_client::{self, DatagramClient, DatagramOptions};
use echokit::echo::stream;
use echokit::endpoint::SocketType;
use echokit::exit::ExitCode;
use echokit::net::{self, ConnectOptions};
use echokit::{os, text};

/// What the guide's client sends.
const HELLO: &str = "Hello, world";

/// What the client sends in message mode.
fn messages(args: &EchoClientArgs) -> Outcome<Vec<Vec<u8>>> {
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
fn remove_on_signal(path: std::path::PathBuf) -> Outcome<()> {
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

pub(crate) fn echo_client(args: EchoClientArgs) -> Outcome<ExitCode> {
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
        // Always: an echo client that prints a changed echo and exits 0
        // hides the one thing it is for.
        verify: true,
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
    // A changed echo is printed all the same, then failed.
    let differs = match conn.outcome {
        Err(e @ ClientError::Mismatch { .. }) => Some(e),
        other => {
            other?;
            None
        }
    };
    print_echo(
        &args,
        &plan.messages,
        conn.received,
        conn.first_difference,
        &conn.echo,
    )?;
    match differs {
        Some(e) => Err(e.into()),
        None => Ok(ExitCode::Success),
    }
}

/// Prints a one-connection echo: `Received b'...'` per message, or how a
/// file's echo compares.
fn print_echo(
    args: &EchoClientArgs,
    messages: &[Vec<u8>],
    received: u64,
    first_difference: Option<u64>,
    echo: &[u8],
) -> Outcome<()> {
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
        return Ok(());
    }
    let mut echo = echo;
    for message in messages {
        let (this, rest) = echo.split_at(message.len().min(echo.len()));
        say(format_args!("Received {}", text::py_bytes_repr(this)))?;
        echo = rest;
    }
    Ok(())
}

/// The client over UDP or a Unix datagram socket.
fn datagram_echo_client(
    args: &EchoClientArgs,
    target: &ClientTarget,
    connect: &ConnectOptions,
) -> Outcome<ExitCode> {
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
    print_echo(args, &messages, echo.len() as u64, None, &echo)?;
    Ok(ExitCode::Success)
}

/// The guide's application client.
pub(crate) fn app_client(args: AppClientArgs) -> Outcome<ExitCode> {
    let (endpoint, action, value) = args.request().unwrap_or_else(|msg| usage_error(msg));
    if endpoint.socket_type() != SocketType::Stream {
        usage_error(format!(
            "app-client speaks over a stream: tcp://HOST:PORT or unix:PATH, not {endpoint}"
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
    let request = app::request(action, value);
    let (response, server) = app::client::exchange(&endpoint, &request, &opts)?;
    let decoded = Response::of(&response).map_err(|source| AppError::BadContent {
        server: server.clone(),
        source,
    })?;
    tracing::info!(
        "received a {} response of {} bytes from {server}",
        echokit::text::py_escape_unprintable(&response.header.content_type),
        response.content.len()
    );
    if args.json {
        say(decoded.json(&response.header, &server))?;
    } else {
        say(decoded.line(args.raw))?;
    }
    Ok(ExitCode::Success)
}
