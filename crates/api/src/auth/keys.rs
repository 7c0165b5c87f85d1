//! The keys that verify buyer tokens: a secret, a PEM public key, or the
//! identity provider's JWKS (fetched at start, refreshed when a token names
//! a key not in it, at most once per `JWT_JWKS_MIN_REFRESH_SECONDS` (30) — once per
//! [`RETRY_FAILED_FETCH_AFTER`] while fetches fail; the last good set stays
//! while the provider is down).

use std::{
    collections::HashMap,
    path::Path,
    str::FromStr,
    sync::{Arc, RwLock},
    time::{Duration, Instant},
};

use anyhow::Context;
use jsonwebtoken::{
    jwk::{AlgorithmParameters, EllipticCurve, Jwk, PublicKeyUse},
    Algorithm, DecodingKey,
};

use super::settings::KeySource;

/// After a failed fetch, the next may come this soon: a provider that was
/// down is used again within a second of its return.
pub const RETRY_FAILED_FETCH_AFTER: Duration = Duration::from_secs(1);

/// How long one JWKS fetch may take (tokens naming a new key wait for it).
const FETCH_TIMEOUT: Duration = Duration::from_secs(3);

/// One key and the algorithms it may verify: its own family only, so an
/// HS256 token "signed" with a public key is refused (algorithm confusion).
pub struct VerifyingKey {
    pub key: DecodingKey,
    pub algorithms: Vec<Algorithm>,
}

/// Why no key could be found for a token.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum KeyError {
    /// The token names a key the provider does not publish.
    #[error("unknown signing key")]
    Unknown,
    /// The provider's key set could not be fetched and holds no such key
    /// yet: the token may be good, so this is a 503, not a 401.
    #[error("the identity provider's keys cannot be fetched")]
    Unavailable,
    /// Not in the copy, which was fetched too recently to fetch again: the
    /// key may be newer than the copy (a rotation), so 503 and retry
    /// rather than telling a buyer their good token is bad.
    #[error("the key set is refetched at most every {0:?}")]
    NotYet(Duration),
}

pub enum Keys {
    /// A secret or a PEM key: one key, whatever the token's `kid`.
    Fixed(Arc<VerifyingKey>),
    Jwks(JwksKeys),
}

impl Keys {
    /// Reads the configured source. A PEM file that cannot be read stops
    /// start-up; a JWKS endpoint that is down does not (tokens get 503
    /// until it answers: the api starts in any order).
    pub async fn load(source: &KeySource, min_refresh: Duration) -> anyhow::Result<Self> {
        match source {
            KeySource::Secret(secret) => Ok(Self::Fixed(Arc::new(VerifyingKey {
                key: DecodingKey::from_secret(secret.as_bytes())
                    .context("JWT_SECRET is not a usable HMAC key")?,
                algorithms: vec![Algorithm::HS256, Algorithm::HS384, Algorithm::HS512],
            }))),
            KeySource::PublicKeyFile(path) => Ok(Self::Fixed(Arc::new(pem_key(path)?))),
            KeySource::Jwks(url) => {
                if url.starts_with("http://") {
                    tracing::warn!(%url, "JWT_JWKS_URL is plain http: whoever sits on that path can hand this api signing keys; use https outside a trusted network");
                }
                let keys = JwksKeys::new(url, min_refresh)?;
                if let Err(error) = keys.refresh().await {
                    tracing::warn!(%url, error = %format!("{error:#}"), "JWKS not fetched at start; buyers get 503 until it is");
                }
                Ok(Self::Jwks(keys))
            }
        }
    }

    /// The key that verifies a token naming `kid`.
    pub async fn for_token(&self, kid: Option<&str>) -> Result<Arc<VerifyingKey>, KeyError> {
        match self {
            Self::Fixed(key) => Ok(key.clone()),
            Self::Jwks(jwks) => jwks.for_token(kid).await,
        }
    }
}

fn pem_key(path: &Path) -> anyhow::Result<VerifyingKey> {
    let pem = std::fs::read(path)
        .with_context(|| format!("reading JWT_PUBLIC_KEY_FILE {}", path.display()))?;
    if let Ok(key) = DecodingKey::from_ec_pem(&pem) {
        // An uncompressed point: 65 bytes on P-256, 97 on P-384.
        let algorithm = match key.try_get_as_bytes().map(<[u8]>::len) {
            Ok(97) => Algorithm::ES384,
            _ => Algorithm::ES256,
        };
        return Ok(VerifyingKey {
            key,
            algorithms: vec![algorithm],
        });
    }
    if let Ok(key) = DecodingKey::from_ed_pem(&pem) {
        return Ok(VerifyingKey {
            key,
            algorithms: vec![Algorithm::EdDSA],
        });
    }
    if let Ok(key) = DecodingKey::from_rsa_pem(&pem) {
        return Ok(VerifyingKey {
            key,
            algorithms: RSA.to_vec(),
        });
    }
    anyhow::bail!(
        "JWT_PUBLIC_KEY_FILE {} holds no RSA, EC (P-256/P-384) or Ed25519 public key in PEM",
        path.display()
    )
}

const RSA: [Algorithm; 6] = [
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
];

/// The provider's published keys, by `kid`.
#[derive(Default)]
struct KeySet {
    named: HashMap<String, Arc<VerifyingKey>>,
    /// Keys published without a `kid`: usable by a token without one when
    /// the set has exactly one key.
    unnamed: Vec<Arc<VerifyingKey>>,
}

impl KeySet {
    fn find(&self, kid: Option<&str>) -> Option<Arc<VerifyingKey>> {
        match kid {
            Some(kid) => self.named.get(kid).cloned(),
            None => {
                let mut all = self.named.values().chain(&self.unnamed);
                match (all.next(), all.next()) {
                    (Some(only), None) => Some(only.clone()),
                    _ => None,
                }
            }
        }
    }
}

pub struct JwksKeys {
    url: String,
    min_refresh: Duration,
    client: reqwest::Client,
    current: RwLock<Arc<KeySet>>,
    /// When the last fetch was tried, and whether it succeeded; held across
    /// a fetch so that concurrent tokens wait for one fetch, not start many.
    last_fetch: tokio::sync::Mutex<Option<(Instant, bool)>>,
}

impl JwksKeys {
    fn new(url: &str, min_refresh: Duration) -> anyhow::Result<Self> {
        Ok(Self {
            url: url.to_owned(),
            min_refresh,
            client: reqwest::Client::builder()
                .timeout(FETCH_TIMEOUT)
                .build()
                .context("building the JWKS client")?,
            current: RwLock::new(Arc::default()),
            last_fetch: tokio::sync::Mutex::new(None),
        })
    }

    fn current(&self) -> Arc<KeySet> {
        match self.current.read() {
            Ok(set) => set.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    async fn for_token(&self, kid: Option<&str>) -> Result<Arc<VerifyingKey>, KeyError> {
        if let Some(key) = self.current().find(kid) {
            return Ok(key);
        }
        let mut last = self.last_fetch.lock().await;
        // Another token may have refreshed the set while this one waited.
        if let Some(key) = self.current().find(kid) {
            return Ok(key);
        }
        let wait = |ok: bool| {
            if ok {
                self.min_refresh
            } else {
                RETRY_FAILED_FETCH_AFTER
            }
        };
        let recent = last.filter(|(at, ok)| at.elapsed() < wait(*ok));
        let fetched = match recent {
            Some((at, true)) => {
                let left = wait(true).saturating_sub(at.elapsed());
                return self.current().find(kid).ok_or(KeyError::NotYet(left));
            }
            Some((_, false)) => false,
            None => {
                let ok = match self.fetch().await {
                    Ok(set) => {
                        self.replace(set);
                        true
                    }
                    Err(error) => {
                        tracing::warn!(url = %self.url, error = %format!("{error:#}"), "JWKS refresh failed; keeping the last good keys");
                        false
                    }
                };
                *last = Some((Instant::now(), ok));
                ok
            }
        };
        match self.current().find(kid) {
            Some(key) => Ok(key),
            None if fetched => Err(KeyError::Unknown),
            None => Err(KeyError::Unavailable),
        }
    }

    /// Fetches the set now (start-up). A success does not count against
    /// the refresh limit: a key rotated just after start is fetched at once.
    async fn refresh(&self) -> anyhow::Result<()> {
        let mut last = self.last_fetch.lock().await;
        let result = self.fetch().await.map(|set| self.replace(set));
        if result.is_err() {
            *last = Some((Instant::now(), false));
        }
        result
    }

    fn replace(&self, set: KeySet) {
        tracing::info!(url = %self.url, keys = set.named.len() + set.unnamed.len(), "JWKS loaded");
        let set = Arc::new(set);
        match self.current.write() {
            Ok(mut current) => *current = set,
            Err(poisoned) => *poisoned.into_inner() = set,
        }
    }

    async fn fetch(&self) -> anyhow::Result<KeySet> {
        let body: serde_json::Value = self
            .client
            .get(&self.url)
            .send()
            .await
            .context("requesting the JWKS")?
            .error_for_status()
            .context("the JWKS endpoint answered an error")?
            .json()
            .await
            .context("the JWKS is not JSON")?;
        let entries = body
            .get("keys")
            .and_then(serde_json::Value::as_array)
            .context("the JWKS has no \"keys\" array")?;
        let mut set = KeySet::default();
        for entry in entries {
            // One key this api cannot use never costs the others.
            let jwk = match serde_json::from_value::<Jwk>(entry.clone()) {
                Ok(jwk) => jwk,
                Err(error) => {
                    tracing::warn!(%error, "skipping a JWKS entry that is not a key");
                    continue;
                }
            };
            let Some(key) = verifying_key(&jwk) else {
                continue;
            };
            match jwk.common.key_id {
                Some(kid) => {
                    set.named.insert(kid, Arc::new(key));
                }
                None => set.unnamed.push(Arc::new(key)),
            }
        }
        Ok(set)
    }
}

/// A published signing key and its algorithms; `None` for encryption keys,
/// symmetric keys (a public set must not hold a shared secret) and key
/// types the crate cannot verify with.
fn verifying_key(jwk: &Jwk) -> Option<VerifyingKey> {
    if matches!(
        jwk.common.public_key_use,
        Some(PublicKeyUse::Encryption | PublicKeyUse::Other(_))
    ) {
        return None;
    }
    let by_type = match &jwk.algorithm {
        AlgorithmParameters::EllipticCurve(params) => match params.curve {
            EllipticCurve::P256 => vec![Algorithm::ES256],
            EllipticCurve::P384 => vec![Algorithm::ES384],
            _ => return None,
        },
        AlgorithmParameters::RSA(_) => RSA.to_vec(),
        AlgorithmParameters::OctetKeyPair(params) if params.curve == EllipticCurve::Ed25519 => {
            vec![Algorithm::EdDSA]
        }
        _ => return None,
    };
    // A key that names its algorithm verifies that one only.
    let algorithms = match &jwk.common.key_algorithm {
        Some(named) => {
            let named = Algorithm::from_str(&format!("{named:?}")).ok()?;
            by_type.contains(&named).then(|| vec![named])?
        }
        None => by_type,
    };
    let key = DecodingKey::from_jwk(jwk).ok()?;
    Some(VerifyingKey { key, algorithms })
}

#[cfg(test)]
mod tests {
    use super::*;
    use dev_idp::SigningKey;

    fn published(key: &SigningKey) -> Jwk {
        key.jwk().expect("jwk").expect("a public key")
    }

    #[test]
    fn a_published_key_verifies_its_own_family_only() {
        let cases = [
            (
                SigningKey::es256("ec").expect("key"),
                vec![Algorithm::ES256],
            ),
            (
                SigningKey::ed25519("ed").expect("key"),
                vec![Algorithm::EdDSA],
            ),
            // The JWK names RS256: that one only, not the whole RSA family.
            (
                SigningKey::rs256("rsa").expect("key"),
                vec![Algorithm::RS256],
            ),
        ];
        for (key, algorithms) in cases {
            let verifying = verifying_key(&published(&key)).expect("usable");
            assert_eq!(verifying.algorithms, algorithms);
        }
    }

    #[test]
    fn symmetric_encryption_and_mismatched_keys_are_not_used() {
        let mut secret: Jwk = serde_json::from_value(serde_json::json!({
            "kty": "oct", "k": "c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LXNlY3JldA", "kid": "s"
        }))
        .expect("jwk");
        assert!(
            verifying_key(&secret).is_none(),
            "a shared secret in a public set"
        );
        secret = published(&SigningKey::es256("enc").expect("key"));
        secret.common.public_key_use = Some(PublicKeyUse::Encryption);
        assert!(verifying_key(&secret).is_none(), "an encryption key");
        let mut lying = published(&SigningKey::es256("ec").expect("key"));
        lying.common.key_algorithm = Some(jsonwebtoken::jwk::KeyAlgorithm::HS256);
        assert!(verifying_key(&lying).is_none(), "an EC key claiming HS256");
    }
}
