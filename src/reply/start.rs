//! The start of a reply: the conversation sent upstream (system prompt and the turns within
//! the budget; the operator's generation settings stay with the upstream) and the provider's
//! event stream, bounded by the reply timeout and the forced stop.

use crate::config::ProviderConfig;
use crate::reply::budget::Budget;
use crate::reply::relay;
use crate::upstream::{self, demo};
use crate::App;
use deepchat_adapters::{Conversation, EventStream, Turn};

/// The conversation to send upstream for these turns, within the conversation budget (the
/// newest turn was checked against it on arrival).
pub fn conversation(app: &App, turns: Vec<Turn>) -> Conversation {
    Conversation {
        system: app.config.system_prompt.clone(),
        turns: Budget::of(&app.config.limits).fit(turns),
    }
}

/// One reply from the configured provider, bounded by the reply timeout and by a forced
/// shutdown. Lazy: the upstream is contacted when the relay first polls the stream, so the
/// whole reply (connect and headers included) is under its deadline and cancellation.
pub fn events(app: &App, conversation: &Conversation) -> EventStream {
    let events = match &app.config.provider {
        ProviderConfig::Http(http) => {
            upstream::open(&app.upstream, http, conversation, &app.config.upstream)
        }
        ProviderConfig::Demo(demo) => demo::stream_reply(conversation, demo.token_interval),
    };
    relay::interruptible(
        events,
        app.config.upstream.reply_timeout,
        app.force_stop.clone(),
    )
}
