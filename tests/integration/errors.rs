//! The errors a new user met, each reproduced with the message that now
//! says the cause and the fix, and never Rust's `(os error N)`.
//!
//! Tested beside the code they concern: the usage of `probe`, `bench` and
//! `app-client` (`exit_codes`), `app-client` against an echo server and
//! `echo-client` against an app-server or an upper-casing server
//! (`client`, `app`), `bench` against a dead port (`bench`), the port-80
//! permission error (`server::root`, as `nobody`).

use crate::util::{echokit_run, refusing, text, unix, unixgram};

/// Runs `echokit ARGS`, expecting `code`, and returns stderr, which must
/// not show Rust's wording of a system error.
fn fails(args: &[&str], code: i32) -> String {
    let out = echokit_run(args);
    let err = text(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(code),
        "echokit {}: {err}",
        args.join(" ")
    );
    assert!(
        !err.contains("os error"),
        "echokit {}: {err}",
        args.join(" ")
    );
    err
}

#[test]
fn an_ip_scheme_with_one_colon_is_told_the_two_slashes() {
    for (typed, meant) in [
        ("udp:127.0.0.1:5", "udp://127.0.0.1:5"),
        ("tcp:/127.0.0.1:1", "tcp://127.0.0.1:1"),
    ] {
        let err = fails(&["echo-client", typed], 2);
        assert!(err.contains(&format!("did you mean {meant}?")), "{err}");
        assert!(!err.contains("brackets"), "not an IPv6 address: {err}");
    }
}

#[test]
fn a_unix_path_written_as_a_url_is_told_the_one_colon() {
    let err = fails(&["echo-client", "unix://tmp/x.sock"], 2);
    assert!(err.contains("did you mean unix:/tmp/x.sock?"), "{err}");
    assert!(!err.contains("unknown scheme"), "{err}");
}

#[test]
fn a_socket_in_a_missing_directory_names_the_directory_to_create() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("not-yet");
    let path = missing.join("echo.sock");
    for endpoint in [unix(&path), unixgram(&path)] {
        let err = fails(&["echo-server", &endpoint], 6);
        assert!(
            err.contains(&format!(
                "the directory {} does not exist; create it (mkdir -p {})",
                missing.display(),
                missing.display()
            )),
            "{err}"
        );
    }
}

#[test]
fn a_traced_refusal_names_the_errno_in_words() {
    let (_holder, addr) = refusing();
    let err = fails(&["echo-client", "--trace-calls", &addr.to_string()], 3);
    assert!(
        err.contains("SO_ERROR) = ECONNREFUSED (Connection refused)"),
        "{err}"
    );
}
