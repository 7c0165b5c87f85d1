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
        // One per buyer in every purchase batch: concatenated, not format!ed.
        const INFIX: &str = ":attempts:";
        let mut key = String::with_capacity(self.tag.len() + INFIX.len() + user.as_str().len());
        key.push_str(&self.tag);
        key.push_str(INFIX);
        key.push_str(user.as_str());
        key
    }

    /// A staging hash for rebuilding the ledger (one per rebuild attempt).
    pub fn restore(&self, attempt: &str) -> String {
        format!("{}:restore:{attempt}", self.tag)
    }

    /// The glob matching the meta or ledger key of every sale whose id
    /// matches `sales` (itself a glob), for `SCAN`.
    pub fn scan_pattern(sales: &str, part: Scanned) -> String {
        format!("{{sale:{sales}}}:{}", part.suffix())
    }

    /// The sale a meta or ledger key belongs to.
    pub fn sale_of(key: &str) -> Option<SaleId> {
        let rest = key.strip_prefix("{sale:")?;
        [Scanned::Meta, Scanned::Buyers]
            .into_iter()
            .find_map(|part| rest.strip_suffix(&format!("}}:{}", part.suffix())))
            .and_then(|id| SaleId::parse(id).ok())
    }
}

/// The keys a scan for sales looks at: every armed sale has a meta, every
/// sale with buyers a ledger (even one whose meta Redis lost).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scanned {
    Meta,
    Buyers,
}

impl Scanned {
    fn suffix(self) -> &'static str {
        match self {
            Self::Meta => "meta",
            Self::Buyers => "buyers",
        }
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

    #[test]
    fn scanned_keys_give_back_their_sale() {
        let sale = SaleId::parse("bf-26").expect("valid");
        let keys = SaleKeys::new(&sale);
        assert_eq!(SaleKeys::sale_of(&keys.buyers()), Some(sale.clone()));
        assert_eq!(SaleKeys::sale_of(&keys.meta()), Some(sale));
        assert_eq!(SaleKeys::sale_of(&keys.stock()), None);
        assert_eq!(SaleKeys::sale_of("other"), None);
        assert_eq!(
            SaleKeys::scan_pattern("load-*", Scanned::Buyers),
            "{sale:load-*}:buyers"
        );
    }
}
