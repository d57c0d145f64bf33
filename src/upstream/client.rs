//! The upstream HTTP client: connection pooling, deadlines, bounded HTTP/2 windows, and no
//! redirects (an LLM API never needs one, and following one would carry the key elsewhere).

use crate::upstream::settings::UpstreamPolicy;
use std::time::Duration;

/// Builds one upstream client: connection pooling, and HTTP/2 where the
/// upstream offers it.
pub fn client(policy: &UpstreamPolicy) -> reqwest::Client {
    let builder = reqwest::Client::builder()
        .connect_timeout(policy.connect_timeout)
        .tcp_nodelay(true)
        .pool_idle_timeout(Duration::from_secs(90))
        // After a burst, thousands of idle upstream sockets would pin descriptors and buffers
        // for the whole idle timeout; keep enough for steady reuse.
        .pool_max_idle_per_host(256)
        // HTTP/2 multiplexes many replies over one connection. A browser that stops reading
        // stops its reply's reads, and what the upstream sent meanwhile waits in the proxy
        // within the stream's window, also charged to the shared connection window: with
        // hyper's defaults (2 MiB per stream, 5 MiB per connection) a few stalled replies
        // would freeze every other reply on the connection. Small stream windows bound each
        // stalled reply; the connection window leaves room for all of them.
        .http2_initial_stream_window_size(H2_STREAM_WINDOW)
        .http2_initial_connection_window_size(H2_CONNECTION_WINDOW)
        // An LLM API never redirects; following one would carry the key and the
        // conversation to another host (see `redirect_failure`).
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("deepchat-proxy/", env!("CARGO_PKG_VERSION")));
    let builder = if policy.http2_only {
        builder.http2_prior_knowledge()
    } else {
        builder
    };
    builder.build().unwrap_or_else(|_| reqwest::Client::new())
}

/// Bytes an HTTP/2 upstream may send ahead of one reply's reader: hundreds of tokens.
const H2_STREAM_WINDOW: u32 = 128 * 1024;
/// Room for 8,192 stalled replies at [`H2_STREAM_WINDOW`] each (1 GiB, the protocol allows 2).
const H2_CONNECTION_WINDOW: u32 = 1 << 30;
