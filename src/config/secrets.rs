//! The secrets the flags name: API keys from variables, mounted secret files, and the tokens
//! and JWT settings of `--auth-*`.

use super::*;

/// A missing or empty variable means "no key" (keyless local servers).
pub(super) fn read_key(variable: &str) -> Result<Option<ApiKey>, ConfigError> {
    match std::env::var(variable) {
        Ok(key) if !key.trim().is_empty() => Ok(Some(ApiKey(key.trim().to_owned()))),
        Ok(_) | Err(std::env::VarError::NotPresent) => Ok(None),
        Err(std::env::VarError::NotUnicode(_)) => Err(ConfigError::KeyEncoding(variable.into())),
    }
}

/// A mounted secret, trimmed; an empty file is an error rather than "no key".
pub(super) fn read_secret_file(path: &std::path::Path) -> Result<String, ConfigError> {
    let shown = path.display().to_string();
    let text = std::fs::read_to_string(path)
        .map_err(|e| ConfigError::File(shown.clone(), e.to_string()))?;
    let secret = text.trim();
    if secret.is_empty() {
        return Err(ConfigError::MissingSecret(shown));
    }
    Ok(secret.to_owned())
}

/// A secret that an auth flag requires: missing is a configuration error, not "open".
fn required_env(variable: &str) -> Result<String, ConfigError> {
    match read_key(variable)? {
        Some(key) => Ok(key.0),
        None => Err(ConfigError::MissingSecret(variable.to_owned())),
    }
}

pub(super) fn auth(cli: &ProxyArgs) -> Result<Option<Arc<Auth>>, ConfigError> {
    let tokens = match &cli.auth_token_env {
        Some(variable) => required_env(variable)?
            .split(',')
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .map(str::to_owned)
            .collect(),
        None => Vec::new(),
    };
    let jwt = match (&cli.jwt_secret_env, &cli.jwt_public_key) {
        (Some(variable), _) => Some(Auth::hs256(required_env(variable)?.as_bytes())),
        (None, Some(path)) => {
            let shown = path.display().to_string();
            let pem =
                std::fs::read(path).map_err(|e| ConfigError::File(shown.clone(), e.to_string()))?;
            Some(Auth::public_key(&pem).ok_or(ConfigError::PublicKey(shown))?)
        }
        (None, None) => None,
    };
    let rules = JwtRules {
        audience: cli.jwt_audience.clone().filter(|a| !a.is_empty()),
        issuer: cli.jwt_issuer.clone().filter(|i| !i.is_empty()),
        leeway_secs: cli.jwt_leeway,
    };
    let jwt = jwt.map(|(key, mut validation)| {
        rules.apply(&mut validation);
        (key, validation)
    });
    if tokens.is_empty() && jwt.is_none() {
        return Ok(None);
    }
    Ok(Some(Arc::new(Auth::new(tokens, jwt))))
}
