//! One entry of a sale's ledger: who bought, which order, when.

use chrono::{DateTime, Utc};

use crate::{time, OrderId};

/// The value stored per buyer in `{sale:ID}:buyers`: `orderId|purchasedAtMillis`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LedgerEntry {
    pub order_id: OrderId,
    pub purchased_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed ledger entry {0:?}")]
pub struct LedgerEntryError(pub String);

impl LedgerEntry {
    pub fn parse(raw: &str) -> Result<Self, LedgerEntryError> {
        let bad = || LedgerEntryError(raw.to_owned());
        let (order, millis) = raw.split_once('|').ok_or_else(bad)?;
        let order_id = OrderId::parse(order).map_err(|_| bad())?;
        let millis = millis.parse::<i64>().map_err(|_| bad())?;
        let purchased_at = time::from_millis(millis).ok_or_else(bad)?;
        Ok(Self {
            order_id,
            purchased_at,
        })
    }

    /// The stored form, as the purchase and arm scripts write it.
    pub fn encode(&self) -> String {
        format!("{}|{}", self.order_id, self.purchased_at.timestamp_millis())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ledger_entry_round_trips() {
        let entry = LedgerEntry {
            order_id: OrderId::new(),
            purchased_at: time::from_millis(1_772_359_200_123).expect("in range"),
        };
        assert_eq!(LedgerEntry::parse(&entry.encode()), Ok(entry));
    }

    #[test]
    fn malformed_ledger_entries_are_errors() {
        for bad in [
            "",
            "nope",
            "not-a-uuid|1",
            "0191d2a4-6a8e-7c3b-9d3e-3f1f2c4b5a6d|x",
        ] {
            assert!(LedgerEntry::parse(bad).is_err(), "{bad}");
        }
    }
}
