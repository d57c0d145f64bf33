//! Property test through the real in-process proxy: for arbitrary reply texts, split into
//! arbitrary deltas and delivered by the upstream in arbitrary byte chunks (with arbitrary
//! pauses), the browser's reassembled text equals the upstream's exactly — every character
//! once, in order — with no error and exactly one stop key, last.

mod support;

use proptest::prelude::*;
use proptest::sample::Index;
use proptest::test_runner::{Config, TestRunner};
use serde_json::Value;
use std::time::Duration;
use support::*;

const STOP: &str = "stop-key";

/// Pieces that stress the relay: multi-byte UTF-8 (often cut mid-sequence), JSON and SSE
/// syntax, line ends, control characters, and the stop key itself inside the text.
const TRICKY: &[&str] = &[
    "é",
    "日本",
    "👋",
    "🇫🇷",
    "\"",
    "\\",
    "\n",
    "\r\n",
    "\n\n",
    "\u{0}",
    "\u{1f}",
    "\u{2028}",
    "\u{feff}",
    "data: [DONE]\n\n",
    "stop-key",
    "stop-",
    "key",
    "{\"text\":\"x\"}",
];

/// One upstream delta: a few arbitrary chars (any plane, controls included) or tricky strings.
/// A delta that is exactly the stop key is likely, so the relay's split is exercised.
fn delta() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        3 => any::<char>().prop_map(String::from),
        2 => prop::sample::select(TRICKY).prop_map(str::to_owned),
        1 => "[a-z ]{1,6}",
    ];
    prop_oneof![
        9 => prop::collection::vec(piece, 0..5).prop_map(|pieces| pieces.concat()),
        1 => Just(STOP.to_owned()),
    ]
}

#[derive(Debug, Clone)]
struct Case {
    deltas: Vec<String>,
    /// Where the upstream cuts its body into chunks (resolved against the body's length).
    cuts: Vec<Index>,
    /// After which chunks the upstream pauses 1 ms, letting the proxy drain its queue.
    pauses: Vec<bool>,
}

fn case() -> impl Strategy<Value = Case> {
    (
        prop::collection::vec(delta(), 1..24),
        prop::collection::vec(any::<Index>(), 0..32),
        prop::collection::vec(prop::bool::weighted(0.2), 33),
    )
        .prop_map(|(deltas, cuts, pauses)| Case {
            deltas,
            cuts,
            pauses,
        })
}

/// The OpenAI SSE body for `deltas`, cut into scripted steps.
fn steps(case: &Case) -> Vec<Step> {
    let mut body: Vec<u8> = case.deltas.iter().flat_map(|d| openai_chunk(d)).collect();
    body.extend_from_slice(b"data: [DONE]\n\n");
    let mut at: Vec<usize> = case.cuts.iter().map(|i| i.index(body.len() + 1)).collect();
    at.sort_unstable();
    at.dedup();
    at.push(body.len());
    let mut steps = Vec::new();
    let mut from = 0;
    for (n, to) in at.into_iter().enumerate() {
        if to > from {
            steps.push(Step::Bytes(body[from..to].to_vec()));
        }
        if case.pauses.get(n).copied().unwrap_or(false) {
            steps.push(Step::Wait(Duration::from_millis(1)));
        }
        from = to;
    }
    steps
}

fn check(frames: &[Value], expected: &str) -> Result<(), TestCaseError> {
    for frame in frames {
        let keys: Vec<&String> = frame
            .as_object()
            .map(|o| o.keys().collect())
            .unwrap_or_default();
        prop_assert_eq!(keys, vec!["text"], "only text frames: {:?}", frame);
    }
    let stops: Vec<usize> = frames
        .iter()
        .enumerate()
        .filter(|(_, f)| f["text"].as_str() == Some(STOP))
        .map(|(i, _)| i)
        .collect();
    prop_assert_eq!(stops, vec![frames.len() - 1], "exactly one stop key, last");
    prop_assert!(
        frames[..frames.len() - 1]
            .iter()
            .all(|f| f["text"].as_str().is_some_and(|t| !t.is_empty())),
        "no empty text frames: {:?}",
        frames
    );
    prop_assert_eq!(reply_text(frames), expected);
    Ok(())
}

#[test]
fn browser_text_equals_upstream_text_for_any_chunking() {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let (upstream, proxy) = runtime.block_on(async {
        let upstream = MockUpstream::start().await;
        let proxy = Proxy::openai(&upstream, &[], &[]).await;
        (upstream, proxy)
    });
    let url = proxy.ws_url();
    let mut runner = TestRunner::new(Config {
        cases: std::env::var("PROPTEST_CASES")
            .ok()
            .and_then(|n| n.parse().ok())
            .unwrap_or(24),
        // Each case is a real round trip; shrinking a failure should still end in seconds.
        max_shrink_iters: 200,
        failure_persistence: None,
        ..Config::default()
    });
    let result = runner.run(&case(), |case| {
        let expected: String = case.deltas.concat();
        let requests_before = upstream.received().len();
        upstream.push(Reply::sse(steps(&case)));
        let frames = runtime.block_on(async {
            // A fresh socket per case: a failing case cannot desynchronize the next one.
            let mut ws = connect(&url).await;
            send_user(&mut ws, "go").await;
            read_reply(&mut ws, STOP).await
        });
        check(&frames, &expected)?;
        prop_assert_eq!(
            upstream.received().len(),
            requests_before + 1,
            "one upstream request per message"
        );
        Ok(())
    });
    drop(proxy);
    if let Err(err) = result {
        panic!("{err}");
    }
}
