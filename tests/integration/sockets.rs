//! `echokit sockets`: the socket table read through netlink, compared with
//! what `ss` shows, and the accept queue, states and filters on sockets
//! these tests make.

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};

use serde_json::Value;
use socket2::{Domain, Socket, Type};

use crate::util::{LIMIT, Server, connect, echokit_run, text, unix, unixgram};

/// `echokit sockets ARGS --json`, parsed.
fn sockets_json(args: &[&str]) -> Value {
    let mut all = vec!["sockets"];
    all.extend_from_slice(args);
    all.push("--json");
    let out = echokit_run(&all);
    assert!(out.status.success(), "{}", text(&out.stderr));
    serde_json::from_slice(&out.stdout).expect("--json prints one JSON object")
}

fn rows(json: &Value) -> &Vec<Value> {
    json["sockets"].as_array().expect("a list of sockets")
}

/// One socket as both tools can say it: state, local, peer, holder pids.
type Seen = (String, String, String, BTreeSet<u32>);

fn seen_by_echokit(json: &Value) -> BTreeSet<Seen> {
    rows(json)
        .iter()
        .map(|s| {
            let pids = s["owners"]
                .as_array()
                .unwrap()
                .iter()
                .map(|o| o["pid"].as_u64().unwrap() as u32)
                .collect();
            (
                s["state"].as_str().unwrap().to_string(),
                s["local"].as_str().unwrap().to_string(),
                s["peer"].as_str().unwrap().to_string(),
                pids,
            )
        })
        .collect()
}

/// `ss -tanpH` for one port, in echokit's words (ESTAB is ESTABLISHED).
fn seen_by_ss(port: u16) -> BTreeSet<Seen> {
    let out = std::process::Command::new("ss")
        .args(["-tanpH", &format!("( sport = :{port} or dport = :{port} )")])
        .output()
        .expect("ss (iproute2) runs");
    assert!(out.status.success(), "{}", text(&out.stderr));
    text(&out.stdout)
        .lines()
        .map(|line| {
            let cols: Vec<&str> = line.split_whitespace().collect();
            let state = match cols[0] {
                "ESTAB" => "ESTABLISHED".to_string(),
                other => other.replace('-', "_"),
            };
            let pids = line
                .split("pid=")
                .skip(1)
                .map(|rest| {
                    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
                    digits.parse().unwrap()
                })
                .collect();
            (state, cols[3].to_string(), cols[4].to_string(), pids)
        })
        .collect()
}

/// An echo exchange: when it returns, the server has accepted the connection.
fn exchange(stream: &mut TcpStream) {
    stream.write_all(b"ping").unwrap();
    let mut echo = [0; 4];
    stream.read_exact(&mut echo).unwrap();
    assert_eq!(&echo, b"ping");
}

#[test]
fn the_echo_server_and_its_client_are_the_sockets_ss_lists() {
    let server = Server::start(&["127.0.0.1:0"], 1);
    let port = server.addr().port();

    // Other tests (probes of nearby ports) may connect to this port for a
    // moment: the comparisons look at this test's sockets.
    let alone = sockets_json(&["--port", &port.to_string(), "--state", "listen"]);
    assert_eq!(rows(&alone).len(), 1, "{alone:#}");
    let listener = &rows(&alone)[0];
    assert_eq!(listener["local"], format!("127.0.0.1:{port}"));
    assert_eq!(listener["owners"][0]["pid"], server.pid());
    assert_eq!(listener["owners"][0]["name"], "echokit");
    let somaxconn: u64 = std::fs::read_to_string("/proc/sys/net/core/somaxconn")
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert_eq!(listener["accept_queue"]["queued"], 0);
    assert_eq!(listener["accept_queue"]["backlog"], somaxconn.min(1024));

    let mut client = connect(server.addr());
    exchange(&mut client);
    let client_port = client.local_addr().unwrap().port();
    let client_addr = format!("127.0.0.1:{client_port}");
    // Other tests (probes of nearby ports) may connect to this port for a
    // moment: the comparison is of this test's sockets.
    let this_test = |seen: BTreeSet<Seen>| -> BTreeSet<Seen> {
        seen.into_iter()
            .filter(|(state, local, peer, _)| {
                state == "LISTEN" || *local == client_addr || *peer == client_addr
            })
            .collect()
    };
    let me = std::process::id();
    let pair: BTreeSet<Seen> = [
        (
            format!("127.0.0.1:{port}"),
            format!("127.0.0.1:{client_port}"),
            server.pid(),
        ),
        (
            format!("127.0.0.1:{client_port}"),
            format!("127.0.0.1:{port}"),
            me,
        ),
    ]
    .into_iter()
    .map(|(l, p, pid)| ("ESTABLISHED".to_string(), l, p, BTreeSet::from([pid])))
    .collect();
    // A child that another test is starting holds this process's
    // descriptors from its fork to its exec, and either reading of /proc
    // may catch it there (ss saw one once): such a reading is taken again.
    let mut tries = 0;
    let (json, ours, theirs) = loop {
        let json = sockets_json(&["--port", &port.to_string()]);
        let ours = this_test(seen_by_echokit(&json));
        let theirs = this_test(seen_by_ss(port));
        tries += 1;
        if ours == theirs && pair.is_subset(&ours) || tries == 20 {
            break (json, ours, theirs);
        }
    };
    assert_eq!(ours, theirs, "echokit sockets and ss -tanp differ");
    assert!(pair.is_subset(&ours), "{ours:#?}");
    assert_eq!(ours.len(), 3, "{ours:#?}");

    // The table says what the JSON says, row for row.
    let out = echokit_run(&["sockets", "--port", &port.to_string()]);
    assert!(out.status.success());
    let table = text(&out.stdout);
    let mine = rows(&json).iter().filter(|r| {
        r["state"] == "LISTEN" || r["local"] == client_addr || r["peer"] == client_addr
    });
    for row in mine {
        let owner = &row["owners"][0];
        let cells = [
            row["local"].as_str().unwrap().to_string(),
            row["peer"].as_str().unwrap().to_string(),
            row["state"].as_str().unwrap().to_string(),
            format!("{}/{}", owner["pid"], owner["name"].as_str().unwrap()),
        ];
        assert!(
            table.lines().any(|line| {
                let words: Vec<&str> = line.split_whitespace().collect();
                // The owners cell may list, after this process, a child
                // another test is starting (it holds our descriptors from
                // its fork to its exec, as the readings above allow for).
                words.len() >= 7
                    && words[3..6].iter().eq(cells[..3].iter())
                    && words[6].split(',').next() == Some(cells[3].as_str())
            }),
            "no row {cells:?} in\n{table}"
        );
    }
    let out = echokit_run(&["sockets", "--port", &port.to_string(), "--state", "listen"]);
    assert!(
        text(&out.stdout).contains("accept queue 0/"),
        "{}",
        text(&out.stdout)
    );
}

#[test]
fn a_listener_shows_the_connections_waiting_for_accept() {
    // A listener that never accepts: the kernel completes handshakes into
    // its queue, up to the backlog.
    let listener = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
    let any: SocketAddr = "127.0.0.1:0".parse().unwrap();
    listener.bind(&any.into()).unwrap();
    listener.listen(4).unwrap();
    let addr = listener.local_addr().unwrap().as_socket().unwrap();
    let _waiting: Vec<TcpStream> = (0..2).map(|_| connect(addr)).collect();

    let port = addr.port().to_string();
    let me = std::process::id().to_string();
    let json = sockets_json(&["--port", &port, "--state", "listen", "--pid", &me]);
    assert_eq!(rows(&json).len(), 1, "{json:#}");
    let row = &rows(&json)[0];
    assert_eq!(row["accept_queue"]["queued"], 2);
    assert_eq!(row["accept_queue"]["backlog"], 4);
    // Two handshakes done, none accepted: the server side has no holder yet.
    let waiting = sockets_json(&["--port", &port, "--state", "established"]);
    let unaccepted = rows(&waiting)
        .iter()
        .filter(|s| s["local"] == format!("127.0.0.1:{port}"))
        .count();
    assert_eq!(unaccepted, 2, "{waiting:#}");
}

#[test]
fn close_wait_is_explained() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let client = connect(addr);
    let (mut accepted, _) = listener.accept().unwrap();
    accepted.set_read_timeout(Some(LIMIT)).unwrap();
    drop(client);
    // recv() returning 0 proves the FIN arrived: this side is in CLOSE_WAIT.
    assert_eq!(accepted.read(&mut [0; 8]).unwrap(), 0);

    let port = addr.port().to_string();
    let out = echokit_run(&[
        "sockets",
        "--port",
        &port,
        "--state",
        "close-wait",
        "--explain",
    ]);
    assert!(out.status.success());
    let table = text(&out.stdout);
    assert_eq!(
        table.lines().filter(|l| l.contains("CLOSE_WAIT")).count(),
        2,
        "the row and its meaning:\n{table}"
    );
    assert!(
        table.contains("the peer closed and this program has not"),
        "{table}"
    );
    let json = sockets_json(&["--port", &port, "--state", "close-wait", "--explain"]);
    let meaning = rows(&json)[0]["meaning"].as_str().unwrap();
    assert!(meaning.contains("close()"), "{meaning}");
}

#[test]
fn unix_and_udp_sockets_are_listed_with_their_holders() {
    let dir = tempfile::tempdir().unwrap();
    let stream_path = dir.path().join("echo.sock");
    let gram_path = dir.path().join("echo.dgram");
    let server = Server::start(
        &[
            &unix(&stream_path),
            &unixgram(&gram_path),
            "udp://127.0.0.1:0",
        ],
        3,
    );
    let pid = server.pid().to_string();

    let json = sockets_json(&["--unix", "--pid", &pid, "--listening"]);
    let by_path = |path: &std::path::Path| {
        rows(&json)
            .iter()
            .find(|s| s["local"] == path.to_str().unwrap())
            .unwrap_or_else(|| panic!("{} not listed: {json:#}", path.display()))
            .clone()
    };
    let stream = by_path(&stream_path);
    assert_eq!(stream["proto"], "unix");
    assert_eq!(stream["type"], "stream");
    assert_eq!(stream["state"], "LISTEN");
    assert!(stream["accept_queue"]["backlog"].as_u64().unwrap() > 0);
    let gram = by_path(&gram_path);
    assert_eq!(gram["type"], "dgram");
    assert_eq!(gram["state"], "UNCONN");

    // A client's datagram connect marks the server ESTABLISHED in the
    // kernel; with no peer of its own it still waits for anyone: listening.
    let echoed = echokit_run(&["echo-client", &unixgram(&gram_path)]);
    assert_eq!(echoed.status.code(), Some(0), "{}", text(&echoed.stderr));
    let after = sockets_json(&["--unix", "--pid", &pid, "--listening"]);
    assert!(
        rows(&after)
            .iter()
            .any(|s| s["local"] == gram_path.to_str().unwrap()),
        "dropped once a client talked to it: {after:#}"
    );

    let port = server.addr().port().to_string();
    let udp = sockets_json(&["--udp", "--port", &port]);
    assert_eq!(rows(&udp).len(), 1, "{udp:#}");
    assert_eq!(rows(&udp)[0]["proto"], "udp");
    assert_eq!(rows(&udp)[0]["state"], "UNCONN");
    assert_eq!(rows(&udp)[0]["owners"][0]["pid"], server.pid());
    // --tcp leaves it out (a TCP socket of another test may share the number).
    let tcp = sockets_json(&["--tcp", "--port", &port]);
    assert!(rows(&tcp).iter().all(|s| s["proto"] == "tcp"), "{tcp:#}");
}

#[test]
fn watch_shows_the_table_again_and_stops_after_count() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port().to_string();
    let out = echokit_run(&[
        "sockets", "--port", &port, "--watch", "10ms", "--count", "3",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert_eq!(stdout.matches("Local Address").count(), 3, "{stdout}");
    assert_eq!(stdout.matches("LISTEN").count(), 3, "{stdout}");
    // As JSON: one object per refresh.
    let out = echokit_run(&[
        "sockets", "--port", &port, "--watch", "10ms", "--count", "2", "--json",
    ]);
    let objects: Vec<Value> = text(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(objects.len(), 2);
}

#[test]
fn a_bad_state_is_a_usage_error() {
    let out = echokit_run(&["sockets", "--state", "sleeping"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("not a socket state"));
}

#[test]
fn a_refused_client_hears_of_the_server_on_the_other_loopback() {
    // A server on ::1, and 127.0.0.1 held on the same port without
    // listening, so that it refuses; another server when something else
    // has that port on 127.0.0.1.
    let (server, _holder, port) = (0..100)
        .find_map(|_| {
            let server = Server::start(&["[::1]:0"], 1);
            let port = server.addr().port();
            let holder = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
            holder
                .bind(&SocketAddr::from(([127, 0, 0, 1], port)).into())
                .ok()?;
            Some((server, holder, port))
        })
        .expect("in 100 tries, the port of [::1] was free on 127.0.0.1 once");
    let v4 = SocketAddr::from(([127, 0, 0, 1], port));
    let out = echokit_run(&["echo-client", &v4.to_string()]);
    assert_eq!(out.status.code(), Some(3), "refused");
    let err = text(&out.stderr);
    assert!(
        err.contains(&format!(
            "nothing listens on 127.0.0.1:{port} on this host, but echokit echo-server (pid {}) \
             listens on [::1]:{port}: connect to that address",
            server.pid()
        )),
        "{err}"
    );
}

#[test]
fn a_refused_client_hears_of_the_nearest_port_that_listens() {
    // Two ports below the ephemeral range, which no other test's
    // connections or port-0 binds take: the second held without listening,
    // so that it refuses, the first for the server.
    let (listener, _held, first) = crate::util::owned_range(2);
    let refused = SocketAddr::new(first.ip(), first.port() + 1);
    drop(listener);
    let server = Server::start(&[&first.to_string()], 1);
    let next = server.addr().to_string();
    let out = echokit_run(&["echo-client", &refused.to_string()]);
    assert_eq!(out.status.code(), Some(3));
    let err = text(&out.stderr);
    assert!(
        err.contains(&format!("nothing listens on {refused} on this host; ")),
        "{err}"
    );
    assert!(
        err.contains(&format!(
            "echokit echo-server (pid {}) listens on {next}",
            server.pid()
        )),
        "{err}"
    );
}
