//! The Redis key layout of one sale.
//!
//! Every key of a sale shares the hash tag `{sale:<SALE_ID>}`, so all of them
//! live in one Redis Cluster slot and every script runs unchanged on a cluster.

use crate::{SaleId, UserId};

/// The keys of one sale.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SaleKeys {
    tag: String,
}

impl SaleKeys {
    pub fn new(sale: &SaleId) -> Self {
        Self {
            tag: format!("{{sale:{sale}}}"),
        }
    }

    /// Hash: `total`, `startsAt`, `endsAt`; written once when the sale is armed.
    pub fn meta(&self) -> String {
        format!("{}:meta", self.tag)
    }

    /// Integer: remaining stock.
    pub fn stock(&self) -> String {
        format!("{}:stock", self.tag)
    }

    /// Hash userId -> `orderId|purchasedAtMillis`: the ledger of buyers.
    pub fn buyers(&self) -> String {
        format!("{}:buyers", self.tag)
    }

    /// Integer with a TTL: one user's purchase attempts.
    pub fn attempts(&self, user: &UserId) -> String {
        format!("{}:attempts:{user}", self.tag)
    }

    /// Pattern matching every key of the sale (for tests and tooling).
    pub fn pattern(&self) -> String {
        // `{` and `}` are not glob metacharacters, `[` is; sale ids have none.
        format!("{}:*", self.tag)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_key_of_a_sale_shares_one_hash_tag() {
        let sale = SaleId::parse("bf26").expect("valid");
        let user = UserId::parse("u-1").expect("valid");
        let keys = SaleKeys::new(&sale);
        for key in [
            keys.meta(),
            keys.stock(),
            keys.buyers(),
            keys.attempts(&user),
        ] {
            assert!(key.starts_with("{sale:bf26}:"), "{key}");
        }
        assert_eq!(keys.attempts(&user), "{sale:bf26}:attempts:u-1");
    }
}
