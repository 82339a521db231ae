//! The echo service, server and clients.
//!
//! | file         | role                                                        |
//! |--------------|-------------------------------------------------------------|
//! | `server.rs`  | starts the event loops over bound listeners                 |
//! | `worker.rs`  | one stream event loop: accept, hand over, drive, drain      |
//! | `conn.rs`    | one connection's echo: read, write back, back-pressure      |
//! | `datagram.rs`| one datagram socket's loop: UDP and Unix datagram echo      |
//! | `limit.rs`   | who gets a UDP answer: loop ports, rate limits              |
//! | `buffer.rs`  | the scratch buffer and the pool of pending buffers          |
//! | `client.rs`  | message clients: one connection or many, verified           |
//! | `datagram_client.rs` | datagram clients: retries, series with loss and RTT |
//! | `stream.rs`  | stdin to the server, the echo to stdout                     |

mod buffer;
pub mod client;
mod conn;
pub mod datagram;
pub mod datagram_client;
pub mod limit;
pub mod server;
pub mod stream;
mod worker;

pub use server::{ServerConfig, ServerStats};
