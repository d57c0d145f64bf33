//! The requests waiting on one WebSocket behind its running reply, bounded by number
//! (`--max-streams-per-connection`) and by bytes (`--max-request-bytes` in all). A request past
//! either bound is refused in its turn; refusals in a row are kept as one count, so a flood of
//! messages during a long reply costs a counter, not memory.

use std::collections::VecDeque;

/// What waits next, in arrival order.
#[derive(Debug, PartialEq, Eq)]
pub enum Pending {
    Request(String),
    /// Arrived when the queue was full: answered with an error in its turn.
    Refused,
}

#[derive(Debug)]
enum Entry {
    Request(String),
    /// This many refusals in a row.
    Refused(u64),
}

/// The bounded queue of one socket.
#[derive(Debug)]
pub struct Queue {
    entries: VecDeque<Entry>,
    /// Requests queued (refusals not counted).
    requests: usize,
    /// Bytes of the queued requests.
    bytes: usize,
    /// Requests in flight or queued: the running reply counts as one.
    max_streams: usize,
    max_bytes: usize,
}

impl Queue {
    pub fn new(max_streams: usize, max_bytes: usize) -> Queue {
        Queue {
            entries: VecDeque::new(),
            requests: 0,
            bytes: 0,
            max_streams,
            max_bytes,
        }
    }

    /// Queues a request that arrived during a reply, or records its refusal.
    pub fn push(&mut self, text: String) {
        let full = self.requests + 1 >= self.max_streams
            || self.bytes.saturating_add(text.len()) > self.max_bytes;
        if !full {
            self.requests += 1;
            self.bytes += text.len();
            self.entries.push_back(Entry::Request(text));
            return;
        }
        match self.entries.back_mut() {
            Some(Entry::Refused(count)) => *count = count.saturating_add(1),
            _ => self.entries.push_back(Entry::Refused(1)),
        }
    }

    /// The oldest waiting request or refusal.
    pub fn pop(&mut self) -> Option<Pending> {
        match self.entries.pop_front()? {
            Entry::Request(text) => {
                self.requests -= 1;
                self.bytes -= text.len();
                Some(Pending::Request(text))
            }
            Entry::Refused(count) => {
                if count > 1 {
                    self.entries.push_front(Entry::Refused(count - 1));
                }
                Some(Pending::Refused)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_order_and_refuses_past_the_stream_limit() {
        let mut queue = Queue::new(3, 1000);
        for text in ["a", "b", "c", "d"] {
            queue.push(text.into());
        }
        assert_eq!(queue.pop(), Some(Pending::Request("a".into())));
        assert_eq!(queue.pop(), Some(Pending::Request("b".into())));
        assert_eq!(queue.pop(), Some(Pending::Refused));
        assert_eq!(queue.pop(), Some(Pending::Refused));
        assert_eq!(queue.pop(), None);
    }

    #[test]
    fn refuses_past_the_byte_limit() {
        let mut queue = Queue::new(100, 10);
        queue.push("x".repeat(6));
        queue.push("y".repeat(6));
        queue.push("z".repeat(4));
        assert_eq!(queue.pop(), Some(Pending::Request("x".repeat(6))));
        assert_eq!(queue.pop(), Some(Pending::Refused));
        assert_eq!(queue.pop(), Some(Pending::Request("z".repeat(4))));
        queue.push("w".repeat(10));
        assert_eq!(queue.pop(), Some(Pending::Request("w".repeat(10))));
    }

    #[test]
    fn a_flood_of_refusals_costs_one_entry() {
        let mut queue = Queue::new(2, 1000);
        queue.push("kept".into());
        for _ in 0..100_000 {
            queue.push("flood".into());
        }
        assert_eq!(queue.entries.len(), 2);
        assert_eq!(queue.pop(), Some(Pending::Request("kept".into())));
        let mut refused = 0;
        while queue.pop() == Some(Pending::Refused) {
            refused += 1;
        }
        assert_eq!(refused, 100_000);
    }
}
