//! A future wrapper that polls its inner future only after the inner future's own waker fired.
//!
//! `tokio::select!` polls every branch each time it is polled. The relay selects over "the
//! client left" once per upstream token, and that branch polls the WebSocket's read half, which
//! attempts a socket read every time. Wrapped in [`OnWake`], the read half is polled only when
//! the socket (or its lock) actually signalled something. The reply's interruption (its
//! timeout, a forced stop) is wrapped the same way, so its timer is not polled per token.

use futures_util::task::AtomicWaker;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};

/// See the module docs.
pub struct OnWake<F> {
    inner: Pin<Box<F>>,
    signal: Arc<Signal>,
}

struct Signal {
    /// The inner future asked to be polled again.
    woken: AtomicBool,
    /// Whoever polls the wrapper, to be woken in turn.
    outer: AtomicWaker,
}

impl Wake for Signal {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.woken.store(true, Ordering::Release);
        self.outer.wake();
    }
}

impl<F: Future> OnWake<F> {
    pub fn new(inner: F) -> Self {
        OnWake {
            inner: Box::pin(inner),
            // The first poll must reach the inner future so it can register its interest.
            signal: Arc::new(Signal {
                woken: AtomicBool::new(true),
                outer: AtomicWaker::new(),
            }),
        }
    }
}

impl<F: Future> Future for OnWake<F> {
    type Output = F::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        self.signal.outer.register(cx.waker());
        if !self.signal.woken.swap(false, Ordering::AcqRel) {
            return Poll::Pending;
        }
        let waker = Waker::from(self.signal.clone());
        self.inner.as_mut().poll(&mut Context::from_waker(&waker))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    /// Counts its polls; ready once `ready` is set, waking through the stored waker.
    struct Probe {
        polls: Arc<AtomicUsize>,
        ready: Arc<AtomicBool>,
    }

    impl Future for Probe {
        type Output = ();
        fn poll(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<()> {
            self.polls.fetch_add(1, Ordering::SeqCst);
            if self.ready.load(Ordering::SeqCst) {
                Poll::Ready(())
            } else {
                Poll::Pending
            }
        }
    }

    #[tokio::test]
    async fn polls_inner_only_after_its_waker_fires() {
        let polls = Arc::new(AtomicUsize::new(0));
        let ready = Arc::new(AtomicBool::new(false));
        let mut wrapped = OnWake::new(Probe {
            polls: polls.clone(),
            ready: ready.clone(),
        });
        let noop = Waker::noop();
        let mut cx = Context::from_waker(noop);
        for _ in 0..5 {
            assert!(Pin::new(&mut wrapped).poll(&mut cx).is_pending());
        }
        assert_eq!(
            polls.load(Ordering::SeqCst),
            1,
            "only the first poll reaches the inner"
        );
        ready.store(true, Ordering::SeqCst);
        Waker::from(wrapped.signal.clone()).wake();
        assert!(Pin::new(&mut wrapped).poll(&mut cx).is_ready());
        assert_eq!(polls.load(Ordering::SeqCst), 2);
    }
}
