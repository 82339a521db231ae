//! The exit-code matrix: every client command meets the same failures and
//! exits with the README's code for each (refused 3, timed out 4,
//! unresolved 5, usage 2), so a script can tell them apart whichever
//! command it runs.

use crate::util::{echokit_run, refusing, silent, text};

/// The commands, each as it is run against `endpoint`, its connect timeout
/// 300 ms where one applies.
fn commands(endpoint: &str) -> Vec<Vec<String>> {
    let short = |args: &[&str]| -> Vec<String> {
        args.iter().map(std::string::ToString::to_string).collect()
    };
    vec![
        short(&["echo-client", endpoint, "--connect-timeout", "300ms"]),
        short(&[
            "app-client",
            endpoint,
            "search",
            "morpheus",
            "--connect-timeout",
            "300ms",
        ]),
        short(&[
            "bench",
            endpoint,
            "--duration",
            "300ms",
            "--warmup",
            "0s",
            "--connect-timeout",
            "300ms",
        ]),
        short(&["probe", endpoint, "--timeout", "300ms"]),
    ]
}

fn assert_each_exits(endpoint: &str, code: i32, why: &str) {
    for args in commands(endpoint) {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = echokit_run(&args);
        assert_eq!(
            out.status.code(),
            Some(code),
            "{why}: echokit {}\nstdout: {}\nstderr: {}",
            args.join(" "),
            text(&out.stdout),
            text(&out.stderr)
        );
    }
}

#[test]
fn refused_exits_3_from_every_client() {
    let (_holder, addr) = refusing();
    assert_each_exits(&addr.to_string(), 3, "refused");
}

#[test]
fn timed_out_exits_4_from_every_client() {
    let (_held, addr) = silent();
    assert_each_exits(&addr.to_string(), 4, "timed out");
}

#[test]
fn unresolved_exits_5_from_every_client() {
    // RFC 6761: .invalid never resolves.
    assert_each_exits("no-such-host.invalid:65432", 5, "unresolved");
}

#[test]
fn usage_errors_exit_2_from_every_client() {
    for command in ["echo-client", "app-client", "bench", "probe"] {
        let out = echokit_run(&[command, "--no-such-flag"]);
        assert_eq!(
            out.status.code(),
            Some(2),
            "{command}: {}",
            text(&out.stderr)
        );
    }
    // A bad endpoint is a usage error too.
    assert_each_exits("127.0.0.1:99999", 2, "a port out of range");
}

#[test]
fn a_usage_error_found_by_a_command_shows_that_commands_usage() {
    for (args, usage) in [
        (
            &["probe", "127.0.0.1:9000-8000"][..],
            "Usage: echokit probe [OPTIONS] TARGET...",
        ),
        (
            &["bench", "127.0.0.1:1", "127.0.0.1:2"][..],
            "Usage: echokit bench [OPTIONS] [ENDPOINT]",
        ),
        (
            &["app-client", "127.0.0.1:1", "search"][..],
            "Usage: echokit app-client",
        ),
    ] {
        let out = echokit_run(args);
        let err = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains(usage), "{args:?}: {err}");
    }
}

#[test]
fn log_format_json_writes_usage_errors_as_objects_too() {
    // One found by clap, in both spellings of the flag, and one found by
    // the command itself.
    for args in [
        &["--log-format", "json", "bench", "--no-such-flag"][..],
        &["probe", "--log-format=json", "127.0.0.1:9000-8000"][..],
    ] {
        let out = echokit_run(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let err = text(&out.stderr);
        let lines: Vec<&str> = err.lines().collect();
        assert_eq!(lines.len(), 1, "one object: {err}");
        let object: serde_json::Value = serde_json::from_str(lines[0]).expect("a JSON object");
        assert_eq!(object["level"], "ERROR", "{err}");
        assert!(
            object["message"]
                .as_str()
                .unwrap()
                .contains("Usage: echokit "),
            "{err}"
        );
    }
}
