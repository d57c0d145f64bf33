//! OpenTelemetry traces over OTLP/HTTP (protobuf), only when `--otlp-endpoint` is set: each
//! reply is a span with the GenAI semantic-convention attributes, each upstream attempt a
//! child span, a W3C `traceparent` on an HTTP request becomes the reply's parent, and the
//! reply's context travels upstream in `traceparent`. Without the flag no exporter, layer or
//! propagator exists, so nothing is added to requests.

use hyper::header::HeaderMap;
use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator};
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::WithExportConfig;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::SdkTracerProvider;
use opentelemetry_sdk::Resource;
use std::sync::OnceLock;
use std::time::Duration;
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// Longest an export may take; a collector that hangs must not hold spans forever.
const EXPORT_TIMEOUT: Duration = Duration::from_secs(10);

/// The propagator, set only when tracing is on.
static PROPAGATOR: OnceLock<TraceContextPropagator> = OnceLock::new();

/// The running exporter: flushed and stopped at exit.
pub struct Traces {
    provider: SdkTracerProvider,
}

impl Traces {
    /// Sends what is still buffered (within the export timeout) and stops.
    pub fn shutdown(self) {
        if let Err(err) = self.provider.shutdown_with_timeout(EXPORT_TIMEOUT) {
            eprintln!("warning: traces not all exported at exit: {err}");
        }
    }
}

/// The full traces URL for `endpoint`: an OTLP/HTTP base (`http://collector:4318`, as
/// `OTEL_EXPORTER_OTLP_ENDPOINT` takes) gets `/v1/traces`; a URL already ending in it is kept.
pub fn traces_url(endpoint: &str) -> String {
    let trimmed = endpoint.trim_end_matches('/');
    if trimmed.ends_with("/v1/traces") {
        trimmed.to_owned()
    } else {
        format!("{trimmed}/v1/traces")
    }
}

/// Starts the exporter for `endpoint` and returns the tracing layer that feeds it.
pub fn start<S>(
    endpoint: &str,
) -> Result<
    (
        tracing_opentelemetry::OpenTelemetryLayer<S, opentelemetry_sdk::trace::Tracer>,
        Traces,
    ),
    String,
>
where
    S: tracing::Subscriber + for<'span> tracing_subscriber::registry::LookupSpan<'span>,
{
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_endpoint(traces_url(endpoint))
        .with_timeout(EXPORT_TIMEOUT)
        .build()
        .map_err(|err| format!("--otlp-endpoint {endpoint}: {err}"))?;
    let provider = SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(
            Resource::builder()
                .with_service_name("deepchat-proxy")
                .build(),
        )
        .build();
    let tracer = provider.tracer("deepchat-proxy");
    let _ = PROPAGATOR.set(TraceContextPropagator::new());
    Ok((
        tracing_opentelemetry::layer().with_tracer(tracer),
        Traces { provider },
    ))
}

/// The caller's trace context from a W3C `traceparent` (and `tracestate`) header, when
/// tracing is on and the header is valid.
pub fn parent_from(headers: &HeaderMap) -> Option<opentelemetry::Context> {
    let propagator = PROPAGATOR.get()?;
    headers.get("traceparent")?;
    Some(propagator.extract(&HeaderExtractor(headers)))
}

/// Makes `parent` the parent of `span`.
pub fn adopt(span: &tracing::Span, parent: &opentelemetry::Context) {
    let _ = span.set_parent(parent.clone());
}

/// The current span's context as `traceparent` (and `tracestate`) headers for the upstream
/// request; none when tracing is off.
pub fn upstream_headers() -> Vec<(String, String)> {
    let Some(propagator) = PROPAGATOR.get() else {
        return Vec::new();
    };
    let mut headers = HeaderList(Vec::new());
    propagator.inject_context(&tracing::Span::current().context(), &mut headers);
    headers.0
}

struct HeaderExtractor<'a>(&'a HeaderMap);

impl Extractor for HeaderExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|value| value.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(|name| name.as_str()).collect()
    }
}

struct HeaderList(Vec<(String, String)>);

impl Injector for HeaderList {
    fn set(&mut self, key: &str, value: String) {
        self.0.push((key.to_owned(), value));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_traces_path_is_added_once() {
        assert_eq!(
            traces_url("http://collector:4318"),
            "http://collector:4318/v1/traces"
        );
        assert_eq!(
            traces_url("http://collector:4318/"),
            "http://collector:4318/v1/traces"
        );
        assert_eq!(
            traces_url("https://otel.example/v1/traces"),
            "https://otel.example/v1/traces"
        );
    }

    #[test]
    fn without_tracing_nothing_is_propagated() {
        // No exporter was started in this test binary.
        assert!(upstream_headers().is_empty());
        let mut headers = HeaderMap::new();
        headers.insert(
            "traceparent",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
                .parse()
                .expect("header"),
        );
        assert!(parent_from(&headers).is_none());
    }
}
