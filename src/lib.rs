//! echokit: the socket guide's programs made real. An echo server for TCP,
//! UDP and Unix sockets that holds tens of thousands of clients, the
//! clients, and tools that show what the sockets do.
//!
//! | module       | role                                                              |
//! |--------------|-------------------------------------------------------------------|
//! | [`endpoint`] | the address syntax every command takes and prints                 |
//! | [`net`]      | listening sockets (bound, or passed by systemd or inetd), Unix socket files, outgoing connections |
//! | [`serve`]    | the stream servers' event loops, for any service: accept, limits, timers, close |
//! | `client`     | a client connection: its session (sans-IO) and the link that moves its bytes, shared by the echo client and `bench` (crate-private) |
//! | [`echo`]     | the echo server and the echo clients                              |
//! | [`proto`]    | the guide's application protocol: a codec with no I/O             |
//! | [`app`]      | the guide's search service and its client, on top of `proto`      |
//! | [`bench`](mod@bench) | the load generator: closed and open loop, churn, reports          |
//! | [`probe`]    | `connect_ex` as a tool: open, refused, timed out, and why         |
//! | [`resolve`]  | name resolution as Python sees it, and why answers differ         |
//! | [`calls`]    | `--trace-calls`: each socket call handed to the binary's sink     |
//! | [`shutdown`] | a shutdown request that wakes event loops                         |
//! | [`deadline`] | deadlines that survive absurd durations                           |
//! | `driver`     | how an event loop learns what is ready: poll, waker, EINTR, deadlines (crate-private) |
//! | [`exit`]     | the one table of exit codes                                       |
//! | [`metrics`]  | what the servers count, and `--metrics`: the exposition over HTTP |
//! | [`stats`]    | the latency histogram `bench` and `probe` share                   |
//! | [`sockets`]  | every socket of the host, as netstat and lsof show them, explained |
//! | [`os`]       | what only the OS tells: kernel limits, who holds a port; `--user` |
//! | [`text`]     | bytes and text as Python's `repr` shows them, sizes and durations |
//!
//! Library entry points take already-bound sockets and a [`shutdown::Shutdown`]
//! handle and return statistics; they never print. Logs go through `tracing`.
//!
//! An echo server in a thread, the guide's exchange, and a clean shutdown:
//!
//! ```
//! use std::io::{Read, Write};
//! use std::time::Duration;
//! use echokit::echo::server::{self, ServerConfig};
//! use echokit::net::{listen, ListenOptions};
//! use echokit::shutdown::Shutdown;
//!
//! // Bind first (port 0: the kernel picks one), so the address is known before serving.
//! let listeners = listen::bind(&"127.0.0.1:0".parse()?, &ListenOptions::default())?;
//! let addr = listeners[0].local_addr().expect("a TCP listener has an IP address");
//! let shutdown = Shutdown::new();
//! let server = {
//!     let shutdown = shutdown.clone();
//!     std::thread::spawn(move || server::run(listeners, &ServerConfig::default(), &shutdown))
//! };
//!
//! let mut client = std::net::TcpStream::connect(addr)?;
//! client.set_read_timeout(Some(Duration::from_secs(10)))?;
//! client.write_all(b"Hello, world")?;
//! client.shutdown(std::net::Shutdown::Write)?; // half-close: the echo, then EOF
//! let mut echo = Vec::new();
//! client.read_to_end(&mut echo)?;
//! assert_eq!(echo, b"Hello, world");
//!
//! shutdown.request();
//! let stats = server.join().expect("the server thread does not panic")?;
//! assert_eq!((stats.connections, stats.bytes_echoed), (1, 12));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

pub mod app;
pub mod bench;
pub mod calls;
mod client;
pub mod deadline;
mod driver;
pub mod echo;
pub mod endpoint;
pub mod exit;
pub mod metrics;
pub mod net;
pub mod os;
pub mod probe;
pub mod proto;
mod ratelog;
pub mod resolve;
pub mod serve;
pub mod shutdown;
pub mod sockets;
pub mod stats;
pub mod text;

pub use endpoint::Endpoint;
pub use exit::ExitCode;
