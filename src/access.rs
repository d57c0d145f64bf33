//! Which browser origins may use the proxy. Checked before any work on every WebSocket upgrade
//! and HTTP request, so a foreign site cannot spend the operator's keys from its visitors'
//! browsers (cross-site WebSocket hijacking), and used for CORS on the HTTP modes.

/// The `--allow-origin` policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OriginPolicy {
    /// `--allow-origin '*'`: any origin.
    Any,
    /// Exactly these origins (normalized, no trailing slash), plus loopback pages and clients
    /// that send no `Origin` (servers, CLIs) when the list is empty.
    List(Vec<String>),
}

impl OriginPolicy {
    pub fn from_flags(origins: &[String]) -> OriginPolicy {
        if origins.iter().any(|o| o.trim() == "*") {
            return OriginPolicy::Any;
        }
        OriginPolicy::List(
            origins
                .iter()
                .map(|o| o.trim().trim_end_matches('/').to_ascii_lowercase())
                .filter(|o| !o.is_empty())
                .collect(),
        )
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
                list.contains(&origin)
            }
        }
    }
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
        let policy = OriginPolicy::from_flags(&[]);
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
        let policy = OriginPolicy::from_flags(&["https://App.example.com/".into()]);
        assert!(policy.allows(Some("https://app.example.com")));
        assert!(!policy.allows(Some("http://localhost:3000")));
        assert!(!policy.allows(Some("https://app.example.com.evil.test")));
        assert!(OriginPolicy::from_flags(&["*".into()]).allows(Some("https://anything.test")));
    }
}
