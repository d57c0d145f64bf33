//! `deepchat_proxy_chunk_gap_seconds`: the time between one reply's consecutive text chunks,
//! as the upstream delivers them to the relay (what a reader feels as stutter). Counted per
//! reply in local buckets and handed to the histogram once, when the reply's stream is dropped,
//! so a token costs one clock read and a bucket increment, not a metrics update.

use crate::ops::telemetry::BUCKETS;
use deepchat_adapters::{Event, EventStream};
use futures_util::{Stream, StreamExt};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

/// `events` with its text gaps counted for `transport`.
pub fn counted(events: EventStream, transport: &'static str) -> EventStream {
    Gaps {
        events,
        transport,
        last_text: None,
        counts: [0; BUCKETS.len() + 1],
    }
    .boxed()
}

struct Gaps {
    events: EventStream,
    transport: &'static str,
    last_text: Option<Instant>,
    /// Gaps per bucket of [`BUCKETS`]; the last slot is beyond the largest bound.
    counts: [u64; BUCKETS.len() + 1],
}

impl Stream for Gaps {
    type Item = Event;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Event>> {
        let polled = self.events.poll_next_unpin(cx);
        if let Poll::Ready(Some(Event::TextDelta(_))) = &polled {
            let now = Instant::now();
            if let Some(last) = self.last_text.replace(now) {
                let gap = now.duration_since(last).as_secs_f64();
                let bucket = BUCKETS.partition_point(|bound| *bound < gap);
                self.counts[bucket] += 1;
            }
        }
        polled
    }
}

impl Drop for Gaps {
    fn drop(&mut self) {
        let histogram =
            metrics::histogram!("deepchat_proxy_chunk_gap_seconds", "transport" => self.transport);
        for (bucket, count) in self.counts.iter().enumerate() {
            if *count > 0 {
                // A gap is recorded as its bucket's bound (beyond the largest: twice it), so
                // the buckets are exact and the sum an upper estimate.
                let value = BUCKETS
                    .get(bucket)
                    .copied()
                    .unwrap_or(BUCKETS[BUCKETS.len() - 1] * 2.0);
                histogram.record_many(value, *count as usize);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn gaps_between_texts_only_are_counted_into_their_buckets() {
        let events = futures_util::stream::iter(vec![
            Event::TextDelta("a".into()),
            Event::Usage(Default::default()),
            Event::TextDelta("b".into()),
            Event::TextDelta("c".into()),
        ])
        .boxed();
        let mut gaps = Gaps {
            events,
            transport: "test",
            last_text: None,
            counts: [0; BUCKETS.len() + 1],
        };
        while gaps.next().await.is_some() {}
        // Three texts, two gaps, both far below the first bound.
        assert_eq!(gaps.counts.iter().sum::<u64>(), 2);
        assert_eq!(gaps.counts[0], 2);
    }
}
