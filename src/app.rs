//! Shared state of a running proxy: validated config, the upstream client, session tracking.

use crate::config::{Config, ProviderConfig};
use crate::demo;
use crate::upstream::{self, EventStream, Timeouts};
use deepchat_adapters::{Conversation, Turn};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub struct App {
    pub config: Config,
    /// One pooled client for every reply, so connections to the upstream are reused.
    pub client: reqwest::Client,
    /// Upgraded sockets leave hyper's tracking; shutdown waits for these instead.
    pub sessions: TaskTracker,
    /// Cancelled on SIGTERM/SIGINT: idle sessions close, busy ones finish their reply first.
    pub shutdown: CancellationToken,
}

impl App {
    pub fn new(config: Config) -> Self {
        App {
            config,
            client: upstream::client(),
            sessions: TaskTracker::new(),
            shutdown: CancellationToken::new(),
        }
    }

    /// The conversation to send upstream for these turns.
    pub fn conversation(&self, turns: Vec<Turn>) -> Conversation {
        let mut conversation = Conversation {
            system: self.config.system_prompt.clone(),
            turns,
            ..Default::default()
        };
        if let ProviderConfig::Http(http) = &self.config.provider {
            conversation.model = http.model.clone();
            conversation.temperature = http.temperature;
            conversation.max_tokens = http.max_tokens;
            conversation.extra_headers = http.extra_headers.clone();
        }
        conversation
    }

    /// Starts one reply from the configured provider.
    pub async fn start_reply(&self, conversation: &Conversation) -> EventStream {
        match &self.config.provider {
            ProviderConfig::Http(http) => {
                let timeouts = Timeouts {
                    response: self.config.upstream_timeout,
                    idle: self.config.idle_timeout,
                };
                upstream::open(&self.client, http, conversation, timeouts).await
            }
            ProviderConfig::Demo(demo) => demo::stream_reply(conversation, demo.token_interval),
        }
    }
}
