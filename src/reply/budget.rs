//! The conversation budget: how much one conversation may send upstream, in characters of text
//! (`--max-conversation-chars`) and in images, by number (`--max-images`) and bytes
//! (`--max-image-bytes`). The newest message must fit on its own, or the client gets a clear
//! error and nothing is sent (never a silent cut); older turns are dropped, oldest first, until
//! the rest fits. The per-socket memory applies the same budget, so what can never be sent
//! upstream is not kept.

use deepchat_adapters::{Image, Turn};

/// The limits of one conversation sent upstream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Budget {
    /// Characters of text, all turns together.
    pub max_chars: usize,
    /// Images, all turns together.
    pub max_images: usize,
    /// Bytes of images, all turns together (see [`image_bytes`]).
    pub max_image_bytes: usize,
}

impl Budget {
    /// The budget the operator's limits set.
    pub fn of(limits: &crate::config::Limits) -> Budget {
        Budget {
            max_chars: limits.max_conversation_chars,
            max_images: limits.max_images,
            max_image_bytes: limits.max_image_bytes,
        }
    }
}

pub use crate::error::OverBudget;

/// What one turn spends of the budget.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Cost {
    chars: usize,
    images: usize,
    image_bytes: usize,
}

impl Cost {
    fn of(turn: &Turn) -> Cost {
        // A tool round goes upstream too: its text, the calls' arguments and the results.
        let rounds: usize = turn
            .tool_rounds
            .iter()
            .map(|round| {
                let calls: usize = round
                    .calls
                    .iter()
                    .map(|call| call.name.chars().count() + call.arguments.chars().count())
                    .sum();
                let results: usize = round
                    .results
                    .iter()
                    .map(|r| r.content.chars().count())
                    .sum();
                round.text.chars().count() + calls + results
            })
            .sum();
        Cost {
            chars: turn.text.chars().count().saturating_add(rounds),
            images: turn.images.len(),
            image_bytes: turn.images.iter().map(image_bytes).sum(),
        }
    }

    fn plus(self, other: Cost) -> Cost {
        Cost {
            chars: self.chars.saturating_add(other.chars),
            images: self.images.saturating_add(other.images),
            image_bytes: self.image_bytes.saturating_add(other.image_bytes),
        }
    }

    fn minus(self, other: Cost) -> Cost {
        Cost {
            chars: self.chars.saturating_sub(other.chars),
            images: self.images.saturating_sub(other.images),
            image_bytes: self.image_bytes.saturating_sub(other.image_bytes),
        }
    }
}

/// Bytes an image counts for: the decoded size of an uploaded image (its base64 is 4/3 of
/// that), the length of a link the provider fetches itself.
pub fn image_bytes(image: &Image) -> usize {
    match image {
        Image::Inline { base64, .. } => base64.len() / 4 * 3,
        Image::Url(url) => url.len(),
    }
}

impl Budget {
    fn fits(&self, cost: Cost) -> bool {
        cost.chars <= self.max_chars
            && cost.images <= self.max_images
            && cost.image_bytes <= self.max_image_bytes
    }

    /// Refuses a request whose newest message alone is over the budget.
    pub fn check_newest(&self, turns: Vec<Turn>) -> Result<Vec<Turn>, OverBudget> {
        let Some(newest) = turns.last() else {
            return Ok(turns);
        };
        let cost = Cost::of(newest);
        if cost.chars > self.max_chars {
            return Err(OverBudget::Chars {
                count: cost.chars,
                max: self.max_chars,
            });
        }
        if cost.images > self.max_images {
            return Err(OverBudget::Images {
                count: cost.images,
                max: self.max_images,
            });
        }
        if cost.image_bytes > self.max_image_bytes {
            return Err(OverBudget::ImageBytes {
                bytes: cost.image_bytes,
                max: self.max_image_bytes,
            });
        }
        Ok(turns)
    }

    /// How many of the oldest turns must go for the rest to fit. The newest turn always stays
    /// (it was checked on arrival by [`Budget::check_newest`]).
    pub fn overflow(&self, turns: &[Turn]) -> usize {
        let mut total = turns.iter().map(Cost::of).fold(Cost::default(), Cost::plus);
        let mut drop = 0;
        while !self.fits(total) && drop + 1 < turns.len() {
            total = total.minus(Cost::of(&turns[drop]));
            drop += 1;
        }
        drop
    }

    /// `turns` without the oldest ones that do not fit.
    pub fn fit(&self, mut turns: Vec<Turn>) -> Vec<Turn> {
        let drop = self.overflow(&turns);
        turns.drain(..drop);
        turns
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn budget(max_chars: usize, max_images: usize, max_image_bytes: usize) -> Budget {
        Budget {
            max_chars,
            max_images,
            max_image_bytes,
        }
    }

    fn with_images(text: &str, base64_lengths: &[usize]) -> Turn {
        let mut turn = Turn::user(text);
        turn.images = base64_lengths
            .iter()
            .map(|len| Image::Inline {
                mime: "image/png".into(),
                base64: "A".repeat(*len),
            })
            .collect();
        turn
    }

    #[test]
    fn oldest_turns_go_first_and_the_newest_stays() {
        let turns = vec![
            Turn::user("aaaa"),
            Turn::assistant("bbbb"),
            Turn::user("cc"),
        ];
        let roomy = budget(100, 10, 1000);
        assert_eq!(roomy.fit(turns.clone()), turns);
        assert_eq!(budget(6, 10, 1000).fit(turns.clone()), turns[1..].to_vec());
        assert_eq!(budget(1, 10, 1000).fit(turns.clone()), turns[2..].to_vec());
    }

    #[test]
    fn tool_rounds_count_against_the_budget() {
        let mut answer = Turn::assistant("ok");
        answer.tool_rounds.push(deepchat_adapters::ToolRound {
            text: "abc".into(),
            carried: Vec::new(),
            calls: vec![deepchat_adapters::ToolCall {
                id: "c".into(),
                name: "echo".into(),
                arguments: "{}".into(),
                signature: None,
            }],
            results: vec![deepchat_adapters::ToolResult {
                call_id: "c".into(),
                name: "echo".into(),
                content: "x".repeat(20),
                is_error: false,
            }],
        });
        // 2 + 3 + 4 + 2 + 20 = 31 characters, then the question's 2.
        let turns = vec![answer, Turn::user("hi")];
        assert_eq!(budget(33, 10, 1000).fit(turns.clone()).len(), 2);
        assert_eq!(budget(32, 10, 1000).fit(turns.clone()).len(), 1);
    }

    #[test]
    fn images_count_by_number_and_decoded_bytes() {
        let turns = vec![with_images("old", &[8, 8]), with_images("new", &[8])];
        assert_eq!(budget(100, 3, 100).fit(turns.clone()).len(), 2);
        assert_eq!(budget(100, 2, 100).fit(turns.clone()), turns[1..].to_vec());
        // 8 base64 characters are 6 bytes: three images are 18 bytes.
        assert_eq!(budget(100, 10, 18).fit(turns.clone()).len(), 2);
        assert_eq!(budget(100, 10, 17).fit(turns.clone()).len(), 1);
        assert_eq!(image_bytes(&Image::Url("https://x.test/a.png".into())), 20);
    }

    #[test]
    fn a_newest_message_over_the_budget_is_refused() {
        let b = budget(5, 1, 6);
        assert!(b
            .check_newest(vec![Turn::user("x".repeat(50)), Turn::user("ok")])
            .is_ok());
        assert_eq!(
            b.check_newest(vec![Turn::user("héllo!")]),
            Err(OverBudget::Chars { count: 6, max: 5 })
        );
        assert_eq!(
            b.check_newest(vec![with_images("", &[4, 4])]),
            Err(OverBudget::Images { count: 2, max: 1 })
        );
        assert_eq!(
            b.check_newest(vec![with_images("", &[12])]),
            Err(OverBudget::ImageBytes { bytes: 9, max: 6 })
        );
        assert!(b.check_newest(vec![with_images("hi", &[8])]).is_ok());
    }
}
