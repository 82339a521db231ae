//! `--trace-calls`: the socket calls of a real run, in the socket guide's
//! order, on the servers and the clients.

use std::io::{Read, Write};
use std::net::Shutdown;

use crate::util::{LIMIT, Server, connect, echokit_run, text};

/// The trace lines of some stderr, without their explanations.
fn calls(stderr: &[String]) -> Vec<String> {
    stderr
        .iter()
        .filter(|l| !l.contains(" INFO ") && !l.contains(" WARN ") && !l.contains(" DEBUG "))
        .map(|l| l.split("  # ").next().unwrap_or(l).trim_end().to_string())
        .collect()
}

/// Asserts that `want` appear in `got` in this order (other lines may come between).
fn in_order(got: &[String], want: &[String]) {
    let mut at = 0;
    for line in want {
        match got[at..].iter().position(|g| g == line) {
            Some(i) => at += i + 1,
            None => panic!(
                "no {line:?} after line {at} of the trace:\n{}",
                got.join("\n")
            ),
        }
    }
}

/// The number after `prefix` in the first line that starts with it.
fn number_after(lines: &[String], prefix: &str) -> i32 {
    let line = lines
        .iter()
        .find(|l| l.starts_with(prefix))
        .unwrap_or_else(|| panic!("no line starting {prefix:?} in\n{}", lines.join("\n")));
    let rest = &line[prefix.len()..];
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().unwrap()
}

/// A server trace's listening socket and the first one it accepted.
fn listener_and_accepted(trace: &[String]) -> (i32, i32) {
    let l = number_after(trace, "listen(");
    (l, number_after(trace, &format!("accept({l}) = ")))
}

#[test]
fn the_echo_server_traces_the_guides_sequence() {
    let mut server = Server::start(&["--trace-calls", "--once", "127.0.0.1:0"], 1);
    let addr = server.addr();
    let mut client = connect(addr);
    client.write_all(b"Hello, world").unwrap();
    client.shutdown(Shutdown::Write).unwrap();
    client.set_read_timeout(Some(LIMIT)).unwrap();
    let mut echo = Vec::new();
    client.read_to_end(&mut echo).unwrap();
    assert_eq!(echo, b"Hello, world");
    let client_addr = client.local_addr().unwrap();
    drop(client);
    assert_eq!(server.wait().code(), Some(0));

    let trace = calls(&server.rest_of_stderr());
    let (l, c) = listener_and_accepted(&trace);
    in_order(
        &trace,
        &[
            format!("socket(AF_INET, SOCK_STREAM) = {l}"),
            format!("setsockopt({l}, SO_REUSEADDR, 1)"),
            format!("bind({l}, 127.0.0.1:0)"),
            format!("listen({l}, 1024)"),
            format!("accept({l}) = {c} from {client_addr}"),
            format!("recv({c}, 65536) = 12"),
            format!("send({c}, 12) = 12"),
            format!("recv({c}, 65536) = 0 (peer closed)"),
            format!("shutdown({c}, SHUT_WR)"),
            format!("close({c})"),
        ],
    );
    // --once closes the listener after its one accept.
    in_order(
        &trace,
        &[
            format!("accept({l}) = {c} from {client_addr}"),
            format!("close({l})"),
        ],
    );
}

#[test]
fn the_echo_client_traces_its_connect_and_exchange() {
    let server = Server::start(&["127.0.0.1:0"], 1);
    let addr = server.addr();
    let out = echokit_run(&["echo-client", "--trace-calls", &addr.to_string()]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "Received b'Hello, world'\n");
    let lines: Vec<String> = text(&out.stderr).lines().map(String::from).collect();
    let trace = calls(&lines);
    let s = number_after(&trace, "socket(AF_INET, SOCK_STREAM) = ");
    in_order(
        &trace,
        &[
            format!("socket(AF_INET, SOCK_STREAM) = {s}"),
            format!("connect({s}, {addr}) = -1 EINPROGRESS (Operation now in progress)"),
            format!("getsockopt({s}, SO_ERROR) = 0"),
            format!("send({s}, 12) = 12"),
            format!("recv({s}, 12) = 12"),
            format!("shutdown({s}, SHUT_WR)"),
            format!("recv({s}, 65536) = 0 (peer closed)"),
            format!("close({s})"),
        ],
    );
    // The first appearance of a call says what it means.
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("socket(") && l.contains("# a new socket")),
        "{lines:#?}"
    );
}

#[test]
fn the_app_server_and_client_trace_a_request() {
    let mut server = Server::spawn(
        {
            let mut cmd = crate::util::echokit();
            cmd.args(["app-server", "--trace-calls", "127.0.0.1:0"]);
            cmd
        },
        1,
    );
    let addr = server.addr().to_string();
    let out = echokit_run(&["app-client", "--trace-calls", &addr, "search", "morpheus"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let lines: Vec<String> = text(&out.stderr).lines().map(String::from).collect();
    let trace = calls(&lines);
    let s = number_after(&trace, "socket(AF_INET, SOCK_STREAM) = ");
    let request = trace
        .iter()
        .find_map(|l| l.strip_prefix(&format!("send({s}, ")))
        .expect("the client sends its request");
    let sent: usize = request.split(')').next().unwrap().parse().unwrap();
    in_order(
        &trace,
        &[
            format!("connect({s}, {addr}) = -1 EINPROGRESS (Operation now in progress)"),
            format!("send({s}, {sent}) = {sent}"),
            format!("close({s})"),
        ],
    );
    assert!(
        trace
            .iter()
            .any(|l| l.starts_with(&format!("recv({s}, 65536) = "))),
        "{trace:#?}"
    );

    server.signal(libc::SIGTERM);
    assert_eq!(server.wait().code(), Some(0));
    let trace = calls(&server.rest_of_stderr());
    let (l, c) = listener_and_accepted(&trace);
    in_order(
        &trace,
        &[
            format!("recv({c}, 65536) = {sent}"),
            format!("close({c})"),
            format!("close({l})"),
        ],
    );
    assert!(
        trace.iter().any(|l| l.starts_with(&format!("send({c}, "))),
        "{trace:#?}"
    );
}

#[test]
fn without_the_flag_nothing_is_traced() {
    let server = Server::start(&["127.0.0.1:0"], 1);
    let out = echokit_run(&["echo-client", &server.addr().to_string()]);
    assert!(out.status.success());
    assert_eq!(text(&out.stderr), "");
}

#[test]
fn the_udp_echo_server_traces_its_batches() {
    let mut server = Server::start(&["--trace-calls", "udp://127.0.0.1:0"], 1);
    let client = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    client.set_read_timeout(Some(LIMIT)).unwrap();
    client.send_to(b"Hello, world", server.addr()).unwrap();
    let mut buf = [0; 64];
    let (n, _) = client.recv_from(&mut buf).unwrap();
    assert_eq!(&buf[..n], b"Hello, world");
    server.signal(libc::SIGTERM);
    assert_eq!(server.wait().code(), Some(0));

    let trace = calls(&server.rest_of_stderr());
    let s = number_after(&trace, "socket(AF_INET, SOCK_DGRAM) = ");
    let from = client.local_addr().unwrap();
    in_order(
        &trace,
        &[
            format!("bind({s}, 127.0.0.1:0)"),
            format!("recvmmsg({s}, 32) = 1"),
            format!("    12 bytes from {from}"),
            format!("sendmmsg({s}, 1) = 1"),
        ],
    );
}

/// The README's `$ COMMAND` console blocks of the `--trace-calls` section,
/// each as its command and its lines.
fn readme_trace_examples() -> Vec<(String, Vec<String>)> {
    let readme = include_str!("../../README.md");
    let section = readme
        .split("### Watching the socket calls")
        .nth(1)
        .expect("the README has a --trace-calls section");
    let section = section.split("\n#").next().unwrap_or(section);
    section
        .split("```console\n")
        .skip(1)
        .map(|block| {
            let block = block.split("```").next().unwrap_or(block);
            let mut lines = block.lines().map(str::to_string);
            let command = lines.next().expect("a command line first");
            (command, lines.collect())
        })
        .collect()
}

/// A line as the README and a run may differ in it: ports, times and the
/// spaces that align the explanations.
fn normalised(line: &str) -> String {
    let mut out = String::new();
    let mut words = line.split_whitespace().peekable();
    while let Some(word) = words.next() {
        let word = match word.rsplit_once("127.0.0.1:") {
            Some((before, port)) if port.starts_with(|c: char| c.is_ascii_digit()) => {
                let rest = port.trim_start_matches(|c: char| c.is_ascii_digit());
                format!("{before}127.0.0.1:PORT{rest}")
            }
            _ => word.to_string(),
        };
        let is_time = words
            .peek()
            .is_some_and(|unit| ["µs", "ms", "s", "s:", "ms:", "µs:"].contains(unit));
        if is_time && word.parse::<f64>().is_ok() {
            out.push_str("TIME ");
            let unit = words.next().unwrap();
            out.push_str(if unit.ends_with(':') {
                "UNIT: "
            } else {
                "UNIT "
            });
        } else {
            out.push_str(&word);
            out.push(' ');
        }
    }
    out.trim_end().to_string()
}

/// Whether a traced call found nothing to do yet (`EAGAIN`): whether it
/// happens depends on timing (an echo already there, or not), so such lines
/// come and go from run to run, in the README's example too.
fn is_timing(line: &str) -> bool {
    line.contains(" = -1 EAGAIN ")
}

/// Splits a README block as a terminal interleaves it: the socket calls
/// (stderr, with the explanations' `#` and a batch's indented lines) and the
/// rest (stdout: `listening on`, the summary, the echo).
fn calls_and_rest(lines: &[String]) -> (Vec<String>, Vec<String>) {
    let is_call = |l: &&String| {
        l.starts_with("    ")
            || l.split_once('(').is_some_and(|(name, _)| {
                !name.is_empty()
                    && name
                        .chars()
                        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
            })
    };
    let (calls, rest): (Vec<&String>, Vec<&String>) =
        lines.iter().filter(|l| !is_timing(l)).partition(is_call);
    let calls: Vec<String> = calls.into_iter().map(|l| normalised(l)).collect();
    let rest = rest.into_iter().map(|l| normalised(l)).collect();
    (fds_renamed(&calls), rest)
}

/// The descriptors of a trace named by their order of appearance (`fd1`,
/// `fd2`, ...): a descriptor the test's environment leaves open (a
/// jobserver's pipe) shifts every number by one, but not which call used
/// which socket.
fn fds_renamed(lines: &[String]) -> Vec<String> {
    let mut seen: Vec<String> = Vec::new();
    let mut name = |fd: &str| {
        let i = seen.iter().position(|s| s == fd).unwrap_or_else(|| {
            seen.push(fd.to_string());
            seen.len() - 1
        });
        format!("fd{}", i + 1)
    };
    let digits = |s: &str| -> String { s.chars().take_while(char::is_ascii_digit).collect() };
    lines
        .iter()
        .map(|line| {
            let Some((call, args)) = line.split_once('(') else {
                return line.clone();
            };
            let first = digits(args);
            let mut out = if first.is_empty() {
                line.clone()
            } else {
                format!("{call}({}{}", name(&first), &args[first.len()..])
            };
            // What socket() and accept() return is a descriptor too.
            if (call == "socket" || call == "accept")
                && let Some((head, result)) = out.clone().split_once(") = ")
            {
                let fd = digits(result);
                if !fd.is_empty() {
                    out = format!("{head}) = {}{}", name(&fd), &result[fd.len()..]);
                }
            }
            out
        })
        .collect()
}

#[test]
fn the_readme_trace_examples_are_a_real_run() {
    let examples = readme_trace_examples();
    let [(server_cmd, server_lines), (client_cmd, client_lines)] = &examples[..] else {
        panic!("expected the server's and the client's example, got {examples:#?}");
    };
    assert_eq!(server_cmd, "$ echokit echo-server --trace-calls --once -q");
    assert_eq!(client_cmd, "$ echokit echo-client --trace-calls");
    // The README's commands on the guide's port; here on a free one.
    let mut server = Server::start(&["--trace-calls", "--once", "-q", "127.0.0.1:0"], 1);
    let port = server.addr().to_string();
    let client = echokit_run(&["echo-client", "--trace-calls", &port]);
    assert_eq!(client.status.code(), Some(0), "{}", text(&client.stderr));
    assert_eq!(server.wait().code(), Some(0));

    let listening = format!("listening on tcp://{}", server.addr());
    let mut server_out = vec![listening];
    server_out.extend(server.rest_of_stdout());
    let server_run: Vec<String> = server_out.iter().map(|l| normalised(l)).collect();
    let server_calls: Vec<String> = server
        .rest_of_stderr()
        .iter()
        .filter(|l| !is_timing(l))
        .map(|l| normalised(l))
        .collect();
    let server_calls = fds_renamed(&server_calls);
    let (readme_calls, readme_rest) = calls_and_rest(server_lines);
    assert_eq!(readme_calls, server_calls, "the server's calls");
    assert_eq!(readme_rest, server_run, "the server's stdout");

    let stdout: Vec<String> = text(&client.stdout).lines().map(normalised).collect();
    let stderr: Vec<String> = text(&client.stderr)
        .lines()
        .filter(|l| !is_timing(l))
        .map(normalised)
        .collect();
    let stderr = fds_renamed(&stderr);
    let (readme_calls, readme_rest) = calls_and_rest(client_lines);
    assert_eq!(readme_calls, stderr, "the client's calls");
    assert_eq!(readme_rest, stdout, "the client's stdout");
}
