//! The wire contract between the mock upstream and the clients: what a stream is asked for
//! (carried in the user message, so the proxy forwards it untouched), how each token stamps its
//! send time, and the checker that proves a reply complete, in order and exactly once.

use std::fmt::Write as _;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

/// The frame text that ends a reply (the proxy's default `--stop-key`).
pub const STOP_KEY: &str = "stop-key";

/// What one stream asks the mock upstream for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Spec {
    /// Unique per stream within a run: every token carries it, so crossed wires are caught.
    pub id: u64,
    /// Content tokens in the reply.
    pub tokens: u32,
    /// Pause between two tokens; 0 = as fast as the connection takes them.
    pub interval_us: u64,
}

impl Spec {
    /// The user message that carries the spec.
    pub fn prompt(&self) -> String {
        format!(
            "bench id={} n={} interval_us={}",
            self.id, self.tokens, self.interval_us
        )
    }

    /// Reads a spec back from a user message.
    pub fn parse(text: &str) -> Option<Spec> {
        let (mut id, mut tokens, mut interval_us) = (None, None, None);
        for part in text.split_whitespace() {
            if let Some(v) = part.strip_prefix("id=") {
                id = v.parse().ok();
            } else if let Some(v) = part.strip_prefix("n=") {
                tokens = v.parse().ok();
            } else if let Some(v) = part.strip_prefix("interval_us=") {
                interval_us = v.parse().ok();
            }
        }
        Some(Spec {
            id: id?,
            tokens: tokens?,
            interval_us: interval_us?,
        })
    }
}

/// Nanoseconds since the Unix epoch. Both ends run on one host, so stamps taken in one process
/// and compared in another share a clock.
pub fn unix_nanos() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// Appends one token: `{id}:{seq}:{stamp};`.
pub fn push_token(out: &mut String, id: u64, seq: u32, stamp_ns: u64) {
    let _ = write!(out, "{id}:{seq}:{stamp_ns};");
}

fn parse_token(token: &str) -> Option<(u64, u32, u64)> {
    let mut parts = token.splitn(3, ':');
    let id = parts.next()?.parse().ok()?;
    let seq = parts.next()?.parse().ok()?;
    let stamp = parts.next()?.parse().ok()?;
    Some((id, seq, stamp))
}

/// Follows one reply's text as it arrives, in pieces of any size (the proxy merges tokens
/// when the client is behind), and records each token's delay from its stamp.
#[derive(Debug)]
pub struct Checker {
    spec: Spec,
    next: u32,
    /// The start of a token whose `;` has not arrived yet.
    pending: String,
    failure: Option<String>,
    /// Receipt time minus stamp, per token, in nanoseconds.
    pub delays_ns: Vec<i64>,
    /// When the first complete token arrived.
    pub first_token_at: Option<Instant>,
}

impl Checker {
    pub fn new(spec: Spec) -> Checker {
        Checker {
            spec,
            next: 0,
            pending: String::new(),
            failure: None,
            delays_ns: Vec::with_capacity(usize::try_from(spec.tokens).unwrap_or(0)),
            first_token_at: None,
        }
    }

    /// Feeds a piece of reply text received at `received_ns` (Unix) / `received_at`.
    pub fn feed(&mut self, text: &str, received_ns: u64, received_at: Instant) {
        if self.failure.is_some() {
            return;
        }
        let owned;
        let text = if self.pending.is_empty() {
            text
        } else {
            owned = std::mem::take(&mut self.pending) + text;
            owned.as_str()
        };
        let mut rest = text;
        while let Some(end) = rest.find(';') {
            let token = &rest[..end];
            rest = &rest[end + 1..];
            match parse_token(token) {
                Some((id, seq, stamp)) if id == self.spec.id && seq == self.next => {
                    if seq >= self.spec.tokens {
                        self.failure =
                            Some(format!("token {seq} beyond the {} sent", self.spec.tokens));
                        return;
                    }
                    self.next += 1;
                    let stamp = i64::try_from(stamp).unwrap_or(i64::MAX);
                    let received = i64::try_from(received_ns).unwrap_or(i64::MAX);
                    self.delays_ns.push(received.saturating_sub(stamp));
                    self.first_token_at.get_or_insert(received_at);
                }
                Some((id, seq, _)) => {
                    self.failure = Some(format!(
                        "expected token {}:{}, got {id}:{seq}",
                        self.spec.id, self.next
                    ));
                    return;
                }
                None => {
                    self.failure = Some(format!("unreadable token {token:?}"));
                    return;
                }
            }
        }
        self.pending.push_str(rest);
    }

    /// Ok when every token arrived exactly once, in order, and nothing else did.
    pub fn verdict(&self) -> Result<(), String> {
        if let Some(failure) = &self.failure {
            return Err(failure.clone());
        }
        if !self.pending.is_empty() {
            return Err(format!("reply ends in a partial token {:?}", self.pending));
        }
        if self.next != self.spec.tokens {
            return Err(format!("got {} of {} tokens", self.next, self.spec.tokens));
        }
        Ok(())
    }

    pub fn tokens(&self) -> u32 {
        self.next
    }

    /// True once a wrong, foreign or unreadable token was seen: more text cannot mend it.
    pub fn has_failed(&self) -> bool {
        self.failure.is_some()
    }

    /// True once the text fed so far is exactly the whole reply: every token once, in order,
    /// nothing partial after it.
    pub fn is_complete(&self) -> bool {
        self.failure.is_none() && self.pending.is_empty() && self.next == self.spec.tokens
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> Spec {
        Spec {
            id: 7,
            tokens: 3,
            interval_us: 20_000,
        }
    }

    fn text(tokens: &[(u64, u32, u64)]) -> String {
        let mut out = String::new();
        for &(id, seq, stamp) in tokens {
            push_token(&mut out, id, seq, stamp);
        }
        out
    }

    #[test]
    fn spec_round_trips_through_the_prompt() {
        assert_eq!(Spec::parse(&spec().prompt()), Some(spec()));
        assert_eq!(Spec::parse("bench id=1 n=2"), None);
    }

    #[test]
    fn merged_and_split_tokens_are_accepted() {
        let mut checker = Checker::new(spec());
        let all = text(&[(7, 0, 100), (7, 1, 200), (7, 2, 300)]);
        let (a, b) = all.split_at(all.len() / 2 + 1);
        checker.feed(a, 1_000, Instant::now());
        checker.feed(b, 2_000, Instant::now());
        assert_eq!(checker.verdict(), Ok(()));
        assert_eq!(checker.delays_ns[0], 900);
        assert_eq!(checker.delays_ns[2], 1_700);
    }

    #[test]
    fn missing_duplicate_foreign_and_reordered_tokens_fail() {
        let cases = [
            text(&[(7, 0, 1), (7, 1, 1)]),
            text(&[(7, 0, 1), (7, 1, 1), (7, 1, 1), (7, 2, 1)]),
            text(&[(7, 0, 1), (8, 1, 1), (7, 2, 1)]),
            text(&[(7, 0, 1), (7, 2, 1), (7, 1, 1)]),
            text(&[(7, 0, 1), (7, 1, 1), (7, 2, 1), (7, 3, 1)]),
            text(&[(7, 0, 1), (7, 1, 1), (7, 2, 1)]) + "7:3",
            "garbage;".to_owned(),
        ];
        for case in cases {
            let mut checker = Checker::new(spec());
            checker.feed(&case, 10, Instant::now());
            assert!(checker.verdict().is_err(), "{case} accepted");
        }
    }
}
