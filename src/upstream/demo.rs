//! The offline `demo` provider: echoes the question and streams a canned answer at a set pace,
//! so a newcomer can watch streaming work with no key and no network.

use deepchat_adapters::{Conversation, Event, EventStream, FinishReason, Role};
use futures_util::stream::{self, StreamExt};
use std::time::Duration;

const ANSWER: &str = "This reply comes from deepchat-proxy's built-in demo provider. \
It streams word by word over the WebSocket, exactly the way a real model's tokens would, \
and ends with the stop key so Deep Chat knows the message is complete. \
Run `deepchat-proxy openai --model gpt-4o-mini` with OPENAI_API_KEY set to talk to a real model.";

/// The full demo reply for a conversation.
pub fn reply_text(conversation: &Conversation) -> String {
    let question = conversation
        .turns
        .iter()
        .rev()
        .find(|t| t.role == Role::User)
        .map(|t| t.text.as_str())
        .unwrap_or_default();
    let turn = conversation
        .turns
        .iter()
        .filter(|t| t.role == Role::User)
        .count();
    format!("You said: \u{201c}{question}\u{201d} (message {turn} of this chat). {ANSWER}")
}

/// Splits text into word-sized tokens that keep their trailing spaces.
fn tokens(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current = String::new();
    for ch in text.chars() {
        if ch == ' ' && !current.ends_with(' ') && !current.is_empty() {
            current.push(ch);
            out.push(std::mem::take(&mut current));
        } else {
            current.push(ch);
        }
    }
    if !current.is_empty() {
        out.push(current);
    }
    out
}

/// Streams the reply one token per `interval`, then finishes.
pub fn stream_reply(conversation: &Conversation, interval: Duration) -> EventStream {
    let deltas = tokens(&reply_text(conversation))
        .into_iter()
        .map(Event::TextDelta);
    stream::iter(deltas)
        .then(move |event| async move {
            tokio::time::sleep(interval).await;
            event
        })
        .chain(stream::iter([Event::Finish(FinishReason::Stop)]))
        .boxed()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_reassemble_exactly() {
        let text = "Hello  wörld, 👋 again ";
        assert_eq!(tokens(text).concat(), text);
        assert!(tokens(text).len() > 3);
    }
}
