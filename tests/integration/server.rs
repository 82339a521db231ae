//! `echokit echo-server` over real sockets: the guide's exchange, many
//! clients, half-close, back-pressure, shutdown, and every startup error.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener};
use std::os::unix::process::CommandExt;
use std::sync::{Arc, Barrier};
use std::time::Duration;

use crate::util::{self, LIMIT, Server, client, connect, pattern, read_to_end, text};

#[test]
fn guide_exchange_and_summary() {
    let mut server = Server::start(&["127.0.0.1:0"], 1);
    let out = client(&[&server.addr().to_string()]);
    assert_eq!(text(&out.stdout), "Received b'Hello, world'\n");
    assert_eq!(
        text(&out.stderr),
        "",
        "a successful client is silent on stderr"
    );
    assert!(out.status.success());
    let connected = server.stderr_line("connected peer=127.0.0.1:");
    assert!(connected.contains("INFO"), "{connected}");
    server.signal(libc::SIGTERM);
    let summary = server.summary_after_clean_exit();
    assert!(
        summary.contains("served 1 connection, echoed 12 bytes"),
        "{summary}"
    );
}

#[test]
fn several_endpoints_in_one_process_ipv4_and_ipv6() {
    let server = Server::start(&["127.0.0.1:0", "tcp://[::1]:0"], 2);
    assert!(server.addrs[0].is_ipv4() && server.addrs[1].is_ipv6());
    for addr in &server.addrs {
        let mut s = connect(*addr);
        s.write_all(b"both families").unwrap();
        s.shutdown(Shutdown::Write).unwrap();
        assert_eq!(read_to_end(&mut s), b"both families");
    }
}

#[test]
fn a_host_name_binds_every_address_it_resolves_to_on_one_port() {
    let server = Server::start(&["localhost:0", "-v"], 1);
    let resolved = server.stderr_line("localhost resolved to");
    let count = resolved.matches(", ").count() + 1;
    let port = server.addr().port();
    assert_ne!(port, 0);
    assert!(server.addr().ip().is_loopback());
    let mut s = connect(server.addr());
    s.write_all(b"by name").unwrap();
    s.shutdown(Shutdown::Write).unwrap();
    assert_eq!(read_to_end(&mut s), b"by name");
    // Every address got a listener on the same port (the others' lines follow).
    let rest = server.stdout_after(count - 1);
    assert!(rest.iter().all(|a| a.port() == port), "{rest:?}");
}

#[test]
fn hundreds_of_concurrent_clients_each_get_their_own_bytes() {
    const CLIENTS: usize = 300;
    let server = Server::start(&["127.0.0.1:0"], 1);
    let addr = server.addr();
    let barrier = Arc::new(Barrier::new(CLIENTS));
    let handles: Vec<_> = (0..CLIENTS)
        .map(|i| {
            let barrier = Arc::clone(&barrier);
            std::thread::Builder::new()
                .stack_size(64 * 1024)
                .spawn(move || {
                    let mut s = connect(addr);
                    // Every client is connected before any sends.
                    barrier.wait();
                    let data = pattern(1000 + i, i as u32);
                    for chunk in data.chunks(100) {
                        s.write_all(chunk).unwrap();
                    }
                    let mut echo = vec![0; data.len()];
                    s.read_exact(&mut echo).unwrap();
                    assert!(echo == data, "client {i} got another echo");
                    s.shutdown(Shutdown::Write).unwrap();
                    assert_eq!(
                        read_to_end(&mut s),
                        b"",
                        "client {i}: nothing after its echo"
                    );
                })
                .unwrap()
        })
        .collect();
    for h in handles {
        h.join().expect("a client failed");
    }
}

/// Sends `data` from a thread, half-closes, and returns everything echoed.
fn echo_through_half_close(addr: SocketAddr, data: Vec<u8>) -> Vec<u8> {
    let mut s = connect(addr);
    let mut writer = s.try_clone().unwrap();
    let sender = std::thread::spawn(move || {
        writer.write_all(&data).unwrap();
        writer.shutdown(Shutdown::Write).unwrap();
    });
    let echo = read_to_end(&mut s);
    sender.join().unwrap();
    echo
}

#[test]
fn half_close_returns_every_byte_of_several_mib() {
    let server = Server::start(&["127.0.0.1:0", "--threads", "2"], 1);
    for (size, seed) in [(8 << 20, 1), ((3 << 20) + 12_345, 2)] {
        let data = pattern(size, seed);
        let echo = echo_through_half_close(server.addr(), data.clone());
        assert_eq!(echo.len(), data.len());
        assert!(echo == data, "the echo of {size} bytes differs");
    }
}

#[test]
fn a_client_that_never_reads_is_bounded_and_stalls_nobody() {
    let server = Server::start(&["127.0.0.1:0", "--threads", "1"], 1);
    // Warm up: the loop's buffers exist before the baseline is taken.
    assert_eq!(
        echo_through_half_close(server.addr(), pattern(200_000, 3)).len(),
        200_000
    );
    let before = server.rss_bytes();

    // The hog writes without reading until its writes stall for 500 ms.
    let hog = connect(server.addr());
    hog.set_write_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    let chunk = pattern(64 * 1024, 4);
    let mut sent = Vec::new();
    let stalled = loop {
        match (&hog).write(&chunk) {
            Ok(n) => sent.extend_from_slice(&chunk[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                break true;
            }
            Err(e) => panic!("hog write: {e}"),
        }
        if sent.len() > 256 << 20 {
            break false;
        }
    };
    assert!(
        stalled,
        "the server read 256 MiB from a client that reads nothing"
    );

    // Another client is served while the hog is stalled.
    let data = pattern(100_000, 5);
    assert!(echo_through_half_close(server.addr(), data.clone()) == data);

    let growth = server.rss_bytes().saturating_sub(before);
    assert!(
        growth < 2 << 20,
        "server memory grew {growth} bytes for a client that pushed {} bytes without reading",
        sent.len()
    );
    // What the hog did send is still echoed, in order, once it reads.
    hog.shutdown(Shutdown::Write).unwrap();
    let mut hog = hog;
    hog.set_read_timeout(Some(LIMIT)).unwrap();
    let echo = read_to_end(&mut hog);
    assert_eq!(echo.len(), sent.len());
    assert!(echo == sent, "the hog's echo differs from what it sent");
}

#[test]
fn sigterm_lets_the_echo_in_flight_finish_then_exits_zero() {
    let mut server = Server::start(&["127.0.0.1:0"], 1);
    let data = pattern(4 << 20, 6);
    let mut s = connect(server.addr());
    let mut writer = s.try_clone().unwrap();
    let payload = data.clone();
    let sender = std::thread::spawn(move || {
        writer.write_all(&payload).unwrap();
        writer.shutdown(Shutdown::Write).unwrap();
    });
    // The echo has started: the connection is accepted and in flight.
    let mut first = [0u8; 1];
    s.read_exact(&mut first).unwrap();
    server.signal(libc::SIGTERM);
    server.stderr_line("stopped accepting");
    // The listener is closed while the echo in flight goes on.
    let refused = std::net::TcpStream::connect(server.addr()).unwrap_err();
    assert_eq!(refused.kind(), std::io::ErrorKind::ConnectionRefused);
    let mut echo = first.to_vec();
    echo.extend(read_to_end(&mut s));
    sender.join().unwrap();
    assert!(
        echo == data,
        "echo after SIGTERM: {} of {} bytes",
        echo.len(),
        data.len()
    );
    let summary = server.summary_after_clean_exit();
    assert!(
        summary.contains("served 1 connection, echoed 4,194,304 bytes (4.0 MiB)"),
        "{summary}"
    );
}

#[test]
fn the_grace_period_ends_with_an_orderly_close() {
    let mut server = Server::start(&["127.0.0.1:0", "--grace", "300ms"], 1);
    let mut idle = connect(server.addr());
    idle.write_all(b"ping").unwrap();
    let mut echo = [0u8; 4];
    idle.read_exact(&mut echo).unwrap();
    server.signal(libc::SIGTERM);
    // The client sees EOF, not a reset.
    assert_eq!(read_to_end(&mut idle), b"");
    let summary = server.summary_after_clean_exit();
    assert!(
        summary.contains("1 cut off at the end of the grace period"),
        "{summary}"
    );
}

#[test]
fn a_second_interrupt_exits_at_once() {
    let mut server = Server::start(&["127.0.0.1:0", "--grace", "1h"], 1);
    let _idle = connect(server.addr());
    server.stderr_line("connected peer=");
    server.interrupt_twice();
}

#[test]
fn once_serves_one_client_then_exits() {
    let mut server = Server::start(&["127.0.0.1:0", "--once"], 1);
    let out = client(&[&server.addr().to_string(), "-m", "only one"]);
    assert_eq!(text(&out.stdout), "Received b'only one'\n");
    assert_eq!(server.wait().code(), Some(0));
}

#[test]
fn address_in_use_fails_loudly_and_names_the_holder() {
    let first = Server::start(&["127.0.0.1:0"], 1);
    let mut cmd = util::echokit();
    cmd.args(["echo-server", &first.addr().to_string()]);
    let out = util::run(cmd, b"");
    assert_eq!(out.status.code(), Some(6));
    let err = text(&out.stderr);
    assert!(
        err.contains(&format!(
            "address in use: tcp://{} is already served",
            first.addr()
        )),
        "{err}"
    );
    assert!(err.contains(&format!("pid {}", first.pid())), "{err}");
    assert!(err.contains("echokit echo-server"), "{err}");
    assert_eq!(text(&out.stdout), "", "no listening line for a failed bind");
}

#[test]
fn an_address_of_another_host_is_not_available() {
    // 203.0.113.1 is TEST-NET-3 (RFC 5737): no host has it. Binding sends nothing.
    let mut cmd = util::echokit();
    cmd.args(["echo-server", "203.0.113.1:0"]);
    let out = util::run(cmd, b"");
    assert_eq!(out.status.code(), Some(6));
    assert!(text(&out.stderr).contains("address not available: 203.0.113.1:0"));
}

#[test]
fn a_bad_endpoint_is_a_usage_error_that_says_what_was_expected() {
    for (arg, says) in [
        ("localhost", "has no port"),
        ("127.0.0.1:70000", "is not a port"),
        ("::1:80", "needs brackets"),
    ] {
        let mut cmd = util::echokit();
        cmd.args(["echo-server", arg]);
        let out = util::run(cmd, b"");
        assert_eq!(out.status.code(), Some(2), "{arg}");
        let err = text(&out.stderr);
        assert!(
            err.contains(says) && err.contains("expected"),
            "{arg}: {err}"
        );
    }
}

#[test]
fn a_backlog_above_somaxconn_is_warned_about() {
    let somaxconn: u32 = std::fs::read_to_string("/proc/sys/net/core/somaxconn")
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let backlog = (somaxconn + 1).to_string();
    let server = Server::start(&["127.0.0.1:0", "--backlog", &backlog], 1);
    let line = server.stderr_line("somaxconn");
    assert!(line.contains(&format!("caps it to {somaxconn}")), "{line}");
}

#[test]
fn a_listener_blocked_by_a_raw_socket_on_the_port_reports_in_use() {
    // Not an echokit: any socket holding the port must make the bind fail.
    let holder = TcpListener::bind("127.0.0.1:0").unwrap();
    let mut cmd = util::echokit();
    cmd.args(["echo-server", &holder.local_addr().unwrap().to_string()]);
    let out = util::run(cmd, b"");
    assert_eq!(out.status.code(), Some(6));
    assert!(text(&out.stderr).contains(&format!("pid {}", std::process::id())));
}

#[test]
fn shutdown_with_several_loops_closes_every_connection_in_order() {
    const CLIENTS: usize = 12;
    let mut server = Server::start(&["127.0.0.1:0", "--threads", "3", "--grace", "300ms"], 1);
    let mut clients: Vec<_> = (0..CLIENTS)
        .map(|i| {
            let mut s = connect(server.addr());
            let msg = format!("client {i}");
            s.write_all(msg.as_bytes()).unwrap();
            let mut echo = vec![0; msg.len()];
            s.read_exact(&mut echo).unwrap();
            assert_eq!(echo, msg.as_bytes());
            s
        })
        .collect();
    server.signal(libc::SIGTERM);
    for s in &mut clients {
        assert_eq!(
            read_to_end(s),
            b"",
            "an orderly end of stream for every client"
        );
    }
    let summary = server.summary_after_clean_exit();
    assert!(
        summary.contains(&format!("served {CLIENTS} connections")),
        "{summary}"
    );
    assert!(summary.contains(&format!("{CLIENTS} cut off")), "{summary}");
}

/// The kernel's timer for the server side of the connection from `client`
/// (`tr` in /proc/net/tcp: 0 none, 1 retransmit, 2 keepalive).
fn server_side_timer(server: SocketAddr, client: SocketAddr) -> u8 {
    let table = std::fs::read_to_string("/proc/net/tcp").unwrap();
    let port = |field: &str| u16::from_str_radix(field.rsplit(':').next().unwrap(), 16).unwrap();
    table
        .lines()
        .skip(1)
        .map(|l| l.split_whitespace().collect::<Vec<_>>())
        .find(|f| port(f[1]) == server.port() && port(f[2]) == client.port())
        .map(|f| f[5].split(':').next().unwrap().parse().unwrap())
        .expect("the server side of the connection in /proc/net/tcp")
}

#[test]
fn keepalive_is_armed_on_accepted_connections_only_when_asked() {
    for (args, timer) in [
        (vec!["127.0.0.1:0", "--tcp-keepalive", "30s"], 2),
        (vec!["127.0.0.1:0"], 0),
    ] {
        let server = Server::start(&args, 1);
        let s = connect(server.addr());
        let local = s.local_addr().unwrap();
        // Options are set before the server logs the client.
        server.stderr_line(&format!("connected peer={local}"));
        assert_eq!(server_side_timer(server.addr(), local), timer, "{args:?}");
    }
}

#[test]
fn socket_buffer_sizes_reach_the_accepted_connections() {
    let server = Server::start(&["127.0.0.1:0", "--rcvbuf", "64K", "--sndbuf", "96K"], 1);
    let s = connect(server.addr());
    let local = s.local_addr().unwrap();
    server.stderr_line(&format!("connected peer={local}"));
    // `ss -m` shows the buffers the kernel allotted: twice what was asked
    // (socket(7): the kernel doubles SO_RCVBUF and SO_SNDBUF for bookkeeping).
    let filter = format!(
        "sport = :{} and dport = :{}",
        server.addr().port(),
        local.port()
    );
    let out = std::process::Command::new("ss")
        .args(["-tmnH", "state", "established", &filter])
        .output()
        .expect("ss (iproute2) is installed by .ci/run");
    let out = text(&out.stdout);
    assert!(
        out.contains("rb131072") && out.contains("tb196608"),
        "{out}"
    );
}

#[test]
fn one_event_loop_per_cpu_the_process_may_run_on() {
    // Pinned to one CPU, as `taskset -c` would: the first this test may
    // run on.
    let allowed = nix::sched::sched_getaffinity(nix::unistd::Pid::from_raw(0)).unwrap();
    let first = (0..nix::sched::CpuSet::count())
        .find(|&cpu| allowed.is_set(cpu).unwrap())
        .expect("a CPU to run on");
    let mut one = nix::sched::CpuSet::new();
    one.set(first).unwrap();
    let mut pinned = util::echokit();
    pinned.args(["echo-server", "127.0.0.1:0"]);
    // SAFETY: the closure runs in the forked child before exec; it only
    // calls sched_setaffinity on a set made before the fork.
    unsafe {
        pinned.pre_exec(move || {
            nix::sched::sched_setaffinity(nix::unistd::Pid::from_raw(0), &one)
                .map_err(std::io::Error::from)
        });
    }
    let server = Server::spawn(pinned, 1);
    server.stderr_line("serving with 1 event loop");
    drop(server);
    let server = Server::start(&["127.0.0.1:0", "--threads", "3"], 1);
    server.stderr_line("serving with 3 event loops");
}

#[test]
fn urgent_data_is_echoed_in_order_and_does_not_stall_the_stream() {
    // A read stops at TCP's urgent mark, so a read shorter than the buffer
    // does not always mean the socket is drained (telnet's Synch sends urgent data).
    let server = Server::start(&["127.0.0.1:0"], 1);
    let mut s = connect(server.addr());
    s.write_all(b"hello").unwrap();
    socket2::SockRef::from(&s).send_out_of_band(b"X").unwrap();
    s.write_all(b"world").unwrap();
    let mut echo = [0u8; 11];
    s.read_exact(&mut echo)
        .expect("the rest of the stream after the urgent mark");
    assert_eq!(
        &echo, b"helloXworld",
        "every byte, the urgent one in its place"
    );
}

#[test]
fn a_stderr_nobody_reads_does_not_stall_the_echo() {
    use std::io::BufRead;
    // stderr is a pipe that is never read: once its 64 KiB fill up, a
    // blocking log write would stop the event loop.
    let mut child = util::spawn_piped(&["echo-server", "127.0.0.1:0", "--threads", "1"]);
    let _unread_stderr = child.stderr.take().unwrap();
    let mut stdout = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    stdout.read_line(&mut line).unwrap();
    let addr = util::parse_listening(line.trim_end());
    // Each connection logs a line of about 70 bytes: 3,000 of them overflow the pipe.
    for _ in 0..3000 {
        drop(connect(addr));
    }
    let mut s = connect(addr);
    s.write_all(b"still echoing").unwrap();
    let mut echo = [0u8; 13];
    let result = s.read_exact(&mut echo);
    let _ = child.kill();
    let _ = child.wait();
    result.expect("an echo while stderr is full");
    assert_eq!(&echo, b"still echoing");
}

#[test]
fn a_closed_stdout_does_not_turn_a_clean_shutdown_into_a_crash() {
    use std::io::BufRead;
    let mut child = util::spawn_piped(&["echo-server", "127.0.0.1:0"]);
    let mut stdout = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    stdout.read_line(&mut line).unwrap();
    // The script read its line and went away: the summary has nowhere to go.
    drop(stdout);
    // SAFETY: kill(2) on the child this test spawned.
    assert_eq!(
        unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) },
        0
    );
    let (status, err) = util::wait_with_stderr(&mut child);
    assert_eq!(status.code(), Some(0), "{err}");
}

#[test]
fn an_absurd_grace_period_still_shuts_down() {
    let mut server = Server::start(&["127.0.0.1:0", "--grace", "1e19"], 1);
    server.signal(libc::SIGTERM);
    assert_eq!(server.wait().code(), Some(0));
}

#[test]
fn urgent_data_behind_more_than_a_read_budget_does_not_stall_the_stream() {
    // The urgent mark lies beyond one turn's read budget (1 MiB): the
    // connection's next turn must still read past it.
    let server = Server::start(
        &[
            "127.0.0.1:0",
            "--threads",
            "1",
            "--rcvbuf",
            "16M",
            "--sndbuf",
            "16M",
        ],
        1,
    );
    let before = pattern(2_000_000, 31);
    let after = pattern(1000, 32);
    for round in 0..10 {
        let s = connect(server.addr());
        let sock = socket2::SockRef::from(&s);
        sock.set_send_buffer_size(32 << 20).unwrap();
        sock.set_recv_buffer_size(32 << 20).unwrap();
        let reader = {
            let mut s = s.try_clone().unwrap();
            let len = before.len() + 1 + after.len();
            std::thread::spawn(move || {
                let mut echo = vec![0; len];
                s.read_exact(&mut echo).map(|()| echo)
            })
        };
        (&s).write_all(&before).unwrap();
        sock.send_out_of_band(b"U").unwrap();
        (&s).write_all(&after).unwrap();
        let echo = reader
            .join()
            .unwrap()
            .unwrap_or_else(|e| panic!("round {round}: the stream stalled: {e}"));
        assert!(
            echo[..before.len()] == before[..]
                && echo[before.len()] == b'U'
                && echo[before.len() + 1..] == after[..]
        );
    }
}

/// What only root can set up.
mod root {
    use super::*;
    use std::process::Command;

    /// Runs `cmd` as `nobody` in a network namespace of its own, where
    /// loopback is up and ports below 1024 are privileged whatever the
    /// host's `net.ipv4.ip_unprivileged_port_start` says (containers often
    /// set it to 0; a new namespace starts at 1024).
    fn as_nobody_in_a_fresh_netns(cmd: &mut Command) {
        // SAFETY: the closure runs in the forked child before exec and only
        // makes system calls (no allocation, no locks); each result is
        // checked and an error returned as io::Error.
        unsafe {
            cmd.pre_exec(|| {
                let check = |rc: libc::c_int| {
                    if rc < 0 {
                        Err(std::io::Error::last_os_error())
                    } else {
                        Ok(rc)
                    }
                };
                check(libc::unshare(libc::CLONE_NEWNET))?;
                let s = check(libc::socket(libc::AF_INET, libc::SOCK_DGRAM, 0))?;
                let mut ifr: libc::ifreq = std::mem::zeroed();
                ifr.ifr_name[..3].copy_from_slice(&[b'l' as libc::c_char, b'o' as _, 0]);
                check(libc::ioctl(s, libc::SIOCGIFFLAGS, &mut ifr))?;
                ifr.ifr_ifru.ifru_flags |= libc::IFF_UP as libc::c_short;
                check(libc::ioctl(s, libc::SIOCSIFFLAGS, &ifr))?;
                libc::close(s);
                check(libc::setgroups(0, std::ptr::null()))?;
                check(libc::setgid(65534))?;
                check(libc::setuid(65534))?;
                Ok(())
            });
        }
    }

    #[test]
    #[ignore = "needs root: cargo test --release -- --ignored root::"]
    fn a_privileged_port_is_permission_denied_for_an_unprivileged_user() {
        // SAFETY: getuid has no preconditions.
        assert_eq!(unsafe { libc::getuid() }, 0, "needs root");
        // Copy the binary where an unprivileged user can run it.
        let dir = tempfile::tempdir().unwrap();
        let bin = dir.path().join("echokit");
        std::fs::copy(env!("CARGO_BIN_EXE_echokit"), &bin).unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let mut cmd = Command::new(&bin);
        cmd.args(["echo-server", "127.0.0.1:1023"]);
        as_nobody_in_a_fresh_netns(&mut cmd);
        let out = util::run(cmd, b"");
        assert_eq!(out.status.code(), Some(6), "{}", text(&out.stderr));
        let err = text(&out.stderr);
        // The fix in each of the three forms a user may take: bind as root
        // and drop, a capability, the sysctl.
        for way in [
            "permission denied binding 127.0.0.1:1023",
            "--user NAME",
            "setcap cap_net_bind_service=+ep",
            "net.ipv4.ip_unprivileged_port_start=1023",
            "use a port of 1024 or above",
        ] {
            assert!(err.contains(way), "lacks {way:?}: {err}");
        }
        assert!(!err.contains("os error"), "{err}");
    }
}
