//! What one stream connection of the bench says and expects, with no I/O:
//! the bytes of its next message, and the check of what comes back, as
//! [`client::Session`](crate::client::Session)s. The engine (`stream.rs`)
//! owns the messages in flight, the clock and the counts, its `Link`s the
//! sockets, and it is generic over the session, so a connection carries
//! only what its own workload needs: an echo connection its byte stream, an
//! app connection its response decoder.

use std::io;
use std::sync::Arc;

use super::BenchConfig;
use super::pattern::{MAX_SLICE, Sizes, Stream};
use crate::client::Session;
use crate::proto::{Decoder, Limits};

/// How the bench makes its sessions: one per connection, and what a
/// thread's sessions share, from the run's configuration.
pub(super) trait BenchSession: Session + Sized {
    /// What the thread's sessions share, made once.
    fn shared(cfg: &BenchConfig) -> io::Result<Self::Shared>;

    /// Connection `id`'s session.
    fn new(id: u64, cfg: &BenchConfig) -> Self;
}

/// The echo: a stream of the pattern, sent in messages of the drawn sizes,
/// which must come back byte for byte.
pub(super) struct Echo {
    stream: Stream,
    sizes: Sizes,
}

impl BenchSession for Echo {
    fn shared(_cfg: &BenchConfig) -> io::Result<()> {
        Ok(())
    }

    fn new(id: u64, cfg: &BenchConfig) -> Echo {
        Echo {
            stream: Stream::new(id),
            sizes: Sizes::new(cfg.sizes, id),
        }
    }
}

impl Session for Echo {
    type Shared = ();

    fn next_len(&mut self, _shared: &()) -> u64 {
        self.sizes.draw() as u64
    }

    fn chunk<'a>(&'a self, _shared: &'a (), at: u64, left: usize) -> &'a [u8] {
        self.stream.slice(at, left.min(MAX_SLICE))
    }

    /// Checks echoed bytes against the stream: a read may end anywhere.
    fn take(
        &mut self,
        _shared: &mut (),
        got: &[u8],
        received: u64,
        written: u64,
    ) -> Result<u64, String> {
        let n = got.len() as u64;
        if received + n > written {
            return Err(format!(
                "the server sent {} bytes more than it was sent",
                received + n - written
            ));
        }
        if let Some(at) = self.stream.check(received, got) {
            let k = (at - received) as usize;
            return Err(format!(
                "echo differs at byte {at} of the connection's stream: sent {:#04x}, got {:#04x}",
                self.stream.byte(at),
                got[k]
            ));
        }
        Ok(received + n)
    }

    fn restart(&mut self) {}
}

/// The guide's app protocol: one encoded request, sent again and again;
/// each response must decode and equal the first.
pub(super) struct App {
    decoder: Decoder,
    /// Stream bytes of the requests issued: each response answers one.
    issued: u64,
}

/// What a thread's app sessions share.
pub(super) struct AppShared {
    /// The request, encoded once.
    request: Arc<[u8]>,
    /// The first response, which every later one must equal.
    first_response: Option<Vec<u8>>,
}

impl BenchSession for App {
    fn shared(cfg: &BenchConfig) -> io::Result<AppShared> {
        let query = match &cfg.workload {
            super::Workload::App { query, .. } => query.as_str(),
            super::Workload::Echo => "",
        };
        let message = crate::app::request("search", query);
        let request = crate::proto::encode(&message)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e.to_string()))?
            .into();
        Ok(AppShared {
            request,
            first_response: None,
        })
    }

    fn new(_id: u64, _cfg: &BenchConfig) -> App {
        App {
            decoder: Decoder::new(Limits::default()),
            issued: 0,
        }
    }
}

impl Session for App {
    type Shared = AppShared;

    fn next_len(&mut self, shared: &AppShared) -> u64 {
        let len = shared.request.len() as u64;
        self.issued += len;
        len
    }

    fn chunk<'a>(&'a self, shared: &'a AppShared, at: u64, left: usize) -> &'a [u8] {
        let request = &shared.request;
        let off = (at % request.len() as u64) as usize;
        &request[off..request.len().min(off + left)]
    }

    /// Decodes responses; each whole one completes the oldest request
    /// still unanswered.
    fn take(
        &mut self,
        shared: &mut AppShared,
        got: &[u8],
        mut received: u64,
        written: u64,
    ) -> Result<u64, String> {
        let mut used = 0;
        let request = shared.request.len() as u64;
        while used < got.len() {
            let decoded = self
                .decoder
                .decode(&got[used..])
                .map_err(|e| format!("malformed response: {e}"))?;
            used += decoded.consumed;
            let Some(message) = decoded.message else {
                break;
            };
            let end = received + request;
            if end > self.issued {
                return Err("a response came with no request outstanding".into());
            }
            if end > written {
                return Err("a response came before its request was whole".into());
            }
            received = end;
            check_response(&message, &mut shared.first_response)?;
        }
        Ok(received)
    }

    fn restart(&mut self) {
        self.decoder = Decoder::new(Limits::default());
        self.issued = 0;
    }
}

/// A response must decode, be a JSON object with a `result`, and equal the
/// first response (the same query gets the same answer).
fn check_response(
    message: &crate::proto::Message,
    first: &mut Option<Vec<u8>>,
) -> Result<(), String> {
    match first {
        Some(bytes) if *bytes == message.content => Ok(()),
        Some(bytes) => Err(format!(
            "response differs from the first one: {} instead of {}",
            crate::text::py_bytes_repr(&message.content[..message.content.len().min(80)]),
            crate::text::py_bytes_repr(&bytes[..bytes.len().min(80)])
        )),
        None => {
            match crate::app::Response::of(message) {
                Ok(response) if response.has_result() => {}
                _ => {
                    return Err(format!(
                        "the response is not a JSON object with a result: {}",
                        crate::text::py_bytes_repr(
                            &message.content[..message.content.len().min(80)]
                        )
                    ));
                }
            }
            *first = Some(message.content.clone());
            Ok(())
        }
    }
}
