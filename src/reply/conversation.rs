//! A turn of a conversation named by an id (`?conversation=ID`, or `conversationId` in the
//! body): which id a request names, the turn's lease on it (the dialogue read, the lock held),
//! and the save after the reply. A store that failed costs the user only this turn's place in
//! the saved dialogue, and they are told so once, with a note after the reply.

use crate::access::ratelimit::ClientKey;
use crate::error::{ProxyError, RequestError};
use crate::reply::frame::ReplyFrame;
use crate::reply::history::History;
use crate::store::conversations::{Busy, Conversations, Lease};
use crate::store::id::ConversationId;
use crate::App;

/// Appended to a reply whose turn the store did not keep.
pub const NOT_SAVED: &str =
    "\n\n(This turn was not saved: the conversation store is unavailable, so it will be missing after a reload.)";

/// The conversation a request names: the body's `conversationId`, else the connect URL's.
pub fn pick_id(
    body: Option<String>,
    url: Option<&ConversationId>,
) -> Result<Option<ConversationId>, ProxyError> {
    match body {
        Some(raw) => ConversationId::parse(&raw)
            .map(Some)
            .map_err(|_| RequestError::ConversationId.into()),
        None => Ok(url.cloned()),
    }
}

/// Waits for the conversation's turn and reads it (for the client's principal).
pub async fn open(app: &App, client: &ClientKey, id: &ConversationId) -> Result<Lease, ProxyError> {
    let key = Conversations::key(client.identity.as_deref(), id);
    app.conversations
        .lease(key)
        .await
        .map_err(|Busy| ProxyError::ConversationBusy)
}

/// Makes the stored dialogue the memory; if the store could not be read, the memory this
/// socket already has stands in.
pub fn adopt(history: &mut History, lease: &Lease) {
    if let Some(turns) = lease.loaded() {
        history.replace(turns);
    }
}

/// Saves the memory as the conversation; the note to send when it was not saved.
pub async fn keep(lease: Lease, history: &mut History) -> Option<ReplyFrame> {
    if lease.save(history.turns()).await {
        None
    } else {
        Some(ReplyFrame::Text(NOT_SAVED.to_owned()))
    }
}

/// A named conversation's turn over HTTP, where no socket keeps a memory: its lease and the
/// dialogue sent upstream, to be saved with the reply.
pub struct Kept {
    lease: Lease,
    history: History,
}

impl Kept {
    pub fn new(lease: Lease, history: History) -> Kept {
        Kept { lease, history }
    }

    /// Records the reply the user saw (`shown`, with its tool rounds; empty forgets the question) and saves the
    /// dialogue; the note to send when it was not saved.
    pub async fn finish(mut self, shown: deepchat_adapters::Turn) -> Option<ReplyFrame> {
        self.history.finish_turn(shown);
        keep(self.lease, &mut self.history).await
    }
}
