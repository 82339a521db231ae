//! Sockets before the data flows: listening sockets with their options
//! ([`listen`]) and outgoing connections with Happy Eyeballs ([`connect`]).
//! Both turn kernel errors into typed errors that name the cause and the fix.

pub mod connect;
pub mod listen;

pub use connect::{ConnectError, ConnectOptions};
pub use listen::{BindError, ListenOptions, Listener};
