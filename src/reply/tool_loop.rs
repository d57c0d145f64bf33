//! A reply's tool rounds, as one event stream the relay reads like any other: the model's
//! text passes through; its tool calls are gathered until its response ends; then the loop
//! says which tools run ([`Event::ToolRunning`], a status for the chat), calls them, records
//! the round ([`Event::ToolRound`], for the conversation memory), sends the results back
//! along the same route and reads the next response, until the model answers without calls
//! or `--max-tool-rounds` is reached. No task hop: the relay's poll drives every step, so a
//! client that leaves drops the loop, and with it a running tool call (which cancels it on
//! the server) and the upstream request.

use crate::config::Route;
use crate::config::{ProviderConfig, UpstreamPolicy};
use crate::ops::telemetry;
use crate::reply::start::{self, Source};
use crate::request_id::RequestId;
use crate::tools::Tools;
use crate::upstream::pool::UpstreamPool;
use crate::upstream::{self, Answered};
use deepchat_adapters::{Carried, Conversation, Event, EventStream, ToolCall, ToolRound, Turn};
use futures_util::StreamExt;
use std::collections::VecDeque;
use std::sync::Arc;

/// Most text of one round kept for the memory (the client is sent all of it).
const MAX_ROUND_TEXT: usize = 64 * 1024;

/// What the loop needs to send a round's results back upstream.
pub struct Upstream {
    pub pool: Arc<UpstreamPool>,
    pub policy: UpstreamPolicy,
    pub route: Arc<Route>,
    /// The model the client chose (`None`: the primary's).
    pub model: Option<String>,
    pub request_id: RequestId,
}

/// One reply's loop state.
struct ToolLoop {
    upstream: Upstream,
    tools: Arc<Tools>,
    conversation: Conversation,
    answered: Answered,
    /// The current response's events.
    events: EventStream,
    /// Events to hand out before reading further.
    queued: VecDeque<Event>,
    /// This response's calls, text and carried state, for its round.
    calls: Vec<ToolCall>,
    carried: Vec<serde_json::Value>,
    text: String,
    /// The calls announced and to run at the next poll.
    to_run: Option<Vec<ToolCall>>,
    rounds: usize,
    over: bool,
}

/// `first` (the reply's first response) with the tool loop around it.
pub fn run(
    first: EventStream,
    conversation: Conversation,
    upstream: Upstream,
    tools: Arc<Tools>,
    answered: Answered,
) -> EventStream {
    let state = ToolLoop {
        upstream,
        tools,
        conversation,
        answered,
        events: first,
        queued: VecDeque::new(),
        calls: Vec::new(),
        carried: Vec::new(),
        text: String::new(),
        to_run: None,
        rounds: 0,
        over: false,
    };
    futures_util::stream::unfold(state, |mut state| async move {
        let event = state.next().await?;
        Some((event, state))
    })
    .boxed()
}

impl ToolLoop {
    async fn next(&mut self) -> Option<Event> {
        loop {
            if let Some(event) = self.queued.pop_front() {
                return Some(event);
            }
            if let Some(calls) = self.to_run.take() {
                self.run_round(calls).await;
                continue;
            }
            if self.over {
                return None;
            }
            match self.events.next().await {
                Some(Event::ToolCall(call)) => self.calls.push(call),
                Some(Event::Carried(item)) => self.carried.push(item),
                // The round's end is the response's end (usage may follow the finish).
                Some(Event::Finish(_)) if !self.calls.is_empty() => {}
                Some(Event::TextDelta(text)) => {
                    if self.text.len() + text.len() <= MAX_ROUND_TEXT {
                        self.text.push_str(&text);
                    }
                    return Some(Event::TextDelta(text));
                }
                Some(error @ Event::Error(_)) => {
                    self.over = true;
                    return Some(error);
                }
                Some(other) => return Some(other),
                None if self.calls.is_empty() => {
                    self.over = true;
                    return None;
                }
                None => {
                    let calls = std::mem::take(&mut self.calls);
                    if self.rounds >= self.tools.settings().max_rounds {
                        self.over = true;
                        return Some(Event::Error(format!(
                            "the model kept calling tools: stopped after {} rounds (--max-tool-rounds)",
                            self.rounds
                        )));
                    }
                    self.to_run = Some(calls.clone());
                    return Some(Event::ToolRunning(calls));
                }
            }
        }
    }

    /// Calls the round's tools (together), records the round and opens the next response.
    async fn run_round(&mut self, calls: Vec<ToolCall>) {
        self.rounds += 1;
        let offered = self.tools.specs();
        let timed = calls.iter().map(|call| async {
            let started = std::time::Instant::now();
            let result = self.tools.call(call).await;
            (result, started.elapsed())
        });
        let mut results = Vec::with_capacity(calls.len());
        for (result, took) in futures_util::future::join_all(timed).await {
            tracing::info!(tool = %result.name, failed = result.is_error, bytes = result.content.len(), ms = took.as_millis() as u64, "tool call");
            let known = offered.iter().any(|spec| spec.name == result.name);
            telemetry::tool_call(
                if known { &result.name } else { "unknown" },
                result.is_error,
                took,
            );
            results.push(result);
        }
        let adapter = self.answering_adapter();
        let round = ToolRound {
            text: std::mem::take(&mut self.text),
            carried: std::mem::take(&mut self.carried)
                .into_iter()
                .map(|item| Carried {
                    adapter: adapter.to_owned(),
                    item,
                })
                .collect(),
            calls,
            results,
        };
        self.queued.push_back(Event::ToolRound(round.clone()));
        match self.conversation.turns.last_mut() {
            Some(turn)
                if turn.role == deepchat_adapters::Role::Assistant && turn.text.is_empty() =>
            {
                turn.tool_rounds.push(round)
            }
            _ => {
                let mut turn = Turn::assistant("");
                turn.tool_rounds.push(round);
                self.conversation.turns.push(turn);
            }
        }
        let upstream = &self.upstream;
        let source = start::request(
            &upstream.route,
            &self.conversation,
            upstream.model.as_deref(),
            &upstream.request_id,
        );
        match source {
            Ok(Source::Upstream(chain)) if !chain.is_empty() => {
                self.events = upstream::open(
                    &upstream.pool,
                    chain,
                    &upstream.policy,
                    self.answered.clone(),
                );
            }
            Ok(_) => {
                self.over = true;
                self.queued.push_back(Event::Error(
                    "internal error: no upstream takes tool results".into(),
                ));
            }
            Err(err) => {
                self.over = true;
                self.queued.push_back(Event::Error(err.to_string()));
            }
        }
    }

    /// The adapter whose response this was (the carried state is its own).
    fn answering_adapter(&self) -> &'static str {
        let position = self.answered.get().unwrap_or(0);
        match self.upstream.route.chain.get(position) {
            Some(ProviderConfig::Http(http)) => http.adapter.name(),
            _ => "demo",
        }
    }
}
