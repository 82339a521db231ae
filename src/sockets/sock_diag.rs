//! Linux's sock_diag netlink interface (`man 7 sock_diag`): one dump request
//! per family and protocol, answered with one message per socket.
//!
//! [`read`] only moves bytes: it sends the request and returns the kernel's
//! messages as they came, up to `NLMSG_DONE`. [`parse`] turns those bytes
//! into [`Entry`]s and does no I/O, so it is tested on recorded dumps
//! (`tests/fixtures/sock_diag/`).

use std::io;
use std::net::SocketAddr;

use netlink_packet_core::{
    NLM_F_DUMP, NLM_F_REQUEST, NLMSG_DONE, NLMSG_ERROR, NetlinkBuffer, NetlinkHeader,
    NetlinkMessage, NetlinkPayload,
};
use netlink_packet_sock_diag::SockDiagMessage;
use netlink_packet_sock_diag::constants::{
    AF_INET, AF_INET6, IPPROTO_TCP, IPPROTO_UDP, SOCK_DGRAM, SOCK_SEQPACKET, SOCK_STREAM,
};
use netlink_packet_sock_diag::inet::{self, ExtensionFlags, InetRequest, SocketId};
use netlink_packet_sock_diag::unix::nlas::UnixDiagName;
use netlink_packet_sock_diag::unix::{self, ShowFlags, UnixRequest};
use netlink_sys::protocols::NETLINK_SOCK_DIAG;

use super::{Address, Entry, Kind, ListenQueue, SocketsError, State};

/// One dump: a family and protocol for IP sockets, or every Unix socket.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Query {
    /// TCP sockets of one family (`true`: IPv6).
    Tcp {
        /// IPv6 rather than IPv4.
        v6: bool,
    },
    /// UDP sockets of one family.
    Udp {
        /// IPv6 rather than IPv4.
        v6: bool,
    },
    /// Unix sockets of every type.
    Unix,
}

impl Query {
    /// The dumps that cover these kinds.
    pub fn covering(kinds: &[Kind]) -> Vec<Query> {
        let mut out = Vec::new();
        if kinds.contains(&Kind::Tcp) {
            out.extend([Query::Tcp { v6: false }, Query::Tcp { v6: true }]);
        }
        if kinds.contains(&Kind::Udp) {
            out.extend([Query::Udp { v6: false }, Query::Udp { v6: true }]);
        }
        if kinds.iter().any(|k| k.is_unix()) {
            out.push(Query::Unix);
        }
        out
    }

    fn request(self) -> SockDiagMessage {
        // Every state: the kernel's mask is one bit per state number.
        let all = u32::MAX;
        let ip = |v6: bool, protocol| {
            SockDiagMessage::InetRequest(InetRequest {
                family: if v6 { AF_INET6 } else { AF_INET },
                protocol,
                extensions: ExtensionFlags::empty(),
                states: inet::StateFlags::from_bits_retain(all),
                socket_id: if v6 {
                    SocketId::new_v6()
                } else {
                    SocketId::new_v4()
                },
            })
        };
        match self {
            Query::Tcp { v6 } => ip(v6, IPPROTO_TCP),
            Query::Udp { v6 } => ip(v6, IPPROTO_UDP),
            Query::Unix => SockDiagMessage::UnixRequest(UnixRequest {
                state_flags: unix::StateFlags::from_bits_retain(all),
                inode: 0,
                show_flags: ShowFlags::NAME | ShowFlags::PEER | ShowFlags::RQLEN,
                cookie: [0; 8],
            }),
        }
    }
}

/// Reads every socket of these kinds.
pub fn read_all(kinds: &[Kind]) -> Result<Vec<Entry>, SocketsError> {
    let mut entries = Vec::new();
    for query in Query::covering(kinds) {
        let bytes = match read(query) {
            Ok(bytes) => bytes,
            // A kernel without UDP diagnostics (CONFIG_INET_UDP_DIAG) has no
            // handler for that dump: show the rest.
            Err(e) if matches!(query, Query::Udp { .. }) && is_unsupported(&e) => continue,
            Err(e) => return Err(SocketsError::Read(e)),
        };
        entries.extend(
            parse(query, &bytes)?
                .into_iter()
                .filter(|e| kinds.contains(&e.kind)),
        );
    }
    Ok(entries)
}

fn is_unsupported(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::ENOENT | libc::EOPNOTSUPP | libc::EINVAL)
    )
}

/// Sends one dump request and returns the kernel's answer: its netlink
/// messages, back to back, the closing `NLMSG_DONE` included.
pub fn read(query: Query) -> io::Result<Vec<u8>> {
    let mut socket = netlink_sys::Socket::new(NETLINK_SOCK_DIAG)?;
    socket.bind_auto()?;
    socket.connect(&netlink_sys::SocketAddr::new(0, 0))?;
    let mut header = NetlinkHeader::default();
    header.flags = NLM_F_REQUEST | NLM_F_DUMP;
    let mut request = NetlinkMessage::new(header, query.request().into());
    request.finalize();
    let mut buf = vec![0; request.buffer_len()];
    request.serialize(&mut buf);
    socket.send(&buf, 0)?;
    let mut answer = Vec::new();
    loop {
        let (datagram, _) = socket.recv_from_full()?;
        if datagram.is_empty() {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the dump ended without NLMSG_DONE",
            ));
        }
        let done = ends_dump(&datagram)?;
        answer.extend_from_slice(&datagram);
        if done {
            return Ok(answer);
        }
    }
}

/// Whether a datagram holds the dump's last message; an error message is
/// the kernel's errno.
fn ends_dump(datagram: &[u8]) -> io::Result<bool> {
    let mut rest = datagram;
    while !rest.is_empty() {
        let message =
            NetlinkBuffer::new_checked(rest).map_err(|e| io::Error::other(e.to_string()))?;
        match message.message_type() {
            NLMSG_DONE => return Ok(true),
            NLMSG_ERROR => {
                let parsed = NetlinkMessage::<SockDiagMessage>::deserialize(rest)
                    .map_err(|e| io::Error::other(e.to_string()))?;
                if let NetlinkPayload::Error(e) = parsed.payload
                    && e.code.is_some()
                {
                    return Err(e.to_io());
                }
            }
            _ => {}
        }
        let len = aligned(message.length() as usize).min(rest.len());
        if len == 0 {
            break;
        }
        rest = &rest[len..];
    }
    Ok(false)
}

/// Netlink messages start on 4-byte boundaries.
fn aligned(len: usize) -> usize {
    (len + 3) & !3
}

/// Turns a dump's bytes (as [`read`] returns them) into entries.
pub fn parse(query: Query, bytes: &[u8]) -> Result<Vec<Entry>, SocketsError> {
    let bad = |what: String| SocketsError::Parse(what);
    let mut entries = Vec::new();
    let mut rest = bytes;
    while !rest.is_empty() {
        let message = NetlinkMessage::<SockDiagMessage>::deserialize(rest)
            .map_err(|e| bad(format!("{e}")))?;
        let len = aligned(message.header.length as usize);
        if len == 0 || len > aligned(rest.len()) {
            return Err(bad(format!(
                "a message of {len} bytes in {} left",
                rest.len()
            )));
        }
        match message.payload {
            NetlinkPayload::InnerMessage(SockDiagMessage::InetResponse(r)) => {
                entries.push(inet_entry(query, &r)?);
            }
            NetlinkPayload::InnerMessage(SockDiagMessage::UnixResponse(r)) => {
                if let Some(entry) = unix_entry(&r) {
                    entries.push(entry);
                }
            }
            NetlinkPayload::Done(_) => break,
            NetlinkPayload::Error(e) if e.code.is_some() => {
                return Err(SocketsError::Read(e.to_io()));
            }
            _ => {}
        }
        rest = &rest[len.min(rest.len())..];
    }
    Ok(entries)
}

fn inet_entry(query: Query, r: &inet::InetResponse) -> Result<Entry, SocketsError> {
    let kind = match query {
        Query::Tcp { .. } => Kind::Tcp,
        Query::Udp { .. } => Kind::Udp,
        Query::Unix => {
            return Err(SocketsError::Parse(
                "an IP socket in a Unix socket dump".into(),
            ));
        }
    };
    let h = &r.header;
    let id = &h.socket_id;
    let state = State::from_kernel(h.state);
    // For a listener the two queue fields are the accept queue and the backlog.
    let listen = (state == State::Listen).then_some(ListenQueue {
        queued: h.recv_queue,
        backlog: h.send_queue,
    });
    Ok(Entry {
        kind,
        local: Address::Ip(SocketAddr::new(id.source_address, id.source_port)),
        peer: Address::Ip(SocketAddr::new(id.destination_address, id.destination_port)),
        state,
        recv_q: h.recv_queue,
        send_q: h.send_queue,
        listen,
        inode: u64::from(h.inode),
        peer_inode: None,
        uid: Some(h.uid),
        owners: Vec::new(),
    })
}

fn unix_entry(r: &unix::UnixResponse) -> Option<Entry> {
    let kind = match r.header.kind {
        SOCK_STREAM => Kind::UnixStream,
        SOCK_DGRAM => Kind::UnixDgram,
        SOCK_SEQPACKET => Kind::UnixSeqpacket,
        _ => return None,
    };
    let state = State::from_kernel(r.header.state);
    let name = r.name().map(|n| match n {
        UnixDiagName::Pathname(p) => p.to_string_lossy().into_owned(),
        UnixDiagName::Abstract(bytes) => format!("@{}", String::from_utf8_lossy(bytes)),
    });
    // UNIX_DIAG_RQLEN: for a listener, the pending connections and the
    // backlog; for any other socket, the bytes queued in and out.
    let (first, second) = r
        .nlas
        .iter()
        .find_map(|nla| match nla {
            unix::nlas::Nla::ReceiveQueueLength(a, b) => Some((*a, *b)),
            _ => None,
        })
        .unwrap_or((0, 0));
    let listen = (state == State::Listen).then_some(ListenQueue {
        queued: first,
        backlog: second,
    });
    Some(Entry {
        kind,
        local: Address::Unix(name),
        peer: Address::Unix(None),
        state,
        recv_q: first,
        send_q: second,
        listen,
        inode: u64::from(r.header.inode),
        peer_inode: r.peer().map(u64::from).filter(|&p| p != 0),
        uid: None,
        owners: Vec::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Recorded with `record_fixtures` below on Linux 6.18: a TCP listener
    /// on 127.0.0.1 with backlog 5 and two connections waiting in its
    /// accept queue, both ends of each, and nothing else of this process.
    const TCP4: &[u8] = include_bytes!("../../tests/fixtures/sock_diag/tcp4.bin");
    /// A Unix stream listener with backlog 7, one connection accepted and
    /// one pending, and a Unix datagram socket bound to an abstract name.
    const UNIX: &[u8] = include_bytes!("../../tests/fixtures/sock_diag/unix.bin");
    #[test]
    fn a_listener_shows_its_accept_queue_and_backlog() {
        let entries = parse(Query::Tcp { v6: false }, TCP4).unwrap();
        let listener = entries
            .iter()
            .find(|e| e.state == State::Listen)
            .expect("the listener is in the dump");
        let port = listener.local.port().unwrap();
        assert_eq!(
            listener.listen,
            Some(ListenQueue {
                queued: 2,
                backlog: 5
            })
        );
        assert_eq!(listener.local.to_string(), format!("127.0.0.1:{port}"));
        assert_eq!(listener.peer.to_string(), "0.0.0.0:*");
        assert_ne!(listener.inode, 0);
        let established: Vec<&Entry> = entries
            .iter()
            .filter(|e| e.state == State::Established)
            .collect();
        // Two connections, each seen from both ends.
        assert_eq!(established.len(), 4);
        assert_eq!(
            established
                .iter()
                .filter(|e| e.local.port() == Some(port))
                .count(),
            2
        );
        assert!(
            established
                .iter()
                .all(|e| e.kind == Kind::Tcp && e.listen.is_none())
        );
    }

    #[test]
    fn unix_sockets_show_names_peers_and_queues() {
        let entries = parse(Query::Unix, UNIX).unwrap();
        let listener = entries
            .iter()
            .find(|e| {
                e.state == State::Listen
                    && matches!(&e.local, Address::Unix(Some(n)) if n.ends_with("fixture.sock"))
            })
            .expect("the listener is in the dump");
        assert_eq!(listener.kind, Kind::UnixStream);
        assert_eq!(
            listener.listen,
            Some(ListenQueue {
                queued: 1,
                backlog: 7
            })
        );
        let gram = entries
            .iter()
            .find(|e| e.local == Address::Unix(Some("@echokit-fixture".into())))
            .expect("the abstract datagram socket is in the dump");
        assert_eq!(gram.kind, Kind::UnixDgram);
        assert_eq!(gram.state, State::Close);
        assert!(gram.is_listening());
        // The accepted pair name each other by inode.
        let pair: Vec<&Entry> = entries
            .iter()
            .filter(|e| e.state == State::Established && e.peer_inode.is_some())
            .collect();
        assert!(
            pair.iter().any(|a| pair
                .iter()
                .any(|b| a.peer_inode == Some(b.inode) && b.peer_inode == Some(a.inode))),
            "{pair:?}"
        );
    }

    #[test]
    fn a_truncated_dump_is_a_parse_error() {
        let cut = &TCP4[..TCP4.len() / 2 + 3];
        assert!(matches!(
            parse(Query::Tcp { v6: false }, cut),
            Err(SocketsError::Parse(_))
        ));
    }

    #[test]
    fn the_live_table_has_this_process_listener() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let entries = read_all(&[Kind::Tcp]).unwrap();
        assert!(
            entries
                .iter()
                .any(|e| e.state == State::Listen && e.local.port() == Some(port))
        );
    }

    /// Writes the fixtures above from live sockets:
    /// `cargo test --lib record_fixtures -- --ignored`.
    #[test]
    #[ignore = "writes tests/fixtures; run by hand to record them again"]
    fn record_fixtures() {
        use socket2::{Domain, Socket, Type};
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/sock_diag");
        std::fs::create_dir_all(&dir).unwrap();

        let listener = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
        let any: SocketAddr = "127.0.0.1:0".parse().unwrap();
        listener.bind(&any.into()).unwrap();
        listener.listen(5).unwrap();
        let addr = listener.local_addr().unwrap().as_socket().unwrap();
        let clients: Vec<_> = (0..2)
            .map(|_| std::net::TcpStream::connect(addr).unwrap())
            .collect();
        let keep =
            |e: &Entry| e.local.port() == Some(addr.port()) || e.peer.port() == Some(addr.port());
        let all = read(Query::Tcp { v6: false }).unwrap();
        std::fs::write(
            dir.join("tcp4.bin"),
            only(&all, |m| {
                parse(Query::Tcp { v6: false }, m).is_ok_and(|e| e.iter().all(keep))
            }),
        )
        .unwrap();
        drop(clients);

        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("fixture.sock");
        let unix = Socket::new(Domain::UNIX, Type::STREAM, None).unwrap();
        unix.bind(&socket2::SockAddr::unix(&path).unwrap()).unwrap();
        unix.listen(7).unwrap();
        let accepted_client = std::os::unix::net::UnixStream::connect(&path).unwrap();
        let (accepted, _) = unix.accept().unwrap();
        let client = std::os::unix::net::UnixStream::connect(&path).unwrap();
        let gram = Socket::new(Domain::UNIX, Type::DGRAM, None).unwrap();
        gram.bind(
            &crate::net::unix::sock_addr(&crate::endpoint::LocalName::Abstract(
                "echokit-fixture".into(),
            ))
            .unwrap(),
        )
        .unwrap();
        let mine: Vec<u64> = [
            std::os::fd::AsRawFd::as_raw_fd(&unix),
            std::os::fd::AsRawFd::as_raw_fd(&client),
            std::os::fd::AsRawFd::as_raw_fd(&accepted_client),
            std::os::fd::AsRawFd::as_raw_fd(&accepted),
            std::os::fd::AsRawFd::as_raw_fd(&gram),
        ]
        .iter()
        .map(|fd| {
            let link = std::fs::read_link(format!("/proc/self/fd/{fd}")).unwrap();
            let s = link.to_string_lossy();
            s.trim_start_matches("socket:[")
                .trim_end_matches(']')
                .parse()
                .unwrap()
        })
        .collect();
        let all = read(Query::Unix).unwrap();
        std::fs::write(
            dir.join("unix.bin"),
            only(&all, |m| {
                parse(Query::Unix, m).is_ok_and(|e| {
                    e.iter().all(|e| {
                        mine.contains(&e.inode) || e.peer_inode.is_some_and(|p| mine.contains(&p))
                    })
                })
            }),
        )
        .unwrap();
        drop((client, accepted, accepted_client));
    }

    /// The messages of a dump that `keep` accepts, and the closing one.
    fn only(dump: &[u8], keep: impl Fn(&[u8]) -> bool) -> Vec<u8> {
        let mut out = Vec::new();
        let mut rest = dump;
        while !rest.is_empty() {
            let len = aligned(NetlinkBuffer::new_checked(rest).unwrap().length() as usize)
                .min(rest.len());
            let message = &rest[..len];
            let is_done = NetlinkBuffer::new(message).message_type() == NLMSG_DONE;
            if is_done || keep(message) {
                out.extend_from_slice(message);
            }
            rest = &rest[len..];
        }
        out
    }
}
