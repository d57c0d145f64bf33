mod support;

use deepchat_adapters::azure::{AzureOpenAi, DEFAULT_API_VERSION};
use deepchat_adapters::{
    Adapter, AdapterError, Conversation, Event, FinishReason, Generation, Image, Turn,
};
use serde_json::json;
use support::{call, decode_every_split, fixture, text_of};

const PROVIDER: &str = "azure";

fn adapter() -> AzureOpenAi {
    AzureOpenAi::new("https://my-resource.openai.azure.com/")
}

#[test]
fn normal_reply_skips_filter_annotations() {
    let events = decode_every_split(&adapter(), &fixture(PROVIDER, "normal.sse"));
    assert_eq!(
        events,
        vec![
            Event::TextDelta("Héllo".into()),
            Event::TextDelta(", ça va ? ".into()),
            Event::TextDelta("日本語 👋".into()),
            Event::TextDelta("\n".into()),
            Event::Finish(FinishReason::Stop),
        ]
    );
}

#[test]
fn error_midstream_after_text() {
    let events = decode_every_split(&adapter(), &fixture(PROVIDER, "error_midstream.sse"));
    assert_eq!(
        events,
        vec![
            Event::TextDelta("Partial".into()),
            Event::Error(
                "upstream error: The server had an error processing your request. Sorry about that! You can retry your request."
                    .into()
            ),
        ]
    );
}

#[test]
fn content_filter_stop_is_an_error_naming_the_category() {
    let events = decode_every_split(&adapter(), &fixture(PROVIDER, "content_filter.sse"));
    assert_eq!(
        events,
        vec![
            Event::TextDelta("The duel began at dawn, and".into()),
            Event::Error(
                "Azure OpenAI's content filter withheld the rest of this reply (flagged: violence: high)"
                    .into()
            ),
        ]
    );
}

#[test]
fn asynchronous_filter_verdict_after_annotations() {
    let events = decode_every_split(&adapter(), &fixture(PROVIDER, "content_filter_async.sse"));
    assert_eq!(text_of(&events), "Hey Jude, don't make it bad");
    assert_eq!(
        events.last(),
        Some(&Event::Error(
            "Azure OpenAI's content filter withheld the rest of this reply (flagged: protected_material_text)"
                .into()
        ))
    );
    assert!(!events.iter().any(|e| matches!(e, Event::Finish(_))));
}

#[test]
fn verdict_after_a_normal_stop_still_reaches_the_user() {
    let body = concat!(
        "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"ok\"},\"finish_reason\":null}]}\n\n",
        "data: {\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]}\n\n",
        "data: {\"id\":\"\",\"choices\":[{\"index\":0,\"finish_reason\":\"content_filter\",",
        "\"content_filter_results\":{\"sexual\":{\"filtered\":true,\"severity\":\"medium\"}}}]}\n\n",
        "data: [DONE]\n\n",
    );
    let events = decode_every_split(&adapter(), body.as_bytes());
    assert_eq!(
        events,
        vec![
            Event::TextDelta("ok".into()),
            Event::Finish(FinishReason::Stop),
            Event::Error(
                "Azure OpenAI's content filter withheld the rest of this reply (flagged: sexual: medium)"
                    .into()
            ),
        ]
    );
}

#[test]
fn verdict_without_details_still_explains() {
    let body =
        "data: {\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"content_filter\"}]}\n\n";
    let events = decode_every_split(&adapter(), body.as_bytes());
    assert_eq!(
        events,
        vec![Event::Error(
            "Azure OpenAI's content filter withheld the rest of this reply".into()
        )]
    );
}

#[test]
fn nothing_after_done_counts() {
    let body = concat!(
        "data: {\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]}\n\n",
        "data: [DONE]\n\n",
        "data: {\"choices\":[{\"index\":0,\"finish_reason\":\"content_filter\"}]}\n\n",
    );
    let events = decode_every_split(&adapter(), body.as_bytes());
    assert_eq!(events, vec![Event::Finish(FinishReason::Stop)]);
}

#[test]
fn length_finish_is_reported() {
    let events = decode_every_split(&adapter(), &fixture(PROVIDER, "length.sse"));
    assert_eq!(text_of(&events), "Once upon");
    assert_eq!(events.last(), Some(&Event::Finish(FinishReason::Length)));
}

#[test]
fn stream_without_done_is_an_error() {
    let events = decode_every_split(&adapter(), &fixture(PROVIDER, "truncated.sse"));
    assert_eq!(text_of(&events), "Cut shørt 🚧");
    assert_eq!(
        events.last(),
        Some(&Event::Error(
            "the upstream stream ended before the reply was complete".into()
        ))
    );
}

#[test]
fn odd_shapes_do_not_panic() {
    for body in [
        "data: {not json \"content_filter\"\n\n",
        "data: {\"choices\":\"content_filter\"}\n\n",
        "data: {\"choices\":[{\"finish_reason\":\"content_filter\",\"content_filter_results\":[]}]}\n\n",
        "data: {\"choices\":[{\"finish_reason\":\"content_filter\",\"content_filter_results\":{\"x\":1}}]}\n\n",
        "data: {\"choices\":[],\"prompt_filter_results\":null}\n\n",
    ] {
        decode_every_split(&adapter(), body.as_bytes());
    }
}

#[test]
fn request_uses_deployment_url_api_key_and_no_model_in_body() {
    let mut image_turn = Turn::user("what is this?");
    image_turn.images.push(Image::Inline {
        mime: "image/png".into(),
        base64: "AAAA".into(),
    });
    let conversation = Conversation {
        tools: Vec::new(),
        system: Some("be brief".into()),
        turns: vec![Turn::user("hi"), Turn::assistant("hello"), image_turn],
    };
    let generation = Generation {
        model: "gpt-4o-mini-prod".into(),
        temperature: Some(0.5),
        max_tokens: Some(64),
        extra_headers: vec![("x-team".into(), "blue".into())],
        ..Default::default()
    };
    let request = adapter()
        .build_request(&conversation, &generation, Some("azure-key"))
        .expect("request");
    assert_eq!(
        request.url,
        "https://my-resource.openai.azure.com/openai/deployments/gpt-4o-mini-prod/chat/completions?api-version=2024-10-21"
    );
    assert_eq!(
        request.headers,
        vec![
            ("api-key".to_owned(), "azure-key".to_owned()),
            ("x-team".to_owned(), "blue".to_owned())
        ]
    );
    assert_eq!(
        request.body,
        json!({
            "stream": true,
            "stream_options": {"include_usage": true},
            "temperature": 0.5,
            "max_tokens": 64,
            "messages": [
                {"role": "system", "content": "be brief"},
                {"role": "user", "content": "hi"},
                {"role": "assistant", "content": "hello"},
                {"role": "user", "content": [
                    {"type": "text", "text": "what is this?"},
                    {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}
                ]}
            ]
        })
    );
}

#[test]
fn api_version_is_configurable_and_url_parts_are_escaped() {
    let conversation = Conversation {
        turns: vec![Turn::user("hi")],
        ..Default::default()
    };
    let generation = Generation {
        model: "my deploy/../x?y".into(),
        ..Default::default()
    };
    let request = AzureOpenAi::new("https://r.openai.azure.com")
        .with_api_version("2025-04-01-preview")
        .build_request(&conversation, &generation, None)
        .expect("request");
    assert_eq!(
        request.url,
        "https://r.openai.azure.com/openai/deployments/my%20deploy%2F..%2Fx%3Fy/chat/completions?api-version=2025-04-01-preview"
    );
    assert!(request.headers.is_empty());
    assert_eq!(DEFAULT_API_VERSION, "2024-10-21");
}

#[test]
fn missing_deployment_is_refused_clearly() {
    let conversation = Conversation {
        turns: vec![Turn::user("hi")],
        ..Default::default()
    };
    let generation = Generation {
        model: " ".into(),
        ..Default::default()
    };
    match adapter().build_request(&conversation, &generation, None) {
        Err(AdapterError::Unsupported(message)) => assert!(message.contains("deployment")),
        other => panic!("expected Unsupported, got {other:?}"),
    }
}

#[test]
fn prompt_filter_rejection_reads_clearly() {
    let body = r#"{"error":{"message":"The response was filtered due to the prompt triggering Azure OpenAI's content management policy. Please modify your prompt and retry.","type":null,"param":"prompt","code":"content_filter","status":400,"innererror":{"code":"ResponsibleAIPolicyViolation","content_filter_result":{"violence":{"filtered":true,"severity":"high"}}}}}"#;
    assert_eq!(
        adapter().error_message(400, body),
        "azure upstream refused the request (HTTP 400): The response was filtered due to the prompt triggering Azure OpenAI's content management policy. Please modify your prompt and retry."
    );
}

// ---- Tool calling (Azure shares OpenAI's body and decoder) --------------------------------

use deepchat_adapters::{ToolResult, ToolRound, ToolSpec, Usage};

#[test]
fn tool_call_fixture_with_filter_annotations_gives_both_calls() {
    let events = decode_every_split(&adapter(), &fixture(PROVIDER, "tool_call.sse"));
    assert_eq!(
        events,
        vec![
            Event::ToolCall(call(
                "call_Zp1kT8sWq3VbN6yLm0dHr2Xe",
                "echo",
                r#"{"message":"ping"}"#
            )),
            Event::ToolCall(call(
                "call_4GcRw7JmYx2QsK9vBn1TfL0a",
                "get-sum",
                r#"{"a":2,"b":3}"#
            )),
            Event::Finish(FinishReason::ToolUse),
            Event::Usage(Usage {
                input_tokens: Some(98),
                output_tokens: Some(46),
                reasoning_tokens: Some(0)
            }),
        ]
    );
}

#[test]
fn tool_stream_cut_mid_call_is_an_error_without_a_call() {
    let body = fixture(PROVIDER, "tool_call.sse");
    let text = String::from_utf8(body).expect("utf-8");
    let cut = text
        .find("\"finish_reason\":\"tool_calls\"")
        .expect("finish");
    let events = decode_every_split(&adapter(), &text.as_bytes()[..cut]);
    assert_eq!(
        events,
        vec![Event::Error(
            "the upstream stream ended before the reply was complete".into()
        )]
    );
}

#[test]
fn tools_and_a_round_in_progress_are_rendered() {
    let mut in_progress = Turn::assistant("");
    in_progress.tool_rounds = vec![ToolRound {
        text: "Checking.".into(),
        carried: Vec::new(),
        calls: vec![call("call_1", "echo", r#"{"message":"ping"}"#)],
        results: vec![ToolResult {
            call_id: "call_1".into(),
            name: "echo".into(),
            content: "ping".into(),
            is_error: false,
        }],
    }];
    let conversation = Conversation {
        system: None,
        turns: vec![Turn::user("echo ping"), in_progress],
        tools: vec![ToolSpec {
            name: "echo".into(),
            description: "Echoes".into(),
            parameters: json!({"type": "object"}),
        }],
    };
    let generation = Generation {
        model: "gpt-4o-mini-prod".into(),
        ..Default::default()
    };
    let request = adapter()
        .build_request(&conversation, &generation, None)
        .expect("request");
    assert_eq!(
        request.body,
        json!({
            "stream": true,
            "stream_options": {"include_usage": true},
            "tools": [{"type": "function", "function": {
                "name": "echo", "description": "Echoes", "parameters": {"type": "object"}
            }}],
            "messages": [
                {"role": "user", "content": "echo ping"},
                {"role": "assistant", "content": "Checking.", "tool_calls": [
                    {"id": "call_1", "type": "function", "function": {"name": "echo", "arguments": "{\"message\":\"ping\"}"}}
                ]},
                {"role": "tool", "tool_call_id": "call_1", "content": "ping"}
            ]
        })
    );
}
