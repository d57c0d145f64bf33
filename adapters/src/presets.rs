//! Hosts that speak OpenAI Chat Completions, as data: pick one by name and hand its base URL to
//! [`crate::openai::OpenAiChat`]. Adding a host is one entry here, no code.

/// One OpenAI-compatible host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Preset {
    /// Short name an operator types (`--preset groq`).
    pub name: &'static str,
    /// The part before `/chat/completions`, without a trailing slash.
    pub base_url: &'static str,
    /// Where the key is conventionally found; `None` for local servers that need none.
    pub api_key_env: Option<&'static str>,
    /// One line for `--help` and error messages.
    pub note: &'static str,
    /// Whether to ask for token usage with `stream_options.include_usage`: OpenAI and most
    /// compatible servers send the usage chunk only when asked; a host that sends it anyway and
    /// refuses fields it does not know (Mistral answers 422 `extra_forbidden`) is not asked.
    pub asks_for_usage: bool,
}

/// Whether a Chat Completions server at `base_url` is asked for usage: as its preset says, and
/// yes for any other server (OpenAI's own API and its compatibles need asking).
pub fn asks_for_usage(base_url: &str) -> bool {
    let base = base_url.trim_end_matches('/');
    PRESETS
        .iter()
        .find(|p| p.base_url == base)
        .is_none_or(|p| p.asks_for_usage)
}

/// Every known host, hosted services first, then local servers.
pub const PRESETS: &[Preset] = &[
    Preset {
        name: "openai",
        base_url: "https://api.openai.com/v1",
        api_key_env: Some("OPENAI_API_KEY"),
        note: "OpenAI",
        asks_for_usage: true,
    },
    Preset {
        name: "openrouter",
        base_url: "https://openrouter.ai/api/v1",
        api_key_env: Some("OPENROUTER_API_KEY"),
        note: "OpenRouter; models are named vendor/model, e.g. openai/gpt-4o-mini",
        asks_for_usage: true,
    },
    Preset {
        name: "groq",
        base_url: "https://api.groq.com/openai/v1",
        api_key_env: Some("GROQ_API_KEY"),
        note: "Groq",
        asks_for_usage: true,
    },
    Preset {
        name: "mistral",
        base_url: "https://api.mistral.ai/v1",
        api_key_env: Some("MISTRAL_API_KEY"),
        note: "Mistral La Plateforme",
        asks_for_usage: false,
    },
    Preset {
        name: "deepseek",
        // DeepSeek documents the bare host; `/v1` is its OpenAI-compatible alias for the same API.
        base_url: "https://api.deepseek.com/v1",
        api_key_env: Some("DEEPSEEK_API_KEY"),
        note: "DeepSeek",
        asks_for_usage: true,
    },
    Preset {
        name: "together",
        // Together's docs moved to api.together.ai; the older api.together.xyz still answers.
        base_url: "https://api.together.ai/v1",
        api_key_env: Some("TOGETHER_API_KEY"),
        note: "Together AI; models are named org/model",
        asks_for_usage: true,
    },
    Preset {
        name: "fireworks",
        base_url: "https://api.fireworks.ai/inference/v1",
        api_key_env: Some("FIREWORKS_API_KEY"),
        note: "Fireworks AI; models are named accounts/fireworks/models/…",
        asks_for_usage: true,
    },
    Preset {
        name: "vllm",
        base_url: "http://localhost:8000/v1",
        api_key_env: None,
        note: "local vLLM (`vllm serve`); pass a key only if started with --api-key",
        asks_for_usage: true,
    },
    Preset {
        name: "llamacpp",
        base_url: "http://localhost:8080/v1",
        api_key_env: None,
        note: "local llama.cpp llama-server",
        asks_for_usage: true,
    },
    Preset {
        name: "lmstudio",
        base_url: "http://localhost:1234/v1",
        api_key_env: None,
        note: "local LM Studio server",
        asks_for_usage: true,
    },
    Preset {
        name: "ollama",
        base_url: "http://localhost:11434/v1",
        api_key_env: None,
        note: "local Ollama through its OpenAI-compatible endpoint (see also the native ollama adapter)",
        asks_for_usage: true,
    },
];

/// The preset called `name` (case-insensitive).
pub fn preset(name: &str) -> Option<&'static Preset> {
    let name = name.trim();
    PRESETS.iter().find(|p| p.name.eq_ignore_ascii_case(name))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Generation;

    #[test]
    fn names_are_unique_lowercase_and_urls_are_clean() {
        for (i, p) in PRESETS.iter().enumerate() {
            assert!(
                PRESETS[i + 1..].iter().all(|q| q.name != p.name),
                "duplicate preset {}",
                p.name
            );
            assert!(
                !p.name.is_empty()
                    && p.name
                        .bytes()
                        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit()),
                "preset name {:?} must be lowercase letters and digits",
                p.name
            );
            assert!(
                !p.base_url.ends_with('/'),
                "{} base URL has a trailing slash",
                p.name
            );
            assert!(
                p.base_url.starts_with("https://") || p.base_url.starts_with("http://localhost:"),
                "{} base URL must be https (or a local server)",
                p.name
            );
            assert!(!p.note.is_empty(), "{} has no note", p.name);
        }
    }

    #[test]
    fn hosted_services_name_a_key_and_local_servers_do_not() {
        for p in PRESETS {
            let local = p.base_url.starts_with("http://localhost:");
            assert_eq!(
                p.api_key_env.is_none(),
                local,
                "{}: key env var {:?} for {}",
                p.name,
                p.api_key_env,
                p.base_url
            );
        }
    }

    #[test]
    fn lookup_by_name() {
        let groq = preset("groq").expect("groq");
        assert_eq!(groq.base_url, "https://api.groq.com/openai/v1");
        assert_eq!(groq.api_key_env, Some("GROQ_API_KEY"));
        assert_eq!(
            preset(" OpenRouter ").map(|p| p.base_url),
            Some("https://openrouter.ai/api/v1")
        );
        assert_eq!(
            preset("ollama").map(|p| p.base_url),
            Some("http://localhost:11434/v1")
        );
        assert!(preset("nope").is_none());
        assert!(preset("").is_none());
    }

    #[test]
    fn a_preset_drives_the_chat_adapter() {
        use crate::{openai::OpenAiChat, Adapter, Conversation, Turn};
        let conversation = Conversation {
            turns: vec![Turn::user("hi")],
            ..Default::default()
        };
        let generation = Generation {
            model: "m".into(),
            ..Default::default()
        };
        let fireworks = preset("fireworks").expect("fireworks");
        let request = OpenAiChat::new(fireworks.base_url)
            .build_request(&conversation, &generation, Some("k"))
            .expect("request");
        assert_eq!(
            request.url,
            "https://api.fireworks.ai/inference/v1/chat/completions"
        );
    }

    #[test]
    fn every_required_host_is_present() {
        for name in [
            "openai",
            "openrouter",
            "groq",
            "mistral",
            "deepseek",
            "together",
            "fireworks",
            "vllm",
            "llamacpp",
            "lmstudio",
            "ollama",
        ] {
            assert!(preset(name).is_some(), "missing preset {name}");
        }
    }
}
