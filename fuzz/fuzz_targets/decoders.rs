//! Every adapter's stream decoder, fed fuzz input either as a raw upstream body (through the
//! adapter's own framing, as the proxy does) or directly as framed messages. No panic, and the
//! reply's ending follows the decoder contract the relay relies on: it ends with a finish or an
//! error (a stream cut short is an error), with at most one finish and at most one error. A
//! framing error stops the feed, as it stops the proxy's read.
//!
//! Input: one control byte, then the payload.
//! control % (number of providers) picks the adapter from the provider table; bit 7 set = the payload is messages, one per line, as
//! `event-name<TAB>data` or just `data`; clear = the payload is a raw body for the framing.

#![no_main]

use deepchat_adapters::framing::frame_chunks;
use deepchat_adapters::providers::{Settings, PROVIDERS};
use deepchat_adapters::{Adapter, Event, Message};
use std::sync::Arc;
use libfuzzer_sys::fuzz_target;

const BASE: &str = "http://127.0.0.1:9";

fn adapter(pick: u8) -> Arc<dyn Adapter> {
    let provider = &PROVIDERS[usize::from(pick & 0x7f) % PROVIDERS.len()];
    (provider.build)(&Settings {
        base_url: BASE.to_owned(),
        api_version: provider.api_version.map(str::to_owned),
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((&control, payload)) = data.split_first() else {
        return;
    };
    let adapter = adapter(control);
    let mut decoder = adapter.decoder();
    let mut events = Vec::new();
    // A framing error ends the reply with the proxy's own error, not the decoder's.
    let mut broken = false;
    if control & 0x80 != 0 {
        for line in String::from_utf8_lossy(payload).split('\n') {
            let message = match line.split_once('\t') {
                Some((event, data)) => Message {
                    event: event.to_owned(),
                    data: data.to_owned(),
                },
                None => Message::data(line),
            };
            events.extend(decoder.decode(&message));
        }
    } else {
        for item in frame_chunks(adapter.framing(), vec![payload.to_vec()]) {
            match item {
                Ok(message) => events.extend(decoder.decode(&message)),
                Err(_) => {
                    broken = true;
                    break;
                }
            }
        }
    }
    if !broken {
        events.extend(decoder.end());
    }
    let finishes = events
        .iter()
        .filter(|e| matches!(e, Event::Finish(_)))
        .count();
    let errors = events
        .iter()
        .filter(|e| matches!(e, Event::Error(_)))
        .count();
    let name = adapter.name();
    assert!(finishes <= 1, "{name}: {finishes} finishes: {events:?}");
    assert!(errors <= 1, "{name}: {errors} errors: {events:?}");
    assert!(
        broken || finishes + errors >= 1,
        "{name}: the reply neither finished nor failed: {events:?}"
    );
});
