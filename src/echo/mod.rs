//! The echo service, server and clients.
//!
//! | file         | role                                                        |
//! |--------------|-------------------------------------------------------------|
//! | `server.rs`  | starts one event loop per CPU over bound listeners          |
//! | `worker.rs`  | one event loop: accept, hand over, drive, drain             |
//! | `conn.rs`    | one connection's echo: read, write back, back-pressure      |
//! | `buffer.rs`  | the scratch buffer and the pool of pending buffers          |
//! | `client.rs`  | message clients: one connection or many, verified           |
//! | `stream.rs`  | stdin to the server, the echo to stdout                     |

mod buffer;
pub mod client;
mod conn;
pub mod server;
pub mod stream;
mod worker;

pub use server::{ServerConfig, ServerStats};
