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
}

/// Every known host, hosted services first, then local servers.
pub const PRESETS: &[Preset] = &[
    Preset {
        name: "openai",
        base_url: "https://api.openai.com/v1",
        api_key_env: Some("OPENAI_API_KEY"),
        note: "OpenAI",
    },
    Preset {
        name: "openrouter",
        base_url: "https://openrouter.ai/api/v1",
        api_key_env: Some("OPENROUTER_API_KEY"),
        note: "OpenRouter; models are named vendor/model, e.g. openai/gpt-4o-mini",
    },
    Preset {
        name: "groq",
        base_url: "https://api.groq.com/openai/v1",
        api_key_env: Some("GROQ_API_KEY"),
        note: "Groq",
    },
    Preset {
        name: "mistral",
        base_url: "https://api.mistral.ai/v1",
        api_key_env: Some("MISTRAL_API_KEY"),
        note: "Mistral La Plateforme",
    },
    Preset {
        name: "deepseek",
        // DeepSeek documents the bare host; `/v1` is its OpenAI-compatible alias for the same API.
        base_url: "https://api.deepseek.com/v1",
        api_key_env: Some("DEEPSEEK_API_KEY"),
        note: "DeepSeek",
    },
    Preset {
        name: "together",
        // Together's docs moved to api.together.ai; the older api.together.xyz still answers.
        base_url: "https://api.together.ai/v1",
        api_key_env: Some("TOGETHER_API_KEY"),
        note: "Together AI; models are named org/model",
    },
    Preset {
        name: "fireworks",
        base_url: "https://api.fireworks.ai/inference/v1",
        api_key_env: Some("FIREWORKS_API_KEY"),
        note: "Fireworks AI; models are named accounts/fireworks/models/…",
    },
    Preset {
        name: "vllm",
        base_url: "http://localhost:8000/v1",
        api_key_env: None,
        note: "local vLLM (`vllm serve`); pass a key only if started with --api-key",
    },
    Preset {
        name: "llamacpp",
        base_url: "http://localhost:8080/v1",
        api_key_env: None,
        note: "local llama.cpp llama-server",
    },
    Preset {
        name: "lmstudio",
        base_url: "http://localhost:1234/v1",
        api_key_env: None,
        note: "local LM Studio server",
    },
    Preset {
        name: "ollama",
        base_url: "http://localhost:11434/v1",
        api_key_env: None,
        note: "local Ollama through its OpenAI-compatible endpoint (see also the native ollama adapter)",
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
