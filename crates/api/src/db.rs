//! PostgreSQL, as the api needs it: health checks, the orders of a sale
//! Redis lost (to rebuild it without selling twice), and the lookups of an
//! ended sale whose Redis keys expired. The queries are the `orders`
//! crate's.

use domain::{config::DatabaseConfig, LedgerEntry, SaleId, UserId};

pub use orders::PgPool;

/// A small lazy pool (2 connections, none kept idle), so the api starts and
/// sells while PostgreSQL is down.
pub fn pool(config: &DatabaseConfig) -> PgPool {
    orders::pool(&DatabaseConfig {
        pool_max: 2,
        pool_min: 0,
        ..config.clone()
    })
}

/// The sale's orders as ledger entries (none before any worker ran).
pub async fn persisted_orders(
    db: &PgPool,
    sale: &SaleId,
) -> anyhow::Result<Vec<(String, LedgerEntry)>> {
    let mut conn = db.get().await?;
    orders::ledger_of_sale(&mut conn, sale).await
}

/// `user`'s order in `sale`, if PostgreSQL has one.
pub async fn order_of(
    db: &PgPool,
    sale: &SaleId,
    user: &UserId,
) -> anyhow::Result<Option<LedgerEntry>> {
    let mut conn = db.get().await?;
    Ok(orders::order_of(&mut conn, sale, user).await?)
}
