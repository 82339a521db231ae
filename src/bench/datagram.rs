//! The engine for datagram endpoints (`udp://` and `unixgram:`): one mio
//! loop per thread; each "connection" is a connected datagram socket.
//!
//! A datagram carries its sequence number in its first bytes (up to 8, so
//! a reply can be matched to its datagram even out of order) and a slice of
//! the socket's byte stream after them. A datagram whose echo has not come
//! back within the timeout is counted lost and its place in the window goes
//! to the next one; an echo that comes later is counted late, a second echo
//! duplicated. Loss is its own error class: the run fails when the share
//! lost exceeds `--max-loss`.

use std::collections::VecDeque;
use std::io::{self, Read};
use std::os::fd::AsRawFd;
use std::sync::atomic::Ordering;

use socket2::Socket;

use super::pattern::{Sizes, Stream};
use super::reactor::Reactor;
use super::schedule::{OpenLoop, Schedule, next_due};
use super::stats::{Control, Datagrams, ErrorClass, Meter, ThreadResult};
use super::{BenchConfig, Job};
use crate::text::os_error;

const SWEEP_NS: u64 = 10_000_000;
/// The sequence number's bytes at the head of a datagram.
const TAG: usize = 8;
/// Lost sequence numbers remembered, to tell a late echo from a duplicate.
const LOST_MEMORY: usize = 4096;

#[derive(Clone, Copy, Debug)]
struct Msg {
    seq: u64,
    len: usize,
    due: u64,
    sent: u64,
    counted: bool,
}

struct Channel {
    id: u64,
    socket: Option<Socket>,
    stream: Stream,
    sizes: Sizes,
    key: u64,
    next_seq: u64,
    flight: VecDeque<Msg>,
    /// Index in `flight` of the first datagram not sent yet.
    unsent: usize,
    lost: VecDeque<u64>,
    settled: bool,
}

impl Channel {
    fn tag(&self, seq: u64) -> [u8; TAG] {
        (seq ^ self.key).to_le_bytes()
    }

    /// Writes datagram `seq` of `len` bytes into `out`.
    fn fill(&self, seq: u64, len: usize, out: &mut [u8]) {
        let tag = self.tag(seq);
        let head = len.min(TAG);
        out[..head].copy_from_slice(&tag[..head]);
        let mut done = head;
        while done < len {
            let part = self
                .stream
                .slice(body_offset(seq) + (done - head) as u64, len - done);
            out[done..done + part.len()].copy_from_slice(part);
            done += part.len();
        }
    }
}

fn body_offset(seq: u64) -> u64 {
    seq.wrapping_mul(8_191)
}

struct Engine<'a> {
    job: &'a Job,
    cfg: &'a BenchConfig,
    control: &'a Control,
    reactor: Reactor,
    socks: Vec<Channel>,
    rbuf: Box<[u8]>,
    wbuf: Box<[u8]>,
    meter: Meter,
    tally: Datagrams,
    open: u64,
    schedule: Option<Schedule>,
}

/// Runs one thread's datagram sockets until the run stops.
pub(super) fn run(job: Job) -> io::Result<ThreadResult> {
    let reactor = Reactor::new(&job.control)?;
    let cfg = &*job.cfg;
    let largest = cfg.sizes.max.max(TAG);
    let engine = Engine {
        job: &job,
        cfg,
        control: &job.control,
        reactor,
        socks: Vec::new(),
        rbuf: vec![0; largest + 1].into_boxed_slice(),
        wbuf: vec![0; largest].into_boxed_slice(),
        meter: Meter::new(
            matches!(cfg.stop, super::Stop::Count(_)),
            cfg.rate.is_some(),
        ),
        tally: Datagrams::default(),
        open: 0,
        schedule: None,
    };
    engine.run()
}

impl Engine<'_> {
    fn run(mut self) -> io::Result<ThreadResult> {
        self.open_sockets();
        let start = self.control.now();
        if let Some(rate) = self.job.rate {
            self.schedule = Some(Schedule::new(start, rate));
        } else {
            for i in 0..self.socks.len() {
                for _ in 0..self.cfg.depth {
                    self.issue(i, start);
                }
                self.flush(i, start);
            }
        }
        let mut next_sweep = 0;
        loop {
            let now = self.control.now();
            self.meter.step(self.control, now, self.cfg.timeout);
            let drain_until = self.meter.drain_until();
            let in_flight = self
                .socks
                .iter()
                .any(|s| s.socket.is_some() && !s.flight.is_empty());
            if self.meter.stopping() && (!in_flight || now >= drain_until) {
                break;
            }
            if !self.meter.stopping() && self.open == 0 {
                self.meter.end(now);
                break;
            }
            self.issue_scheduled(now);
            if now >= next_sweep {
                self.sweep(now);
                next_sweep = now + SWEEP_NS;
            }
            self.meter.publish(&self.job.live, self.open);
            let until = next_sweep.min(drain_until);
            let due = self
                .schedule
                .as_ref()
                .filter(|_| !self.meter.stopping())
                .map(Schedule::due);
            self.reactor.wait(now, until, due)?;
            // One clock read for the batch: every event in it was there
            // when the wait returned, and a read per event would add the
            // handling of the events before it to each echo's latency.
            let now = self.control.now();
            let ready = std::mem::take(&mut self.reactor.ready);
            for event in &ready {
                let i = event.slot;
                if event.readable || event.error {
                    self.read(i, now);
                }
                if event.writable && self.socks[i].unsent < self.socks[i].flight.len() {
                    self.flush(i, now);
                }
            }
            self.reactor.ready = ready;
        }
        // What is still out after the drain is lost.
        for s in &self.socks {
            let out = s.unsent as u64;
            if out > 0 {
                self.tally.lost += out;
                let id = s.id;
                self.meter.errors.add_n(ErrorClass::Lost, out, || {
                    format!("socket {id}: {out} datagram(s) with no echo when the run ended")
                });
            }
        }
        Ok(self
            .meter
            .finish(&self.job.live, self.open, self.open, self.tally))
    }

    fn open_sockets(&mut self) {
        for &id in &self.job.ids {
            let mut s = Channel {
                id,
                socket: None,
                stream: Stream::new(id),
                sizes: Sizes::new(self.cfg.sizes, id),
                key: id.wrapping_mul(0x9e37_79b9_7f4a_7c15),
                next_seq: 0,
                flight: VecDeque::with_capacity(self.cfg.depth as usize),
                unsent: 0,
                lost: VecDeque::new(),
                settled: false,
            };
            let i = self.socks.len();
            let made = self
                .cfg
                .target
                .socket(id, &self.cfg.bind)
                .and_then(|socket| {
                    socket.connect(&self.cfg.target.addr)?;
                    self.reactor.register(socket.as_raw_fd(), i)?;
                    Ok(socket)
                });
            match made {
                Ok(socket) => {
                    s.socket = Some(socket);
                    self.open += 1;
                    self.socks.push(s);
                }
                Err(e) => {
                    self.socks.push(s);
                    let what = format!("socket: {}", os_error(&e));
                    self.fail(i, ErrorClass::of(&e), &what);
                }
            }
        }
    }

    fn read(&mut self, i: usize, now: u64) {
        loop {
            let Some(socket) = self.socks[i].socket.as_ref() else {
                return;
            };
            let n = match (&*socket).read(&mut self.rbuf) {
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    let what = format!("recv: {}", os_error(&e));
                    return self.fail(i, ErrorClass::of(&e), &what);
                }
            };
            self.meter.totals.received += n as u64;
            self.take(i, n, now);
        }
    }

    /// Matches one echoed datagram to its datagram in flight.
    fn take(&mut self, i: usize, n: usize, now: u64) {
        let s = &self.socks[i];
        let got = &self.rbuf[..n];
        let head = n.min(TAG);
        let found = s
            .flight
            .iter()
            .take(s.unsent)
            .position(|m| m.len == n && s.tag(m.seq)[..head] == got[..head]);
        let Some(k) = found else {
            // Not in flight: a late or repeated echo, or garbage.
            if n >= TAG {
                let seq = u64::from_le_bytes(got[..TAG].try_into().expect("8 bytes")) ^ s.key;
                if seq < s.next_seq && s.stream.check(body_offset(seq), &got[TAG..]).is_none() {
                    if s.lost.contains(&seq) {
                        self.tally.late += 1;
                    } else {
                        self.tally.duplicated += 1;
                    }
                    return;
                }
            } else if !s.lost.is_empty() {
                self.tally.late += 1;
                return;
            }
            let id = s.id;
            self.meter.errors.add(ErrorClass::Mismatch, || {
                format!("socket {id}: an echo of {n} bytes matches no datagram sent")
            });
            return;
        };
        let msg = s.flight[k];
        let body_ok = s.stream.check(body_offset(msg.seq), &got[head..]).is_none();
        let s = &mut self.socks[i];
        s.flight.remove(k);
        s.unsent -= 1;
        if !body_ok {
            self.meter.abandoned(msg.counted);
            let id = s.id;
            self.meter.errors.add(ErrorClass::Mismatch, || {
                format!(
                    "socket {id}: the echo of datagram {} differs from it",
                    msg.seq
                )
            });
        } else {
            self.meter.echoed(now, msg.due, msg.sent, msg.counted);
        }
        if !s.settled {
            s.settled = true;
            self.job.live.settled.fetch_add(1, Ordering::Relaxed);
        }
        if self.cfg.rate.is_none() {
            self.issue(i, now);
            self.flush(i, now);
        }
    }

    /// Datagrams sent longer ago than the timeout are lost; their places go
    /// to new ones (closed loop).
    fn sweep(&mut self, now: u64) {
        let limit = self.cfg.timeout.as_nanos() as u64;
        for i in 0..self.socks.len() {
            let mut freed = 0;
            loop {
                let s = &mut self.socks[i];
                let Some(front) = s.flight.front() else { break };
                if s.unsent == 0 || now.saturating_sub(front.sent) <= limit {
                    break;
                }
                let seq = front.seq;
                self.meter.abandoned(front.counted);
                s.flight.pop_front();
                s.unsent -= 1;
                if s.lost.len() == LOST_MEMORY {
                    s.lost.pop_front();
                }
                s.lost.push_back(seq);
                self.tally.lost += 1;
                freed += 1;
                let id = s.id;
                let timeout = self.cfg.timeout;
                self.meter.errors.add(ErrorClass::Lost, || {
                    format!(
                        "socket {id}: datagram {seq} got no echo within {}",
                        crate::text::duration(timeout)
                    )
                });
                if !s.settled {
                    s.settled = true;
                    self.job.live.settled.fetch_add(1, Ordering::Relaxed);
                }
            }
            if self.cfg.rate.is_none() && !self.meter.stopping() {
                for _ in 0..freed {
                    self.issue(i, now);
                }
                self.flush(i, now);
            }
        }
    }

    fn fail(&mut self, i: usize, class: ErrorClass, what: &str) {
        let s = &mut self.socks[i];
        let id = s.id;
        self.meter
            .errors
            .add(class, || format!("socket {id}: {what}"));
        if !s.settled {
            s.settled = true;
            self.job.live.settled.fetch_add(1, Ordering::Relaxed);
        }
        if let Some(socket) = s.socket.take() {
            self.reactor.deregister(socket.as_raw_fd());
            self.open -= 1;
        }
        for msg in s.flight.drain(..) {
            self.meter.abandoned(msg.counted);
        }
        s.unsent = 0;
    }
}

/// Sending: the closed loop fills each connection's depth, the open loop
/// issues on the schedule.
impl OpenLoop for Engine<'_> {
    fn next_due(&mut self, now: u64) -> Option<(u64, usize)> {
        let socks = &self.socks;
        let usable = |k: usize| socks[k].socket.is_some();
        next_due(
            &mut self.schedule,
            &mut self.meter,
            now,
            socks.len(),
            usable,
        )
    }

    fn issue(&mut self, i: usize, due: u64) -> bool {
        if self.socks[i].socket.is_none() {
            return false;
        }
        let Some(counted) = self.meter.admit(self.control) else {
            return false;
        };
        let s = &mut self.socks[i];
        let len = s.sizes.draw();
        let seq = s.next_seq;
        s.next_seq += 1;
        s.flight.push_back(Msg {
            seq,
            len,
            due,
            sent: 0,
            counted,
        });
        true
    }

    /// Sends the datagrams issued and not yet sent, until the socket is full.
    fn flush(&mut self, i: usize, now: u64) {
        loop {
            let s = &self.socks[i];
            let Some(socket) = s.socket.as_ref() else {
                return;
            };
            let Some(msg) = s.flight.get(s.unsent).copied() else {
                return;
            };
            s.fill(msg.seq, msg.len, &mut self.wbuf);
            match socket.send(&self.wbuf[..msg.len]) {
                Ok(_) => {
                    let s = &mut self.socks[i];
                    s.flight[s.unsent].sent = now;
                    s.unsent += 1;
                    self.tally.sent += 1;
                    self.meter.totals.sent += msg.len as u64;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    let what = format!("send: {}", os_error(&e));
                    return self.fail(i, ErrorClass::of(&e), &what);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sock(id: u64) -> Channel {
        Channel {
            id,
            socket: None,
            stream: Stream::new(id),
            sizes: Sizes::new(super::super::pattern::SizeRange::fixed(64), id),
            key: id.wrapping_mul(0x9e37_79b9_7f4a_7c15),
            next_seq: 0,
            flight: VecDeque::new(),
            unsent: 0,
            lost: VecDeque::new(),
            settled: false,
        }
    }

    #[test]
    fn datagrams_carry_their_sequence_and_a_checkable_body() {
        let s = sock(5);
        let mut out = [0u8; 100];
        s.fill(42, 100, &mut out);
        assert_eq!(u64::from_le_bytes(out[..8].try_into().unwrap()) ^ s.key, 42);
        assert_eq!(s.stream.check(body_offset(42), &out[8..]), None);
        let mut other = [0u8; 100];
        s.fill(43, 100, &mut other);
        assert_ne!(out[8..], other[8..]);
        let mut tiny = [0u8; 3];
        s.fill(42, 3, &mut tiny);
        assert_eq!(tiny, out[..3]);
    }
}
