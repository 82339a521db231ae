//! Every error variant of the library against the README's exit-code table:
//! each gets a sample, its code is checked, and that code's row in the
//! README must say what `--help` says.
//!
//! Each enum is named through an exhaustive match below (`variants!`), so a
//! new variant does not compile until it is listed here, and the test fails
//! until it has a sample.

use std::collections::BTreeSet;
use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use super::{Classify, ExitCode};
use crate::Endpoint;
use crate::app::client::AppError;
use crate::app::service::ContentError;
use crate::app::table::TableError;
use crate::bench::BenchError;
use crate::echo::client::ClientError;
use crate::endpoint::{ParseError, ResolveError, SocketType};
use crate::net::activation::ActivationError;
use crate::net::connect::ConnectError;
use crate::net::listen::{BindError, Taken};
use crate::os::privileges::PrivilegeError;
use crate::probe::ProbeError;
use crate::probe::target::TargetError;
use crate::proto::DecodeError;
use crate::resolve::name::NameError;
use crate::resolve::{LookupError, ReverseFailure};
use crate::serve::ServerError;
use crate::sockets::SocketsError;

/// `(name of each variant, its names in declaration order)`; the match has
/// no catch-all on purpose.
macro_rules! variants {
    (struct $ty:ident) => {{
        fn name(_: &$ty) -> &'static str {
            stringify!($ty)
        }
        (name as fn(&$ty) -> &'static str, &[stringify!($ty)][..])
    }};
    ($ty:ident: $($v:ident),+ $(,)?) => {{
        fn name(e: &$ty) -> &'static str {
            match e {
                $($ty::$v { .. } => stringify!($v),)+
            }
        }
        (name as fn(&$ty) -> &'static str, &[$(stringify!($v)),+][..])
    }};
}

/// Checks one enum: every variant has a sample, every sample its code.
fn check<E: Classify>(
    ty: &str,
    (name, all): (fn(&E) -> &'static str, &[&str]),
    samples: Vec<(E, ExitCode)>,
    wrong: &mut Vec<String>,
) {
    let mut seen = BTreeSet::new();
    for (sample, expected) in &samples {
        let variant = name(sample);
        seen.insert(variant);
        let got = sample.exit_code();
        if got != *expected {
            wrong.push(format!(
                "{ty}::{variant} exits {} ({}), the table says {} ({})",
                got.code(),
                got.meaning(),
                expected.code(),
                expected.meaning()
            ));
        }
    }
    for variant in all.iter().filter(|v| !seen.contains(*v)) {
        wrong.push(format!("{ty}::{variant} has no sample here"));
    }
}

fn os(errno: i32) -> io::Error {
    io::Error::from_raw_os_error(errno)
}

fn addr() -> SocketAddr {
    "127.0.0.1:80".parse().unwrap()
}

fn endpoint() -> Endpoint {
    "127.0.0.1:65432".parse().unwrap()
}

fn resolve_error() -> ResolveError {
    ResolveError {
        host: "nowhere.invalid".into(),
        reason: "Name or service not known".into(),
    }
}

fn target() -> String {
    "127.0.0.1:65432".into()
}

fn connect_refused() -> ConnectError {
    ConnectError::Refused {
        target: target(),
        tried: vec![addr()],
        over: SocketType::Stream,
        here: None,
    }
}

#[test]
fn every_error_variant_exits_with_its_row_of_the_readme_table() {
    use ExitCode::*;
    let mut wrong = Vec::new();
    check(
        "ConnectError",
        variants!(ConnectError: Refused, TimedOut, Unreachable, NoLocalServer, Denied,
            WrongType, Resolve, LocalBind, FamilyMismatch, Other),
        vec![
            (connect_refused(), Refused),
            (
                ConnectError::TimedOut {
                    target: target(),
                    after: Duration::from_secs(1),
                },
                TimedOut,
            ),
            (
                ConnectError::Unreachable {
                    target: target(),
                    source: os(libc::ENETUNREACH),
                },
                Unreachable,
            ),
            (
                ConnectError::NoLocalServer {
                    target: target(),
                    why: "no socket file",
                },
                Refused,
            ),
            (ConnectError::Denied { target: target() }, PermissionDenied),
            (
                ConnectError::WrongType {
                    target: target(),
                    found: "datagram",
                    hint: String::new(),
                },
                Usage,
            ),
            (ConnectError::Resolve(resolve_error()), Unreachable),
            (
                ConnectError::LocalBind {
                    local: addr(),
                    source: os(libc::EADDRINUSE),
                },
                CannotBind,
            ),
            (
                ConnectError::FamilyMismatch {
                    target: target(),
                    bind: "::1".parse().unwrap(),
                    family: "IPv4",
                },
                Usage,
            ),
            (
                ConnectError::Other {
                    target: target(),
                    source: os(libc::ENOMEM),
                },
                Failures,
            ),
        ],
        &mut wrong,
    );
    check(
        "BindError",
        variants!(BindError: InUse, Permission, NotAvailable, NotASocket, NoDirectory,
            DirectoryDenied, Resolve, Other),
        vec![
            (
                BindError::InUse {
                    at: endpoint(),
                    taken: Taken::Port(SocketType::Stream, addr()),
                    holders: None,
                },
                CannotBind,
            ),
            (
                BindError::Permission {
                    addr: addr(),
                    first_free: 1024,
                },
                CannotBind,
            ),
            (BindError::NotAvailable { addr: addr() }, CannotBind),
            (
                BindError::NotASocket {
                    path: "/tmp/x".into(),
                },
                CannotBind,
            ),
            (
                BindError::NoDirectory {
                    at: endpoint(),
                    dir: "/nowhere".into(),
                },
                CannotBind,
            ),
            (
                BindError::DirectoryDenied {
                    at: endpoint(),
                    dir: "/root".into(),
                },
                CannotBind,
            ),
            (BindError::Resolve(resolve_error()), Unreachable),
            (
                BindError::Other {
                    at: endpoint(),
                    source: os(libc::ENOMEM),
                },
                CannotBind,
            ),
        ],
        &mut wrong,
    );
    check(
        "ActivationError",
        variants!(ActivationError: Environment, NotASocket, Unsupported, Connected, Io),
        vec![
            (ActivationError::Environment(os(libc::EBADF)), Usage),
            (ActivationError::NotASocket { fd: 3 }, Usage),
            (
                ActivationError::Unsupported {
                    fd: 3,
                    what: "a raw socket".into(),
                },
                Usage,
            ),
            (ActivationError::Connected { fd: 3 }, Usage),
            (
                ActivationError::Io {
                    fd: 3,
                    source: os(libc::EBADF),
                },
                Failures,
            ),
        ],
        &mut wrong,
    );
    check(
        "ProbeError",
        variants!(ProbeError: Target, Family, Poll),
        vec![
            (
                ProbeError::Target(TargetError::Endpoint(ParseError::Empty)),
                Usage,
            ),
            (ProbeError::Family(connect_refused()), Usage),
            (ProbeError::Poll(os(libc::ENOMEM)), Failures),
        ],
        &mut wrong,
    );
    let name = || "nowhere.invalid".to_string();
    check(
        "LookupError",
        variants!(LookupError: NoSuchName, NoAddress, TemporaryFailure, ServerFailure,
            UnknownService, TimedOut, NoReverseName, ReverseFailed, System, Hostname),
        vec![
            (LookupError::NoSuchName { name: name() }, Unreachable),
            (LookupError::NoAddress { name: name() }, Unreachable),
            (LookupError::TemporaryFailure { name: name() }, Unreachable),
            (LookupError::ServerFailure { name: name() }, Unreachable),
            (
                LookupError::UnknownService {
                    host: name(),
                    service: "nope".into(),
                },
                Usage,
            ),
            (
                LookupError::TimedOut {
                    name: name(),
                    timeout: Duration::from_secs(5),
                },
                TimedOut,
            ),
            (
                LookupError::NoReverseName {
                    address: addr().ip(),
                },
                Unreachable,
            ),
            (
                LookupError::ReverseFailed {
                    address: addr().ip(),
                    reason: ReverseFailure::NoName,
                },
                Unreachable,
            ),
            (
                LookupError::System {
                    name: name(),
                    reason: "out of memory".into(),
                },
                Failures,
            ),
            (LookupError::Hostname(os(libc::EFAULT)), Failures),
        ],
        &mut wrong,
    );
    check(
        "NameError",
        variants!(NameError: Empty, BadHost, BadIpv6, AfterBracket, UnbracketedIpv6,
            EmptyService, BadPort, BadService),
        vec![
            (NameError::Empty, Usage),
            (NameError::BadHost("a b".into()), Usage),
            (NameError::BadIpv6("[::g]".into()), Usage),
            (NameError::AfterBracket("[::1]x".into()), Usage),
            (NameError::UnbracketedIpv6("::1:80".into()), Usage),
            (NameError::EmptyService("localhost:".into()), Usage),
            (NameError::BadPort("localhost:99999".into()), Usage),
            (NameError::BadService("localhost:a b".into()), Usage),
        ],
        &mut wrong,
    );
    check(
        "SocketsError",
        variants!(SocketsError: Read, Parse, Unsupported),
        vec![
            (SocketsError::Read(os(libc::EACCES)), Failures),
            (SocketsError::Parse("line 3".into()), Failures),
            (SocketsError::Unsupported, Failures),
        ],
        &mut wrong,
    );
    check(
        "ServerError",
        variants!(struct ServerError),
        vec![(ServerError::from(os(libc::ENOMEM)), Failures)],
        &mut wrong,
    );
    check(
        "AppError",
        variants!(AppError: Connect, TimedOut, Malformed, BadContent, Reset, EchoedBack, Io),
        vec![
            (AppError::Connect(connect_refused()), Refused),
            (
                AppError::TimedOut {
                    after: Duration::from_secs(30),
                    stage: "waiting for the response",
                },
                TimedOut,
            ),
            (
                AppError::Malformed {
                    server: endpoint(),
                    source: DecodeError::HeaderNotUtf8 { at: 0 },
                },
                Protocol,
            ),
            (
                AppError::BadContent {
                    server: endpoint(),
                    source: ContentError::NotText("x".into()),
                },
                Protocol,
            ),
            (AppError::Reset(endpoint()), Protocol),
            (AppError::EchoedBack { server: endpoint() }, Protocol),
            (AppError::Io(os(libc::ENOMEM)), Failures),
        ],
        &mut wrong,
    );
    check(
        "TableError",
        variants!(TableError: Read, Format),
        vec![
            (
                TableError::Read {
                    path: "t.json".into(),
                    source: os(libc::ENOENT),
                },
                Usage,
            ),
            (
                TableError::Format {
                    path: "t.json".into(),
                    why: "not an object".into(),
                },
                Usage,
            ),
        ],
        &mut wrong,
    );
    check(
        "ParseError",
        variants!(ParseError: Empty, MissingPort, BadPort, UnbracketedIpv6, BadIpv6, BadHost,
            UnknownScheme, Misspelled, EmptyLocal, LocalTooLong, LocalNul),
        vec![
            (ParseError::Empty, Usage),
            (ParseError::MissingPort("localhost".into()), Usage),
            (ParseError::BadPort("localhost:x".into()), Usage),
            (
                ParseError::UnbracketedIpv6 {
                    input: "::1:80".into(),
                    addr: "::1".into(),
                    port: "80".into(),
                },
                Usage,
            ),
            (ParseError::BadIpv6("[::g]:1".into()), Usage),
            (ParseError::BadHost("a b:1".into()), Usage),
            (ParseError::UnknownScheme("sctp".into()), Usage),
            (
                ParseError::Misspelled {
                    input: "udp:127.0.0.1:7".into(),
                    form: "udp://HOST:PORT",
                    suggestion: "udp://127.0.0.1:7".into(),
                },
                Usage,
            ),
            (ParseError::EmptyLocal("unix:".into()), Usage),
            (
                ParseError::LocalTooLong {
                    name: "x".repeat(200),
                    len: 200,
                    what: "path",
                },
                Usage,
            ),
            (ParseError::LocalNul("unix:a\0b".into()), Usage),
        ],
        &mut wrong,
    );
    check(
        "ResolveError",
        variants!(struct ResolveError),
        vec![(resolve_error(), Unreachable)],
        &mut wrong,
    );
    check(
        "ClientError",
        variants!(ClientError: Connect, TimedOut, Truncated, ClosedEarly, Reset, Surplus,
            Mismatch, Lost, DatagramMismatch, TooBig, PathFailed, Io),
        vec![
            (ClientError::Connect(connect_refused()), Refused),
            (
                ClientError::TimedOut {
                    after: Duration::from_secs(30),
                    received: 0,
                    expected: 12,
                },
                TimedOut,
            ),
            (
                ClientError::Truncated {
                    received: 0,
                    expected: 12,
                },
                Protocol,
            ),
            (ClientError::ClosedEarly { received: 5 }, Protocol),
            (
                ClientError::Reset {
                    received: 0,
                    expected: 12,
                },
                Protocol,
            ),
            (ClientError::Surplus { extra: 3 }, Protocol),
            (ClientError::Mismatch { offset: 0 }, Failures),
            (
                ClientError::Lost {
                    target: target(),
                    tries: 3,
                    wait: Duration::from_secs(1),
                },
                TimedOut,
            ),
            (ClientError::DatagramMismatch { answers: 1 }, Protocol),
            (
                ClientError::TooBig {
                    len: 70_000,
                    max: 65_507,
                    target: target(),
                },
                Usage,
            ),
            (ClientError::PathFailed(os(libc::EHOSTUNREACH)), Unreachable),
            (ClientError::PathFailed(os(libc::ETIMEDOUT)), TimedOut),
            (ClientError::Io(os(libc::ENOMEM)), Failures),
        ],
        &mut wrong,
    );
    let user = || "nobody".to_string();
    check(
        "PrivilegeError",
        variants!(PrivilegeError: UnknownUser, NotRoot, Lookup, Failed, NotDropped),
        vec![
            (PrivilegeError::UnknownUser { name: user() }, Usage),
            (
                PrivilegeError::NotRoot {
                    name: user(),
                    uid: 1000,
                },
                Usage,
            ),
            (
                PrivilegeError::Lookup {
                    name: user(),
                    source: os(libc::EIO),
                },
                Failures,
            ),
            (
                PrivilegeError::Failed {
                    name: user(),
                    step: "setuid",
                    source: os(libc::EPERM),
                },
                Failures,
            ),
            (
                PrivilegeError::NotDropped {
                    name: user(),
                    what: "uid".into(),
                },
                Failures,
            ),
        ],
        &mut wrong,
    );
    check(
        "BenchError",
        variants!(BenchError: Usage, Resolve, Limits, Io),
        vec![
            (BenchError::Usage("--rate".into()), Usage),
            (BenchError::Resolve(resolve_error()), Unreachable),
            (BenchError::Limits("too many".into()), Usage),
            (BenchError::Io(os(libc::ENOMEM)), Failures),
        ],
        &mut wrong,
    );
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn the_readme_table_is_the_help_table() {
    let readme = include_str!("../../README.md");
    let rows: Vec<(u8, &str)> = readme
        .split("\n## Exit codes\n")
        .nth(1)
        .expect("the README has an Exit codes section")
        .lines()
        .filter_map(|l| {
            let cells: Vec<&str> = l.trim_matches('|').split('|').map(str::trim).collect();
            Some((cells.first()?.parse().ok()?, *cells.get(1)?))
        })
        .collect();
    let expected: Vec<(u8, &str)> = ExitCode::ALL
        .iter()
        .map(|c| (c.code(), c.meaning()))
        .collect();
    assert_eq!(rows, expected);
}
