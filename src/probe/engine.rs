//! The probes' I/O: names resolved once per host, then non-blocking connects
//! (and UDP datagrams) on one mio `Poll`, at most `concurrency` in flight,
//! each bounded by the timeout. TCP connects start and finish through
//! [`net::connect::start`] and [`net::connect::finished`], as every echokit
//! client's do. Unix connects finish inside `connect(2)`, so they are made
//! one after another and never wait on the loop.
//!
//! Times are taken around the connect (or from the send to the answer) on
//! the loop's clock: with many probes in flight a time includes the loop's
//! turn, so a single target's `--count` times are the ones to trust.
//!
//! [`net::connect::start`]: crate::net::connect::start
//! [`net::connect::finished`]: crate::net::connect::finished

use std::collections::{HashMap, VecDeque};
use std::io::{self, Read};
use std::net::{IpAddr, SocketAddr};
use std::os::fd::AsRawFd;
use std::os::unix::fs::FileTypeExt;
use std::time::{Duration, Instant};

use mio::{Events, Interest, Token};
use slab::Slab;
use socket2::{Domain, Socket};

use super::target::Target;
use super::{Address, Outcome, Probe, ProbeError, Proto, Report, State, Try, UDP_PAYLOAD};
use crate::driver::Driver;
use crate::endpoint::{Host, HostPort, LocalName, Purpose};
use crate::net::connect::{self, ConnectError, ConnectOptions};
use crate::net::unix;
use crate::shutdown::Shutdown;

/// Wakes the loop for Ctrl-C.
const WAKE: Token = Token(usize::MAX);

/// How to probe.
#[derive(Clone, Debug)]
pub struct Config {
    /// The longest one try may wait for an answer.
    pub timeout: Duration,
    /// Tries in flight at once, at most.
    pub concurrency: usize,
    /// `--bind` and `--source-port` (its `timeout` is not used).
    pub connect: ConnectOptions,
    /// Tries per probe; `None` is one try and no ping-style statistics.
    pub count: Option<u32>,
    /// The time from the start of one round of tries to the next.
    pub interval: Duration,
}

/// One probe per address of each target: a name is resolved once per host,
/// and each of its addresses is probed (`localhost` is `::1` and
/// `127.0.0.1`, and a server may listen on one only). A name that does not
/// resolve becomes a probe with [`Address::Unresolved`]. With `--bind`,
/// the addresses of the other family are left out; a target with none of
/// its family is a usage error.
pub fn resolve(targets: &[Target], opts: &ConnectOptions) -> Result<Vec<Probe>, ProbeError> {
    let mut known: HashMap<Host, Result<Vec<IpAddr>, String>> = HashMap::new();
    let mut probes = Vec::with_capacity(targets.len());
    for target in targets {
        let Some(hp) = target.endpoint.host_port() else {
            probes.push(Probe {
                spec: target.spec.clone(),
                endpoint: target.endpoint.clone(),
                address: Address::Local,
            });
            continue;
        };
        let ips = known.entry(hp.host.clone()).or_insert_with(|| {
            let any_port = HostPort {
                host: hp.host.clone(),
                port: 0,
            };
            any_port
                .resolve(Purpose::Connect)
                .map(|addrs| addrs.iter().map(SocketAddr::ip).collect())
                .map_err(|e| e.to_string())
        });
        match ips {
            Ok(ips) => {
                let addrs: Vec<SocketAddr> =
                    ips.iter().map(|ip| SocketAddr::new(*ip, hp.port)).collect();
                for addr in connect::candidates(&addrs, opts).map_err(ProbeError::Family)? {
                    probes.push(Probe {
                        spec: target.spec.clone(),
                        endpoint: target.endpoint.clone(),
                        address: Address::Ip(addr),
                    });
                }
            }
            Err(reason) => probes.push(Probe {
                spec: target.spec.clone(),
                endpoint: target.endpoint.clone(),
                address: Address::Unresolved(reason.clone()),
            }),
        }
    }
    Ok(probes)
}

/// Probes each of `probes` once, or `count` times `interval` apart, and
/// calls `on_try` as each try ends. A shutdown request (Ctrl-C) ends the
/// run early; the tries made so far are reported.
pub fn run(
    probes: &[Probe],
    cfg: &Config,
    shutdown: &Shutdown,
    on_try: &mut dyn FnMut(&Probe, &Try),
) -> Result<Report, ProbeError> {
    let driver = Driver::new().map_err(ProbeError::Poll)?;
    shutdown.register(driver.waker(WAKE).map_err(ProbeError::Poll)?);
    let mut engine = Engine {
        driver,
        events: Events::with_capacity(1024),
        cfg,
        shutdown,
    };
    let mut outcomes: Vec<Outcome> = probes
        .iter()
        .map(|p| Outcome {
            probe: p.clone(),
            tries: Vec::new(),
        })
        .collect();
    let started = Instant::now();
    let rounds = cfg.count.unwrap_or(1);
    for seq in 1..=rounds {
        let round_start = Instant::now();
        engine.round(probes, seq, &mut |i, t| {
            on_try(&probes[i], &t);
            outcomes[i].tries.push(t);
        })?;
        if seq == rounds || shutdown.is_requested() {
            break;
        }
        engine.sleep_until(crate::deadline::after(round_start, cfg.interval))?;
    }
    Ok(Report {
        outcomes,
        elapsed: started.elapsed(),
        interrupted: shutdown.is_requested(),
        repeated: cfg.count.is_some(),
    })
}

/// A try waiting on the loop.
struct Attempt {
    probe: usize,
    socket: Socket,
    started: Instant,
    /// Tells this attempt from a later one in the same slab slot.
    id: u64,
}

struct Engine<'a> {
    driver: Driver,
    events: Events,
    cfg: &'a Config,
    shutdown: &'a Shutdown,
}

/// How a try began.
enum Begun {
    /// It is over already (Unix sockets, immediate errors).
    Done(Try),
    /// It waits on the loop.
    Waiting(Socket, Instant),
}

impl Engine<'_> {
    /// One try of every probe, at most `concurrency` at a time.
    fn round(
        &mut self,
        probes: &[Probe],
        seq: u32,
        done: &mut dyn FnMut(usize, Try),
    ) -> Result<(), ProbeError> {
        let mut live: Slab<Attempt> = Slab::new();
        // Every try has the same timeout and they start in order, so their
        // deadlines come in the order they were pushed.
        let mut deadlines: VecDeque<(Instant, usize, u64)> = VecDeque::new();
        let mut next = 0;
        let mut ids = 0u64;
        while !self.shutdown.is_requested() {
            while live.len() < self.cfg.concurrency && next < probes.len() {
                let i = next;
                next += 1;
                match self.begin(&probes[i], seq) {
                    Begun::Done(t) => done(i, t),
                    Begun::Waiting(socket, started) => {
                        let entry = live.vacant_entry();
                        let interest = match probes[i].proto() {
                            Proto::Udp => Interest::READABLE,
                            _ => Interest::WRITABLE,
                        };
                        let registered =
                            self.driver
                                .watch(socket.as_raw_fd(), Token(entry.key()), interest);
                        if let Err(e) = registered {
                            done(i, failed(seq, probes[i].proto(), &e, None));
                            continue;
                        }
                        ids += 1;
                        deadlines.push_back((
                            crate::deadline::after(started, self.cfg.timeout),
                            entry.key(),
                            ids,
                        ));
                        entry.insert(Attempt {
                            probe: i,
                            socket,
                            started,
                            id: ids,
                        });
                    }
                }
            }
            if live.is_empty() && next >= probes.len() {
                return Ok(());
            }
            let now = Instant::now();
            while let Some(&(deadline, key, id)) = deadlines.front() {
                if live.get(key).is_none_or(|a| a.id != id) {
                    deadlines.pop_front();
                    continue;
                }
                if deadline > now {
                    break;
                }
                deadlines.pop_front();
                let attempt = self.end(&mut live, key);
                let proto = probes[attempt.probe].proto();
                let state = if proto == Proto::Udp {
                    State::NoReply
                } else {
                    State::TimedOut
                };
                done(attempt.probe, Try::of(seq, state));
            }
            if live.len() < self.cfg.concurrency && next < probes.len() {
                // Timeouts made room: start more before waiting.
                continue;
            }
            let Some(&(deadline, _, _)) = deadlines.front() else {
                continue;
            };
            self.driver
                .wait_until(&mut self.events, Some(deadline))
                .map_err(ProbeError::Poll)?;
            let ready: Vec<usize> = self
                .events
                .iter()
                .map(|e| e.token().0)
                .filter(|&k| k != WAKE.0)
                .collect();
            for key in ready {
                let Some(attempt) = live.get(key) else {
                    continue;
                };
                let probe = &probes[attempt.probe];
                if let Some(t) = check(probe, attempt, seq, &self.cfg.connect) {
                    let attempt = self.end(&mut live, key);
                    done(attempt.probe, t);
                }
            }
        }
        Ok(())
    }

    /// Takes an attempt off the loop; its socket closes when dropped.
    fn end(&self, live: &mut Slab<Attempt>, key: usize) -> Attempt {
        let attempt = live.remove(key);
        self.driver.unwatch(attempt.socket.as_raw_fd());
        attempt
    }

    /// Waits until `until`, or until Ctrl-C.
    fn sleep_until(&mut self, until: Instant) -> Result<(), ProbeError> {
        while !self.shutdown.is_requested() {
            let now = Instant::now();
            if now >= until {
                break;
            }
            self.driver
                .wait(&mut self.events, Some(until - now))
                .map_err(ProbeError::Poll)?;
        }
        Ok(())
    }

    /// Starts one try.
    fn begin(&self, probe: &Probe, seq: u32) -> Begun {
        let proto = probe.proto();
        match &probe.address {
            Address::Unresolved(reason) => Begun::Done(Try {
                note: Some(reason.clone()),
                ..Try::of(seq, State::Unresolved)
            }),
            Address::Local => Begun::Done(local_try(probe, seq)),
            Address::Ip(addr) if proto == Proto::Tcp => {
                let started = Instant::now();
                match connect::start(*addr, &self.cfg.connect) {
                    Ok(socket) => Begun::Waiting(socket, started),
                    Err(e) => Begun::Done(start_failed(seq, proto, &e)),
                }
            }
            Address::Ip(addr) => match send_datagram(*addr, &self.cfg.connect) {
                Ok((socket, started)) => Begun::Waiting(socket, started),
                Err(e) => Begun::Done(start_failed(seq, proto, &e)),
            },
        }
    }
}

/// Whether an attempt the loop woke for has ended, and how.
fn check(probe: &Probe, attempt: &Attempt, seq: u32, opts: &ConnectOptions) -> Option<Try> {
    let proto = probe.proto();
    let socket = &attempt.socket;
    if proto == Proto::Udp {
        let mut buf = [0u8; 64];
        return match (&*socket).read(&mut buf) {
            Ok(_) => Some(Try {
                time: Some(attempt.started.elapsed()),
                ..Try::of(seq, State::Open)
            }),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => None,
            Err(e) => Some(failed(seq, proto, &e, Some(attempt.started.elapsed()))),
        };
    }
    match connect::finished(socket) {
        Ok(false) => None,
        Ok(true) => {
            let time = attempt.started.elapsed();
            if opts.source_port.is_some() {
                // Close with a reset: a FIN would leave this four-tuple in
                // TIME_WAIT for a minute, and the next try from the same
                // source port would fail with EADDRNOTAVAIL.
                let _ = socket.set_linger(Some(Duration::ZERO));
            }
            let local = socket.local_addr().ok().and_then(|a| a.as_socket());
            if local.is_some() && local == socket.peer_addr().ok().and_then(|a| a.as_socket()) {
                return Some(Try {
                    time: Some(time),
                    note: Some(
                        "nothing listens here: the kernel connected the socket to itself \
                         (its ephemeral source port was the port probed, a TCP \
                         simultaneous open)"
                            .into(),
                    ),
                    ..Try::of(seq, State::Refused)
                });
            }
            Some(Try {
                time: Some(time),
                ..Try::of(seq, State::Open)
            })
        }
        Err(e) => Some(failed(seq, proto, &e, Some(attempt.started.elapsed()))),
    }
}

/// A try that failed with an I/O error, `time` after it began if an answer
/// (a reset, an ICMP error) ended it.
fn failed(seq: u32, proto: Proto, e: &io::Error, time: Option<Duration>) -> Try {
    let errno = e.raw_os_error();
    let state = errno.map_or(State::Error, |n| State::of_errno(proto, n));
    let note = match errno {
        Some(libc::EMFILE | libc::ENFILE) => {
            Some("too many open files: lower --concurrency, or raise the limit (ulimit -n)".into())
        }
        _ if state == State::Error => Some(format!("the connect failed: {e}")),
        _ => None,
    };
    Try {
        seq,
        state,
        errno,
        time,
        note,
    }
}

/// A try whose socket could not even start its connect.
fn start_failed(seq: u32, proto: Proto, e: &ConnectError) -> Try {
    let errno = e.errno();
    let state = errno.map_or(State::Error, |n| State::of_errno(proto, n));
    Try {
        seq,
        state,
        errno,
        time: None,
        note: (state == State::Error || matches!(e, ConnectError::LocalBind { .. }))
            .then(|| e.to_string()),
    }
}

/// A connected UDP socket (bound first if the options ask) that has sent
/// the probe's datagram, and when it sent it.
fn send_datagram(
    addr: SocketAddr,
    opts: &ConnectOptions,
) -> Result<(Socket, Instant), ConnectError> {
    let fail = |e| ConnectError::from_io(addr.to_string(), e);
    // Connected, so that the kernel hands this socket the ICMP refusal.
    let socket = connect::connect_udp(addr, opts)?;
    socket.set_nonblocking(true).map_err(fail)?;
    let started = Instant::now();
    socket.send(UDP_PAYLOAD).map_err(fail)?;
    Ok((socket, started))
}

/// A Unix socket's try: the kernel answers inside `connect(2)`.
fn local_try(probe: &Probe, seq: u32) -> Try {
    let proto = probe.proto();
    let name = probe
        .endpoint
        .local_name()
        .expect("only Unix endpoints have a local address");
    let made = unix::sock_addr(name).and_then(|addr| {
        let socket = Socket::new(Domain::UNIX, probe.endpoint.socket_type().socket2(), None)?;
        socket.set_nonblocking(true)?;
        Ok((socket, addr))
    });
    let (socket, addr) = match made {
        Ok(made) => made,
        Err(e) => return failed(seq, proto, &e, None),
    };
    let started = Instant::now();
    let result = socket.connect(&addr);
    let time = Some(started.elapsed());
    let e = match result {
        Ok(()) => {
            return Try {
                time,
                ..Try::of(seq, State::Open)
            };
        }
        Err(e) => e,
    };
    let mut t = failed(seq, proto, &e, time);
    match (e.raw_os_error(), name) {
        (Some(libc::EAGAIN), _) => {
            t.state = State::Open;
            t.note = Some(
                "a server listens, but its listen backlog is full: it does not accept \
                 connections as fast as they come"
                    .into(),
            );
        }
        (Some(libc::ECONNREFUSED), LocalName::Abstract(_)) => {
            t.note = Some("no socket has that abstract name (is the server running?)".into());
        }
        (Some(libc::ECONNREFUSED), LocalName::Path(path))
            if std::fs::metadata(path).is_ok_and(|m| !m.file_type().is_socket()) =>
        {
            t.note = Some(
                "the path is not a socket (a regular file, a directory?): nothing can \
                 listen on it"
                    .into(),
            );
        }
        _ => {}
    }
    t
}
