//! Buyer tokens for the `BUYER_AUTH=jwt` rows: one per buyer, signed ahead
//! of the rounds (HS256 with a shared secret, ES256 with a fresh P-256 key
//! whose public half the api reads from a PEM file).

use std::{fmt::Write as _, path::PathBuf};

use anyhow::Context;
use dev_idp::{buyer_claims, SigningKey};

use super::tempfile_path::TempPath;

pub const SECRET: &str = "bench-secret-of-at-least-thirty-two-bytes";
const ISSUER: &str = "https://bench.flash-sale.invalid";
const AUDIENCE: &str = "flash-sale";

/// The fastest purchase rates the token files are sized for (HS256 checks
/// are cheap, ES256 ones are not); a round sending more would reuse tokens
/// (cache hits and 409s), and the report would show the 409s among its
/// answers not 2xx.
pub const MAX_RATE_HS256: usize = 60_000;
pub const MAX_RATE_ES256: usize = 15_000;

pub struct Tokens {
    pub hs256: TempPath,
    pub es256: TempPath,
    pub es256_public_key: TempPath,
    /// The wrk script that sends them (`loadtest/token-purchase.lua`).
    pub script: PathBuf,
    /// Tokens per round: HS256, ES256.
    pub per_round: (usize, usize),
}

impl Tokens {
    /// `rounds` rounds of `seconds` worth of tokens for each mode, at its
    /// [`MAX_RATE_HS256`] / [`MAX_RATE_ES256`].
    pub fn write(rounds: usize, seconds: usize, script: PathBuf) -> anyhow::Result<Self> {
        let per_round = (seconds * MAX_RATE_HS256, seconds * MAX_RATE_ES256);
        let (hs_count, es_count) = (per_round.0 * rounds, per_round.1 * rounds);
        println!("[bench] signing {hs_count} HS256 and {es_count} ES256 buyer tokens");
        let hs = SigningKey::hs256(SECRET)?;
        let es = SigningKey::es256("bench-es256")?;
        let (hs256, es256) = std::thread::scope(|scope| {
            let hs = scope.spawn(|| sign_all(&hs, "hs", hs_count));
            let es = sign_all(&es, "es", es_count);
            (hs.join(), es)
        });
        let hs256 = hs256.map_err(|_| anyhow::anyhow!("the signing thread panicked"))??;
        Ok(Self {
            hs256: TempPath::write("hs256.tokens", &hs256)?,
            es256: TempPath::write("es256.tokens", &es256?)?,
            es256_public_key: TempPath::write("es256.pem", es.public_pem())?,
            script,
            per_round,
        })
    }

    /// What both jwt apis share; each adds its key source.
    pub fn api_vars(&self) -> Vec<(&'static str, &'static str)> {
        vec![
            ("BUYER_AUTH", "jwt"),
            ("JWT_ISSUER", ISSUER),
            ("JWT_AUDIENCE", AUDIENCE),
        ]
    }
}

/// `count` tokens of distinct buyers, one per line.
fn sign_all(key: &SigningKey, prefix: &str, count: usize) -> anyhow::Result<String> {
    let run = std::process::id();
    let mut out = String::with_capacity(count * 260);
    for i in 0..count {
        let claims = buyer_claims(ISSUER, AUDIENCE, &format!("{prefix}-{run}-{i}"), 3600);
        let token = key.sign(&claims).context("signing a bench token")?;
        let _ = writeln!(out, "{token}");
    }
    Ok(out)
}
