//! Which browser origins may use the proxy. Checked before any work on every WebSocket upgrade
//! and HTTP request, so a foreign site cannot spend the operator's keys from its visitors'
//! browsers (cross-site WebSocket hijacking), and used for CORS on the HTTP modes.

/// The `--allow-origin` policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OriginPolicy {
    /// `--allow-origin '*'`: any origin.
    Any,
    /// Exactly these origins (and subdomain patterns), plus loopback pages and clients that
    /// send no `Origin` (servers, CLIs) when the list is empty.
    List(Vec<AllowedOrigin>),
}

/// One `--allow-origin` entry, normalized (lower case, no trailing slash).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AllowedOrigin {
    /// `https://app.example.com`: that origin only.
    Exact(String),
    /// `https://*.example.com[:port]`: any subdomain of example.com, at any depth, with that
    /// scheme and port; not example.com itself (name it separately), as with TLS wildcards.
    Subdomains {
        scheme: String,
        /// `.example.com`, with the leading dot so `evilexample.com` cannot match.
        suffix: String,
        port: Option<u16>,
    },
}

/// An `--allow-origin` value that could never match what a browser sends.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("--allow-origin {value:?}: {reason}")]
pub struct OriginError {
    pub value: String,
    pub reason: &'static str,
}

impl OriginPolicy {
    /// Parses every `--allow-origin` value, reporting each one that is not an origin.
    pub fn parse(values: &[String]) -> Result<OriginPolicy, Vec<OriginError>> {
        if values.iter().any(|o| o.trim() == "*") {
            return Ok(OriginPolicy::Any);
        }
        let mut allowed = Vec::new();
        let mut errors = Vec::new();
        for value in values.iter().filter(|v| !v.trim().is_empty()) {
            match AllowedOrigin::parse(value) {
                Ok(origin) => allowed.push(origin),
                Err(reason) => errors.push(OriginError {
                    value: value.clone(),
                    reason,
                }),
            }
        }
        if errors.is_empty() {
            Ok(OriginPolicy::List(allowed))
        } else {
            Err(errors)
        }
    }

    /// Whether a request with this `Origin` header (if any) is let in.
    pub fn allows(&self, origin: Option<&str>) -> bool {
        let Some(origin) = origin else {
            // Browsers always send Origin on WebSocket upgrades and CORS requests; its absence
            // means a non-browser client, which cannot be abused from a foreign page.
            return true;
        };
        match self {
            OriginPolicy::Any => true,
            OriginPolicy::List(list) if list.is_empty() => is_loopback_origin(origin),
            OriginPolicy::List(list) => {
                let origin = origin.trim_end_matches('/').to_ascii_lowercase();
                list.iter().any(|allowed| allowed.matches(&origin))
            }
        }
    }

    /// One phrase for the start-up line.
    pub fn describe(&self) -> String {
        match self {
            OriginPolicy::Any => "any origin".into(),
            OriginPolicy::List(list) if list.is_empty() => {
                "loopback pages and clients without Origin".into()
            }
            OriginPolicy::List(list) => list
                .iter()
                .map(AllowedOrigin::to_string)
                .collect::<Vec<_>>()
                .join(" "),
        }
    }
}

impl AllowedOrigin {
    fn parse(value: &str) -> Result<AllowedOrigin, &'static str> {
        let normalized = value.trim().trim_end_matches('/').to_ascii_lowercase();
        let (scheme, host, port) = split_origin(&normalized).ok_or(
            "not an origin: write scheme://host[:port], e.g. https://app.example.com \
             (no path), or * for any origin",
        )?;
        if host.contains('*') {
            let suffix = host
                .strip_prefix('*')
                .filter(|rest| rest.starts_with('.') && !rest.contains('*'))
                .ok_or("a wildcard may only be the first label: https://*.example.com")?;
            if suffix.split('.').filter(|label| !label.is_empty()).count() < 2 {
                return Err("a wildcard needs a registrable domain: https://*.example.com");
            }
            return Ok(AllowedOrigin::Subdomains {
                scheme: scheme.to_owned(),
                suffix: suffix.to_owned(),
                port,
            });
        }
        Ok(AllowedOrigin::Exact(normalized))
    }

    /// `origin` is already trimmed and lower-cased.
    fn matches(&self, origin: &str) -> bool {
        match self {
            AllowedOrigin::Exact(exact) => exact == origin,
            AllowedOrigin::Subdomains {
                scheme,
                suffix,
                port,
            } => split_origin(origin).is_some_and(|(s, host, p)| {
                s == scheme
                    && p == *port
                    && host
                        .strip_suffix(suffix.as_str())
                        .is_some_and(|sub| !sub.is_empty() && !sub.ends_with('.'))
            }),
        }
    }
}

impl std::fmt::Display for AllowedOrigin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AllowedOrigin::Exact(origin) => f.write_str(origin),
            AllowedOrigin::Subdomains {
                scheme,
                suffix,
                port: None,
            } => write!(f, "{scheme}://*{suffix}"),
            AllowedOrigin::Subdomains {
                scheme,
                suffix,
                port: Some(port),
            } => write!(f, "{scheme}://*{suffix}:{port}"),
        }
    }
}

/// `scheme://host[:port]` with nothing else (no path, query, user info); the host made of
/// letters, digits, `-`, `.`, `*`, or a bracketed IPv6 address. `None` for anything else.
fn split_origin(origin: &str) -> Option<(&str, &str, Option<u16>)> {
    let (scheme, rest) = origin.split_once("://")?;
    let scheme_ok = scheme.starts_with(|c: char| c.is_ascii_alphabetic())
        && scheme
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
    if !scheme_ok || rest.is_empty() {
        return None;
    }
    let (host, port) = if rest.starts_with('[') {
        let end = rest.find(']')?;
        let (host, after) = rest.split_at(end + 1);
        (host, after.strip_prefix(':'))
    } else {
        match rest.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (rest, None),
        }
    };
    let host_ok = if host.starts_with('[') {
        host[1..host.len() - 1]
            .parse::<std::net::Ipv6Addr>()
            .is_ok()
    } else {
        !host.is_empty()
            && host
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '*'))
    };
    if !host_ok {
        return None;
    }
    let port = match port {
        None => None,
        Some(digits) => Some(digits.parse::<u16>().ok()?),
    };
    Some((scheme, host, port))
}

/// `http(s)://localhost`, `127.x.x.x` or `[::1]`, any port.
fn is_loopback_origin(origin: &str) -> bool {
    let Some((scheme, rest)) = origin.split_once("://") else {
        return false;
    };
    if !matches!(scheme, "http" | "https") {
        return false;
    }
    let host = if let Some(v6) = rest.strip_prefix('[') {
        v6.split(']').next().unwrap_or_default()
    } else {
        rest.split(':').next().unwrap_or_default()
    };
    host.eq_ignore_ascii_case("localhost")
        || host == "::1"
        || host
            .parse::<std::net::Ipv4Addr>()
            .is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_admits_loopback_and_originless_clients_only() {
        let policy = parse(&[]);
        assert!(policy.allows(None));
        for origin in [
            "http://localhost:3000",
            "http://127.0.0.1:8080",
            "https://[::1]:1",
            "http://127.9.9.9",
        ] {
            assert!(policy.allows(Some(origin)), "{origin}");
        }
        for origin in [
            "https://evil.example",
            "http://localhost.evil.example",
            "null",
            "file://",
            "http://10.0.0.1",
        ] {
            assert!(!policy.allows(Some(origin)), "{origin}");
        }
    }

    #[test]
    fn explicit_list_and_wildcard() {
        let policy = parse(&["https://App.example.com/"]);
        assert!(policy.allows(Some("https://app.example.com")));
        assert!(!policy.allows(Some("http://localhost:3000")));
        assert!(!policy.allows(Some("https://app.example.com.evil.test")));
        assert!(parse(&["*"]).allows(Some("https://anything.test")));
    }

    #[test]
    fn subdomain_patterns_match_subdomains_only() {
        let policy = parse(&["https://*.example.com", "http://*.dev.test:3000"]);
        for origin in [
            "https://app.example.com",
            "https://a.b.example.com",
            "HTTPS://App.Example.com",
            "http://x.dev.test:3000",
        ] {
            assert!(policy.allows(Some(origin)), "{origin}");
        }
        for origin in [
            "https://example.com",
            "https://evilexample.com",
            "https://example.com.evil.test",
            "http://app.example.com",
            "https://app.example.com:8443",
            "http://x.dev.test",
            "http://x.dev.test:3001",
            "https://.example.com",
        ] {
            assert!(!policy.allows(Some(origin)), "{origin}");
        }
        assert_eq!(
            policy.describe(),
            "https://*.example.com http://*.dev.test:3000"
        );
    }

    #[test]
    fn values_that_are_not_origins_are_refused() {
        for value in [
            "notanorigin",
            "app.example.com",
            "https://app.example.com/chat",
            "https://user@app.example.com",
            "https://app.example.com:99999",
            "https://*",
            "https://*.com",
            "https://app.*.com",
            "https://*example.com",
            "null",
        ] {
            let errors = OriginPolicy::parse(&[value.into()]).expect_err(value);
            assert_eq!(errors.len(), 1, "{value}");
            assert!(errors[0].to_string().contains(value), "{}", errors[0]);
        }
        let both = OriginPolicy::parse(&["bad".into(), "https://ok.test".into(), "worse".into()]);
        assert_eq!(both.expect_err("two bad").len(), 2);
    }

    fn parse(values: &[&str]) -> OriginPolicy {
        let values: Vec<String> = values.iter().map(|v| v.to_string()).collect();
        OriginPolicy::parse(&values).expect("valid origins")
    }
}
