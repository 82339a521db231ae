//! The socket guide's application protocol: framed messages with a JSON
//! header, as a codec with no I/O (bytes in, messages out; no sockets, no
//! clock), so that servers, clients, tests and fuzzers share it.
//!
//! One message on the wire:
//!
//! ```text
//!  0       2                          2 + H                  2 + H + C
//!  +-------+--------------------------+----------------------+
//!  |   H   |  JSON header (H bytes)   |  content (C bytes)   |
//!  +-------+--------------------------+----------------------+
//!  u16, big-endian
//!
//!  header: {"byteorder": "little", "content-type": "text/json",
//!           "content-encoding": "utf-8", "content-length": C}
//! ```
//!
//! - `H`: the header's length in bytes, an unsigned 16-bit big-endian integer.
//! - The header: UTF-8 JSON, an object with the four keys above, each once:
//!   `byteorder` (`"little"` or `"big"`, the sender's), `content-type` and
//!   `content-encoding` (strings), `content-length` (an integer `C` >= 0).
//!   Other keys are kept as they are.
//! - The content: exactly `C` bytes, which must decode with the declared
//!   encoding, named as Python names its codecs (`utf-8`, `ascii`,
//!   `latin-1`, `utf-16`, `utf-32` and their aliases: [`Encoding`]), or
//!   `binary` for any bytes. [`Message::text`] decodes it as the guide's
//!   server does before it reads `text/json`.
//! - `content-length` is read as Python reads it: `-0` is 0; a number over
//!   the limit is too long however it is written (`18446744073709551616`,
//!   `1e26`); one with a fraction is not a whole number; a whole number
//!   written as a float (`5.0`) is not an integer.
//!
//! Limits ([`Limits`]): a header of at most [`DEFAULT_MAX_HEADER`] bytes and
//! content of at most [`DEFAULT_MAX_CONTENT`] by default. A declared length
//! is checked against them before anything is read for it, and buffers grow
//! only as bytes arrive: a peer that declares 10^12 bytes gets an error, not
//! an allocation.
//!
//! The encoder writes the header as the guide's Python does
//! (`json.dumps(header, ensure_ascii=False)`: `", "` and `": "` separators,
//! the keys in the order above, non-ASCII characters as they are), so that
//! echokit's messages are byte for byte the guide's.
//!
//! | file          | role                                                      |
//! |---------------|-----------------------------------------------------------|
//! | `header.rs`   | the JSON header: parse with every check, write as Python  |
//! | `codec.rs`    | the incremental decoder, the encoder, the errors          |
//! | `encoding.rs` | content encodings as Python's codecs name and decode them |

mod codec;
mod encoding;
mod header;

pub use codec::{
    DEFAULT_MAX_CONTENT, DEFAULT_MAX_HEADER, DecodeError, Decoded, Decoder, EncodeError, Limits,
    Message, encode, encode_into,
};
pub use encoding::{Encoding, Invalid};
pub use header::{ByteOrder, Header, py_json};
