//! The protocol decoder against arbitrary bytes, in arbitrary splits.
//!
//! Invariants: it never panics; each call takes at most what it is given
//! and makes progress; a message it returns encodes back to bytes that
//! decode to the same message; and the same input decodes to the same
//! result whatever the split. (That no buffer grows by a declared length is
//! a unit test in `src/proto/codec.rs`.) Each message then goes to the app
//! service, which answers or rejects it without a panic (the content
//! decoded with its encoding, read as Python's json reads it, shown as
//! Python's str and repr); an answer is a message its client reads, and
//! the client's line holds no control character.
#![no_main]

use echokit::app::{Response, SearchTable, respond};
use echokit::proto::{Decoder, Limits, Message, encode};
use libfuzzer_sys::fuzz_target;

/// Decodes `data` fed in pieces of `step` bytes; the messages, or the first error.
fn run(data: &[u8], step: usize, limits: Limits) -> Result<Vec<Message>, String> {
    let mut decoder = Decoder::new(limits);
    let mut messages = Vec::new();
    for chunk in data.chunks(step.max(1)) {
        let mut rest = chunk;
        while !rest.is_empty() {
            let decoded = decoder.decode(rest).map_err(|e| e.to_string())?;
            assert!(decoded.consumed <= rest.len());
            assert!(decoded.consumed > 0 || decoded.message.is_some());
            messages.extend(decoded.message);
            rest = &rest[decoded.consumed..];
        }
    }
    decoder.finish().map_err(|e| e.to_string())?;
    Ok(messages)
}

fuzz_target!(|input: &[u8]| {
    let Some((&first, data)) = input.split_first() else {
        return;
    };
    // Small limits, so that the limit paths are reached too.
    let limits = Limits {
        max_header: 256,
        max_content: 4096,
    };
    let whole = run(data, data.len(), limits);
    let split = run(data, usize::from(first % 17) + 1, limits);
    assert_eq!(whole, split, "the split changed the result");
    if let Ok(messages) = whole {
        for message in messages {
            let bytes = encode(&message).expect("a decoded message encodes");
            // The encoder writes the header as Python does (", " and ": "),
            // which may be longer than the compact header that was read:
            // the header limit does not apply to the round trip.
            let roomy = Limits {
                max_header: usize::from(u16::MAX),
                ..limits
            };
            let again = run(&bytes, bytes.len(), roomy).expect("an encoded message decodes");
            assert_eq!(again, vec![message.clone()]);
            if let Ok(answer) = respond(&message, &SearchTable::default()) {
                encode(&answer).expect("an answer encodes");
                let response =
                    Response::of(&answer).expect("the client reads the server's answers");
                let line = response.line(false);
                assert!(!line.chars().any(char::is_control), "{line:?}");
            }
        }
    }
});
