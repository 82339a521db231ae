//! `echokit probe`: is anything there? The socket guide's `connect_ex`, made
//! into a tool that explains each answer.
//!
//! | file                    | role                                                   |
//! |-------------------------|--------------------------------------------------------|
//! | [`target`]              | TARGET specs (ranges, lists) into endpoints; pure      |
//! | `mod.rs` (this file)    | the types: probes, states, tries, and what each means  |
//! | [`engine`]              | the I/O: non-blocking connects on one `Poll`, resolution |
//! | [`report`]              | text and JSON rendering; pure                          |
//!
//! A TCP probe is a connect: a completed handshake is `open`, a reset is
//! `refused`, silence until `--timeout` is `timed out`, an ICMP error is
//! `unreachable`. A UDP probe sends one small datagram on a connected socket:
//! an answer is `open`, the ICMP "port unreachable" (which the kernel hands
//! to the next `recv` as `ECONNREFUSED`) is `refused`, and silence is `no
//! reply`, which proves nothing. A Unix probe connects to the path: the
//! kernel answers at once, and its errno tells a missing file from a stale
//! one, a denied one or one of the other socket type.

use std::net::SocketAddr;
use std::time::Duration;

use crate::endpoint::Endpoint;
use crate::exit::{Classify, ExitCode};
use crate::net::ConnectError;

pub mod engine;
pub mod report;
pub mod target;

pub use engine::{Config, resolve, run};
pub use target::{Target, TargetError};

/// How long a probe waits when no `--timeout` is given. Long enough for one
/// lost SYN to be sent again (Linux retransmits it after 1 s) and for a
/// round trip to anywhere on Earth; short enough that a range of filtered
/// ports, 256 at a time, takes seconds rather than minutes.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(2);

/// Probes in flight at once when no `--concurrency` is given: each holds a
/// descriptor, and 256 stays well under the common soft limit of 1024 even
/// where it cannot be raised; on loopback 1024 ports take milliseconds at it.
pub const DEFAULT_CONCURRENCY: usize = 256;

/// What a UDP probe sends: a few printable bytes, so that an echo server
/// answers and a person reading a capture knows who sent them.
pub const UDP_PAYLOAD: &[u8] = b"echokit probe\n";

/// Why probing could not run at all (a probe's own failure is its outcome).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProbeError {
    /// A TARGET is not one.
    #[error(transparent)]
    Target(#[from] TargetError),
    /// `--bind` cannot reach a target's addresses (the other IP family).
    #[error(transparent)]
    Family(ConnectError),
    /// The event loop could not be made or waited on.
    #[error("cannot wait for the probes: {0}")]
    Poll(#[source] std::io::Error),
}

impl Classify for ProbeError {
    fn exit_code(&self) -> ExitCode {
        match self {
            ProbeError::Target(_) | ProbeError::Family(_) => ExitCode::Usage,
            ProbeError::Poll(_) => ExitCode::Failures,
        }
    }
}

/// The transport a probe speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Proto {
    /// A TCP connect.
    Tcp,
    /// A UDP datagram, waiting for an answer or an ICMP refusal.
    Udp,
    /// A connect to a Unix stream socket.
    Unix,
    /// A connect to a Unix datagram socket.
    UnixGram,
}

impl Proto {
    /// The protocol of an endpoint.
    pub fn of(endpoint: &Endpoint) -> Proto {
        match endpoint {
            Endpoint::Tcp(_) => Proto::Tcp,
            Endpoint::Udp(_) => Proto::Udp,
            Endpoint::Unix(_) => Proto::Unix,
            Endpoint::UnixGram(_) => Proto::UnixGram,
        }
    }

    /// Its name in the JSON output.
    pub fn as_str(self) -> &'static str {
        match self {
            Proto::Tcp => "tcp",
            Proto::Udp => "udp",
            Proto::Unix => "unix",
            Proto::UnixGram => "unixgram",
        }
    }
}

/// What one try found.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum State {
    /// Something accepted the connection, or answered the datagram.
    Open,
    /// Nothing listens: a TCP reset, an ICMP port unreachable, a Unix
    /// socket file with no server.
    Refused,
    /// Nothing answered within the timeout (TCP).
    TimedOut,
    /// No answer to the datagram within the timeout (UDP): open but
    /// silent, filtered, or the refusal was lost.
    NoReply,
    /// No route to the host or its network.
    Unreachable,
    /// No such Unix socket file (`ENOENT`).
    Missing,
    /// Permission denied: a Unix socket file's mode, or a local firewall rule.
    Denied,
    /// The Unix socket at the path is of the other type (`EPROTOTYPE`).
    WrongType,
    /// The host name did not resolve: nothing was sent.
    Unresolved,
    /// Any other error, named by its errno.
    Error,
}

/// What a probe found, as the clients' exit codes say it.
impl Classify for State {
    fn exit_code(&self) -> ExitCode {
        match self {
            State::Open => ExitCode::Success,
            State::Refused | State::Missing => ExitCode::Refused,
            State::TimedOut | State::NoReply => ExitCode::TimedOut,
            State::Unreachable | State::Unresolved => ExitCode::Unreachable,
            State::Denied => ExitCode::PermissionDenied,
            State::WrongType => ExitCode::Usage,
            State::Error => ExitCode::Failures,
        }
    }
}

impl State {
    /// Every state, in the order summaries list them.
    pub const ALL: [State; 10] = [
        State::Open,
        State::Refused,
        State::TimedOut,
        State::NoReply,
        State::Unreachable,
        State::Missing,
        State::Denied,
        State::WrongType,
        State::Unresolved,
        State::Error,
    ];

    /// Its name in the output: words, as a person says them.
    pub fn as_str(self) -> &'static str {
        match self {
            State::Open => "open",
            State::Refused => "refused",
            State::TimedOut => "timed out",
            State::NoReply => "no reply",
            State::Unreachable => "unreachable",
            State::Missing => "missing",
            State::Denied => "denied",
            State::WrongType => "wrong type",
            State::Unresolved => "unresolved",
            State::Error => "error",
        }
    }

    /// Its key in the JSON output.
    pub fn key(self) -> &'static str {
        match self {
            State::Open => "open",
            State::Refused => "refused",
            State::TimedOut => "timed_out",
            State::NoReply => "no_reply",
            State::Unreachable => "unreachable",
            State::Missing => "missing",
            State::Denied => "denied",
            State::WrongType => "wrong_type",
            State::Unresolved => "unresolved",
            State::Error => "error",
        }
    }

    /// What a connect that failed with `errno` found, for `proto`.
    pub fn of_errno(proto: Proto, errno: i32) -> State {
        match errno {
            libc::ECONNREFUSED => State::Refused,
            // A reset during the handshake: refused, as net::connect counts it.
            libc::ECONNRESET if proto == Proto::Tcp => State::Refused,
            libc::ETIMEDOUT => State::TimedOut,
            libc::EHOSTUNREACH | libc::ENETUNREACH | libc::EHOSTDOWN | libc::ENETDOWN => {
                State::Unreachable
            }
            libc::ENOENT | libc::ENOTDIR if matches!(proto, Proto::Unix | Proto::UnixGram) => {
                State::Missing
            }
            libc::EACCES | libc::EPERM => State::Denied,
            libc::EPROTOTYPE => State::WrongType,
            _ => State::Error,
        }
    }
}

/// Where a probe goes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Address {
    /// One IP address and port (a name gives one probe per address).
    Ip(SocketAddr),
    /// A Unix socket: the endpoint says where.
    Local,
    /// The host name did not resolve; the resolver's words.
    Unresolved(String),
}

/// One thing to probe.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Probe {
    /// The TARGET it came from, as written.
    pub spec: String,
    /// The endpoint as written, with one port (a name is still a name).
    pub endpoint: Endpoint,
    /// The address tried.
    pub address: Address,
}

impl Probe {
    /// Its protocol.
    pub fn proto(&self) -> Proto {
        Proto::of(&self.endpoint)
    }

    /// The endpoint actually tried, as echokit writes endpoints
    /// (`tcp://[::1]:8080`), the resolved address in place of a name.
    pub fn shown(&self) -> String {
        match self.address {
            Address::Ip(addr) => self.endpoint.with_addr(addr).to_string(),
            Address::Local | Address::Unresolved(_) => self.endpoint.to_string(),
        }
    }

    /// The host name the address came from, if the endpoint named one.
    pub fn name(&self) -> Option<&str> {
        match &self.endpoint.host_port()?.host {
            crate::endpoint::Host::Name(name) => Some(name),
            _ => None,
        }
    }
}

/// One try of a probe.
#[derive(Clone, Debug, PartialEq)]
pub struct Try {
    /// Its number, from 1 (`--count` makes several).
    pub seq: u32,
    /// What it found.
    pub state: State,
    /// The errno it failed with (or, for an open Unix socket with a full
    /// backlog, `EAGAIN`); `None` when it connected, or when it timed out
    /// on echokit's own clock.
    pub errno: Option<i32>,
    /// How long the connect (TCP, Unix) or the round trip (UDP) took, when
    /// an answer came; `None` for silence and errors before any packet.
    pub time: Option<Duration>,
    /// A hint for this try that the state alone does not give.
    pub note: Option<String>,
}

impl Try {
    /// A try that ended with `state`, no errno, no time.
    pub fn of(seq: u32, state: State) -> Try {
        Try {
            seq,
            state,
            errno: None,
            time: None,
            note: None,
        }
    }

    /// The errno's name, as C and Python's `errno` module spell it.
    pub fn errno_name(&self) -> Option<String> {
        self.errno
            .map(|n| format!("{:?}", nix::errno::Errno::from_raw(n)))
    }

    /// What this try means, in plain words.
    pub fn hint(&self, proto: Proto) -> String {
        if let Some(note) = &self.note {
            return note.clone();
        }
        hint(proto, self.state, self.errno).into()
    }
}

/// What a state means for a protocol, in words for someone who has just
/// read the socket guide.
pub fn hint(proto: Proto, state: State, errno: Option<i32>) -> &'static str {
    use Proto::*;
    match (state, proto) {
        (State::Open, Tcp) => "a server accepted the connection (connect_ex returns 0)",
        (State::Open, Udp) => "an answer came back: something serves this port",
        (State::Open, Unix) => "a server accepts connections on this socket",
        (State::Open, UnixGram) => "a datagram socket is bound here",
        (State::Refused, Tcp) => {
            "nothing listens on this port (the host answered the SYN with a reset)"
        }
        (State::Refused, Udp) => {
            "nothing is bound to this port (the host answered with ICMP port unreachable)"
        }
        (State::Refused, _) => {
            "the socket file is there but nothing listens on it \
             (left behind by a server that stopped?)"
        }
        (State::TimedOut, _) => {
            "nothing answered within --timeout: a firewall dropping packets, a host that \
             is down, or a server whose listen backlog is full"
        }
        (State::NoReply, _) => {
            "no answer within --timeout: open but silent (most UDP services ignore a \
             datagram they do not understand), filtered, or the ICMP refusal was dropped \
             or rate-limited (Linux does not rate-limit it on loopback)"
        }
        (State::Unreachable, _) => match errno {
            Some(libc::ENETUNREACH | libc::ENETDOWN) => {
                "no route to that network: check the address and the routing table (ip route)"
            }
            _ => {
                "no route to the host: it is down or not on this network \
                 (an ICMP host unreachable, or no ARP answer)"
            }
        },
        (State::Missing, _) => "no such socket file (is the server running, is the path right?)",
        (State::Denied, Unix | UnixGram) => {
            "permission denied: the socket file's mode or a directory on its path keeps \
             this user out"
        }
        (State::Denied, _) => {
            "permission denied: a local firewall rule (iptables, nftables) or a broadcast \
             address"
        }
        (State::WrongType, Unix) => "a datagram socket is bound here: probe unixgram:PATH",
        (State::WrongType, _) => "a stream socket listens here: probe unix:PATH",
        (State::Unresolved, _) => "the host name did not resolve",
        (State::Error, _) => "the connect failed",
    }
}

/// Every try of one probe.
#[derive(Clone, Debug, PartialEq)]
pub struct Outcome {
    /// What was probed.
    pub probe: Probe,
    /// Its tries, in order (one without `--count`).
    pub tries: Vec<Try>,
}

impl Outcome {
    /// The last try's state: what the probe found most recently.
    pub fn state(&self) -> Option<State> {
        self.tries.last().map(|t| t.state)
    }

    /// Whether every try found the port open.
    pub fn all_open(&self) -> bool {
        !self.tries.is_empty() && self.tries.iter().all(|t| t.state == State::Open)
    }
}

/// The result of a whole run.
#[derive(Clone, Debug, PartialEq)]
pub struct Report {
    /// One outcome per probe, in the order the targets were given.
    pub outcomes: Vec<Outcome>,
    /// From the first connect to the last answer.
    pub elapsed: Duration,
    /// Whether Ctrl-C ended the run early (the tries made are reported).
    pub interrupted: bool,
    /// Whether `--count` asked for repeated tries (ping-style statistics).
    pub repeated: bool,
}

impl Report {
    /// With one target, the code of what it found (open 0, refused 3,
    /// timed out 4, unreachable or unresolved 5, denied 8; under `--count`
    /// its last failed try's). With several, 0 when every try of every probe
    /// found it open, 1 otherwise.
    pub fn exit_code(&self) -> ExitCode {
        match self.outcomes.as_slice() {
            // One target: what it found, as a client would exit (its last
            // failed try, under --count).
            [one] => match one.tries.iter().rev().find(|t| t.state != State::Open) {
                Some(failed) => failed.state.exit_code(),
                None if one.tries.is_empty() => ExitCode::Failures,
                None => ExitCode::Success,
            },
            many if !many.is_empty() && many.iter().all(Outcome::all_open) => ExitCode::Success,
            _ => ExitCode::Failures,
        }
    }

    /// How many tries found each state, in [`State::ALL`]'s order, zeros left out.
    pub fn counts(&self) -> Vec<(State, usize)> {
        let mut counts = [0usize; State::ALL.len()];
        for t in self.outcomes.iter().flat_map(|o| &o.tries) {
            counts[t.state as usize] += 1;
        }
        State::ALL
            .iter()
            .zip(counts)
            .filter(|(_, n)| *n > 0)
            .map(|(s, n)| (*s, n))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errnos_map_to_states() {
        assert_eq!(
            State::of_errno(Proto::Tcp, libc::ECONNREFUSED),
            State::Refused
        );
        assert_eq!(
            State::of_errno(Proto::Tcp, libc::ECONNRESET),
            State::Refused
        );
        assert_eq!(
            State::of_errno(Proto::Tcp, libc::EHOSTUNREACH),
            State::Unreachable
        );
        assert_eq!(State::of_errno(Proto::Unix, libc::ENOENT), State::Missing);
        assert_eq!(State::of_errno(Proto::Tcp, libc::ENOENT), State::Error);
        assert_eq!(State::of_errno(Proto::Unix, libc::EACCES), State::Denied);
        assert_eq!(
            State::of_errno(Proto::Unix, libc::EPROTOTYPE),
            State::WrongType
        );
        assert_eq!(State::of_errno(Proto::Udp, libc::EMFILE), State::Error);
    }

    /// A report of one outcome per list of tries' states.
    fn report(targets: &[&[State]]) -> Report {
        let outcomes = targets
            .iter()
            .map(|states| Outcome {
                probe: Probe {
                    spec: "127.0.0.1:9".into(),
                    endpoint: "127.0.0.1:9".parse().unwrap(),
                    address: Address::Ip("127.0.0.1:9".parse().unwrap()),
                },
                tries: (1..)
                    .zip(states.iter())
                    .map(|(seq, &state)| Try::of(seq, state))
                    .collect(),
            })
            .collect();
        Report {
            outcomes,
            elapsed: Duration::ZERO,
            interrupted: false,
            repeated: false,
        }
    }

    #[test]
    fn one_target_exits_with_what_it_found_and_several_with_0_or_1() {
        use State::*;
        let code = |targets: &[&[State]]| report(targets).exit_code().code();
        let single = [
            (Open, 0),
            (Refused, 3),
            (Missing, 3),
            (TimedOut, 4),
            (NoReply, 4),
            (Unreachable, 5),
            (Unresolved, 5),
            (Denied, 8),
            (WrongType, 2),
            (Error, 1),
        ];
        for (state, want) in single {
            assert_eq!(code(&[&[state]]), want, "{state:?}");
        }
        // Under --count, the last failed try's.
        assert_eq!(code(&[&[TimedOut, Refused, Open]]), 3);
        assert_eq!(code(&[&[Open, Open]]), 0);
        assert_eq!(code(&[&[Open], &[Open]]), 0);
        assert_eq!(code(&[&[Open], &[Refused]]), 1);
        assert_eq!(code(&[&[Refused], &[Refused]]), 1);
    }

    #[test]
    fn states_are_indexed_in_order() {
        for (i, s) in State::ALL.iter().enumerate() {
            assert_eq!(*s as usize, i);
        }
    }

    #[test]
    fn errno_names_are_the_c_names() {
        let mut t = Try::of(1, State::Refused);
        t.errno = Some(libc::ECONNREFUSED);
        assert_eq!(t.errno_name().as_deref(), Some("ECONNREFUSED"));
        assert!(t.hint(Proto::Tcp).contains("reset"));
        t.note = Some("special".into());
        assert_eq!(t.hint(Proto::Tcp), "special");
    }
}
