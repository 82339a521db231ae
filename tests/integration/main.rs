//! Integration tests: they run the real `echokit` binary on port 0, read the
//! bound address from its `listening on` line, and talk to it over loopback.
//! One test binary, so the suite links once.

mod app;
mod app_python;
mod bench;
mod client;
mod datagram;
mod docs;
mod errors;
mod exit_codes;
mod interop;
mod limits;
mod metrics;
mod probe;
mod reliability;
mod render;
mod resolve;
mod root;
mod server;
mod service;
mod sockets;
mod trace;
mod unix;
mod util;
