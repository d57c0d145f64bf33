//! Optional client authentication: shared bearer tokens and/or JWTs (HS256 secret, or an
//! RS256/ES256 public key), with expiry, not-before, and optionally audience and issuer checked. Over HTTP the token comes in
//! `Authorization: Bearer …`; over WebSocket, where browsers cannot set headers, as a
//! subprotocol `bearer.<token>` (Deep Chat's `websocket: ["bearer.<token>"]`).

use hyper::header::{HeaderMap, AUTHORIZATION, SEC_WEBSOCKET_PROTOCOL};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};

/// Subprotocol prefix that carries a token on WebSocket upgrades.
pub const BEARER_PROTOCOL_PREFIX: &str = "bearer.";

/// What a JWT must carry besides a valid signature (`--jwt-audience`, `--jwt-issuer`,
/// `--jwt-leeway`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct JwtRules {
    /// The `aud` a token must name; without it a token naming any audience is refused, since
    /// it was issued for some other service.
    pub audience: Option<String>,
    /// The `iss` a token must name; without it any issuer (or none) is accepted.
    pub issuer: Option<String>,
    /// Clock skew allowed on `exp` and `nbf`, in seconds.
    pub leeway_secs: u64,
}

impl JwtRules {
    /// Applies the rules to a key's validation: `exp` required, `nbf` (when present) checked,
    /// a configured audience or issuer required and matched.
    pub fn apply(&self, validation: &mut Validation) {
        validation.validate_exp = true;
        validation.validate_nbf = true;
        validation.leeway = self.leeway_secs;
        let mut required = vec!["exp"];
        if let Some(audience) = &self.audience {
            validation.set_audience(&[audience]);
            required.push("aud");
        }
        if let Some(issuer) = &self.issuer {
            validation.set_issuer(&[issuer]);
            required.push("iss");
        }
        validation.set_required_spec_claims(&required);
    }
}

/// How clients prove who they are. Absent when no auth flag is set.
pub struct Auth {
    /// Shared tokens; any one admits.
    tokens: Vec<String>,
    /// JWT verification key and rules.
    jwt: Option<(DecodingKey, Validation)>,
}

/// Why a client was turned away; shown in the 401 body.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("missing credentials: send Authorization: Bearer <token> (WebSocket: subprotocol bearer.<token>)")]
    Missing,
    #[error("invalid or expired token")]
    Invalid,
}

impl Auth {
    pub fn new(tokens: Vec<String>, jwt: Option<(DecodingKey, Validation)>) -> Auth {
        Auth { tokens, jwt }
    }

    /// HS256 with a shared secret.
    pub fn hs256(secret: &[u8]) -> (DecodingKey, Validation) {
        (
            DecodingKey::from_secret(secret),
            Validation::new(Algorithm::HS256),
        )
    }

    /// RS256 or ES256 from a PEM public key, by the key's type.
    pub fn public_key(pem: &[u8]) -> Option<(DecodingKey, Validation)> {
        if let Ok(key) = DecodingKey::from_rsa_pem(pem) {
            return Some((key, Validation::new(Algorithm::RS256)));
        }
        DecodingKey::from_ec_pem(pem)
            .ok()
            .map(|key| (key, Validation::new(Algorithm::ES256)))
    }

    /// Checks the request's credentials; returns a stable identity (the principal) for rate
    /// limiting and conversation ownership: `token-` and a hash of the token (never the token,
    /// and stable when the list is reordered), or `jwt-` and the JWT's `sub`.
    pub fn verify(&self, headers: &HeaderMap) -> Result<String, AuthError> {
        let token = bearer_token(headers).ok_or(AuthError::Missing)?;
        if self.tokens.iter().any(|t| constant_time_eq(t, &token)) {
            return Ok(format!("token-{}", fingerprint(&token)));
        }
        if let Some((key, validation)) = &self.jwt {
            if let Ok(data) = jsonwebtoken::decode::<serde_json::Value>(&token, key, validation) {
                let subject = data
                    .claims
                    .get("sub")
                    .and_then(|s| s.as_str())
                    .unwrap_or("");
                return Ok(format!("jwt-{subject}"));
            }
        }
        Err(AuthError::Invalid)
    }
}

/// The bearer token from `Authorization: Bearer`, else from a `bearer.` WebSocket subprotocol.
/// Another scheme (`Basic`, sent by browsers on a site behind HTTP basic auth) is not ours to
/// judge, so it does not hide the subprotocol.
pub fn bearer_token(headers: &HeaderMap) -> Option<String> {
    let authorization = headers
        .get_all(AUTHORIZATION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|value| {
            let (scheme, token) = value.trim().split_once(' ')?;
            scheme
                .eq_ignore_ascii_case("bearer")
                .then(|| token.trim().to_owned())
        });
    if authorization.is_some() {
        return authorization;
    }
    headers
        .get_all(SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .find_map(|p| {
            p.trim()
                .strip_prefix(BEARER_PROTOCOL_PREFIX)
                .map(str::to_owned)
        })
}

/// The first 128 bits of the token's SHA-256, in hex: names a token without revealing it.
fn fingerprint(token: &str) -> String {
    use sha2::{Digest, Sha256};
    Sha256::digest(token.as_bytes())[..16]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Compares without an early exit, so response timing does not reveal a token's prefix.
fn constant_time_eq(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    let mut diff = a.len() ^ b.len();
    for i in 0..a.len().max(b.len()) {
        diff |= usize::from(a.get(i).copied().unwrap_or(0) ^ b.get(i).copied().unwrap_or(0));
    }
    diff == 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use hyper::header::HeaderValue;

    fn headers(name: &'static str, value: &str) -> HeaderMap {
        let mut map = HeaderMap::new();
        map.insert(name, HeaderValue::from_str(value).expect("header"));
        map
    }

    #[test]
    fn tokens_from_header_or_subprotocol() {
        assert_eq!(
            bearer_token(&headers("authorization", "Bearer abc")).as_deref(),
            Some("abc")
        );
        assert_eq!(bearer_token(&headers("authorization", "Basic abc")), None);
        let mut basic_and_protocol = headers("authorization", "Basic dXNlcjpwdw==");
        basic_and_protocol.insert(
            SEC_WEBSOCKET_PROTOCOL,
            HeaderValue::from_static("bearer.from-protocol"),
        );
        assert_eq!(
            bearer_token(&basic_and_protocol).as_deref(),
            Some("from-protocol")
        );
        basic_and_protocol.insert(
            AUTHORIZATION,
            HeaderValue::from_static("Bearer from-header"),
        );
        assert_eq!(
            bearer_token(&basic_and_protocol).as_deref(),
            Some("from-header"),
            "a Bearer header wins over the subprotocol"
        );
        assert_eq!(
            bearer_token(&headers("sec-websocket-protocol", "chat, bearer.t0k-en")).as_deref(),
            Some("t0k-en")
        );
        assert_eq!(bearer_token(&HeaderMap::new()), None);
    }

    #[test]
    fn shared_tokens_and_hs256_jwts() {
        let (key, validation) = Auth::hs256(b"secret");
        let auth = Auth::new(vec!["t1".into(), "t2".into()], Some((key, validation)));
        let t2 = auth
            .verify(&headers("authorization", "Bearer t2"))
            .expect("t2");
        assert_eq!(t2, format!("token-{}", fingerprint("t2")));
        assert!(!t2.contains("t2"), "the identity never holds the token");
        assert_ne!(
            auth.verify(&headers("authorization", "Bearer t1")),
            Ok(t2.clone())
        );
        assert_eq!(
            auth.verify(&headers("authorization", "Bearer t3")),
            Err(AuthError::Invalid)
        );
        assert_eq!(auth.verify(&HeaderMap::new()), Err(AuthError::Missing));

        let claims = |exp: u64| serde_json::json!({"sub": "alice", "exp": exp});
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("clock")
            .as_secs();
        let sign = |claims: serde_json::Value, secret: &[u8]| {
            jsonwebtoken::encode(
                &jsonwebtoken::Header::default(),
                &claims,
                &jsonwebtoken::EncodingKey::from_secret(secret),
            )
            .expect("sign")
        };
        let good = sign(claims(now + 600), b"secret");
        assert_eq!(
            auth.verify(&headers("authorization", &format!("Bearer {good}"))),
            Ok("jwt-alice".into())
        );
        let expired = sign(claims(now - 600), b"secret");
        assert!(auth
            .verify(&headers("authorization", &format!("Bearer {expired}")))
            .is_err());
        let forged = sign(claims(now + 600), b"other");
        assert!(auth
            .verify(&headers("authorization", &format!("Bearer {forged}")))
            .is_err());
    }

    #[test]
    fn jwt_rules_check_nbf_audience_issuer_and_leeway() {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("clock")
            .as_secs();
        let verify = |rules: &JwtRules, claims: serde_json::Value| {
            let (key, mut validation) = Auth::hs256(b"secret");
            rules.apply(&mut validation);
            let auth = Auth::new(Vec::new(), Some((key, validation)));
            let token = jsonwebtoken::encode(
                &jsonwebtoken::Header::default(),
                &claims,
                &jsonwebtoken::EncodingKey::from_secret(b"secret"),
            )
            .expect("sign");
            auth.verify(&headers("authorization", &format!("Bearer {token}")))
        };
        let open = JwtRules {
            leeway_secs: 60,
            ..JwtRules::default()
        };
        let exp = now + 600;
        assert!(verify(&open, serde_json::json!({"exp": exp, "nbf": now})).is_ok());
        assert!(verify(&open, serde_json::json!({"exp": exp, "nbf": now + 300})).is_err());
        assert!(verify(&open, serde_json::json!({"exp": exp, "aud": "other"})).is_err());
        assert!(verify(&open, serde_json::json!({"exp": now - 30})).is_ok());
        let strict = JwtRules {
            audience: Some("chat".into()),
            issuer: Some("https://id.example".into()),
            leeway_secs: 0,
        };
        let good = serde_json::json!({"exp": exp, "aud": "chat", "iss": "https://id.example"});
        assert!(verify(&strict, good).is_ok());
        for bad in [
            serde_json::json!({"exp": exp, "aud": "other", "iss": "https://id.example"}),
            serde_json::json!({"exp": exp, "iss": "https://id.example"}),
            serde_json::json!({"exp": exp, "aud": "chat", "iss": "https://evil.example"}),
            serde_json::json!({"exp": exp, "aud": "chat"}),
            serde_json::json!({"exp": now - 30, "aud": "chat", "iss": "https://id.example"}),
        ] {
            assert!(verify(&strict, bad.clone()).is_err(), "{bad}");
        }
    }

    #[test]
    fn constant_time_eq_is_equality() {
        assert!(constant_time_eq("abc", "abc"));
        assert!(!constant_time_eq("abc", "abd"));
        assert!(!constant_time_eq("abc", "abcd"));
        assert!(!constant_time_eq("", "a"));
    }
}
