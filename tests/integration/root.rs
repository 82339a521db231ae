//! The root tier: tests that need root, for a raw socket (a forged source
//! address), a privileged port, or a second user. `.ci/run` runs them as
//! root; run them with `sudo -E cargo test --release -- --ignored root::`.
//!
//! - UDP echo loops: a forged datagram between two UDP endpoints of one
//!   process, and between two processes, ends at once or within the loop
//!   guard's count.
//!
//! The loop and return-path tests print their figures as `RELIABILITY`
//! lines, which `benches/reliability.sh` puts in RELIABILITY.md.
//! - The classic loop ports (7, 19) get no answer.
//! - Unix datagram return paths: a sender running as `nobody` cannot aim
//!   the echo of a root server at a socket it may not write to, by a hard
//!   link or by a symbolic link swapped in and out.

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, SocketAddrV4, UdpSocket};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixDatagram;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use crate::datagram::assert_unanswered;
use crate::reliability::report;
use crate::util::{self, LIMIT, Server};

const NEEDS_ROOT: &str = "needs root";

fn v4(addr: SocketAddr) -> SocketAddrV4 {
    match addr {
        SocketAddr::V4(a) => a,
        SocketAddr::V6(a) => panic!("an IPv4 address, not {a}"),
    }
}

/// Sends one UDP datagram to `to` that claims to come from `from`, through
/// a raw socket (IP_HDRINCL): what an attacker who forges source addresses
/// sends.
fn forge(from: SocketAddr, to: SocketAddr, payload: &[u8]) {
    let (from, to) = (v4(from), v4(to));
    let raw = socket2::Socket::new(
        socket2::Domain::IPV4,
        socket2::Type::RAW,
        Some(socket2::Protocol::from(libc::IPPROTO_RAW)),
    )
    .expect("a raw socket (needs root)");
    let udp_len = 8 + payload.len();
    let total = 20 + udp_len;
    let mut packet = Vec::with_capacity(total);
    // IPv4 header: version 4, 5 words; length; id 0 and the checksum are
    // filled in by the kernel.
    packet.extend_from_slice(&[0x45, 0]);
    packet.extend_from_slice(&(total as u16).to_be_bytes());
    packet.extend_from_slice(&[0, 0, 0x40, 0, 64, libc::IPPROTO_UDP as u8, 0, 0]);
    packet.extend_from_slice(&from.ip().octets());
    packet.extend_from_slice(&to.ip().octets());
    // UDP header; checksum 0: none, as IPv4 allows.
    packet.extend_from_slice(&from.port().to_be_bytes());
    packet.extend_from_slice(&to.port().to_be_bytes());
    packet.extend_from_slice(&(udp_len as u16).to_be_bytes());
    packet.extend_from_slice(&[0, 0]);
    packet.extend_from_slice(payload);
    let dest = SocketAddr::from((*to.ip(), 0));
    let sent = raw
        .send_to(&packet, &dest.into())
        .expect("send the forged datagram");
    assert_eq!(sent, total);
}

/// Datagrams a server answered and dropped, from its summary at exit.
fn datagrams_of(server: &mut Server) -> (u64, u64) {
    server.signal(libc::SIGTERM);
    let summary = server.summary_after_clean_exit();
    let rest = summary
        .split_once(" connections and ")
        .unwrap_or_else(|| panic!("no datagram count in {summary:?}"))
        .1;
    let number = |s: &str| -> u64 {
        // Counts are written with thousands separators: 12,345.
        let digits: String = s
            .chars()
            .take_while(|c| c.is_ascii_digit() || *c == ',')
            .filter(char::is_ascii_digit)
            .collect();
        digits
            .parse()
            .unwrap_or_else(|_| panic!("no number in {summary:?}"))
    };
    let dropped = rest.split_once('(').expect("(N dropped)").1;
    (number(rest), number(dropped))
}

#[test]
#[ignore = "needs root: cargo test --release -- --ignored root::"]
fn a_forged_datagram_between_two_udp_ports_of_one_process_is_never_answered() {
    let mut server = Server::start(&["udp://127.0.0.1:0", "udp://127.0.0.1:0"], 2);
    let (a, b) = (server.addrs[0], server.addrs[1]);
    forge(b, a, b"Hello, loop");
    forge(a, b, b"Hello, loop");
    let line = server.stderr_line("dropped");
    assert!(
        line.contains("from another UDP port this process serves on"),
        "{line}"
    );
    // Both endpoints still answer honest clients.
    assert_unanswered(a, &[]);
    assert_unanswered(b, &[]);
    // The two forged datagrams are the only ones dropped (the honest ones,
    // and any stray datagram from elsewhere on the host, are answered).
    let (answered, dropped) = datagrams_of(&mut server);
    assert_eq!(dropped, 2);
    assert!(answered >= 2, "{answered}");
    report(
        "udp_loop",
        &[
            ("processes", &1),
            ("forged", &2),
            ("a_answered", &0),
            ("b_answered", &0),
            ("ended_ms", &"0"),
            ("logged", &"yes"),
        ],
    );
}

#[test]
#[ignore = "needs root: cargo test --release -- --ignored root::"]
fn a_forged_datagram_between_two_echo_servers_is_a_loop_the_guard_ends() {
    let mut a = Server::start(&["udp://127.0.0.1:0"], 1);
    let mut b = Server::start(&["udp://127.0.0.1:0"], 1);
    let forged_at = std::time::SystemTime::now();
    forge(b.addr(), a.addr(), b"Hello, loop");
    // A counts B's reflections one datagram ahead of B counting A's, so A
    // is the one that mutes.
    let line = a.stderr_line("echoes in a row");
    // When A muted B, by its log's clock (the same clock as this one).
    let muted_at = line
        .split_whitespace()
        .next()
        .and_then(|t| humantime::parse_rfc3339(t).ok())
        .unwrap_or_else(|| panic!("no timestamp in {line:?}"));
    let ended = muted_at.duration_since(forged_at).unwrap_or_default();
    assert!(line.contains(&b.addr().to_string()), "{line}");
    assert!(line.contains("no answers to it for 1 s"), "{line}");
    // The loop is over: nothing moves for the rest of the mute.
    std::thread::sleep(Duration::from_secs(1));
    let (a_answered, _) = datagrams_of(&mut a);
    let (b_answered, _) = datagrams_of(&mut b);
    assert!(
        a_answered < 2000 && b_answered < 2000,
        "{a_answered} {b_answered}"
    );
    // A answered B until the thousandth reflection; B answered each of them.
    assert_eq!((a_answered, b_answered), (1000, 1000));
    report(
        "udp_loop",
        &[
            ("processes", &2),
            ("forged", &1),
            ("a_answered", &a_answered),
            ("b_answered", &b_answered),
            ("ended_ms", &format!("{:.1}", ended.as_secs_f64() * 1000.0)),
            ("logged", &"yes"),
        ],
    );
}

#[test]
#[ignore = "needs root: cargo test --release -- --ignored root::"]
fn datagrams_from_loop_ports_7_and_19_get_no_answer() {
    let server = Server::start(&["udp://127.0.0.1:0"], 1);
    let echo_port = UdpSocket::bind("127.0.0.1:7").expect("bind 127.0.0.1:7 (needs root)");
    let chargen_port = UdpSocket::bind("127.0.0.1:19").expect("bind 127.0.0.1:19 (needs root)");
    echo_port.send_to(b"loop?", server.addr()).unwrap();
    chargen_port.send_to(b"loop?", server.addr()).unwrap();
    assert_unanswered(server.addr(), &[&echo_port, &chargen_port]);
    assert!(server.stderr_line("dropped").contains("loop port"));
}

/// The uid and gid of `nobody`, who may write to none of root's sockets.
const NOBODY: u32 = 65_534;

/// `tests/peers/unixgram_redirect.py`, copied where `nobody` can read it,
/// run as `nobody` with the system's Python.
fn as_nobody(dir: &std::path::Path, args: &[&str]) -> std::process::Child {
    let script = dir.join("unixgram_redirect.py");
    std::fs::copy(util::peer("unixgram_redirect.py"), &script).unwrap();
    let mut cmd = Command::new("python3");
    cmd.arg(&script)
        .args(args)
        .env("PATH", "/usr/local/bin:/usr/bin:/bin")
        .uid(NOBODY)
        .gid(NOBODY)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    cmd.spawn().expect("python3 as nobody")
}

/// A unixgram server that anyone may write to, in a directory `nobody` may
/// write in, and a victim socket in a directory `nobody` may not reach
/// (0700, root's).
struct Setup {
    /// Held so that the victim's directory lives as long as the test.
    _victims: tempfile::TempDir,
    senders: tempfile::TempDir,
    server_path: std::path::PathBuf,
    server: Server,
    victim_path: std::path::PathBuf,
    victim: UnixDatagram,
}

impl Setup {
    fn new() -> Self {
        // SAFETY: geteuid has no preconditions and cannot fail.
        assert_eq!(unsafe { libc::geteuid() }, 0, "{NEEDS_ROOT}");
        let victims = tempfile::tempdir().unwrap();
        std::fs::set_permissions(victims.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
        let senders = tempfile::tempdir().unwrap();
        std::fs::set_permissions(senders.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
        let server_path = senders.path().join("server.sock");
        let server = Server::start(&[&util::unixgram(&server_path), "--mode", "0666"], 1);
        let victim_path = victims.path().join("victim.sock");
        let victim = UnixDatagram::bind(&victim_path).unwrap();
        Setup {
            _victims: victims,
            senders,
            server_path,
            server,
            victim_path,
            victim,
        }
    }
}

/// Checks that the server still answers, and so has handled what came
/// before: it answers in order.
fn honest_round_trip(dir: &std::path::Path, server: &std::path::Path) {
    let honest = UnixDatagram::bind(dir.join("honest.sock")).unwrap();
    honest.set_read_timeout(Some(LIMIT)).unwrap();
    honest.send_to(b"honest", server).unwrap();
    let mut buf = [0; 64];
    let n = honest.recv(&mut buf).expect("the honest sender's echo");
    assert_eq!(&buf[..n], b"honest");
}

#[test]
#[ignore = "needs root: cargo test --release -- --ignored root::"]
fn a_hard_link_to_a_socket_the_sender_cannot_write_to_gets_no_echo() {
    let setup = Setup::new();
    let mut sender = as_nobody(
        setup.senders.path(),
        &[
            "link",
            setup.senders.path().to_str().unwrap(),
            setup.server_path.to_str().unwrap(),
            "100",
        ],
    );
    let mut out = BufReader::new(sender.stdout.take().unwrap());
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    assert_eq!(line, "bound\n");
    // A hard link to the setup.victim at the sender's bound path (root makes it:
    // the kernel lets no one else link another user's socket).
    let at = setup.senders.path().join("sender.sock");
    std::fs::remove_file(&at).unwrap();
    std::fs::hard_link(&setup.victim_path, &at).unwrap();
    writeln!(sender.stdin.take().unwrap()).unwrap();
    line.clear();
    out.read_line(&mut line).unwrap();
    assert_eq!(line, "sent 100\n");
    assert!(util::wait_bounded(&mut sender).success());

    honest_round_trip(setup.senders.path(), &setup.server_path);
    setup.victim.set_nonblocking(true).unwrap();
    let mut buf = [0; 64];
    let got = setup.victim.recv(&mut buf);
    assert!(got.is_err(), "the setup.victim got an echo: {got:?}");
    let line = setup.server.stderr_line("dropped");
    assert!(
        line.contains("100 whose sender's path names a socket another user owns"),
        "{line}"
    );
    report(
        "unixgram_redirect",
        &[
            ("attack", &"hard_link"),
            ("secs", &"-"),
            ("sent", &100),
            ("swaps", &"-"),
            ("own_echoes", &"-"),
            ("victim_got", &0),
            ("logged", &"yes"),
        ],
    );
}

#[test]
#[ignore = "needs root: cargo test --release -- --ignored root::"]
fn a_symbolic_link_swapped_in_and_out_for_10s_delivers_nothing_to_a_root_only_socket() {
    let setup = Setup::new();
    let victim = setup.victim;
    victim
        .set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let received = Arc::new(AtomicU64::new(0));
    let counter = {
        let (stop, received) = (Arc::clone(&stop), Arc::clone(&received));
        std::thread::spawn(move || {
            let mut buf = [0; 64];
            while !stop.load(Ordering::Relaxed) {
                if victim.recv(&mut buf).is_ok() {
                    received.fetch_add(1, Ordering::Relaxed);
                }
            }
        })
    };

    let sender_dir = setup.senders.path().join("race");
    std::fs::create_dir(&sender_dir).unwrap();
    std::fs::set_permissions(&sender_dir, std::fs::Permissions::from_mode(0o777)).unwrap();
    let mut sender = as_nobody(
        setup.senders.path(),
        &[
            "swap",
            sender_dir.to_str().unwrap(),
            setup.server_path.to_str().unwrap(),
            setup.victim_path.to_str().unwrap(),
            "10",
        ],
    );
    let mut summary = String::new();
    BufReader::new(sender.stdout.take().unwrap())
        .read_line(&mut summary)
        .unwrap();
    assert!(util::wait_bounded(&mut sender).success(), "{summary}");
    honest_round_trip(setup.senders.path(), &setup.server_path);
    stop.store(true, Ordering::Relaxed);
    counter.join().unwrap();

    eprintln!("symlink race: {}", summary.trim());
    let numbers: Vec<u64> = summary
        .split(|c: char| !c.is_ascii_digit())
        .filter_map(|n| n.parse().ok())
        .collect();
    let [sent, echoed, swaps] = numbers[..] else {
        panic!("{summary:?}");
    };
    // The race ran: many datagrams, many swaps, and the echoes that were
    // sent went to the sender's own socket.
    assert!(sent > 1000 && swaps > 1000, "{summary}");
    assert!(echoed > 0, "{summary}");
    let victim_got = received.load(Ordering::Relaxed);
    assert_eq!(victim_got, 0, "the setup.victim got echoes; {summary}");
    // The swaps the server saw were refused, and said so.
    let line = setup.server.stderr_line("dropped");
    assert!(line.contains("another user owns"), "{line}");
    report(
        "unixgram_redirect",
        &[
            ("attack", &"symlink_swap"),
            ("secs", &10),
            ("sent", &sent),
            ("swaps", &swaps),
            ("own_echoes", &echoed),
            ("victim_got", &victim_got),
            ("logged", &"yes"),
        ],
    );
    drop(setup.server);
}

#[test]
#[ignore = "needs root: cargo test --release -- --ignored root::"]
fn a_connect_the_socket_files_mode_denies_exits_8_and_says_why() {
    // Root passes any file's permissions, so the client runs as `nobody`,
    // from a copy of the binary that `nobody` may run, against a root
    // server's socket of mode 0600 in a directory anyone may enter.
    // SAFETY: geteuid has no preconditions and cannot fail.
    assert_eq!(unsafe { libc::geteuid() }, 0, "{NEEDS_ROOT}");
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let path = dir.path().join("echo.sock");
    let _server = Server::start(&[&util::unix(&path), "--mode", "0600"], 1);
    let bin = dir.path().join("echokit");
    std::fs::copy(env!("CARGO_BIN_EXE_echokit"), &bin).unwrap();
    std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755)).unwrap();
    let mut cmd = Command::new(&bin);
    cmd.args(["echo-client", &util::unix(&path)])
        .uid(NOBODY)
        .gid(NOBODY);
    let out = util::run(cmd, b"");
    let err = util::text(&out.stderr);
    assert_eq!(out.status.code(), Some(8), "{err}");
    assert!(
        err.contains("--mode"),
        "says how the server opens it: {err}"
    );
    assert!(!err.contains("os error"), "{err}");
}
