//! OpenTelemetry traces: the real binary with `--otlp-endpoint` exports OTLP/HTTP protobuf to
//! a receiver started here; the reply span carries the GenAI attributes, continues the
//! caller's `traceparent`, has the upstream attempt as its child, and the upstream request
//! carries the trace on.

mod support;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value as AnyValue;
use opentelemetry_proto::tonic::trace::v1::Span;
use prost::Message;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use support::binary::*;
use support::*;

/// A minimal OTLP/HTTP collector: keeps every span posted to `/v1/traces`.
struct Collector {
    address: std::net::SocketAddr,
    spans: Arc<Mutex<Vec<Span>>>,
}

impl Collector {
    async fn start() -> Collector {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let address = listener.local_addr().expect("address");
        let spans = Arc::new(Mutex::new(Vec::new()));
        let kept = spans.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let kept = kept.clone();
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(
                        move |request: hyper::Request<hyper::body::Incoming>| {
                            let kept = kept.clone();
                            async move {
                                let path = request.uri().path().to_owned();
                                let body = request.into_body().collect().await?.to_bytes();
                                if path == "/v1/traces" {
                                    if let Ok(export) = ExportTraceServiceRequest::decode(body) {
                                        let mut kept = kept.lock().expect("lock");
                                        for resource in export.resource_spans {
                                            for scope in resource.scope_spans {
                                                kept.extend(scope.spans);
                                            }
                                        }
                                    }
                                }
                                Ok::<_, hyper::Error>(hyper::Response::new(Full::new(Bytes::new())))
                            }
                        },
                    );
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Collector { address, spans }
    }

    /// Waits until a span named `name` arrives.
    async fn span(&self, name: &str) -> Span {
        let deadline = std::time::Instant::now() + PATIENCE;
        loop {
            let found = self
                .spans
                .lock()
                .expect("lock")
                .iter()
                .find(|s| s.name == name)
                .cloned();
            if let Some(span) = found {
                return span;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "no span {name:?}; got {:?}",
                self.spans
                    .lock()
                    .expect("lock")
                    .iter()
                    .map(|s| s.name.clone())
                    .collect::<Vec<_>>()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

fn attribute(span: &Span, key: &str) -> Option<AnyValue> {
    span.attributes
        .iter()
        .find(|kv| kv.key == key)
        .and_then(|kv| kv.value.clone())
        .and_then(|v| v.value)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reply_is_a_genai_span_in_the_callers_trace_and_the_trace_goes_upstream() {
    let collector = Collector::start().await;
    let upstream = MockUpstream::start().await;
    let base = format!("http://{}/v1", upstream.addr);
    let endpoint = format!("http://{}", collector.address);
    let (mut child, address, _lines) = spawn_openai(
        &base,
        "gpt-test",
        &["--otlp-endpoint", &endpoint],
        // Export within a fraction of a second instead of the default 5 s batch delay.
        &[("OTEL_BSP_SCHEDULE_DELAY", "100")],
    );
    upstream.push(Reply::sse(vec![
        Step::Bytes(openai_chunk("traced")),
        Step::Bytes(
            br#"data: {"choices":[],"usage":{"prompt_tokens":11,"completion_tokens":3,"total_tokens":14}}

"#
            .to_vec(),
        ),
        Step::Bytes(b"data: [DONE]\n\n".to_vec()),
    ]));
    let trace_id = "4bf92f3577b34da6a3ce929d0e0e4736";
    let response = reqwest::Client::new()
        .post(format!("http://{address}/chat"))
        .header("content-type", "application/json")
        .header("traceparent", format!("00-{trace_id}-00f067aa0ba902b7-01"))
        .body(r#"{"messages": [{"role": "user", "text": "trace me"}]}"#)
        .send()
        .await
        .expect("response");
    assert_eq!(response.status(), 200);
    assert!(response.text().await.expect("body").contains("traced"));

    let reply = collector.span("chat gpt-test").await;
    let attempt = collector.span("upstream attempt").await;
    let _ = child.kill();
    let _ = child.wait();

    assert_eq!(
        hex(&reply.trace_id),
        trace_id,
        "the caller's trace continues"
    );
    assert_eq!(hex(&reply.parent_span_id), "00f067aa0ba902b7");
    assert_eq!(
        attribute(&reply, "gen_ai.system"),
        Some(AnyValue::StringValue("openai".into()))
    );
    assert_eq!(
        attribute(&reply, "gen_ai.request.model"),
        Some(AnyValue::StringValue("gpt-test".into()))
    );
    assert_eq!(
        attribute(&reply, "gen_ai.usage.input_tokens"),
        Some(AnyValue::IntValue(11))
    );
    assert_eq!(
        attribute(&reply, "gen_ai.usage.output_tokens"),
        Some(AnyValue::IntValue(3))
    );
    assert_eq!(
        attribute(&reply, "gen_ai.response.finish_reasons"),
        Some(AnyValue::StringValue("stop".into()))
    );
    assert_eq!(attempt.trace_id, reply.trace_id);
    assert_eq!(
        attempt.parent_span_id, reply.span_id,
        "attempt is the reply's child"
    );
    assert_eq!(
        attribute(&attempt, "http.response.status_code"),
        Some(AnyValue::IntValue(200))
    );

    let sent = upstream.received()[0]
        .header("traceparent")
        .expect("traceparent upstream")
        .to_owned();
    assert_eq!(
        sent,
        format!("00-{trace_id}-{}-01", hex(&attempt.span_id)),
        "the upstream request continues the trace from the attempt"
    );
}

#[tokio::test]
async fn without_the_flag_nothing_is_propagated_upstream() {
    let upstream = MockUpstream::start().await;
    let proxy = Proxy::openai(&upstream, &[], &[]).await;
    upstream.push(Reply::openai_text(&["plain"]));
    let response = reqwest::Client::new()
        .post(format!("http://{}/chat", proxy.addr))
        .header("content-type", "application/json")
        .header(
            "traceparent",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        )
        .body(r#"{"messages": [{"role": "user", "text": "hi"}]}"#)
        .send()
        .await
        .expect("response");
    assert_eq!(response.status(), 200);
    assert_eq!(upstream.received()[0].header("traceparent"), None);
}
