//! The sale this replica sells, as armed in Redis.

use domain::{SaleId, SaleWindow};

/// The sale as armed in Redis (which wins over this replica's settings).
#[derive(Debug, Clone)]
pub struct Sale {
    pub id: SaleId,
    pub total_stock: u64,
    pub window: SaleWindow,
}

/// The sale once this replica has reached Redis and made sure it is whole
/// (empty until then: the api starts before its dependencies and answers
/// 503 meanwhile). Set once; shared by every thread.
#[derive(Debug, Clone, Default)]
pub struct ArmedSale(std::sync::Arc<std::sync::OnceLock<Sale>>);

impl ArmedSale {
    /// The sale, if armed yet.
    pub fn get(&self) -> Option<&Sale> {
        self.0.get()
    }

    /// Records the armed sale (the first one recorded stays).
    pub fn set(&self, sale: Sale) {
        let _ = self.0.set(sale);
    }
}
