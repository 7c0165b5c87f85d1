//! Sold out, answered in-process.
//!
//! Once a sale is sold out its buyer set can never change again, so a
//! replica that has seen it sold out loads the ledger once and from then on
//! answers every purchase itself: 409 with the order for an earlier buyer,
//! 410 for everybody else, 400 once the sale has ended, without a Redis
//! round trip. The flag is raised only after the buyer set is loaded, so no
//! earlier buyer is ever told "sold out". (The per-user attempt limit is not
//! counted for these answers: they cost nothing.)

use std::collections::HashMap;

use domain::{LedgerEntry, UserId};
use tokio::sync::OnceCell;

use crate::inventory::Inventory;

#[derive(Default)]
pub struct SoldOut {
    buyers: OnceCell<HashMap<String, LedgerEntry>>,
}

impl SoldOut {
    /// The frozen buyer set, once this replica knows the sale is sold out.
    pub fn buyers(&self) -> Option<&HashMap<String, LedgerEntry>> {
        self.buyers.get()
    }

    /// Called when a purchase found no stock left: loads the buyer set once
    /// (concurrent callers wait for the same load). A failed load leaves the
    /// flag down; the next sold-out answer tries again.
    pub async fn seen(&self, inventory: &Inventory) {
        let loaded = self
            .buyers
            .get_or_try_init(|| async { inventory.ledger().await })
            .await;
        match loaded {
            Ok(buyers) => tracing::debug!(buyers = buyers.len(), "sold out: answering in-process"),
            Err(error) => tracing::warn!(error = ?error, "loading the buyer set failed"),
        }
    }

    /// The earlier purchase of `user`, if any.
    pub fn entry(buyers: &HashMap<String, LedgerEntry>, user: &UserId) -> Option<LedgerEntry> {
        buyers.get(user.as_str()).copied()
    }
}
