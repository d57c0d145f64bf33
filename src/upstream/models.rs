//! `--allow-model`: the models a request may choose with `model` in its body (Deep Chat's
//! `additionalBodyProps`), each by its name or by an alias (`fast=gpt-4o-mini`). Without the
//! flag a route has no choice to offer and a client's `model` is ignored.

/// The models one route lets a client choose.
#[derive(Debug, Clone, Default)]
pub struct AllowedModels {
    /// `(name the client sends, model sent upstream)`, in the order given.
    choices: Vec<(String, String)>,
}

/// A request named a model the route does not offer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotAllowed {
    /// What the client asked for, cut short (it is echoed in the error).
    pub requested: String,
    /// The names the client may send: only these, never the models behind aliases.
    pub offered: Vec<String>,
}

impl std::fmt::Display for NotAllowed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "model {:?} is not available here; choose one of: {}",
            self.requested,
            self.offered.join(", ")
        )
    }
}

/// Longest requested name echoed back in an error.
const MAX_ECHOED: usize = 64;

impl AllowedModels {
    /// Parses `NAME` or `ALIAS=NAME` values; the error names the bad value.
    pub fn parse(values: &[String]) -> Result<AllowedModels, String> {
        let mut choices: Vec<(String, String)> = Vec::new();
        for value in values {
            let (alias, model) = match value.split_once('=') {
                Some((alias, model)) => (alias.trim(), model.trim()),
                None => (value.trim(), value.trim()),
            };
            if alias.is_empty() || model.is_empty() {
                return Err(format!("--allow-model {value:?} is not NAME or ALIAS=NAME"));
            }
            if choices.iter().any(|(known, _)| known == alias) {
                return Err(format!("--allow-model {alias:?} is given twice"));
            }
            choices.push((alias.to_owned(), model.to_owned()));
        }
        Ok(AllowedModels { choices })
    }

    /// The models sent upstream for the choices (metric labels are bounded to these).
    pub fn upstream_models(&self) -> impl Iterator<Item = &str> {
        self.choices.iter().map(|(_, model)| model.as_str())
    }

    /// Whether the route offers any choice (else the body's `model` is ignored).
    pub fn is_empty(&self) -> bool {
        self.choices.is_empty()
    }

    /// The upstream model for a request that asked for `requested`: `None` keeps the route's
    /// `--model`. The route's own `default` may always be named.
    pub fn choose(
        &self,
        requested: Option<&str>,
        default: &str,
    ) -> Result<Option<String>, NotAllowed> {
        let Some(requested) = requested.filter(|_| !self.is_empty()) else {
            return Ok(None);
        };
        if let Some((_, model)) = self.choices.iter().find(|(name, _)| name == requested) {
            return Ok(Some(model.clone()));
        }
        if requested == default {
            return Ok(None);
        }
        let mut offered: Vec<String> = self.choices.iter().map(|(name, _)| name.clone()).collect();
        if !offered.iter().any(|name| name == default) {
            offered.insert(0, default.to_owned());
        }
        Err(NotAllowed {
            requested: requested.chars().take(MAX_ECHOED).collect(),
            offered,
        })
    }

    /// The names and models, for the start-up line (`fast=gpt-4o-mini, gpt-4o`).
    pub fn describe(&self) -> String {
        let shown: Vec<String> = self
            .choices
            .iter()
            .map(|(name, model)| {
                if name == model {
                    name.clone()
                } else {
                    format!("{name}={model}")
                }
            })
            .collect();
        shown.join(", ")
    }

    /// Every model a reply may be sent with, for bounding metrics labels.
    pub fn models(&self) -> impl Iterator<Item = &str> {
        self.choices.iter().map(|(_, model)| model.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_aliases_choose_and_others_are_refused() {
        let allowed =
            AllowedModels::parse(&["fast=gpt-4o-mini".into(), "gpt-4o".into()]).expect("valid");
        assert_eq!(allowed.choose(None, "base"), Ok(None));
        assert_eq!(
            allowed.choose(Some("fast"), "base"),
            Ok(Some("gpt-4o-mini".into()))
        );
        assert_eq!(
            allowed.choose(Some("gpt-4o"), "base"),
            Ok(Some("gpt-4o".into()))
        );
        assert_eq!(allowed.choose(Some("base"), "base"), Ok(None));
        let refused = allowed
            .choose(Some("gpt-4o-mini"), "base")
            .expect_err("alias only");
        assert_eq!(refused.offered, vec!["base", "fast", "gpt-4o"]);
        let open = AllowedModels::default();
        assert_eq!(open.choose(Some("anything"), "base"), Ok(None));
        assert!(AllowedModels::parse(&["=x".into()]).is_err());
        assert!(AllowedModels::parse(&["a=x".into(), "a=y".into()]).is_err());
    }
}
