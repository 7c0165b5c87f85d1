//! Sold out, answered in-process for as long as Redis says nothing moved.
//!
//! Once a sale is sold out its buyer set stops changing, so a replica that
//! saw it sold out learns who the buyers are and answers everybody else
//! itself: 410, or 400 once the sale has ended, without a Redis round trip.
//! An earlier buyer (whose answer is 409 with their order) still asks Redis,
//! where the order is; there are few of them. The replica keeps only a
//! 64-bit hash per buyer (a few MB for hundreds of thousands), loaded in the
//! background a page at a time: loading it must never hold up an answer or
//! stall Redis with one huge reply. A hash shared with a buyer only sends a
//! non-buyer to Redis; a buyer is never told "sold out".
//!
//! The buyer set can still move: a sale Redis lost is rebuilt from
//! PostgreSQL, possibly with stock again. So the freeze holds for
//! [`FRESH_FOR`] after Redis last said "sold out"; then one purchase asks
//! Redis again, and its answer refreshes the freeze (same buyer count:
//! nothing reloaded) or starts a new load. "Ended" is judged on Redis's
//! clock, taken from that same answer. (The per-user attempt limit is not
//! counted for in-process answers: they cost nothing.)

use std::{
    collections::HashSet,
    hash::{DefaultHasher, Hash, Hasher},
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc, RwLock,
    },
    time::{Duration, Instant},
};

use chrono::{DateTime, Utc};
use domain::{SaleWindow, UserId};

use crate::inventory::Inventory;

/// How long Redis's last "sold out" answers for this replica.
pub const FRESH_FOR: Duration = Duration::from_secs(1);

#[derive(Default)]
pub struct SoldOut {
    frozen: Arc<RwLock<Option<Frozen>>>,
    /// A buyer set is being loaded (one load at a time).
    loading: Arc<AtomicBool>,
}

struct Frozen {
    buyers: HashSet<u64>,
    /// How many buyers Redis said there were: a reload when it moves.
    count: u64,
    /// How far Redis's clock was ahead of ours at the last answer.
    clock_offset: chrono::Duration,
    confirmed: Instant,
}

/// What a sold-out sale answers a purchase without asking Redis.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    Ended,
    SoldOut,
}

/// A user's place in the buyer set.
fn hash_of(user: &str) -> u64 {
    let mut hasher = DefaultHasher::new();
    user.hash(&mut hasher);
    hasher.finish()
}

impl SoldOut {
    /// The in-process answer for `user`, while Redis's last "sold out" is
    /// fresh and `user` is not (as far as the hashes tell) a buyer.
    pub fn answer(&self, user: &UserId, window: &SaleWindow) -> Option<Answer> {
        let guard = self.frozen.read().ok()?;
        let frozen = guard.as_ref()?;
        if frozen.confirmed.elapsed() >= FRESH_FOR {
            return None;
        }
        if crate::clock::now() + frozen.clock_offset > window.ends_at {
            return Some(Answer::Ended);
        }
        if frozen.buyers.contains(&hash_of(user.as_str())) {
            return None;
        }
        Some(Answer::SoldOut)
    }

    /// Called with Redis's "sold out" answer: `buyers` in the ledger at
    /// Redis's `now`. Refreshes the freeze if it holds that many buyers,
    /// else loads the buyer set in the background (never waited for). A
    /// load that fails, or finds the ledger moved, leaves it thawed.
    pub fn seen(&self, inventory: &Inventory, buyers: u64, now: DateTime<Utc>) {
        let clock_offset = now - crate::clock::now();
        if self.refresh(buyers, clock_offset) || self.loading.swap(true, Ordering::AcqRel) {
            return;
        }
        let (frozen, loading, inventory) =
            (self.frozen.clone(), self.loading.clone(), inventory.clone());
        tokio::spawn(async move {
            match inventory.buyer_hashes(hash_of).await {
                // Two buyers sharing a hash (odds about buyers^2 / 2^65)
                // only cost this replica its in-process answers.
                Ok(set) if set.len() as u64 == buyers => {
                    tracing::debug!(buyers, "sold out: answering non-buyers in-process");
                    if let Ok(mut frozen) = frozen.write() {
                        *frozen = Some(Frozen {
                            buyers: set,
                            count: buyers,
                            clock_offset,
                            confirmed: Instant::now(),
                        });
                    }
                }
                Ok(_) => tracing::debug!("the ledger moved while loading; not freezing"),
                Err(error) => tracing::warn!(error = ?error, "loading the buyer set failed"),
            }
            loading.store(false, Ordering::Release);
        });
    }

    /// Extends the freeze if it was loaded for exactly `buyers` buyers.
    fn refresh(&self, buyers: u64, clock_offset: chrono::Duration) -> bool {
        let Ok(mut guard) = self.frozen.write() else {
            return false;
        };
        match guard.as_mut() {
            Some(frozen) if frozen.count == buyers => {
                frozen.confirmed = Instant::now();
                frozen.clock_offset = clock_offset;
                true
            }
            _ => false,
        }
    }
}
