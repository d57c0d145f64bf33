//! Deep Chat's JSON request body (WebSocket text frames and HTTP JSON posts): arbitrary bytes
//! never panic, and an accepted request always holds a user turn with something in it.

#![no_main]

use deepchat_adapters::Role;
use deepchat_proxy::deepchat::request;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(turns) = request::parse(data) {
        assert!(turns.iter().any(|t| t.role == Role::User), "{turns:?}");
        assert!(
            turns
                .iter()
                .all(|t| !t.text.is_empty() || !t.images.is_empty()),
            "{turns:?}"
        );
    }
});
