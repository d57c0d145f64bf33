//! Deep Chat's file uploads (`multipart/form-data`): arbitrary Content-Type and body never
//! panic or hang, and an accepted upload always holds a user turn with something in it.
//!
//! Input: the Content-Type header value, a newline, then the body.

#![no_main]

use bytes::Bytes;
use deepchat_adapters::Role;
use deepchat_proxy::deepchat::multipart;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let (content_type, body) = match data.iter().position(|&b| b == b'\n') {
        Some(at) => (&data[..at], &data[at + 1..]),
        None => (data, &[][..]),
    };
    let content_type = String::from_utf8_lossy(content_type);
    let parsed = futures_executor::block_on(multipart::parse(
        Bytes::copy_from_slice(body),
        &content_type,
    ));
    if let Ok(turns) = parsed {
        assert!(turns.iter().any(|t| t.role == Role::User), "{turns:?}");
        assert!(
            turns
                .iter()
                .all(|t| !t.text.is_empty() || !t.images.is_empty()),
            "{turns:?}"
        );
    }
});
