//! The socket guide's application on top of [`crate::proto`]: a search
//! service and its client.
//!
//! | file          | role                                                             |
//! |---------------|------------------------------------------------------------------|
//! | `service.rs`  | requests and responses as the guide builds them (no I/O)         |
//! | `pyjson.rs`   | JSON as the guide's Python reads it and shows it (`str`, `repr`) |
//! | `table.rs`    | the search table: the guide's, or one from a JSON file           |
//! | `client.rs`   | `app-client`: one request, one response, with a deadline         |
//! | `server.rs`   | `app-server`: the service on the stream event loops              |
//! | `conn.rs`     | one server connection: decode, answer, deadlines, close          |
//! | `inetd.rs`    | `app-server --inetd`: the one connection on stdin                |

pub mod client;
pub mod conn;
pub mod inetd;
pub mod pyjson;
pub mod server;
pub mod service;
pub mod table;

pub use service::{Response, request, respond};
pub use table::SearchTable;
