//! Signing keys and tokens: what the development identity provider signs
//! with, and what tests use to make real tokens.

use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::Context;
use base64::Engine;
use jsonwebtoken::{
    jwk::{Jwk, KeyAlgorithm, PublicKeyUse},
    Algorithm, EncodingKey, Header,
};
use p256::pkcs8::{EncodePrivateKey, EncodePublicKey, LineEnding};
use serde_json::{json, Value};

/// A key that signs tokens, with what verifiers need of it.
#[derive(Clone)]
pub struct SigningKey {
    pub kid: String,
    pub algorithm: Algorithm,
    encoding: EncodingKey,
    /// The public key in PEM (`JWT_PUBLIC_KEY_FILE`); the secret for HMAC.
    public_pem: String,
    /// Ed25519's public key, for its JWK (the crate derives JWKs of EC and
    /// RSA keys, not of the PKCS#8 v2 keys ed25519-dalek writes).
    ed25519_public: Option<[u8; 32]>,
}

impl SigningKey {
    /// A fresh P-256 key (ES256).
    pub fn es256(kid: &str) -> anyhow::Result<Self> {
        let secret = p256::SecretKey::random(&mut rand_core::OsRng);
        let private = secret
            .to_pkcs8_pem(LineEnding::LF)
            .context("encoding the P-256 key")?;
        let public_pem = secret
            .public_key()
            .to_public_key_pem(LineEnding::LF)
            .context("encoding the P-256 public key")?;
        Ok(Self {
            kid: kid.to_owned(),
            algorithm: Algorithm::ES256,
            encoding: EncodingKey::from_ec_pem(private.as_bytes())
                .context("reading back the P-256 key")?,
            public_pem,
            ed25519_public: None,
        })
    }

    /// A fresh Ed25519 key (EdDSA).
    pub fn ed25519(kid: &str) -> anyhow::Result<Self> {
        let secret = ed25519_dalek::SigningKey::generate(&mut rand_core::OsRng);
        let private = secret
            .to_pkcs8_pem(LineEnding::LF)
            .context("encoding the Ed25519 key")?;
        let public_pem = secret
            .verifying_key()
            .to_public_key_pem(LineEnding::LF)
            .context("encoding the Ed25519 public key")?;
        Ok(Self {
            kid: kid.to_owned(),
            algorithm: Algorithm::EdDSA,
            encoding: EncodingKey::from_ed_pem(private.as_bytes())
                .context("reading back the Ed25519 key")?,
            public_pem,
            ed25519_public: Some(secret.verifying_key().to_bytes()),
        })
    }

    /// A fresh 2048-bit RSA key (RS256).
    pub fn rs256(kid: &str) -> anyhow::Result<Self> {
        let secret = rsa::RsaPrivateKey::new(&mut rand_core::OsRng, 2048)
            .context("generating the RSA key")?;
        let private = secret
            .to_pkcs8_pem(LineEnding::LF)
            .context("encoding the RSA key")?;
        let public_pem = secret
            .to_public_key()
            .to_public_key_pem(LineEnding::LF)
            .context("encoding the RSA public key")?;
        Ok(Self {
            kid: kid.to_owned(),
            algorithm: Algorithm::RS256,
            encoding: EncodingKey::from_rsa_pem(private.as_bytes())
                .context("reading back the RSA key")?,
            public_pem,
            ed25519_public: None,
        })
    }

    /// A shared secret (HS256).
    pub fn hs256(secret: &str) -> anyhow::Result<Self> {
        Ok(Self {
            kid: String::new(),
            algorithm: Algorithm::HS256,
            encoding: EncodingKey::from_secret(secret.as_bytes())
                .context("using the HMAC secret")?,
            public_pem: secret.to_owned(),
            ed25519_public: None,
        })
    }

    /// The public key in PEM (the secret itself for HS256).
    pub fn public_pem(&self) -> &str {
        &self.public_pem
    }

    /// The token of `claims`, signed, with this key's `kid` (if any).
    pub fn sign(&self, claims: &Value) -> anyhow::Result<String> {
        let mut header = Header::new(self.algorithm);
        header.kid = Some(self.kid.clone()).filter(|k| !k.is_empty());
        jsonwebtoken::encode(&header, claims, &self.encoding).context("signing a token")
    }

    /// The public key as a JWK (for the JWKS); `None` for a shared secret.
    pub fn jwk(&self) -> anyhow::Result<Option<Jwk>> {
        if self.algorithm == Algorithm::HS256 {
            return Ok(None);
        }
        let mut jwk = match self.ed25519_public {
            Some(public) => serde_json::from_value(json!({
                "kty": "OKP",
                "crv": "Ed25519",
                "x": base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(public),
            }))
            .context("building the Ed25519 JWK")?,
            None => Jwk::from_encoding_key(&self.encoding, self.algorithm)
                .context("deriving the public JWK")?,
        };
        jwk.common.key_id = Some(self.kid.clone());
        jwk.common.public_key_use = Some(PublicKeyUse::Signature);
        jwk.common.key_algorithm = Some(match self.algorithm {
            Algorithm::EdDSA => KeyAlgorithm::EdDSA,
            Algorithm::RS256 => KeyAlgorithm::RS256,
            _ => KeyAlgorithm::ES256,
        });
        Ok(Some(jwk))
    }
}

/// A JWKS document of `keys`' public halves.
pub fn jwks<'a>(keys: impl IntoIterator<Item = &'a SigningKey>) -> anyhow::Result<Value> {
    let mut published = Vec::new();
    for key in keys {
        if let Some(jwk) = key.jwk()? {
            published.push(serde_json::to_value(jwk).context("serializing a JWK")?);
        }
    }
    Ok(json!({ "keys": published }))
}

/// Seconds since the Unix epoch.
pub fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// The claims of a buyer's token: issued now, valid for `lifetime_seconds`.
pub fn buyer_claims(issuer: &str, audience: &str, sub: &str, lifetime_seconds: i64) -> Value {
    let now = now();
    json!({
        "iss": issuer,
        "aud": audience,
        "sub": sub,
        "iat": now,
        "nbf": now,
        "exp": now + lifetime_seconds,
    })
}
