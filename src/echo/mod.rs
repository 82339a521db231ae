//! The echo service, server and clients.
//!
//! | file         | role                                                        |
//! |--------------|-------------------------------------------------------------|
//! | `server.rs`  | starts the loops over bound listeners (streams: `serve`)    |
//! | `conn.rs`    | one connection's echo: read, write back, back-pressure      |
//! | `datagram.rs`| one datagram socket's loop: UDP and Unix datagram echo      |
//! | `limit.rs`   | who gets a UDP answer: loop ports, rate limits              |
//! | `loop_guard.rs` | no echo loop: a peer that sends every echo back is muted |
//! | `served.rs`  | the UDP ports and socket files this process serves on       |
//! | `client.rs`  | message clients: one connection or many, verified           |
//! | `datagram_client.rs` | datagram clients: retries, series with loss and RTT |
//! | `inetd.rs`   | `--inetd`: the one connection on stdin, or stdin copied     |
//! | `stream.rs`  | stdin to the server, the echo to stdout                     |

pub mod client;
mod conn;
pub mod datagram;
pub mod datagram_client;
pub mod inetd;
pub mod limit;
pub mod loop_guard;
mod served;
pub mod server;
pub mod stream;

pub use server::{ServerConfig, ServerStats};
