//! Sold out, answered in-process for as long as Redis says nothing moved.
//!
//! Once a sale is sold out its buyer set stops changing, so a replica that
//! saw it sold out loads the ledger once and answers purchases itself: 409
//! with the order for an earlier buyer, 410 for everybody else, 400 once the
//! sale has ended, without a Redis round trip. The ledger can still move: a
//! sale Redis lost is rebuilt from PostgreSQL, possibly with stock again.
//! So the frozen answer holds for [`FRESH_FOR`] after Redis last said "sold
//! out"; then one purchase asks Redis again, and its answer refreshes the
//! freeze (same buyer count: nothing reloaded) or ends it. "Ended" is judged
//! on Redis's clock, taken from that same answer. (The per-user attempt
//! limit is not counted for in-process answers: they cost nothing.)

use std::{
    collections::HashMap,
    sync::{Arc, RwLock},
    time::{Duration, Instant},
};

use chrono::{DateTime, Utc};
use domain::{LedgerEntry, SaleWindow, UserId};

use crate::inventory::Inventory;

/// How long Redis's last "sold out" answers for this replica.
pub const FRESH_FOR: Duration = Duration::from_secs(1);

#[derive(Default)]
pub struct SoldOut {
    frozen: RwLock<Option<Frozen>>,
    /// Makes loading the ledger single-flight.
    loading: tokio::sync::Mutex<()>,
}

#[derive(Clone)]
struct Frozen {
    buyers: Arc<HashMap<String, LedgerEntry>>,
    /// How far Redis's clock was ahead of ours at the last answer.
    clock_offset: chrono::Duration,
    confirmed: Instant,
}

/// What a sold-out sale answers a purchase.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    Ended,
    Duplicate(LedgerEntry),
    SoldOut,
}

impl SoldOut {
    /// The in-process answer for `user`, while Redis's last "sold out" is fresh.
    pub fn answer(&self, user: &UserId, window: &SaleWindow) -> Option<Answer> {
        let guard = self.frozen.read().ok()?;
        let frozen = guard.as_ref()?;
        if frozen.confirmed.elapsed() >= FRESH_FOR {
            return None;
        }
        if crate::clock::now() + frozen.clock_offset > window.ends_at {
            return Some(Answer::Ended);
        }
        Some(match frozen.buyers.get(user.as_str()) {
            Some(entry) => Answer::Duplicate(*entry),
            None => Answer::SoldOut,
        })
    }

    /// Called with Redis's "sold out" answer: `buyers` in the ledger at
    /// Redis's `now`. Refreshes the freeze if the buyer set is the one
    /// loaded, else loads it (concurrent callers wait for one load). A
    /// failed load, or a ledger that moved meanwhile, leaves it thawed.
    pub async fn seen(&self, inventory: &Inventory, buyers: u64, now: DateTime<Utc>) {
        let clock_offset = now - crate::clock::now();
        if self.refresh(buyers, clock_offset) {
            return;
        }
        let _loading = self.loading.lock().await;
        if self.refresh(buyers, clock_offset) {
            return;
        }
        match inventory.ledger().await {
            Ok(ledger) if ledger.len() as u64 == buyers => {
                tracing::debug!(buyers, "sold out: answering in-process");
                if let Ok(mut frozen) = self.frozen.write() {
                    *frozen = Some(Frozen {
                        buyers: Arc::new(ledger),
                        clock_offset,
                        confirmed: Instant::now(),
                    });
                }
            }
            Ok(_) => tracing::debug!("the ledger moved while loading; not freezing"),
            Err(error) => tracing::warn!(error = ?error, "loading the buyer set failed"),
        }
    }

    /// Extends the freeze if it holds exactly `buyers` buyers.
    fn refresh(&self, buyers: u64, clock_offset: chrono::Duration) -> bool {
        let Ok(mut guard) = self.frozen.write() else {
            return false;
        };
        match guard.as_mut() {
            Some(frozen) if frozen.buyers.len() as u64 == buyers => {
                frozen.confirmed = Instant::now();
                frozen.clock_offset = clock_offset;
                true
            }
            _ => false,
        }
    }
}
