//! Reasoning models: every provider's thinking decodes into `Event::Reasoning`, never into the
//! answer text (recorded transcripts, split at every byte); the reasoning options reach each
//! provider in its own words; and with no option set, no request changes.

mod support;

use deepchat_adapters::anthropic::Anthropic;
use deepchat_adapters::cohere::Cohere;
use deepchat_adapters::gemini::Gemini;
use deepchat_adapters::ollama::Ollama;
use deepchat_adapters::openai::OpenAiChat;
use deepchat_adapters::openai_responses::OpenAiResponses;
use deepchat_adapters::providers::{Settings, PROVIDERS};
use deepchat_adapters::{
    Adapter, Conversation, Effort, Event, FinishReason, Generation, ReasoningRequest, Turn, Usage,
};
use serde_json::{json, Value};
use support::{decode_every_split, fixture, text_of};

/// Concatenated thinking.
fn thinking_of(events: &[Event]) -> String {
    events
        .iter()
        .filter_map(|e| match e {
            Event::Reasoning(t) => Some(t.as_str()),
            _ => None,
        })
        .collect()
}

/// Every thinking event comes before the first answer text (the relay relies on the order
/// only for how it shows them, but a transcript that interleaves would be a decoding slip).
fn assert_thinking_first(events: &[Event]) {
    let first_text = events
        .iter()
        .position(|e| matches!(e, Event::TextDelta(_)))
        .unwrap_or(events.len());
    assert!(
        !events[first_text..]
            .iter()
            .any(|e| matches!(e, Event::Reasoning(_))),
        "{events:?}"
    );
}

fn usage_in(events: &[Event]) -> Option<Usage> {
    events.iter().find_map(|e| match e {
        Event::Usage(u) => Some(*u),
        _ => None,
    })
}

#[test]
fn openai_compatible_reasoning_content_is_thinking_with_its_token_count() {
    let events = decode_every_split(
        &OpenAiChat::new("http://127.0.0.1:9/v1"),
        &fixture("openai", "reasoning_content.sse"),
    );
    assert_eq!(
        thinking_of(&events),
        "27 × 453: 27 × 400 = 10800, 27 × 53 = 1431 — ça fait 12231."
    );
    assert_eq!(text_of(&events), "27 × 453 = 12,231");
    assert_thinking_first(&events);
    assert!(events.contains(&Event::Finish(FinishReason::Stop)));
    assert_eq!(
        usage_in(&events),
        Some(Usage {
            input_tokens: Some(14),
            output_tokens: Some(96),
            reasoning_tokens: Some(88),
        })
    );
}

#[test]
fn openrouter_reasoning_field_is_thinking() {
    let events = decode_every_split(
        &OpenAiChat::new("http://127.0.0.1:9/v1"),
        &fixture("openai", "reasoning_field.sse"),
    );
    assert_eq!(thinking_of(&events), "Okay, a greeting.");
    assert_eq!(text_of(&events), "Hi! 👋");
    assert_eq!(usage_in(&events).and_then(|u| u.reasoning_tokens), Some(5));
}

#[test]
fn anthropic_thinking_deltas_are_thinking_and_the_signature_is_dropped() {
    let events = decode_every_split(
        &Anthropic::new("http://127.0.0.1:9"),
        &fixture("anthropic", "thinking.sse"),
    );
    assert_eq!(
        thinking_of(&events),
        "The user wants 27 * 453. That is 12231."
    );
    assert_eq!(text_of(&events), "27 × 453 = 12,231");
    assert!(
        !format!("{events:?}").contains("EqQBCg"),
        "the signature is no text"
    );
    assert_thinking_first(&events);
}

#[test]
fn gemini_thought_parts_are_thinking_with_their_token_count() {
    let events = decode_every_split(
        &Gemini::new("http://127.0.0.1:9"),
        &fixture("gemini", "thinking.sse"),
    );
    assert_eq!(
        thinking_of(&events),
        "**Multiplying**\n\n27 × 453 is 12231."
    );
    assert_eq!(text_of(&events), "27 × 453 = 12,231");
    assert_thinking_first(&events);
    assert_eq!(
        usage_in(&events),
        Some(Usage {
            input_tokens: Some(9),
            output_tokens: Some(9),
            reasoning_tokens: Some(61),
        })
    );
}

#[test]
fn responses_summary_parts_are_thinking_paragraphs_with_their_token_count() {
    let events = decode_every_split(
        &OpenAiResponses::new("http://127.0.0.1:9/v1"),
        &fixture("openai-responses", "reasoning.sse"),
    );
    assert_eq!(
        thinking_of(&events),
        "**Multiplying**\n\nSplit 453 into 400 + 53.\n\nSum: 12231 — vérifié."
    );
    assert_eq!(text_of(&events), "27 × 453 = 12,231");
    assert_thinking_first(&events);
    assert_eq!(
        usage_in(&events),
        Some(Usage {
            input_tokens: Some(12),
            output_tokens: Some(210),
            reasoning_tokens: Some(192),
        })
    );
}

#[test]
fn ollama_message_thinking_is_thinking() {
    let events = decode_every_split(
        &Ollama::new("http://127.0.0.1:9"),
        &fixture("ollama", "thinking.ndjson"),
    );
    assert_eq!(
        thinking_of(&events),
        "The user says hi. Greet back — briefly."
    );
    assert_eq!(text_of(&events), "Hi there 👋");
    assert_thinking_first(&events);
}

#[test]
fn cohere_thinking_content_is_thinking() {
    let events = decode_every_split(
        &Cohere::new("http://127.0.0.1:9"),
        &fixture("cohere", "thinking.sse"),
    );
    assert_eq!(thinking_of(&events), "27 times 453 is 12231.");
    assert_eq!(text_of(&events), "27 × 453 = 12,231");
}

fn conversation() -> Conversation {
    Conversation {
        turns: vec![Turn::user("hi")],
        ..Default::default()
    }
}

fn body_with(adapter: &dyn Adapter, reasoning: ReasoningRequest, max_tokens: Option<u32>) -> Value {
    let generation = Generation {
        model: "m".into(),
        max_tokens,
        reasoning,
        ..Default::default()
    };
    adapter
        .build_request(&conversation(), &generation, Some("k"))
        .expect("request")
        .body
}

const EVERYTHING: ReasoningRequest = ReasoningRequest {
    effort: Some(Effort::High),
    budget_tokens: Some(2048),
    stream_thoughts: true,
};

#[test]
fn each_provider_is_asked_in_its_own_words() {
    let openai = body_with(&OpenAiChat::new("http://x"), EVERYTHING, None);
    assert_eq!(openai["reasoning_effort"], "high");

    let responses = body_with(&OpenAiResponses::new("http://x"), EVERYTHING, None);
    assert_eq!(
        responses["reasoning"],
        json!({"effort": "high", "summary": "auto"})
    );
    let effort_only = ReasoningRequest {
        effort: Some(Effort::Low),
        ..Default::default()
    };
    assert_eq!(
        body_with(&OpenAiResponses::new("http://x"), effort_only, None)["reasoning"],
        json!({"effort": "low"}),
        "no summary is asked for when the thinking is hidden"
    );

    let anthropic = body_with(&Anthropic::new("http://x"), EVERYTHING, Some(8192));
    assert_eq!(
        anthropic["thinking"],
        json!({"type": "enabled", "budget_tokens": 2048})
    );
    assert_eq!(anthropic["max_tokens"], 8192);

    let gemini = body_with(&Gemini::new("http://x"), EVERYTHING, None);
    assert_eq!(
        gemini["generationConfig"]["thinkingConfig"],
        json!({"includeThoughts": true, "thinkingBudget": 2048})
    );

    let ollama = body_with(&Ollama::new("http://x"), EVERYTHING, None);
    assert_eq!(ollama["think"], "high");
    let shown = ReasoningRequest {
        stream_thoughts: true,
        ..Default::default()
    };
    assert_eq!(
        body_with(&Ollama::new("http://x"), shown, None)["think"],
        true
    );

    let cohere = body_with(&Cohere::new("http://x"), EVERYTHING, None);
    assert_eq!(
        cohere["thinking"],
        json!({"type": "enabled", "token_budget": 2048})
    );
    assert!(
        cohere.get("reasoning_effort").is_none(),
        "Cohere takes no effort"
    );
}

#[test]
fn no_reasoning_option_leaves_every_request_byte_identical() {
    let untouched = ["reasoning_effort", "reasoning", "thinking", "think"];
    for provider in PROVIDERS {
        let settings = Settings {
            base_url: "http://127.0.0.1:9".into(),
            api_version: provider.api_version.map(str::to_owned),
        };
        let adapter = (provider.build)(&settings);
        let plain = Generation {
            model: "m".into(),
            max_tokens: Some(64),
            temperature: Some(0.5),
            ..Default::default()
        };
        let request = adapter
            .build_request(&conversation(), &plain, Some("k"))
            .expect("request");
        let text = serde_json::to_string(&request.body).expect("json");
        for key in untouched {
            assert!(
                request.body.get(key).is_none(),
                "{}: {key} in {text}",
                provider.name
            );
        }
        assert!(
            !text.contains("thinkingConfig"),
            "{}: {text}",
            provider.name
        );
        // The default is the same as naming nothing: one value, one request.
        let explicit = Generation {
            reasoning: ReasoningRequest::default(),
            ..plain.clone()
        };
        let again = adapter
            .build_request(&conversation(), &explicit, Some("k"))
            .expect("request");
        assert_eq!(
            serde_json::to_string(&again.body).expect("json"),
            text,
            "{}",
            provider.name
        );
    }
}
