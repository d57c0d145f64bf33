//! Optional client authentication: shared bearer tokens and/or JWTs (HS256 secret, or an
//! RS256/ES256 public key), with expiry checked. Over HTTP the token comes in
//! `Authorization: Bearer …`; over WebSocket, where browsers cannot set headers, as a
//! subprotocol `bearer.<token>` (Deep Chat's `websocket: ["bearer.<token>"]`).

use hyper::header::{HeaderMap, AUTHORIZATION, SEC_WEBSOCKET_PROTOCOL};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};

/// Subprotocol prefix that carries a token on WebSocket upgrades.
pub const BEARER_PROTOCOL_PREFIX: &str = "bearer.";

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

    /// Checks the request's credentials; returns a stable identity for rate limiting.
    pub fn verify(&self, headers: &HeaderMap) -> Result<String, AuthError> {
        let token = bearer_token(headers).ok_or(AuthError::Missing)?;
        if let Some(index) = self.tokens.iter().position(|t| constant_time_eq(t, &token)) {
            return Ok(format!("token-{index}"));
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

/// The bearer token from `Authorization`, else from a `bearer.` WebSocket subprotocol.
pub fn bearer_token(headers: &HeaderMap) -> Option<String> {
    if let Some(value) = headers.get(AUTHORIZATION).and_then(|v| v.to_str().ok()) {
        let (scheme, token) = value.trim().split_once(' ')?;
        return scheme
            .eq_ignore_ascii_case("bearer")
            .then(|| token.trim().to_owned());
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
        assert_eq!(
            auth.verify(&headers("authorization", "Bearer t2")),
            Ok("token-1".into())
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
    fn constant_time_eq_is_equality() {
        assert!(constant_time_eq("abc", "abc"));
        assert!(!constant_time_eq("abc", "abd"));
        assert!(!constant_time_eq("abc", "abcd"));
        assert!(!constant_time_eq("", "a"));
    }
}
