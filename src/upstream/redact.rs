//! Secrets that must never leave toward the browser or the logs: the API key (from its variable
//! or its file) and every `--header` value. Text that came from the upstream is redacted
//! before it is shown; the adapters cut long upstream text to an excerpt, and a secret cut in
//! two by that excerpt is caught too: a cut edge (the end of the text, or an `…`) that ends in
//! the first characters of a secret counts as the secret.

/// What replaces a secret.
const REDACTED: &str = "[redacted]";

/// Values shorter than this are not treated as secrets: they are not credentials, and
/// redacting them would garble ordinary words in error messages.
const MIN_SECRET_CHARS: usize = 8;

/// Fewest leading characters of a secret at a cut edge that count as the secret.
const MIN_CUT_PREFIX_CHARS: usize = 4;

/// The set of secret values for one upstream.
#[derive(Clone, Default)]
pub struct Secrets {
    values: Vec<String>,
}

impl std::fmt::Debug for Secrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Secrets({} values)", self.values.len())
    }
}

impl Secrets {
    /// Collects the secrets worth redacting, longest first (so one that contains another is
    /// replaced whole).
    pub fn new<'a>(values: impl IntoIterator<Item = &'a str>) -> Secrets {
        let mut values: Vec<String> = values
            .into_iter()
            .map(str::trim)
            .filter(|v| v.chars().count() >= MIN_SECRET_CHARS)
            .map(str::to_owned)
            .collect();
        values.sort_by_key(|v| std::cmp::Reverse(v.len()));
        values.dedup();
        Secrets { values }
    }

    /// `text` with every secret, whole or cut at an edge, replaced by `[redacted]`.
    pub fn redact(&self, text: &str) -> String {
        let mut out = text.to_owned();
        for secret in &self.values {
            if out.contains(secret.as_str()) {
                out = out.replace(secret.as_str(), REDACTED);
            }
        }
        for secret in &self.values {
            out = redact_cut_edges(&out, secret);
        }
        out
    }
}

/// Replaces a secret's leading characters where they stand right before a cut edge.
fn redact_cut_edges(text: &str, secret: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    loop {
        let (segment, edge, after) = match rest.find('…') {
            Some(at) => (&rest[..at], "…", &rest[at + '…'.len_utf8()..]),
            None => (rest, "", ""),
        };
        let cut = longest_secret_prefix_suffix(segment, secret);
        out.push_str(&segment[..segment.len() - cut]);
        if cut > 0 {
            out.push_str(REDACTED);
        }
        out.push_str(edge);
        if edge.is_empty() {
            return out;
        }
        rest = after;
    }
}

/// Byte length of the longest suffix of `segment` that is a prefix of `secret` of at least
/// [`MIN_CUT_PREFIX_CHARS`] characters; 0 when there is none.
fn longest_secret_prefix_suffix(segment: &str, secret: &str) -> usize {
    let mut best = 0;
    for (start, _) in segment.char_indices() {
        let suffix = &segment[start..];
        if suffix.len() < best || suffix.len() > secret.len() {
            continue;
        }
        if secret.starts_with(suffix) && suffix.chars().count() >= MIN_CUT_PREFIX_CHARS {
            best = best.max(suffix.len());
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "sk-live-0123456789abcdefghijklmnopqrstuv";

    #[test]
    fn whole_secrets_are_replaced() {
        let secrets = Secrets::new([KEY]);
        assert_eq!(
            secrets.redact(&format!("bad key {KEY} given")),
            "bad key [redacted] given"
        );
        assert_eq!(secrets.redact("fine"), "fine");
    }

    #[test]
    fn a_secret_cut_at_the_end_or_before_an_ellipsis_is_replaced() {
        let secrets = Secrets::new([KEY]);
        let cut = &KEY[..39];
        assert_eq!(secrets.redact(&format!("data: {cut}")), "data: [redacted]");
        assert_eq!(
            secrets.redact(&format!("failed (HTTP 500): key={cut}… (more)")),
            "failed (HTTP 500): key=[redacted]… (more)"
        );
        // Only a few leading characters at the edge: still the secret.
        assert_eq!(secrets.redact("value sk-l"), "value [redacted]");
        // Too little to be the secret, and an ordinary ending.
        assert_eq!(secrets.redact("value sk-"), "value sk-");
        assert_eq!(secrets.redact("all good…"), "all good…");
    }

    #[test]
    fn short_values_are_not_secrets_and_every_secret_counts() {
        let secrets = Secrets::new(["1", "org-secret-42", KEY]);
        assert_eq!(
            secrets.redact("org-secret-42 and 1 and sk-live-01"),
            "[redacted] and 1 and [redacted]"
        );
        assert!(format!("{secrets:?}").starts_with("Secrets(2"));
    }
}
