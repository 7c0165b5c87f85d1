//! Tokens verified already, by their SHA-256, until their `exp` (plus the
//! leeway): a buyer's retries and polls skip the signature check.

use std::{collections::HashMap, sync::Mutex};

use domain::UserId;
use sha2::{Digest, Sha256};

/// Entries kept at most; past it the expired ones go, then arbitrary ones
/// down to 90% (their next requests pay one verification again). Never all
/// at once: a flood of fresh tokens cannot make every buyer pay again.
const CAPACITY: usize = 100_000;

pub type TokenDigest = [u8; 32];

pub fn digest(token: &str) -> TokenDigest {
    let mut out = [0u8; 32];
    out.copy_from_slice(&Sha256::digest(token.as_bytes()));
    out
}

#[derive(Default)]
pub struct TokenCache {
    entries: Mutex<HashMap<TokenDigest, (UserId, i64)>>,
}

impl TokenCache {
    /// The buyer of a token verified before and still valid at `now`.
    pub fn get(&self, digest: &TokenDigest, now: i64) -> Option<UserId> {
        let entries = self.entries.lock().ok()?;
        let (user, good_until) = entries.get(digest)?;
        (now <= *good_until).then(|| user.clone())
    }

    pub fn insert(&self, digest: TokenDigest, user: UserId, good_until: i64, now: i64) {
        let Ok(mut entries) = self.entries.lock() else {
            return;
        };
        if entries.len() >= CAPACITY {
            entries.retain(|_, (_, until)| *until >= now);
            let excess = entries.len().saturating_sub(CAPACITY * 9 / 10);
            let evicted: Vec<TokenDigest> = entries.keys().take(excess).copied().collect();
            for digest in evicted {
                entries.remove(&digest);
            }
        }
        entries.insert(digest, (user, good_until));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_is_remembered_until_it_expires() {
        let cache = TokenCache::default();
        let user = UserId::parse("alice").expect("valid");
        cache.insert(digest("t"), user.clone(), 100, 50);
        assert_eq!(cache.get(&digest("t"), 100), Some(user));
        assert_eq!(cache.get(&digest("t"), 101), None);
        assert_eq!(cache.get(&digest("u"), 50), None);
    }

    #[test]
    fn a_full_cache_of_live_tokens_keeps_most_of_them() {
        let cache = TokenCache::default();
        let user = UserId::parse("alice").expect("valid");
        for i in 0..=CAPACITY {
            cache.insert(digest(&i.to_string()), user.clone(), 1_000, 0);
        }
        let kept = cache.entries.lock().map(|e| e.len()).unwrap_or(0);
        assert_eq!(kept, CAPACITY * 9 / 10 + 1);
    }

    #[test]
    fn a_full_cache_drops_expired_entries_first() {
        let cache = TokenCache::default();
        let user = UserId::parse("alice").expect("valid");
        for i in 0..CAPACITY {
            let until = if i == 0 { 1_000 } else { 10 };
            cache.insert(digest(&i.to_string()), user.clone(), until, 0);
        }
        cache.insert(digest("new"), user.clone(), 1_000, 500);
        assert_eq!(cache.get(&digest("0"), 500), Some(user.clone()));
        assert_eq!(cache.get(&digest("new"), 500), Some(user));
        assert_eq!(cache.entries.lock().map(|e| e.len()).ok(), Some(2));
    }
}
