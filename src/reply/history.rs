//! Per-socket conversation memory. Deep Chat sends only the newest message by default, so the
//! proxy remembers the dialogue (user turns and the replies it streamed) for the model. Memory
//! follows the conversation budget: turns that could never be sent upstream again are
//! forgotten at once, so what a client sends cannot pile up here.

use crate::reply::budget::Budget;
use deepchat_adapters::{Role, Turn};
use std::collections::VecDeque;

/// The remembered dialogue of one socket, at most `limit` turns and within `budget`.
#[derive(Debug)]
pub struct History {
    turns: VecDeque<Turn>,
    limit: usize,
    /// Text and images worth keeping: what one conversation may send upstream.
    budget: Budget,
}

impl History {
    pub fn new(limit: usize, budget: Budget) -> Self {
        History {
            turns: VecDeque::new(),
            limit: limit.max(1),
            budget,
        }
    }

    /// Drops the oldest turns beyond the turn limit or the budget; the newest stays.
    fn trim(&mut self) {
        while self.turns.len() > self.limit {
            self.turns.pop_front();
        }
        let over = self.budget.overflow(self.turns.make_contiguous());
        self.turns.drain(..over);
    }

    /// Records an incoming request and returns the dialogue to send upstream. One message is
    /// appended to the memory; a longer list is the client's full history and replaces it.
    pub fn begin(&mut self, incoming: Vec<Turn>) -> Vec<Turn> {
        if incoming.len() > 1 {
            self.turns = incoming.into();
        } else {
            self.turns.extend(incoming);
        }
        self.trim();
        // Providers such as Anthropic require the dialogue to open with the user.
        while self.turns.len() > 1 && self.turns.front().map(|t| t.role) == Some(Role::Assistant) {
            self.turns.pop_front();
        }
        self.turns.iter().cloned().collect()
    }

    /// Takes a stored dialogue as the memory (a conversation continued on another socket).
    pub fn replace(&mut self, turns: &[Turn]) {
        self.turns = turns.iter().cloned().collect();
        self.trim();
    }

    /// The remembered dialogue, oldest first (what a conversation store keeps).
    pub fn turns(&mut self) -> &[Turn] {
        self.turns.make_contiguous()
    }

    /// Records the reply. A failed reply with no text forgets its question, so a retry does not
    /// send the question twice; partial text is kept because the user saw it.
    pub fn finish(&mut self, reply: String) {
        self.finish_turn(Turn::assistant(reply));
    }

    /// [`History::finish`] with the answer's tool rounds ([`Outcome::reply_turn`]).
    ///
    /// [`Outcome::reply_turn`]: crate::reply::relay::Outcome::reply_turn
    pub fn finish_turn(&mut self, reply: Turn) {
        if reply.text.is_empty() && reply.tool_rounds.is_empty() {
            if self.turns.back().map(|t| t.role) == Some(Role::User) {
                self.turns.pop_back();
            }
        } else {
            self.turns.push_back(reply);
            self.trim();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ROOMY: Budget = Budget {
        max_chars: 1000,
        max_images: 10,
        max_image_bytes: 1000,
    };

    #[test]
    fn memory_keeps_only_what_fits_the_budget() {
        let budget = Budget {
            max_chars: 10,
            ..ROOMY
        };
        let mut history = History::new(50, budget);
        history.begin(vec![Turn::user("x".repeat(8))]);
        history.finish("y".repeat(8));
        let sent = history.begin(vec![Turn::user("z")]);
        assert_eq!(sent, vec![Turn::user("z")], "the old question cannot fit");
        // The reply was held only until the next question; now nothing over budget is kept.
        let kept: usize = history.turns.iter().map(|t| t.text.len()).sum();
        assert!(kept <= 10, "{:?}", history.turns);
    }

    #[test]
    fn remembers_turns_and_replies() {
        let mut history = History::new(10, ROOMY);
        assert_eq!(history.begin(vec![Turn::user("a")]), vec![Turn::user("a")]);
        history.finish("A".into());
        assert_eq!(
            history.begin(vec![Turn::user("b")]),
            vec![Turn::user("a"), Turn::assistant("A"), Turn::user("b")]
        );
    }

    #[test]
    fn client_list_replaces_memory() {
        let mut history = History::new(10, ROOMY);
        history.begin(vec![Turn::user("old")]);
        history.finish("OLD".into());
        let sent = vec![Turn::user("x"), Turn::assistant("X"), Turn::user("y")];
        assert_eq!(history.begin(sent.clone()), sent);
    }

    #[test]
    fn limit_drops_oldest_and_keeps_user_first() {
        let mut history = History::new(3, ROOMY);
        for q in ["1", "2", "3"] {
            history.begin(vec![Turn::user(q)]);
            history.finish(format!("r{q}"));
        }
        let sent = history.begin(vec![Turn::user("4")]);
        assert_eq!(
            sent,
            vec![Turn::user("3"), Turn::assistant("r3"), Turn::user("4")]
        );
    }

    #[test]
    fn failed_reply_without_text_forgets_question() {
        let mut history = History::new(10, ROOMY);
        history.begin(vec![Turn::user("a")]);
        history.finish(String::new());
        assert_eq!(history.begin(vec![Turn::user("b")]), vec![Turn::user("b")]);
    }
}
