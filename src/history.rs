//! Per-socket conversation memory. Deep Chat sends only the newest message by default, so the
//! proxy remembers the dialogue (user turns and the replies it streamed) for the model.

use deepchat_adapters::{Role, Turn};
use std::collections::VecDeque;

/// The remembered dialogue of one socket, at most `limit` turns.
#[derive(Debug)]
pub struct History {
    turns: VecDeque<Turn>,
    limit: usize,
}

impl History {
    pub fn new(limit: usize) -> Self {
        History {
            turns: VecDeque::new(),
            limit: limit.max(1),
        }
    }

    /// Records an incoming request and returns the dialogue to send upstream. One message is
    /// appended to the memory; a longer list is the client's full history and replaces it.
    pub fn begin(&mut self, incoming: Vec<Turn>) -> Vec<Turn> {
        if incoming.len() > 1 {
            self.turns = incoming.into();
        } else {
            self.turns.extend(incoming);
        }
        while self.turns.len() > self.limit {
            self.turns.pop_front();
        }
        // Providers such as Anthropic require the dialogue to open with the user.
        while self.turns.len() > 1 && self.turns.front().map(|t| t.role) == Some(Role::Assistant) {
            self.turns.pop_front();
        }
        self.turns.iter().cloned().collect()
    }

    /// Records the reply. A failed reply with no text forgets its question, so a retry does not
    /// send the question twice; partial text is kept because the user saw it.
    pub fn finish(&mut self, reply: String) {
        if reply.is_empty() {
            if self.turns.back().map(|t| t.role) == Some(Role::User) {
                self.turns.pop_back();
            }
        } else {
            self.turns.push_back(Turn::assistant(reply));
            while self.turns.len() > self.limit {
                self.turns.pop_front();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remembers_turns_and_replies() {
        let mut history = History::new(10);
        assert_eq!(history.begin(vec![Turn::user("a")]), vec![Turn::user("a")]);
        history.finish("A".into());
        assert_eq!(
            history.begin(vec![Turn::user("b")]),
            vec![Turn::user("a"), Turn::assistant("A"), Turn::user("b")]
        );
    }

    #[test]
    fn client_list_replaces_memory() {
        let mut history = History::new(10);
        history.begin(vec![Turn::user("old")]);
        history.finish("OLD".into());
        let sent = vec![Turn::user("x"), Turn::assistant("X"), Turn::user("y")];
        assert_eq!(history.begin(sent.clone()), sent);
    }

    #[test]
    fn limit_drops_oldest_and_keeps_user_first() {
        let mut history = History::new(3);
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
        let mut history = History::new(10);
        history.begin(vec![Turn::user("a")]);
        history.finish(String::new());
        assert_eq!(history.begin(vec![Turn::user("b")]), vec![Turn::user("b")]);
    }
}
