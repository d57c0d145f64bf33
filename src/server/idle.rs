//! Requests in flight on one client HTTP connection, so a connection with none (an idle
//! keep-alive socket, an HTTP/2 connection opened and left silent) is closed after
//! `--http-idle-timeout` instead of holding a connection slot forever. A request counts until
//! its response body ends, so a long SSE reply keeps its connection busy.

use crate::response::Body;
use http_body_util::BodyExt;
use hyper::Response;
use std::time::Duration;
use tokio::sync::watch;

/// The in-flight count of one connection.
pub struct Activity {
    in_flight: watch::Sender<usize>,
}

/// One request's share of the count; released when dropped.
pub struct Busy {
    in_flight: watch::Sender<usize>,
}

impl Default for Activity {
    fn default() -> Self {
        Activity {
            in_flight: watch::Sender::new(0),
        }
    }
}

impl Activity {
    /// Marks a request in flight until the returned guard drops.
    pub fn busy(&self) -> Busy {
        self.in_flight.send_modify(|n| *n += 1);
        Busy {
            in_flight: self.in_flight.clone(),
        }
    }

    /// Resolves once no request has been in flight for `idle`.
    pub async fn idle_for(&self, idle: Duration) {
        let mut count = self.in_flight.subscribe();
        loop {
            if count.wait_for(|n| *n == 0).await.is_err() {
                return;
            }
            match tokio::time::timeout(idle, count.wait_for(|n| *n > 0)).await {
                Err(_) => return,
                Ok(Err(_)) => return,
                Ok(Ok(_)) => continue,
            }
        }
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        self.in_flight.send_modify(|n| *n = n.saturating_sub(1));
    }
}

/// Keeps `busy` alive as long as the response body is being sent.
pub fn hold_until_sent(response: Response<Body>, busy: Busy) -> Response<Body> {
    response.map(|inner| HeldBody { inner, _busy: busy }.boxed())
}

/// A response body that holds its request's [`Busy`] until it is dropped; sizes pass through,
/// so a whole answer keeps its `content-length`.
struct HeldBody {
    inner: Body,
    _busy: Busy,
}

impl hyper::body::Body for HeldBody {
    type Data = bytes::Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<hyper::body::Frame<Self::Data>, Self::Error>>> {
        std::pin::Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn idle_only_after_the_last_request_ends() {
        let activity = Activity::default();
        let busy = activity.busy();
        let idle = activity.idle_for(Duration::from_secs(5));
        tokio::pin!(idle);
        let early = tokio::time::timeout(Duration::from_secs(60), &mut idle).await;
        assert!(early.is_err(), "never idle while a request is in flight");
        drop(busy);
        let started = tokio::time::Instant::now();
        idle.await;
        assert_eq!(started.elapsed(), Duration::from_secs(5));
    }
}
