//! SSE and NDJSON framing: arbitrary bytes, delivered whole and cut at fuzzer-chosen points,
//! must frame to the same messages (up to the first error, where the proxy stops reading) and
//! never panic.
//!
//! Input: one control byte, two bytes of cut position, then the body.
//! control bit 0: 0 = SSE, 1 = NDJSON; bits 1-2: 0/3 = one cut at the position, 1 = fixed-size
//! chunks of (bits 3-7) + 1 bytes, 2 = one byte at a time.

#![no_main]

use deepchat_adapters::framing::{frame_chunks, Framing, FramingError, Message};
use libfuzzer_sys::fuzz_target;

/// What the proxy acts on: messages until the first framing error, and whether one came.
fn until_error(framed: Vec<Result<Message, FramingError>>) -> (Vec<Message>, bool) {
    let mut messages = Vec::new();
    for item in framed {
        match item {
            Ok(message) => messages.push(message),
            Err(_) => return (messages, true),
        }
    }
    (messages, false)
}

fuzz_target!(|data: &[u8]| {
    let [control, hi, lo, body @ ..] = data else {
        return;
    };
    let framing = if control & 1 == 0 {
        Framing::Sse
    } else {
        Framing::Ndjson
    };
    let chunks: Vec<Vec<u8>> = match (control >> 1) & 3 {
        1 => body
            .chunks(usize::from(control >> 3) + 1)
            .map(<[u8]>::to_vec)
            .collect(),
        2 => body.iter().map(|b| vec![*b]).collect(),
        _ => {
            let at = usize::from(u16::from_be_bytes([*hi, *lo])) % (body.len() + 1);
            vec![body[..at].to_vec(), body[at..].to_vec()]
        }
    };
    let whole = until_error(frame_chunks(framing, vec![body.to_vec()]));
    let cut = until_error(frame_chunks(framing, chunks));
    assert_eq!(cut, whole, "cutting the body changed what was framed");
});
