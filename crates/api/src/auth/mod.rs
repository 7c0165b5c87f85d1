//! Who the buyer is: the body's `userId` (`BUYER_AUTH=none`, the seed's
//! contract) or the `sub` of a verified bearer token (`BUYER_AUTH=jwt`).
//!
//! A verified token is remembered by its SHA-256 until its `exp`, so a
//! buyer's retries and status polls pay the signature once;
//! `flash_sale_buyer_token_checks_total{result}` counts the checks that
//! were not remembered (`verified`, `refused`, `keys_unavailable`).

mod cache;
pub mod keys;
pub mod settings;

use std::sync::Arc;

use actix_web::{http::header, HttpRequest};
use base64::Engine;
use domain::{UserId, UserIdError};
use jsonwebtoken::{errors::ErrorKind, Validation};
use serde::Deserialize;

use self::{
    cache::TokenCache,
    keys::{KeyError, Keys},
    settings::{AuthSettings, JwtSettings},
};

/// How this api knows the buyer.
#[derive(Clone)]
pub enum BuyerAuth {
    Open,
    Jwt(Arc<Verifier>),
}

impl BuyerAuth {
    /// Loads the keys of `jwt` mode (see [`Keys::load`]).
    pub async fn new(settings: &AuthSettings) -> anyhow::Result<Self> {
        match settings {
            AuthSettings::Open => Ok(Self::Open),
            AuthSettings::Jwt(jwt) => Ok(Self::Jwt(Arc::new(Verifier::new(jwt).await?))),
        }
    }

    /// `none` or `jwt`.
    pub fn mode(&self) -> &'static str {
        match self {
            Self::Open => "none",
            Self::Jwt(_) => "jwt",
        }
    }

    /// The signed-in buyer: `None` in `none` mode (the body names the
    /// buyer), else the token's subject or why there is none.
    pub async fn signed_in(&self, req: &HttpRequest) -> Result<Option<UserId>, AuthError> {
        match self {
            Self::Open => Ok(None),
            Self::Jwt(verifier) => {
                let token = bearer_token(req).ok_or(AuthError::Missing)?;
                verifier.verify(token).await.map(Some)
            }
        }
    }
}

/// The token of an `Authorization: Bearer <token>` header; `None` when
/// there is no header or it uses another scheme.
fn bearer_token(req: &HttpRequest) -> Option<&str> {
    let value = req.headers().get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then_some(token.trim())
}

/// Why a request has no buyer.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AuthError {
    /// No bearer token at all: 401 with `WWW-Authenticate: Bearer realm`.
    #[error("no bearer token")]
    Missing,
    /// A token that does not verify: 401 `error="invalid_token"`.
    #[error("invalid token: {0}")]
    Invalid(#[from] TokenProblem),
    /// The identity provider's keys cannot be fetched (now): 503, retry
    /// after the seconds given.
    #[error("signing keys unavailable")]
    KeysUnavailable { retry_after_seconds: u64 },
}

/// What is wrong with a token; `Display` is the message the buyer sees.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TokenProblem {
    #[error("The access token is malformed.")]
    Malformed,
    #[error("Unsigned access tokens (alg none) are not accepted.")]
    Unsigned,
    #[error("The access token is signed with an algorithm its key does not allow.")]
    Algorithm,
    #[error("The access token is signed with an unknown key.")]
    UnknownKey,
    #[error("The access token's signature is invalid.")]
    Signature,
    #[error("The access token has expired.")]
    Expired,
    #[error("The access token is not valid yet.")]
    NotYetValid,
    #[error("The access token was issued by another issuer.")]
    Issuer,
    #[error("The access token is meant for another audience.")]
    Audience,
    #[error("The access token has no {0} claim.")]
    MissingClaim(String),
    #[error("The access token's subject is not a valid user id: {0}.")]
    Subject(UserIdError),
}

/// The claims this api reads; issuer, audience, `nbf` are checked by the
/// crate. Optional here so that a token without them is refused by the
/// crate's required-claims check, which names the claim, rather than by
/// deserialization ("malformed").
#[derive(Deserialize)]
struct Claims {
    sub: Option<String>,
    exp: Option<i64>,
}

pub struct Verifier {
    keys: Keys,
    issuer: String,
    audience: String,
    leeway_seconds: u64,
    cache: TokenCache,
}

impl Verifier {
    pub async fn new(settings: &JwtSettings) -> anyhow::Result<Self> {
        Ok(Self {
            keys: Keys::load(&settings.keys, settings.jwks_min_refresh).await?,
            issuer: settings.issuer.clone(),
            audience: settings.audience.clone(),
            leeway_seconds: settings.leeway_seconds,
            cache: TokenCache::default(),
        })
    }

    /// The buyer a token names, once its signature, issuer, audience and
    /// times are checked.
    pub async fn verify(&self, token: &str) -> Result<UserId, AuthError> {
        let now = crate::clock::now().timestamp();
        let digest = cache::digest(token);
        if let Some(user) = self.cache.get(&digest, now) {
            return Ok(user);
        }
        let verified = self.verify_signed(token, digest, now).await;
        let result = match &verified {
            Ok(_) => "verified",
            Err(AuthError::KeysUnavailable { .. }) => "keys_unavailable",
            Err(_) => "refused",
        };
        metrics::counter!("flash_sale_buyer_token_checks_total", "result" => result).increment(1);
        verified
    }

    async fn verify_signed(
        &self,
        token: &str,
        digest: cache::TokenDigest,
        now: i64,
    ) -> Result<UserId, AuthError> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| header_problem(token))?;
        let key = self
            .keys
            .for_token(header.kid.as_deref())
            .await
            .map_err(|e| match e {
                KeyError::Unknown => AuthError::Invalid(TokenProblem::UnknownKey),
                KeyError::Unavailable => AuthError::KeysUnavailable {
                    retry_after_seconds: 1,
                },
                KeyError::NotYet(left) => AuthError::KeysUnavailable {
                    retry_after_seconds: left.as_secs().max(1),
                },
            })?;
        if !key.algorithms.contains(&header.alg) {
            return Err(TokenProblem::Algorithm.into());
        }
        let mut validation = Validation::new(header.alg);
        validation.algorithms = key.algorithms.clone();
        validation.set_issuer(&[&self.issuer]);
        validation.set_audience(&[&self.audience]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        validation.validate_nbf = true;
        validation.leeway = self.leeway_seconds;
        let claims = jsonwebtoken::decode::<Claims>(token, &key.key, &validation)
            .map_err(|e| problem(e.kind()))?
            .claims;
        let sub = claims
            .sub
            .ok_or_else(|| TokenProblem::MissingClaim("sub".into()))?;
        let exp = claims
            .exp
            .ok_or_else(|| TokenProblem::MissingClaim("exp".into()))?;
        let user = UserId::parse(&sub).map_err(TokenProblem::Subject)?;
        let good_until = exp.saturating_add(i64::try_from(self.leeway_seconds).unwrap_or(i64::MAX));
        self.cache.insert(digest, user.clone(), good_until, now);
        Ok(user)
    }
}

/// A header the crate cannot read: `alg: none` (which it has no name for)
/// gets its own message, anything else is malformed.
fn header_problem(token: &str) -> TokenProblem {
    let alg = token
        .split('.')
        .next()
        .and_then(|h| {
            base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(h)
                .ok()
        })
        .and_then(|h| serde_json::from_slice::<serde_json::Value>(&h).ok())
        .and_then(|h| h.get("alg").and_then(|a| a.as_str()).map(str::to_owned));
    match alg {
        Some(alg) if alg.eq_ignore_ascii_case("none") => TokenProblem::Unsigned,
        Some(_) => TokenProblem::Algorithm,
        None => TokenProblem::Malformed,
    }
}

fn problem(kind: &ErrorKind) -> TokenProblem {
    match kind {
        ErrorKind::InvalidSignature => TokenProblem::Signature,
        ErrorKind::ExpiredSignature => TokenProblem::Expired,
        ErrorKind::ImmatureSignature => TokenProblem::NotYetValid,
        ErrorKind::InvalidIssuer => TokenProblem::Issuer,
        ErrorKind::InvalidAudience => TokenProblem::Audience,
        ErrorKind::MissingRequiredClaim(claim) => TokenProblem::MissingClaim(claim.clone()),
        ErrorKind::InvalidAlgorithm
        | ErrorKind::MissingAlgorithm
        | ErrorKind::UnsupportedAlgorithm
        | ErrorKind::InvalidAlgorithmName => TokenProblem::Algorithm,
        // A key of the right family the signature cannot be checked with
        // (a P-256 key for an ES384 token, say) did not sign it.
        ErrorKind::InvalidEcdsaKey
        | ErrorKind::InvalidEddsaKey
        | ErrorKind::InvalidRsaKey(_)
        | ErrorKind::InvalidKeyFormat => TokenProblem::Signature,
        _ => TokenProblem::Malformed,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unsigned_header_is_named_as_such() {
        let b64 = |s: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s);
        let none = format!("{}.{}.", b64(r#"{"alg":"none"}"#), b64(r#"{"sub":"a"}"#));
        assert_eq!(header_problem(&none), TokenProblem::Unsigned);
        let other = format!("{}.{}.", b64(r#"{"alg":"XS999"}"#), b64("{}"));
        assert_eq!(header_problem(&other), TokenProblem::Algorithm);
        assert_eq!(header_problem("not a token"), TokenProblem::Malformed);
    }
}
