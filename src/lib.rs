//! echokit: the socket guide's programs made real. An echo server that holds
//! tens of thousands of clients, the clients, and tools that show what the
//! sockets do.
//!
//! | module       | role                                                              |
//! |--------------|-------------------------------------------------------------------|
//! | [`endpoint`] | the address syntax every command takes and prints                 |
//! | [`net`]      | listening sockets and outgoing connections, with their errors     |
//! | [`echo`]     | the echo server (event loops) and the echo clients                |
//! | [`shutdown`] | a shutdown request that wakes event loops                         |
//! | [`exit`]     | the one table of exit codes                                       |
//! | [`os`]       | what only the OS tells: kernel limits, who holds a port           |
//! | [`text`]     | bytes as Python prints them, sizes and durations                  |
//!
//! Library entry points take already-bound sockets and a [`shutdown::Shutdown`]
//! handle and return statistics; they never print. Logs go through `tracing`.

pub mod echo;
pub mod endpoint;
pub mod exit;
pub mod net;
pub mod os;
pub mod shutdown;
pub mod text;

pub use endpoint::Endpoint;
pub use exit::ExitCode;
