//! Open-loop arrivals, as vegeta sends them: arrival `i` is due at `start + i / rate`, and it
//! starts then whether or not earlier ones have finished, so a slow server sees requests pile
//! up instead of the generator slowing down with it (no coordinated omission). Latencies are
//! measured from each arrival's due time, so time spent queueing counts.
//!
//! The schedule is kept by a plain thread sleeping to each due time (the kernel's timers are
//! good to tens of microseconds; tokio's tick is a millisecond, which at 5,000 arrivals/s would
//! bunch five together); it hands arrivals to the runtime, which spawns one task each. How late
//! each task actually started is measured too and reported as the generator's own lateness.

use std::future::Future;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

/// One arrival: its index and when it was due.
#[derive(Debug, Clone, Copy)]
pub struct Arrival {
    pub index: usize,
    pub due: Instant,
}

/// What one arrival's task returned, and how long after its due time it began.
pub struct Done<T> {
    pub value: Option<T>,
    pub late: Duration,
}

/// Runs `count` arrivals at `rate` per second, each as its own task running `work(arrival)`;
/// waits for all of them (each `work` must bound itself) and returns them in arrival order.
/// A task that panicked or was cancelled comes back with `value: None`.
pub async fn run<T, F, Fut>(rate: u32, count: usize, work: F) -> Vec<Done<T>>
where
    T: Send + 'static,
    F: Fn(Arrival) -> Fut,
    Fut: Future<Output = T> + Send + 'static,
{
    let period = Duration::from_secs_f64(1.0 / f64::from(rate.max(1)));
    let start = Instant::now() + Duration::from_millis(100);
    let (sender, mut receiver) = mpsc::unbounded_channel::<Arrival>();
    let ticker = std::thread::spawn(move || {
        for index in 0..count {
            let due = start + period.mul_f64(index as f64);
            let now = Instant::now();
            if due > now {
                std::thread::sleep(due - now);
            }
            if sender.send(Arrival { index, due }).is_err() {
                return;
            }
        }
    });
    let mut tasks = Vec::with_capacity(count);
    while let Some(arrival) = receiver.recv().await {
        let job = work(arrival);
        tasks.push(tokio::spawn(async move {
            let late = arrival.due.elapsed();
            (job.await, late)
        }));
    }
    let _ = ticker.join();
    let mut done = Vec::with_capacity(tasks.len());
    for task in tasks {
        done.push(match task.await {
            Ok((value, late)) => Done {
                value: Some(value),
                late,
            },
            Err(_) => Done {
                value: None,
                late: Duration::ZERO,
            },
        });
    }
    done
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn arrivals_keep_their_schedule_while_earlier_ones_are_still_running() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        use std::sync::Arc;
        // Each takes 200 ms and they are due every 10 ms: open loop, many run at once; a
        // generator that waited for each answer would never have two in flight.
        let in_flight = Arc::new(AtomicUsize::new(0));
        let most = Arc::new(AtomicUsize::new(0));
        let done = run(100, 20, |arrival| {
            let (in_flight, most) = (in_flight.clone(), most.clone());
            async move {
                let now = in_flight.fetch_add(1, Ordering::SeqCst) + 1;
                most.fetch_max(now, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(200)).await;
                in_flight.fetch_sub(1, Ordering::SeqCst);
                arrival.index
            }
        })
        .await;
        let order: Vec<usize> = done.iter().filter_map(|d| d.value).collect();
        assert_eq!(order, (0..20).collect::<Vec<_>>());
        assert!(most.load(Ordering::SeqCst) >= 5, "{most:?} at once");
    }
}
