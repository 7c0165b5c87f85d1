//! `BUYER_AUTH` and the `JWT_*` variables.
//!
//! - `BUYER_AUTH` (`none`): `none` keeps the seed's open contract (the body
//!   names the buyer); `jwt` puts purchases and lookups behind a bearer
//!   token whose `sub` is the buyer.
//! - exactly one key source in `jwt` mode: `JWT_SECRET` (HS256/384/512),
//!   `JWT_PUBLIC_KEY_FILE` (a PEM public key: RS*/PS*, ES256/384 or EdDSA,
//!   by the key's type) or `JWT_JWKS_URL` (the identity provider's key set)
//! - `JWT_ISSUER`, `JWT_AUDIENCE`: required in `jwt` mode, checked on every
//!   token
//! - `JWT_LEEWAY_SECONDS` (`30`): clock skew allowed on `exp` and `nbf`
//! - `JWT_JWKS_MIN_REFRESH_SECONDS` (`30`): a token naming a key not in the
//!   JWKS refetches it at most this often
//! - `BUYER_SIGN_IN_URL` (none): where the storefront sends a buyer to sign
//!   in; shown by `GET /api/config`

use std::path::PathBuf;

use domain::config::{ConfigError, Env};

/// How the api knows who the buyer is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthSettings {
    /// The body's `userId` is the buyer (the seed's contract).
    Open,
    /// A verified bearer token's `sub` is the buyer.
    Jwt(JwtSettings),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JwtSettings {
    pub keys: KeySource,
    pub issuer: String,
    pub audience: String,
    pub leeway_seconds: u64,
    pub jwks_min_refresh: std::time::Duration,
    pub sign_in_url: Option<String>,
}

/// Where the keys that verify tokens come from.
#[derive(Clone, PartialEq, Eq)]
pub enum KeySource {
    Secret(String),
    PublicKeyFile(PathBuf),
    Jwks(String),
}

impl std::fmt::Debug for KeySource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            // Never in a log line.
            Self::Secret(_) => f.write_str("Secret(..)"),
            Self::PublicKeyFile(path) => f.debug_tuple("PublicKeyFile").field(path).finish(),
            Self::Jwks(url) => f.debug_tuple("Jwks").field(url).finish(),
        }
    }
}

impl AuthSettings {
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        match env.string("BUYER_AUTH", "none").as_str() {
            "none" => Ok(Self::Open),
            "jwt" => JwtSettings::from_env(env).map(Self::Jwt),
            other => Err(ConfigError::new(
                "BUYER_AUTH",
                other,
                "expected none or jwt",
            )),
        }
    }
}

impl JwtSettings {
    fn from_env(env: &Env) -> Result<Self, ConfigError> {
        let keys = KeySource::from_env(env)?;
        Ok(Self {
            keys,
            issuer: required(env, "JWT_ISSUER")?,
            audience: required(env, "JWT_AUDIENCE")?,
            leeway_seconds: env.parse("JWT_LEEWAY_SECONDS", 30)?,
            jwks_min_refresh: std::time::Duration::from_secs(
                env.positive("JWT_JWKS_MIN_REFRESH_SECONDS", 30)?,
            ),
            sign_in_url: env.get("BUYER_SIGN_IN_URL").map(str::to_owned),
        })
    }
}

impl KeySource {
    /// Exactly one of `JWT_SECRET`, `JWT_PUBLIC_KEY_FILE`, `JWT_JWKS_URL`.
    fn from_env(env: &Env) -> Result<Self, ConfigError> {
        let sources: Vec<KeySource> = [
            env.get("JWT_SECRET").map(|s| Self::Secret(s.to_owned())),
            env.get("JWT_PUBLIC_KEY_FILE")
                .map(|p| Self::PublicKeyFile(PathBuf::from(p))),
            env.get("JWT_JWKS_URL").map(|u| Self::Jwks(u.to_owned())),
        ]
        .into_iter()
        .flatten()
        .collect();
        let source = match <[KeySource; 1]>::try_from(sources) {
            Ok([source]) => source,
            Err(sources) if sources.is_empty() => {
                return Err(ConfigError::new(
                    "JWT_SECRET",
                    "",
                    "BUYER_AUTH=jwt needs one key source: JWT_SECRET, JWT_PUBLIC_KEY_FILE or JWT_JWKS_URL",
                ))
            }
            Err(sources) => {
                let names: Vec<&str> = sources.iter().map(KeySource::variable).collect();
                return Err(ConfigError::new(
                    names[names.len() - 1],
                    "",
                    format!("set exactly one key source, not {}", names.join(" and ")),
                ));
            }
        };
        match &source {
            Self::Secret(secret) if secret.len() < 32 => Err(ConfigError::new(
                "JWT_SECRET",
                "(hidden)",
                "must be at least 32 bytes: a shorter HMAC secret can be guessed",
            )),
            Self::Jwks(url) if !(url.starts_with("https://") || url.starts_with("http://")) => Err(
                ConfigError::new("JWT_JWKS_URL", url, "expected an http:// or https:// URL"),
            ),
            _ => Ok(source),
        }
    }
}

impl KeySource {
    /// The variable that sets this source.
    fn variable(&self) -> &'static str {
        match self {
            Self::Secret(_) => "JWT_SECRET",
            Self::PublicKeyFile(_) => "JWT_PUBLIC_KEY_FILE",
            Self::Jwks(_) => "JWT_JWKS_URL",
        }
    }
}

fn required(env: &Env, name: &str) -> Result<String, ConfigError> {
    env.get(name)
        .map(str::to_owned)
        .ok_or_else(|| ConfigError::new(name, "", "required when BUYER_AUTH=jwt"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "0123456789abcdef0123456789abcdef";

    fn jwt(extra: &[(&str, &str)]) -> Result<AuthSettings, ConfigError> {
        let mut pairs = vec![
            ("BUYER_AUTH", "jwt"),
            ("JWT_ISSUER", "https://shop.example"),
            ("JWT_AUDIENCE", "flash-sale"),
        ];
        pairs.extend_from_slice(extra);
        AuthSettings::from_env(&Env::from_pairs(pairs))
    }

    #[test]
    fn the_default_is_the_open_contract() {
        assert_eq!(
            AuthSettings::from_env(&Env::default()),
            Ok(AuthSettings::Open)
        );
    }

    #[test]
    fn jwt_mode_reads_its_settings() {
        let Ok(AuthSettings::Jwt(settings)) = jwt(&[("JWT_SECRET", SECRET)]) else {
            panic!("valid jwt settings");
        };
        assert_eq!(settings.keys, KeySource::Secret(SECRET.to_owned()));
        assert_eq!(settings.leeway_seconds, 30);
        assert_eq!(settings.issuer, "https://shop.example");
    }

    #[test]
    fn refusals_name_the_variable() {
        let name = |r: Result<AuthSettings, ConfigError>| r.map_err(|e| e.name).err();
        assert_eq!(name(jwt(&[])), Some("JWT_SECRET".into()));
        assert_eq!(
            name(jwt(&[
                ("JWT_SECRET", SECRET),
                ("JWT_JWKS_URL", "https://idp/jwks")
            ])),
            Some("JWT_JWKS_URL".into())
        );
        assert_eq!(
            name(jwt(&[("JWT_SECRET", "short")])),
            Some("JWT_SECRET".into())
        );
        assert_eq!(
            name(jwt(&[("JWT_JWKS_URL", "ftp://idp/jwks")])),
            Some("JWT_JWKS_URL".into())
        );
        let no_issuer = Env::from_pairs([
            ("BUYER_AUTH", "jwt"),
            ("JWT_SECRET", SECRET),
            ("JWT_AUDIENCE", "flash-sale"),
        ]);
        assert_eq!(
            name(AuthSettings::from_env(&no_issuer)),
            Some("JWT_ISSUER".into())
        );
        let no_audience = Env::from_pairs([
            ("BUYER_AUTH", "jwt"),
            ("JWT_SECRET", SECRET),
            ("JWT_ISSUER", "https://shop.example"),
        ]);
        assert_eq!(
            name(AuthSettings::from_env(&no_audience)),
            Some("JWT_AUDIENCE".into())
        );
        assert_eq!(
            name(AuthSettings::from_env(&Env::from_pairs([(
                "BUYER_AUTH",
                "oauth"
            )]))),
            Some("BUYER_AUTH".into())
        );
        assert_eq!(
            name(jwt(&[("JWT_SECRET", SECRET), ("JWT_LEEWAY_SECONDS", "-1")])),
            Some("JWT_LEEWAY_SECONDS".into())
        );
    }
}
