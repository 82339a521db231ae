//! What `netstat -anp` and `lsof -i -n` show together: every TCP, UDP and
//! Unix socket of this host (its network namespace), with its state, its
//! queues and the processes that hold it, and what each state means.
//!
//! Reading, parsing and rendering are apart, so that the last two are tested
//! on fixtures:
//!
//! | file           | role                                                          |
//! |----------------|---------------------------------------------------------------|
//! | `mod.rs`       | the model ([`Entry`], [`State`]), [`snapshot`] and [`Filter`] |
//! | `sock_diag.rs` | Linux: the kernel's sock_diag netlink dump, read and parsed   |
//! | `render.rs`    | the table, the JSON and the explanations                      |
//! | `nearby.rs`    | what listens here instead, for a refused connect's error      |
//!
//! Why netlink and not `/proc/net/tcp`: a listening socket's accept queue and
//! backlog exist only there (procfs shows 0 for both), and netlink reads
//! tens of thousands of sockets without formatting them as text first.
//! Who holds each socket comes from `/proc/PID/fd` ([`crate::os`]). Nothing
//! here resolves a name: addresses are numeric, so a listing never waits on DNS.

use std::collections::HashMap;
use std::fmt;
use std::net::SocketAddr;

use serde::Serialize;

use crate::os::{self, ListenCounters, PortHolder};

pub mod nearby;
pub mod render;
#[cfg(target_os = "linux")]
pub mod sock_diag;

/// The transport and socket type.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kind {
    /// TCP over IPv4 or IPv6.
    Tcp,
    /// UDP over IPv4 or IPv6.
    Udp,
    /// A Unix stream socket (`SOCK_STREAM`).
    UnixStream,
    /// A Unix datagram socket (`SOCK_DGRAM`).
    UnixDgram,
    /// A Unix sequenced-packet socket (`SOCK_SEQPACKET`).
    UnixSeqpacket,
}

impl Kind {
    /// Every kind, in the order the table lists them.
    pub const ALL: [Kind; 5] = [
        Kind::Tcp,
        Kind::Udp,
        Kind::UnixStream,
        Kind::UnixDgram,
        Kind::UnixSeqpacket,
    ];

    /// A Unix socket kind.
    pub fn is_unix(self) -> bool {
        !matches!(self, Kind::Tcp | Kind::Udp)
    }

    /// A connection-less kind: unconnected sockets of it are "UNCONN".
    pub fn is_datagram(self) -> bool {
        matches!(self, Kind::Udp | Kind::UnixDgram)
    }
}

/// A socket's state, as the kernel numbers it (TCP's state machine; UDP
/// and Unix sockets use `ESTABLISHED`, `LISTEN` and `CLOSE` from it).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum State {
    /// Connected: data flows both ways.
    Established,
    /// `connect()` sent a SYN and waits for the SYN-ACK.
    SynSent,
    /// A SYN came in and was answered; waiting for the final ACK.
    SynRecv,
    /// This side called `close()` or `shutdown(SHUT_WR)`; its FIN is not yet acknowledged.
    FinWait1,
    /// This side's FIN was acknowledged; waiting for the peer's FIN.
    FinWait2,
    /// This side closed first; the kernel keeps the connection's addresses reserved.
    TimeWait,
    /// No connection: a UDP or Unix socket that is not connected, or a TCP
    /// socket made but neither connected nor listening.
    Close,
    /// The peer closed its side; this program has not closed its own.
    CloseWait,
    /// Both closed, the peer first; waiting for the ACK of this side's FIN.
    LastAck,
    /// Waiting for connections.
    Listen,
    /// Both sides closed at once.
    Closing,
    /// A connection request in a listener's SYN queue (Linux's request socket).
    NewSynRecv,
    /// A state number this program does not know.
    Other(u8),
}

impl State {
    /// The state of the kernel's number (`TCP_ESTABLISHED` is 1, and so on).
    pub fn from_kernel(n: u8) -> State {
        match n {
            1 => State::Established,
            2 => State::SynSent,
            3 => State::SynRecv,
            4 => State::FinWait1,
            5 => State::FinWait2,
            6 => State::TimeWait,
            7 => State::Close,
            8 => State::CloseWait,
            9 => State::LastAck,
            10 => State::Listen,
            11 => State::Closing,
            12 => State::NewSynRecv,
            n => State::Other(n),
        }
    }

    /// The name netstat prints (`UNCONN` for an unconnected socket, as ss does).
    pub fn name(self) -> &'static str {
        match self {
            State::Established => "ESTABLISHED",
            State::SynSent => "SYN_SENT",
            State::SynRecv | State::NewSynRecv => "SYN_RECV",
            State::FinWait1 => "FIN_WAIT1",
            State::FinWait2 => "FIN_WAIT2",
            State::TimeWait => "TIME_WAIT",
            State::Close => "UNCONN",
            State::CloseWait => "CLOSE_WAIT",
            State::LastAck => "LAST_ACK",
            State::Listen => "LISTEN",
            State::Closing => "CLOSING",
            State::Other(_) => "UNKNOWN",
        }
    }

    /// Reads a state name as people write it: `listen`, `time-wait`,
    /// `TIME_WAIT`, `estab`, `unconn`.
    pub fn parse(s: &str) -> Option<State> {
        let key = s.trim().to_ascii_uppercase().replace('-', "_");
        Some(match key.as_str() {
            "ESTABLISHED" | "ESTAB" => State::Established,
            "SYN_SENT" => State::SynSent,
            "SYN_RECV" => State::SynRecv,
            "FIN_WAIT1" | "FIN_WAIT_1" => State::FinWait1,
            "FIN_WAIT2" | "FIN_WAIT_2" => State::FinWait2,
            "TIME_WAIT" => State::TimeWait,
            "UNCONN" | "CLOSE" | "CLOSED" => State::Close,
            "CLOSE_WAIT" => State::CloseWait,
            "LAST_ACK" => State::LastAck,
            "LISTEN" | "LISTENING" => State::Listen,
            "CLOSING" => State::Closing,
            _ => return None,
        })
    }

    /// The same state for a filter (a request socket is `SYN_RECV`).
    fn same(self, other: State) -> bool {
        self.name() == other.name()
    }
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One end of a socket.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Address {
    /// An IP address and port (`0.0.0.0:*` style when unspecified).
    Ip(SocketAddr),
    /// A Unix socket's name: a path, `@NAME` for an abstract name, or `None`
    /// when it has none (a client's socket, a `socketpair`).
    Unix(Option<String>),
}

impl Address {
    /// The port, for an IP address.
    pub fn port(&self) -> Option<u16> {
        match self {
            Address::Ip(a) => Some(a.port()),
            Address::Unix(_) => None,
        }
    }
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            // netstat's way: a zero port is "*" (no peer yet, or any).
            Address::Ip(a) if a.port() == 0 && a.ip().is_unspecified() => {
                write!(f, "{}:*", bracketed(a))
            }
            Address::Ip(a) => write!(f, "{a}"),
            Address::Unix(Some(name)) => f.write_str(name),
            Address::Unix(None) => f.write_str("*"),
        }
    }
}

fn bracketed(a: &SocketAddr) -> String {
    match a {
        SocketAddr::V4(v4) => v4.ip().to_string(),
        SocketAddr::V6(v6) => format!("[{}]", v6.ip()),
    }
}

/// A listener's accept queue: connections the kernel has completed and
/// `accept()` has not yet taken, against the most it holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct ListenQueue {
    /// Connections waiting for `accept()` now.
    pub queued: u32,
    /// The backlog in force: `listen()`'s argument, capped at somaxconn.
    pub backlog: u32,
}

/// One socket.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// Transport and socket type.
    pub kind: Kind,
    /// This end.
    pub local: Address,
    /// The other end (`*` when there is none).
    pub peer: Address,
    /// The state.
    pub state: State,
    /// Bytes received and not yet read by the program (for a listener, see `listen`).
    pub recv_q: u32,
    /// Bytes sent and not yet acknowledged by the peer (TCP), or not yet
    /// taken by it (Unix).
    pub send_q: u32,
    /// A listener's accept queue.
    pub listen: Option<ListenQueue>,
    /// The socket's inode: `socket:[INODE]` in `/proc/PID/fd` (0 for a
    /// TIME_WAIT or request socket, which no process holds).
    pub inode: u64,
    /// A Unix socket's peer, by inode.
    pub peer_inode: Option<u64>,
    /// The user that made it (not told for Unix sockets).
    pub uid: Option<u32>,
    /// The processes with a descriptor on it.
    pub owners: Vec<PortHolder>,
}

impl Entry {
    /// The table's protocol column: `tcp`, `tcp6`, `udp`, `udp6`, `unix`.
    pub fn proto(&self) -> &'static str {
        let v6 = matches!(self.local, Address::Ip(SocketAddr::V6(_)));
        match (self.kind, v6) {
            (Kind::Tcp, false) => "tcp",
            (Kind::Tcp, true) => "tcp6",
            (Kind::Udp, false) => "udp",
            (Kind::Udp, true) => "udp6",
            _ => "unix",
        }
    }

    /// The socket type word shown for Unix sockets.
    pub fn unix_type(&self) -> Option<&'static str> {
        match self.kind {
            Kind::UnixStream => Some("stream"),
            Kind::UnixDgram => Some("dgram"),
            Kind::UnixSeqpacket => Some("seqpacket"),
            Kind::Tcp | Kind::Udp => None,
        }
    }

    /// Waiting for peers: a TCP or Unix stream listener, or a bound
    /// datagram socket that is not connected (what `netstat -l` lists).
    pub fn is_listening(&self) -> bool {
        // A datagram socket is judged by its peer, not its state: the
        // kernel marks a Unix datagram server ESTABLISHED once a client has
        // connected to it, though it still takes datagrams from anyone.
        self.state == State::Listen
            || (self.kind.is_datagram() && self.local != Address::Unix(None) && !self.has_peer())
    }

    /// Whether the socket is connected to one peer: a UDP socket with a
    /// foreign port, a Unix socket with a peer inode.
    fn has_peer(&self) -> bool {
        match self.peer {
            Address::Ip(a) => a.port() != 0,
            Address::Unix(_) => self.peer_inode.is_some_and(|i| i != 0),
        }
    }
}

/// All sockets at one moment, and the counters that go with them.
#[derive(Clone, Debug)]
pub struct Snapshot {
    /// The sockets, TCP first, then UDP, then Unix.
    pub sockets: Vec<Entry>,
    /// Connections dropped since boot because an accept queue was full, if
    /// the kernel tells.
    pub listen_counters: Option<ListenCounters>,
    /// `net.core.somaxconn`: the cap on every backlog.
    pub somaxconn: Option<u32>,
    /// Read as root: every process's descriptors were visible.
    pub root: bool,
}

/// Why the socket table could not be read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SocketsError {
    /// The netlink socket or its dump failed.
    #[error("cannot read the socket table from the kernel (sock_diag netlink)")]
    Read(#[source] std::io::Error),
    /// The kernel's answer did not parse.
    #[error("the kernel's socket table did not parse: {0}")]
    Parse(String),
    /// No sock_diag on this system.
    #[error("reading sockets needs Linux's sock_diag netlink interface")]
    Unsupported,
}

impl crate::exit::Classify for SocketsError {
    fn exit_code(&self) -> crate::exit::ExitCode {
        crate::exit::ExitCode::Failures
    }
}

/// Reads every socket of the kinds asked for, with its holders.
pub fn snapshot(kinds: &[Kind]) -> Result<Snapshot, SocketsError> {
    let mut sockets = read(kinds)?;
    let owners = os::socket_owners();
    for entry in &mut sockets {
        if let Some(holders) = owners.get(&entry.inode) {
            entry.owners = holders.clone();
        }
    }
    Ok(Snapshot {
        sockets,
        listen_counters: os::listen_counters(),
        somaxconn: os::somaxconn(),
        root: nix::unistd::geteuid().is_root(),
    })
}

#[cfg(target_os = "linux")]
fn read(kinds: &[Kind]) -> Result<Vec<Entry>, SocketsError> {
    sock_diag::read_all(kinds)
}

#[cfg(not(target_os = "linux"))]
fn read(kinds: &[Kind]) -> Result<Vec<Entry>, SocketsError> {
    let _ = kinds;
    Err(SocketsError::Unsupported)
}

/// Which sockets to show; every field left empty matches all.
#[derive(Clone, Debug, Default)]
pub struct Filter {
    /// A local or peer port.
    pub port: Option<u16>,
    /// Any of these states.
    pub states: Vec<State>,
    /// Held by this process.
    pub pid: Option<u32>,
    /// Listeners and bound, unconnected datagram sockets only.
    pub listening: bool,
    /// IPv4 only (`Some(false)`: IPv6 only); Unix sockets pass neither.
    pub ipv4: Option<bool>,
}

impl Filter {
    /// Whether the socket passes.
    pub fn matches(&self, e: &Entry) -> bool {
        if let Some(port) = self.port
            && e.local.port() != Some(port)
            && e.peer.port() != Some(port)
        {
            return false;
        }
        if !self.states.is_empty() && !self.states.iter().any(|s| s.same(e.state)) {
            return false;
        }
        if let Some(pid) = self.pid
            && !e.owners.iter().any(|o| o.pid == pid)
        {
            return false;
        }
        if self.listening && !e.is_listening() {
            return false;
        }
        if let Some(v4) = self.ipv4 {
            match &e.local {
                Address::Ip(a) if a.is_ipv4() == v4 => {}
                _ => return false,
            }
        }
        true
    }
}

/// The sockets of `snapshot` that pass `filter`.
pub fn select<'a>(snapshot: &'a Snapshot, filter: &Filter) -> Vec<&'a Entry> {
    snapshot
        .sockets
        .iter()
        .filter(|e| filter.matches(e))
        .collect()
}

/// Send queues that grew between two snapshots, by inode: what `--watch`
/// needs to say that a peer is not reading.
pub fn send_queue_growth(before: &Snapshot, now: &Snapshot) -> HashMap<u64, u32> {
    let old: HashMap<u64, u32> = before
        .sockets
        .iter()
        .filter(|e| e.inode != 0)
        .map(|e| (e.inode, e.send_q))
        .collect();
    now.sockets
        .iter()
        .filter_map(|e| {
            let was = *old.get(&e.inode)?;
            (e.inode != 0 && e.state != State::Listen && e.send_q > was)
                .then(|| (e.inode, e.send_q - was))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn tcp(local: &str, peer: &str, state: State) -> Entry {
        Entry {
            kind: Kind::Tcp,
            local: Address::Ip(local.parse().unwrap()),
            peer: Address::Ip(peer.parse().unwrap()),
            state,
            recv_q: 0,
            send_q: 0,
            listen: None,
            inode: 1,
            peer_inode: None,
            uid: Some(0),
            owners: Vec::new(),
        }
    }

    #[test]
    fn a_bound_datagram_socket_with_no_peer_is_listening_whatever_its_state() {
        let unixgram = |local: Option<&str>, state, peer_inode| Entry {
            kind: Kind::UnixDgram,
            local: Address::Unix(local.map(str::to_string)),
            peer: Address::Unix(None),
            state,
            peer_inode,
            ..tcp("127.0.0.1:1", "0.0.0.0:0", State::Close)
        };
        // The regression: a server a client has connected to reads ESTABLISHED.
        let talked_to = unixgram(Some("/tmp/echo.sock"), State::Established, None);
        assert!(talked_to.is_listening());
        assert!(unixgram(Some("/tmp/echo.sock"), State::Close, None).is_listening());
        // The client: bound for the echo to come back, connected to the server.
        assert!(!unixgram(Some("/tmp/client.sock"), State::Established, Some(7)).is_listening());
        assert!(!unixgram(None, State::Close, None).is_listening());
        let udp = |peer: &str, state| Entry {
            kind: Kind::Udp,
            ..tcp("127.0.0.1:7", peer, state)
        };
        assert!(udp("0.0.0.0:0", State::Close).is_listening());
        assert!(!udp("127.0.0.1:5000", State::Established).is_listening());
    }

    #[test]
    fn state_names_read_as_people_write_them() {
        assert_eq!(State::parse("time-wait"), Some(State::TimeWait));
        assert_eq!(State::parse("ESTAB"), Some(State::Established));
        assert_eq!(State::parse("listen"), Some(State::Listen));
        assert_eq!(State::parse("unconn"), Some(State::Close));
        assert_eq!(State::parse("open"), None);
        for n in 1..=11 {
            let s = State::from_kernel(n);
            assert_eq!(State::parse(s.name()).map(State::name), Some(s.name()));
        }
    }

    #[test]
    fn port_filter_takes_either_end() {
        let f = Filter {
            port: Some(65432),
            ..Filter::default()
        };
        let server = tcp("127.0.0.1:65432", "127.0.0.1:50000", State::Established);
        let client = tcp("127.0.0.1:50000", "127.0.0.1:65432", State::Established);
        let other = tcp("127.0.0.1:50001", "127.0.0.1:80", State::Established);
        assert!(f.matches(&server) && f.matches(&client) && !f.matches(&other));
    }

    #[test]
    fn listening_means_listeners_and_bound_datagram_sockets() {
        let f = Filter {
            listening: true,
            ..Filter::default()
        };
        assert!(f.matches(&tcp("0.0.0.0:80", "0.0.0.0:0", State::Listen)));
        assert!(!f.matches(&tcp("127.0.0.1:1", "127.0.0.1:2", State::Established)));
        let mut udp = tcp("0.0.0.0:53", "0.0.0.0:0", State::Close);
        udp.kind = Kind::Udp;
        assert!(f.matches(&udp));
        // Connected: it takes datagrams from its peer only.
        udp.state = State::Established;
        udp.peer = Address::Ip("10.0.0.1:53".parse().unwrap());
        assert!(!f.matches(&udp));
    }

    #[test]
    fn a_request_socket_is_syn_recv_to_a_filter() {
        let f = Filter {
            states: vec![State::SynRecv],
            ..Filter::default()
        };
        assert!(f.matches(&tcp("127.0.0.1:1", "127.0.0.1:2", State::NewSynRecv)));
    }

    #[test]
    fn growth_is_per_socket_and_only_upwards() {
        let mut a = tcp("127.0.0.1:1", "127.0.0.1:2", State::Established);
        a.inode = 7;
        a.send_q = 100;
        let mut b = a.clone();
        b.inode = 8;
        let snap = |sockets| Snapshot {
            sockets,
            listen_counters: None,
            somaxconn: None,
            root: false,
        };
        let before = snap(vec![a.clone(), b.clone()]);
        a.send_q = 5000;
        b.send_q = 10;
        let now = snap(vec![a, b]);
        let growth = send_queue_growth(&before, &now);
        assert_eq!(growth.get(&7), Some(&4900));
        assert_eq!(growth.get(&8), None);
    }
}
