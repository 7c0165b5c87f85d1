//! The sale this replica sells, as armed in Redis.

use domain::{SaleId, SaleWindow};

/// The sale as armed in Redis (which wins over this replica's settings).
#[derive(Debug, Clone)]
pub struct Sale {
    pub id: SaleId,
    pub total_stock: u64,
    pub window: SaleWindow,
}
