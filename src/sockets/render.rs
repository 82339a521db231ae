//! The socket table as text (netstat's columns, with the holders as lsof
//! shows them), as JSON, and what each state means for the program.
//! Pure functions of a [`Snapshot`]: tested without sockets.

use std::collections::HashMap;
use std::fmt::Write as _;

use serde_json::{Value, json};

use super::{Address, Entry, Kind, Snapshot, State};

/// What to show of the sockets a filter kept.
#[derive(Debug)]
pub struct View<'a> {
    /// Everything read (Unix peers are looked up in it).
    pub snapshot: &'a Snapshot,
    /// The sockets to show, in order.
    pub rows: Vec<&'a Entry>,
    /// Say what each state and queue means.
    pub explain: bool,
    /// Send-queue growth since the previous refresh, by inode (`--watch`).
    pub growth: HashMap<u64, u32>,
}

const HEADERS: [&str; 8] = [
    "Proto",
    "Recv-Q",
    "Send-Q",
    "Local Address",
    "Foreign Address",
    "State",
    "PID/Program",
    "",
];

impl View<'_> {
    /// The table, then the summary (and with `explain`, the meanings).
    pub fn table(&self) -> String {
        let peers = self.peer_index();
        let mut cells: Vec<[String; 8]> = vec![HEADERS.map(String::from)];
        for e in &self.rows {
            cells.push([
                proto_column(e),
                e.recv_q.to_string(),
                e.send_q.to_string(),
                e.local.to_string(),
                self.foreign(e, &peers),
                e.state.to_string(),
                owners_column(e),
                self.notes(e, &peers).join("; "),
            ]);
        }
        let mut widths = [0usize; 8];
        for row in &cells {
            for (w, cell) in widths.iter_mut().zip(row) {
                *w = (*w).max(cell.chars().count());
            }
        }
        let mut out = String::new();
        for row in &cells {
            let mut line = String::new();
            for (i, cell) in row.iter().enumerate() {
                // Queue sizes are numbers: right-aligned, as netstat does.
                if i == 1 || i == 2 {
                    let _ = write!(line, "{cell:>width$}  ", width = widths[i]);
                } else {
                    let _ = write!(line, "{cell:<width$}  ", width = widths[i]);
                }
            }
            out.push_str(line.trim_end());
            out.push('\n');
        }
        out.push_str(&self.summary());
        out.push('\n');
        if self.explain && !self.rows.is_empty() {
            out.push_str(&self.meanings());
        }
        out
    }

    /// One line: how many sockets, of which kinds, and the listen-queue
    /// counters.
    pub fn summary(&self) -> String {
        let mut counts: Vec<(&str, usize)> = Vec::new();
        for e in &self.rows {
            let name = match e.kind {
                Kind::Tcp => "tcp",
                Kind::Udp => "udp",
                _ => "unix",
            };
            match counts.iter_mut().find(|(n, _)| *n == name) {
                Some((_, c)) => *c += 1,
                None => counts.push((name, 1)),
            }
        }
        let kinds: Vec<String> = counts.iter().map(|(n, c)| format!("{n} {c}")).collect();
        let n = self.rows.len();
        let mut line = format!(
            "{n} socket{}{}",
            if n == 1 { "" } else { "s" },
            if kinds.is_empty() {
                String::new()
            } else {
                format!(" ({})", kinds.join(", "))
            }
        );
        if let Some(c) = self.snapshot.listen_counters {
            let _ = write!(
                line,
                "\naccept queues: {} connection{} turned away when full since boot \
                 (ListenOverflows), {} SYN{} dropped (ListenDrops)",
                c.listen_overflows,
                if c.listen_overflows == 1 { "" } else { "s" },
                c.listen_drops,
                if c.listen_drops == 1 { "" } else { "s" },
            );
            if let Some(max) = self.snapshot.somaxconn {
                let _ = write!(line, "; somaxconn {max} caps every backlog");
            }
        }
        let hidden = self
            .rows
            .iter()
            .filter(|e| e.owners.is_empty() && e.inode != 0)
            .count();
        if hidden > 0 {
            let why = if self.snapshot.root {
                "held by no process this one can see (another PID namespace, or the kernel's own)"
            } else {
                "other users' processes hide their descriptors (run as root to see them all)"
            };
            let _ = write!(
                line,
                "\n{hidden} socket{} without a visible holder: {why}",
                if hidden == 1 { "" } else { "s" },
            );
        }
        line
    }

    /// What each state shown means, once per state, in the order they appear.
    fn meanings(&self) -> String {
        let mut seen: Vec<(Kind, State)> = Vec::new();
        for e in &self.rows {
            let key = (group(e.kind), e.state);
            if !seen
                .iter()
                .any(|k| k.0 == key.0 && k.1.name() == key.1.name())
            {
                seen.push(key);
            }
        }
        let mut out = String::from("\nWhat the states mean:\n");
        for (kind, state) in seen {
            let label = if kind.is_datagram() && state == State::Close {
                format!("{} (datagram)", state.name())
            } else {
                state.name().to_string()
            };
            let _ = writeln!(out, "  {label:<12} {}", meaning(kind, state));
        }
        out
    }

    /// Notes for one socket: a listener's queue, a Unix peer, and with
    /// `explain` what its queues say.
    fn notes(&self, e: &Entry, peers: &HashMap<u64, &Entry>) -> Vec<String> {
        let mut notes = Vec::new();
        if let Some(q) = e.listen {
            let mut note = format!("accept queue {}/{}", q.queued, q.backlog);
            if let Some(max) = self.snapshot.somaxconn {
                let _ = write!(note, " (somaxconn {max})");
            }
            if q.backlog > 0 && q.queued >= q.backlog {
                note.push_str(" FULL: new connections are dropped until the program accept()s");
            }
            notes.push(note);
        }
        if let Some(peer) = e.peer_inode.and_then(|i| peers.get(&i))
            && !peer.owners.is_empty()
        {
            notes.push(format!("peer {}", owners_column(peer)));
        }
        if let Some(grew) = self.growth.get(&e.inode) {
            notes.push(format!(
                "Send-Q grew by {grew} bytes since the last refresh: the peer is not reading"
            ));
        }
        if self.explain && e.listen.is_none() {
            if e.recv_q > 0 {
                notes.push(format!(
                    "{} bytes arrived that the program has not read yet",
                    e.recv_q
                ));
            }
            if e.send_q > 0 && e.kind == Kind::Tcp {
                notes.push(format!(
                    "{} bytes sent and not yet acknowledged (if this keeps growing, \
                     the peer is not reading)",
                    e.send_q
                ));
            }
        }
        notes
    }

    /// The other end: an IP address, or a Unix peer's name.
    fn foreign(&self, e: &Entry, peers: &HashMap<u64, &Entry>) -> String {
        match (&e.peer, e.peer_inode) {
            (Address::Unix(None), Some(inode)) => match peers.get(&inode) {
                Some(peer) if peer.local != Address::Unix(None) => peer.local.to_string(),
                _ => "*".into(),
            },
            (peer, _) => peer.to_string(),
        }
    }

    fn peer_index(&self) -> HashMap<u64, &Entry> {
        self.snapshot
            .sockets
            .iter()
            .filter(|e| e.kind.is_unix() && e.inode != 0)
            .map(|e| (e.inode, e))
            .collect()
    }

    /// One JSON object: the sockets and the summary.
    pub fn json(&self) -> Value {
        let peers = self.peer_index();
        let sockets: Vec<Value> = self
            .rows
            .iter()
            .map(|e| {
                let mut v = json!({
                    "proto": e.proto(),
                    "type": e.unix_type().unwrap_or(if e.kind == Kind::Tcp { "stream" } else { "dgram" }),
                    "local": e.local.to_string(),
                    "local_port": e.local.port(),
                    "peer": self.foreign(e, &peers),
                    "peer_port": e.peer.port().filter(|&p| p != 0),
                    "state": e.state.name(),
                    "recv_q": e.recv_q,
                    "send_q": e.send_q,
                    "inode": e.inode,
                    "owners": e.owners,
                });
                let obj = v.as_object_mut().expect("json! made an object");
                if let Some(q) = e.listen {
                    obj.insert(
                        "accept_queue".into(),
                        json!({"queued": q.queued, "backlog": q.backlog}),
                    );
                }
                if let Some(uid) = e.uid {
                    obj.insert("uid".into(), uid.into());
                }
                if let Some(grew) = self.growth.get(&e.inode) {
                    obj.insert("send_q_growth".into(), (*grew).into());
                }
                if self.explain {
                    obj.insert("meaning".into(), meaning(group(e.kind), e.state).into());
                    obj.insert("notes".into(), self.notes(e, &peers).into());
                }
                v
            })
            .collect();
        json!({
            "sockets": sockets,
            "summary": {
                "sockets": self.rows.len(),
                "listen_overflows": self.snapshot.listen_counters.map(|c| c.listen_overflows),
                "listen_drops": self.snapshot.listen_counters.map(|c| c.listen_drops),
                "somaxconn": self.snapshot.somaxconn,
                "hidden_holders": self.rows.iter().filter(|e| e.owners.is_empty() && e.inode != 0).count(),
            },
        })
    }
}

/// TCP, UDP (datagram) or Unix stream, for the meanings.
fn group(kind: Kind) -> Kind {
    match kind {
        Kind::UnixSeqpacket => Kind::UnixStream,
        k => k,
    }
}

fn proto_column(e: &Entry) -> String {
    match e.unix_type() {
        Some(t) => format!("unix/{t}"),
        None => e.proto().to_string(),
    }
}

/// `PID/name` for each holder, as `netstat -p` prints it; `-` for none.
fn owners_column(e: &Entry) -> String {
    if e.owners.is_empty() {
        return "-".into();
    }
    let all: Vec<String> = e
        .owners
        .iter()
        .map(|o| format!("{}/{}", o.pid, o.name))
        .collect();
    all.join(",")
}

/// What a state means for the program that holds the socket.
pub fn meaning(kind: Kind, state: State) -> &'static str {
    match state {
        State::Listen => {
            "waiting for connections: the kernel completes each handshake into the accept \
             queue and accept() takes it out; when the queue is full, new connections are \
             dropped (ListenOverflows)"
        }
        State::Established if kind.is_datagram() => {
            "connected: sends to one peer and takes datagrams from it only"
        }
        State::Established => "connected: data flows both ways",
        State::SynSent => {
            "connect() sent a SYN and waits for the answer; stuck here means packets are \
             dropped on the way (a firewall) or the host is down"
        }
        State::SynRecv | State::NewSynRecv => {
            "a client's SYN was answered; waiting for its ACK to finish the handshake \
             (many of these: a SYN flood, or answers lost on the way)"
        }
        State::FinWait1 => {
            "this program closed its side (close or shutdown); its FIN is not yet acknowledged"
        }
        State::FinWait2 => {
            "this program closed its side and the peer acknowledged; waiting for the peer \
             to close too"
        }
        State::TimeWait => {
            "this side closed first: the kernel keeps the address pair reserved for 60 s, \
             with no process holding it, so that late packets of the old connection are \
             not taken for a new one"
        }
        State::CloseWait => {
            "the peer closed and this program has not: it should read to the end (recv \
             returns 0) and close() the socket; sockets that stay here are a leak"
        }
        State::LastAck => "the peer closed first, then this program; waiting for the last ACK",
        State::Closing => "both sides closed at once; waiting for the last ACK",
        State::Close if kind.is_datagram() => {
            "bound and not connected: takes datagrams from any sender"
        }
        State::Close => "made, but neither connected nor listening",
        State::Other(_) => "a state this program does not know",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::os::{ListenCounters, PortHolder};
    use crate::sockets::ListenQueue;

    fn entry(kind: Kind, local: &str, peer: &str, state: State) -> Entry {
        let addr = |s: &str| match s.parse() {
            Ok(a) => Address::Ip(a),
            Err(_) => Address::Unix((s != "*").then(|| s.to_string())),
        };
        Entry {
            kind,
            local: addr(local),
            peer: addr(peer),
            state,
            recv_q: 0,
            send_q: 0,
            listen: None,
            inode: 100,
            peer_inode: None,
            uid: Some(1000),
            owners: vec![PortHolder {
                pid: 4242,
                name: "echokit".into(),
                command: "echokit echo-server".into(),
            }],
        }
    }

    fn snapshot(sockets: Vec<Entry>) -> Snapshot {
        Snapshot {
            sockets,
            listen_counters: Some(ListenCounters {
                listen_overflows: 3,
                listen_drops: 4,
            }),
            somaxconn: Some(4096),
            root: false,
        }
    }

    fn view(snapshot: &Snapshot, explain: bool) -> View<'_> {
        View {
            snapshot,
            rows: snapshot.sockets.iter().collect(),
            explain,
            growth: HashMap::new(),
        }
    }

    fn listener() -> Entry {
        let mut l = entry(Kind::Tcp, "127.0.0.1:65432", "0.0.0.0:0", State::Listen);
        l.listen = Some(ListenQueue {
            queued: 2,
            backlog: 1024,
        });
        l.recv_q = 2;
        l.send_q = 1024;
        l
    }

    #[test]
    fn a_listener_row_has_its_holder_and_accept_queue() {
        let snap = snapshot(vec![listener()]);
        let text = view(&snap, false).table();
        let row = text.lines().nth(1).unwrap();
        let words: Vec<&str> = row.split_whitespace().collect();
        assert_eq!(
            &words[..7],
            [
                "tcp",
                "2",
                "1024",
                "127.0.0.1:65432",
                "0.0.0.0:*",
                "LISTEN",
                "4242/echokit"
            ]
        );
        assert!(
            row.ends_with("accept queue 2/1024 (somaxconn 4096)"),
            "{row}"
        );
        assert!(text.contains("3 connections turned away when full since boot (ListenOverflows)"));
        assert!(text.contains("4 SYNs dropped (ListenDrops)"));
    }

    #[test]
    fn the_header_lines_up_with_the_rows() {
        let snap = snapshot(vec![
            listener(),
            entry(Kind::Tcp, "[::1]:65432", "[::1]:50000", State::Established),
        ]);
        let text = view(&snap, false).table();
        let lines: Vec<&str> = text.lines().collect();
        let at = lines[0].find("Local Address").unwrap();
        assert_eq!(&lines[1][at..at + 15], "127.0.0.1:65432");
        assert_eq!(&lines[2][at..at + 11], "[::1]:65432");
        assert!(lines[2].starts_with("tcp6"));
    }

    #[test]
    fn a_full_accept_queue_says_so() {
        let mut l = listener();
        l.listen = Some(ListenQueue {
            queued: 5,
            backlog: 5,
        });
        let snap = snapshot(vec![l]);
        assert!(view(&snap, false).table().contains("FULL"));
    }

    #[test]
    fn explain_says_what_close_wait_and_time_wait_mean() {
        let mut tw = entry(
            Kind::Tcp,
            "127.0.0.1:40000",
            "127.0.0.1:65432",
            State::TimeWait,
        );
        tw.owners.clear();
        tw.inode = 0;
        let mut cw = entry(
            Kind::Tcp,
            "127.0.0.1:65432",
            "127.0.0.1:40001",
            State::CloseWait,
        );
        cw.send_q = 0;
        cw.recv_q = 12;
        let snap = snapshot(vec![tw, cw]);
        let text = view(&snap, true).table();
        assert!(text.contains("CLOSE_WAIT   the peer closed and this program has not"));
        assert!(text.contains("TIME_WAIT    this side closed first"));
        assert!(text.contains("12 bytes arrived that the program has not read yet"));
        let plain = view(&snap, false).table();
        assert!(!plain.contains("What the states mean"));
    }

    #[test]
    fn unix_peers_are_named_by_their_socket_and_process() {
        let mut server = entry(Kind::UnixStream, "/tmp/echo.sock", "*", State::Established);
        server.inode = 10;
        server.peer_inode = Some(11);
        let mut client = entry(Kind::UnixStream, "*", "*", State::Established);
        client.inode = 11;
        client.peer_inode = Some(10);
        client.owners[0].pid = 7;
        client.owners[0].name = "python3".into();
        let snap = snapshot(vec![server, client]);
        let text = view(&snap, false).table();
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines[1].starts_with("unix/stream"), "{}", lines[1]);
        assert!(lines[1].contains("peer 7/python3"), "{}", lines[1]);
        // The client's foreign address is the server's socket file.
        assert!(lines[2].contains("/tmp/echo.sock"), "{}", lines[2]);
    }

    #[test]
    fn json_holds_what_the_table_shows() {
        let mut hidden = listener();
        hidden.owners.clear();
        let snap = snapshot(vec![hidden]);
        let mut v = view(&snap, true);
        v.growth.insert(100, 7);
        let json = v.json();
        let s = &json["sockets"][0];
        assert_eq!(s["proto"], "tcp");
        assert_eq!(s["local"], "127.0.0.1:65432");
        assert_eq!(s["local_port"], 65432);
        assert_eq!(s["peer"], "0.0.0.0:*");
        assert_eq!(s["state"], "LISTEN");
        assert_eq!(s["accept_queue"]["queued"], 2);
        assert_eq!(s["accept_queue"]["backlog"], 1024);
        assert_eq!(s["send_q_growth"], 7);
        assert!(
            s["meaning"]
                .as_str()
                .unwrap()
                .starts_with("waiting for connections")
        );
        assert_eq!(json["summary"]["listen_overflows"], 3);
        assert_eq!(json["summary"]["hidden_holders"], 1);
        assert!(
            v.table()
                .contains("1 socket without a visible holder: other users'")
        );
        let v = view(&snap, false);
        assert_eq!(v.json()["sockets"][0]["owners"], serde_json::json!([]));
    }
}
