//! Running the real binary: a server that has printed its `listening on`
//! lines, clients with a bounded run time, and small socket helpers.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::process::CommandExt;
use std::process::{Child, ChildStdout, Command, ExitStatus, Output, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::time::{Duration, Instant};

use wait_timeout::ChildExt;

/// The longest any process or socket operation of a test may take.
pub const LIMIT: Duration = Duration::from_secs(20);

/// The binary under test.
pub fn echokit() -> Command {
    Command::new(env!("CARGO_BIN_EXE_echokit"))
}

/// An `echokit echo-server` (or another server that prints `listening on`
/// lines), killed when dropped.
pub struct Server {
    pub child: Child,
    /// The bound IP addresses (TCP and UDP), from the `listening on` lines.
    pub addrs: Vec<SocketAddr>,
    /// Every endpoint of the `listening on` lines, as printed.
    pub endpoints: Vec<String>,
    stdout: Receiver<String>,
    stderr: Receiver<String>,
}

fn lines_of<R: Read + Send + 'static>(stream: R) -> Receiver<String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stream).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

/// The socket address of a `listening on tcp://ADDR` (or `udp://ADDR`) line.
pub fn parse_listening(line: &str) -> SocketAddr {
    let rest = line
        .strip_prefix("listening on tcp://")
        .or_else(|| line.strip_prefix("listening on udp://"))
        .unwrap_or_else(|| panic!("not a listening line: {line:?}"));
    rest.parse().unwrap_or_else(|e| panic!("{rest:?}: {e}"))
}

impl Server {
    /// `echokit echo-server ARGS`, once it has printed `listeners` lines.
    pub fn start(args: &[&str], listeners: usize) -> Server {
        let mut cmd = echokit();
        cmd.arg("echo-server").args(args);
        Server::spawn(cmd, listeners)
    }

    /// Any command that prints `listening on` lines first.
    pub fn spawn(cmd: Command, listeners: usize) -> Server {
        let mut child = piped(cmd);
        let stdout: ChildStdout = child.stdout.take().expect("stdout is piped");
        let stdout = lines_of(stdout);
        let stderr = lines_of(child.stderr.take().expect("stderr is piped"));
        let mut server = Server {
            child,
            addrs: Vec::new(),
            endpoints: Vec::new(),
            stdout,
            stderr,
        };
        for _ in 0..listeners {
            match server.stdout.recv_timeout(LIMIT) {
                Ok(line) => {
                    let endpoint = line
                        .strip_prefix("listening on ")
                        .unwrap_or_else(|| panic!("not a listening line: {line:?}"));
                    if !endpoint.starts_with("unix") {
                        server.addrs.push(parse_listening(&line));
                    }
                    server.endpoints.push(endpoint.to_string());
                }
                Err(_) => {
                    let err: Vec<String> = server.stderr.try_iter().collect();
                    panic!("server printed no listening line; stderr: {err:#?}");
                }
            }
        }
        server
    }

    /// A server whose stdin and stdout the caller has set (`--inetd`: the
    /// connection); only stderr is piped, and there is no listening line.
    pub fn spawn_with_stdio(mut cmd: Command) -> Server {
        let mut child = cmd
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {cmd:?}: {e}"));
        let stderr = lines_of(child.stderr.take().expect("stderr is piped"));
        let (_, stdout) = mpsc::channel();
        Server {
            child,
            addrs: Vec::new(),
            endpoints: Vec::new(),
            stdout,
            stderr,
        }
    }

    /// The first bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addrs[0]
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends a signal to the server.
    pub fn signal(&self, signal: i32) {
        // SAFETY: kill(2) with a pid this test spawned and has not reaped.
        let rc = unsafe { libc::kill(self.pid() as libc::pid_t, signal) };
        assert_eq!(rc, 0, "kill failed");
    }

    /// Ctrl-C twice: the first starts a graceful shutdown (logged), the
    /// second exits at once, with 130.
    pub fn interrupt_twice(&mut self) {
        self.signal(libc::SIGINT);
        self.stderr_line("interrupt: shutting down gracefully");
        self.signal(libc::SIGINT);
        let status = self
            .wait_for(LIMIT)
            .expect("exit on the second SIGINT, without waiting for the grace period");
        assert_eq!(status.code(), Some(130));
    }

    /// Waits (bounded) for the server to exit.
    pub fn wait(&mut self) -> ExitStatus {
        self.wait_for(LIMIT)
            .expect("the server did not exit in time")
    }

    /// Waits up to `limit` for the server to exit.
    pub fn wait_for(&mut self, limit: Duration) -> Option<ExitStatus> {
        self.child.wait_timeout(limit).expect("wait for the server")
    }

    /// Waits (bounded) for a stderr line that contains `needle`; returns it.
    pub fn stderr_line(&self, needle: &str) -> String {
        let deadline = Instant::now() + LIMIT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.stderr.recv_timeout(left) {
                Ok(line) if line.contains(needle) => return line,
                Ok(_) => {}
                Err(_) => panic!("no stderr line with {needle:?}"),
            }
        }
    }

    /// Every stderr line up to the first that contains `needle`, that one
    /// included (bounded wait).
    pub fn stderr_until(&self, needle: &str) -> Vec<String> {
        let deadline = Instant::now() + LIMIT;
        let mut lines = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.stderr.recv_timeout(left) {
                Ok(line) => {
                    let found = line.contains(needle);
                    lines.push(line);
                    if found {
                        return lines;
                    }
                }
                Err(_) => panic!("no stderr line with {needle:?} in {lines:#?}"),
            }
        }
    }

    /// Waits (bounded) until stderr has had a line with each needle, in any
    /// order; returns those lines.
    pub fn stderr_lines(&self, needles: &[&str]) -> Vec<String> {
        let deadline = Instant::now() + LIMIT;
        let mut found: Vec<Option<String>> = vec![None; needles.len()];
        while found.iter().any(Option::is_none) {
            let left = deadline.saturating_duration_since(Instant::now());
            let Ok(line) = self.stderr.recv_timeout(left) else {
                panic!("stderr lacks lines with {needles:?}; found {found:?}");
            };
            for (needle, slot) in needles.iter().zip(&mut found) {
                if slot.is_none() && line.contains(needle) {
                    *slot = Some(line.clone());
                }
            }
        }
        found.into_iter().flatten().collect()
    }

    /// The next stdout line (bounded wait).
    pub fn stdout_line(&self) -> String {
        self.stdout.recv_timeout(LIMIT).expect("a stdout line")
    }

    /// The addresses of the next `n` listening lines.
    pub fn stdout_after(&self, n: usize) -> Vec<SocketAddr> {
        (0..n)
            .map(|_| parse_listening(&self.stdout_line()))
            .collect()
    }

    /// Waits for the server to exit, checks it exited 0, and returns what it
    /// printed after its listening lines (the summary).
    pub fn summary_after_clean_exit(&mut self) -> String {
        assert_eq!(self.wait().code(), Some(0), "the server exits 0");
        self.rest_of_stdout().join("\n")
    }

    /// Every stdout line after the listening lines, once the server has exited.
    pub fn rest_of_stdout(&self) -> Vec<String> {
        let mut lines = Vec::new();
        while let Ok(line) = self.stdout.recv_timeout(LIMIT) {
            lines.push(line);
        }
        lines
    }

    /// Every stderr line not yet read, once the server has exited.
    pub fn rest_of_stderr(&self) -> Vec<String> {
        let mut lines = Vec::new();
        while let Ok(line) = self.stderr.recv_timeout(LIMIT) {
            lines.push(line);
        }
        lines
    }

    /// The server's resident memory, from /proc.
    pub fn rss_bytes(&self) -> u64 {
        kib(self.status().vmrss, "VmRSS")
    }

    /// The most resident memory the server has had (its high-water mark).
    pub fn peak_rss_bytes(&self) -> u64 {
        kib(self.status().vmhwm, "VmHWM")
    }

    /// Descriptors the server holds open now.
    pub fn open_fds(&self) -> usize {
        std::fs::read_dir(format!("/proc/{}/fd", self.pid()))
            .expect("read /proc fd")
            .count()
    }

    /// The stderr lines that have come so far, without waiting.
    pub fn stderr_now(&self) -> Vec<String> {
        self.stderr.try_iter().collect()
    }

    fn status(&self) -> procfs::process::Status {
        let pid = self.pid();
        status_of(pid).unwrap_or_else(|e| panic!("/proc/{pid}/status: {e}"))
    }
}

fn status_of(pid: u32) -> procfs::ProcResult<procfs::process::Status> {
    procfs::process::Process::new(pid as i32).and_then(|p| p.status())
}

/// Bytes of a `/proc/PID/status` field in KiB, which the kernel always gives.
fn kib(field: Option<u64>, name: &str) -> u64 {
    field.unwrap_or_else(|| panic!("no {name} in /proc status")) * 1024
}

/// A process's resident memory now, from /proc (0 once it is gone): for a
/// thread that samples a server it cannot hold.
pub fn rss_of(pid: u32) -> u64 {
    status_of(pid)
        .ok()
        .and_then(|s| s.vmrss)
        .map_or(0, |k| k * 1024)
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Waits for a child, bounded by [`LIMIT`]; kills it and fails past that.
pub fn wait_bounded(child: &mut Child) -> ExitStatus {
    match child.wait_timeout(LIMIT).expect("wait") {
        Some(status) => status,
        None => {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the process did not finish within {LIMIT:?}");
        }
    }
}

/// `echokit ARGS` with no stdin and piped stdout and stderr, for tests that
/// handle the pipes themselves.
pub fn spawn_piped(args: &[&str]) -> Child {
    let mut cmd = echokit();
    cmd.args(args);
    piped(cmd)
}

/// Starts a command with no stdin and piped stdout and stderr.
fn piped(mut cmd: Command) -> Child {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {cmd:?}: {e}"))
}

/// Waits for a child (bounded) and returns its status and what it wrote to stderr.
pub fn wait_with_stderr(child: &mut Child) -> (ExitStatus, String) {
    let status = wait_bounded(child);
    let mut err = String::new();
    if let Some(mut stderr) = child.stderr.take() {
        stderr.read_to_string(&mut err).expect("read stderr");
    }
    (status, err)
}

/// Runs a command whose stdin is already set, to completion, bounded by [`LIMIT`].
pub fn run_with_stdin(mut cmd: Command) -> Output {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let out = lines_of_bytes(child.stdout.take().expect("stdout is piped"));
    let err = lines_of_bytes(child.stderr.take().expect("stderr is piped"));
    let status = wait_bounded(&mut child);
    Output {
        status,
        stdout: out.recv_timeout(LIMIT).expect("stdout"),
        stderr: err.recv_timeout(LIMIT).expect("stderr"),
    }
}

/// Runs a command to completion with `stdin` as its input, bounded by [`LIMIT`].
pub fn run(mut cmd: Command, stdin: &[u8]) -> Output {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let mut input = child.stdin.take().expect("stdin is piped");
    let data = stdin.to_vec();
    let feeder = std::thread::spawn(move || {
        let _ = input.write_all(&data);
    });
    let out = lines_of_bytes(child.stdout.take().expect("stdout is piped"));
    let err = lines_of_bytes(child.stderr.take().expect("stderr is piped"));
    let status = wait_bounded(&mut child);
    feeder.join().expect("stdin feeder");
    Output {
        status,
        stdout: out.recv_timeout(LIMIT).expect("stdout"),
        stderr: err.recv_timeout(LIMIT).expect("stderr"),
    }
}

fn lines_of_bytes<R: Read + Send + 'static>(mut stream: R) -> Receiver<Vec<u8>> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut all = Vec::new();
        let _ = stream.read_to_end(&mut all);
        let _ = tx.send(all);
    });
    rx
}

/// `echokit ARGS`, run to completion with no input.
pub fn echokit_run(args: &[&str]) -> Output {
    let mut cmd = echokit();
    cmd.args(args);
    run(cmd, b"")
}

/// Asserts that a run's stderr says `needle`, and shows it if not.
pub fn assert_stderr_has(out: &Output, needle: &str) {
    let err = text(&out.stderr);
    assert!(err.contains(needle), "stderr lacks {needle:?}: {err}");
}

/// `echokit echo-client ARGS`, run to completion.
pub fn client(args: &[&str]) -> Output {
    let mut cmd = echokit();
    cmd.arg("echo-client").args(args);
    run(cmd, b"")
}

/// Text of an output stream.
pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// A connected client socket with bounded reads and writes.
pub fn connect(addr: SocketAddr) -> TcpStream {
    let stream = TcpStream::connect_timeout(&addr, LIMIT).expect("connect");
    stream.set_read_timeout(Some(LIMIT)).expect("read timeout");
    stream
        .set_write_timeout(Some(LIMIT))
        .expect("write timeout");
    stream
}

/// Reads until the peer closes, bounded by the socket's read timeout.
pub fn read_to_end(stream: &mut TcpStream) -> Vec<u8> {
    let mut all = Vec::new();
    stream.read_to_end(&mut all).expect("read to end");
    all
}

/// Deterministic bytes that are not all alike, so misplaced bytes show.
pub fn pattern(len: usize, seed: u32) -> Vec<u8> {
    let mut x = seed.wrapping_mul(2_654_435_761).wrapping_add(1);
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        })
        .collect()
}

/// `python3`, for the guide's programs (`.ci/run` installs it where it is missing).
pub fn python() -> Command {
    Command::new("python3")
}

/// The path of a Python peer in `tests/peers/`.
pub fn peer(name: &str) -> String {
    format!("{}/tests/peers/{name}", env!("CARGO_MANIFEST_DIR"))
}

/// A loopback address where nothing listens, held for as long as the
/// returned socket lives: bound, never listening, so every connect is
/// refused and no other test can take the port meanwhile.
pub fn refusing() -> (socket2::Socket, SocketAddr) {
    let holder =
        socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).expect("a socket");
    holder
        .bind(&SocketAddr::from(([127, 0, 0, 1], 0)).into())
        .expect("bind 127.0.0.1:0");
    let addr = holder
        .local_addr()
        .expect("a bound address")
        .as_socket()
        .expect("an IP address");
    (holder, addr)
}

/// A loopback address that never answers a SYN, for as long as the returned
/// sockets live: a listener whose accept queue is full drops further SYNs,
/// as a firewall that drops packets does, so a connect to it hangs.
pub fn silent() -> (Vec<socket2::Socket>, SocketAddr) {
    let tcp = || socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None);
    let listener = tcp().expect("a socket");
    listener
        .bind(&SocketAddr::from(([127, 0, 0, 1], 0)).into())
        .expect("bind 127.0.0.1:0");
    listener.listen(0).expect("listen");
    let addr = listener
        .local_addr()
        .expect("a bound address")
        .as_socket()
        .expect("an IP address");
    let mut held = vec![listener];
    loop {
        let s = tcp().expect("a socket");
        if s.connect_timeout(&addr.into(), Duration::from_millis(300))
            .is_err()
        {
            return (held, addr);
        }
        held.push(s);
        assert!(held.len() < 64, "the accept queue never filled");
    }
}

/// `unix:PATH`, as the tools write it.
pub fn unix(path: &std::path::Path) -> String {
    format!("unix:{}", path.display())
}

/// `unixgram:PATH`, as the tools write it.
pub fn unixgram(path: &std::path::Path) -> String {
    format!("unixgram:{}", path.display())
}

/// The binary under test, run with a descriptor limit (soft and hard) of
/// `n`, as `prlimit --nofile=N` would run it.
pub fn echokit_with_nofile(n: u64) -> Command {
    let mut cmd = echokit();
    // SAFETY: the closure runs in the forked child before exec; it only
    // calls setrlimit, which is async-signal-safe, and allocates nothing.
    unsafe {
        cmd.pre_exec(move || {
            let limit = libc::rlimit {
                rlim_cur: n,
                rlim_max: n,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &limit) == 0 {
                Ok(())
            } else {
                Err(std::io::Error::last_os_error())
            }
        });
    }
    cmd
}

/// A listener on 127.0.0.1 and the `len - 1` ports after it, held bound
/// and never listening (so refused): a range no other socket sits in, which
/// a probe of it cannot disturb. Found by trying, below the ephemeral range
/// (`ip_local_port_range`): the kernel gives those ports to no port-0 bind
/// and no outgoing connect, which is how every other test gets its ports,
/// so a busy run has not filled them with its connections.
pub fn owned_range(len: u16) -> (std::net::TcpListener, Vec<socket2::Socket>, SocketAddr) {
    let ephemeral_low: u16 = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|t| t.split_whitespace().next()?.parse().ok())
        .unwrap_or(32768);
    let hold = |port: u16| {
        let s = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).ok()?;
        s.bind(&SocketAddr::from(([127, 0, 0, 1], port)).into())
            .ok()?;
        Some(s)
    };
    // From 10000, or from 1024 on a host whose ephemeral range starts low.
    let first = if ephemeral_low > 10_000 + 100 * len {
        10_000
    } else {
        1024
    };
    let starts: Vec<u16> = (first..ephemeral_low.saturating_sub(len))
        .step_by(usize::from(len))
        .collect();
    // Start somewhere that depends on the process and the length, so that
    // two runs at once, or two callers in one run, do not try the same
    // ports in the same order.
    let skip =
        (std::process::id() as usize * 7919 + usize::from(len) * 104_729) % starts.len().max(1);
    for &start in starts.iter().cycle().skip(skip).take(starts.len()) {
        let Ok(l) = std::net::TcpListener::bind(("127.0.0.1", start)) else {
            continue;
        };
        let held: Option<Vec<socket2::Socket>> = (start + 1..start + len).map(hold).collect();
        if let Some(held) = held {
            let addr = l.local_addr().expect("a bound address");
            return (l, held, addr);
        }
    }
    panic!("no {len} free ports in a row on 127.0.0.1 below {ephemeral_low}");
}
