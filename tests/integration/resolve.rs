//! `echokit resolve` against the system resolver, as Python's socket module
//! sees it: the same lists, in the same order, from the same calls.

use serde_json::Value;

use crate::util::{assert_stderr_has, echokit_run, python, run, text};

/// Runs a Python program that prints one JSON value, and returns it.
fn python_json(program: &str, args: &[&str]) -> Value {
    let mut cmd = python();
    cmd.arg("-c").arg(program).args(args);
    let out = run(cmd, b"");
    assert!(out.status.success(), "python: {}", text(&out.stderr));
    serde_json::from_slice(&out.stdout).expect("python prints JSON")
}

/// `echokit resolve ARGS --json`: its exit code and its JSON.
fn resolve_json(args: &[&str]) -> (Option<i32>, Value, String) {
    let mut all = vec!["resolve", "--json"];
    all.extend_from_slice(args);
    let out = echokit_run(&all);
    let json = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", text(&out.stdout)));
    (out.status.code(), json, text(&out.stderr))
}

/// Python's `socket.getaddrinfo(host, service)` for each `HOST SERVICE`
/// pair of argv, as [family, type, proto, address, port] lists.
const GETADDRINFO: &str = r#"
import json, socket, sys
args = sys.argv[1:]
out = {}
for host, service in zip(args[::2], args[1::2]):
    service = None if service == "-" else service
    out[f"{host} {service}"] = [
        [f.name, t.name, proto, addr[0], addr[1]]
        for f, t, proto, _, addr in socket.getaddrinfo(host, service)
    ]
out["gethostname"] = socket.gethostname()
out["gethostbyname"] = socket.gethostbyname("localhost")
out["http"] = socket.getservbyname("http")
print(json.dumps(out))
"#;

/// echokit's list of one name, in Python's shape.
fn entries(name: &Value) -> Vec<Value> {
    name["addresses"]
        .as_array()
        .expect("an address list")
        .iter()
        .map(|a| {
            serde_json::json!([
                a["family"],
                a["type"],
                a["protocol"],
                a["address"],
                a["port"]
            ])
        })
        .collect()
}

#[test]
fn resolve_lists_what_pythons_getaddrinfo_lists_in_order() {
    // (NAME for echokit, host and service for Python)
    let cases = [
        ("localhost", "localhost", "-"),
        ("localhost:http", "localhost", "http"),
        ("localhost:8080", "localhost", "8080"),
        ("127.0.0.1", "127.0.0.1", "-"),
        ("::1", "::1", "-"),
    ];
    let mut py_args = Vec::new();
    for (_, host, service) in cases {
        py_args.extend([host, service]);
    }
    let py = python_json(GETADDRINFO, &py_args);
    let names: Vec<&str> = cases.iter().map(|c| c.0).collect();
    let (code, json, err) = resolve_json(&names);
    assert_eq!(code, Some(0), "stderr: {err}");
    assert_eq!(json["hostname"], py["gethostname"], "gethostname()");
    for (i, (name, host, service)) in cases.iter().enumerate() {
        let ours = &json["names"][i];
        assert_eq!(ours["name"], *name);
        let service = if *service == "-" { "None" } else { service };
        let theirs = py[format!("{host} {service}")]
            .as_array()
            .expect("a Python list")
            .clone();
        assert!(!theirs.is_empty());
        assert_eq!(entries(ours), theirs, "{name}: echokit vs Python");
    }
    assert_eq!(json["names"][0]["gethostbyname"], py["gethostbyname"]);
    // localhost:http is port 80, as Python's getservbyname says.
    assert_eq!(py["http"], 80);
    assert_eq!(json["names"][1]["service"]["port"], 80);
    assert_eq!(json["names"][1]["service"]["name"], "http");
    assert!(entries(&json["names"][1]).iter().all(|e| e[4] == 80));
    // An IPv6 address has no IPv4 address for gethostbyname.
    assert_eq!(json["names"][4]["gethostbyname"], Value::Null);
    assert!(json["why_it_can_differ"].as_array().unwrap().len() >= 3);
    assert!(json["resolver"]["sources"].is_array());
}

#[test]
fn reverse_gives_pythons_gethostbyaddr_name() {
    let py = python_json(
        r#"
import json, socket
try:
    print(json.dumps(socket.gethostbyaddr("127.0.0.1")[0]))
except OSError:
    print("null")
"#,
        &[],
    );
    let (code, json, err) = resolve_json(&["--reverse", "127.0.0.1"]);
    let reverse = &json["names"][0]["reverse"][0];
    assert_eq!(reverse["address"], "127.0.0.1");
    assert_eq!(reverse["name"], py, "getnameinfo vs Python's gethostbyaddr");
    if py.is_null() {
        // No name here: for an IP address, that is the failure it reports.
        assert_eq!(code, Some(5), "{err}");
        assert!(err.contains("no name for 127.0.0.1"), "{err}");
    } else {
        assert_eq!(code, Some(0), "{err}");
    }
}

#[test]
fn a_name_that_cannot_exist_exits_unreachable_with_the_cause() {
    // RFC 6761: .invalid never resolves. Python says how the resolver failed.
    let py = python_json(
        r#"
import json, socket
try:
    socket.getaddrinfo("no-such-host.invalid", None)
    print(json.dumps("resolved"))
except socket.gaierror as e:
    print(json.dumps(e.errno))
"#,
        &[],
    );
    // A generous timeout: a resolver without network gives up by itself first.
    let out = echokit_run(&["resolve", "--timeout", "15s", "no-such-host.invalid"]);
    assert_eq!(out.status.code(), Some(5), "{}", text(&out.stderr));
    assert_stderr_has(&out, "`no-such-host.invalid`");
    if py == -2 {
        // EAI_NONAME, the answer of a resolver that works.
        assert_stderr_has(
            &out,
            "does not resolve: it is not in /etc/hosts and DNS has no record of it",
        );
    }
    let stdout = text(&out.stdout);
    assert!(stdout.contains("not resolved"), "{stdout}");
}

#[test]
fn several_names_report_each_and_exit_with_the_first_failure() {
    let (code, json, err) = resolve_json(&[
        "localhost",
        "no-such-host.invalid",
        "localhost:no-such-service",
    ]);
    assert_eq!(code, Some(5), "{err}");
    let names = json["names"].as_array().unwrap();
    assert_eq!(names.len(), 3);
    assert_eq!(names[0]["error"], Value::Null);
    assert_eq!(names[1]["exit_code"], 5);
    assert_eq!(names[2]["exit_code"], 2);
    assert_eq!(err.lines().count(), 2, "one line per failure: {err}");
}

#[test]
fn an_unknown_service_is_a_usage_error_that_says_so() {
    let py = python_json(
        r#"
import json, socket
try:
    print(json.dumps(socket.getservbyname("no-such-service")))
except OSError:
    print("null")
"#,
        &[],
    );
    assert!(py.is_null(), "Python knows no-such-service: {py}");
    let out = echokit_run(&["resolve", "localhost:no-such-service"]);
    assert_eq!(out.status.code(), Some(2));
    assert_stderr_has(&out, "unknown service `no-such-service`");
    assert_stderr_has(&out, "give a port number instead (as in localhost:80)");
}

#[test]
fn the_text_report_names_each_call() {
    let out = echokit_run(&["resolve", "localhost:http"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(
        out.stderr.is_empty(),
        "quiet on success: {}",
        text(&out.stderr)
    );
    let stdout = text(&out.stdout);
    for needle in [
        "host name",
        "gethostname()",
        "localhost:http\n",
        "http = port 80 (tcp)",
        "gethostbyname",
        "in the resolver's order, as Python's socket.getaddrinfo",
        "SOCK_STREAM",
        ":80\n",
        "why it can differ",
        "/etc/nsswitch.conf",
        "RFC 6724",
    ] {
        assert!(stdout.contains(needle), "lacks {needle:?}:\n{stdout}");
    }
}

#[test]
fn bad_usage_exits_2() {
    for (args, needle) in [
        (&["resolve"][..], "required"),
        (
            &["resolve", "bad host"][..],
            "`bad host` is not a host name",
        ),
        (&["resolve", "2001:db8::1:http"][..], "needs brackets"),
        (&["resolve", "localhost:99999"][..], "`99999` is not a port"),
        (
            &["resolve", "--timeout", "0", "localhost"][..],
            "no time at all",
        ),
    ] {
        let out = echokit_run(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert_stderr_has(&out, needle);
    }
}

#[test]
fn an_absurd_timeout_means_no_limit_not_a_panic() {
    // Regression: the deadline was `Instant::now() + --timeout`, which
    // overflows (and panics) for a timeout of centuries.
    let out = echokit_run(&["resolve", "--timeout", "1e19", "127.0.0.1"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("127.0.0.1\n"),
        "{}",
        text(&out.stdout)
    );
}
