//! Arming a sale in Redis, and re-arming it after Redis lost its data.
//!
//! The first api to start for a `SALE_ID` writes meta, stock and ledger with
//! NX semantics (`lua/arm.lua`); a restart or another replica finds the sale
//! and takes Redis's copy. When the keys are missing, PostgreSQL decides:
//! every order it holds for the sale goes back into the ledger and out of
//! the stock, so no earlier buyer can buy again and the stock is never
//! restored to full. That needs PostgreSQL: if it cannot be asked, the sale
//! stays unarmed (503) rather than risk selling twice.

use chrono::{DateTime, Utc};
use diesel::{
    sql_query,
    sql_types::{Nullable, Text, Timestamptz, Uuid as SqlUuid},
    QueryableByName,
};
use diesel_async::RunQueryDsl;
use domain::{LedgerEntry, OrderId, SaleId, SaleWindow};

use crate::{
    inventory::{Inventory, InventoryError},
    state::{PgPool, Sale},
};

#[derive(Debug, thiserror::Error)]
pub enum ArmError {
    #[error("redis")]
    Redis(#[from] InventoryError),
    #[error("the sale is missing from Redis and PostgreSQL cannot be asked which orders it has")]
    Database(#[source] anyhow::Error),
}

/// What the sale should be if it has to be written.
#[derive(Debug, Clone)]
pub struct Wanted {
    pub id: SaleId,
    pub total: u64,
    pub window: SaleWindow,
}

/// Makes sure the sale is armed and returns it as Redis holds it.
pub async fn ensure_armed(
    inventory: &Inventory,
    db: &PgPool,
    wanted: &Wanted,
) -> Result<Sale, ArmError> {
    if !inventory.is_armed().await? {
        return rebuild(inventory, db, wanted).await;
    }
    // Armed already: arm.lua writes nothing and returns the stored sale.
    let outcome = inventory
        .arm(wanted.total, &wanted.window, wanted.total, &[])
        .await?;
    Ok(sale(wanted, outcome))
}

async fn rebuild(inventory: &Inventory, db: &PgPool, wanted: &Wanted) -> Result<Sale, ArmError> {
    let orders = persisted_orders(db, &wanted.id)
        .await
        .map_err(ArmError::Database)?;
    let sold = orders.len() as u64;
    let remaining = wanted.total.saturating_sub(sold);
    let outcome = inventory
        .arm(wanted.total, &wanted.window, remaining, &orders)
        .await?;
    if outcome.armed_now && sold > 0 {
        tracing::warn!(
            sale.id = %wanted.id,
            orders = sold,
            remaining,
            "sale was missing from Redis; rebuilt stock and ledger from PostgreSQL"
        );
    } else if outcome.armed_now {
        tracing::info!(sale.id = %wanted.id, total = outcome.total_stock, "sale armed");
    }
    Ok(sale(wanted, outcome))
}

fn sale(wanted: &Wanted, outcome: domain::ArmOutcome) -> Sale {
    if !outcome.armed_now
        && (outcome.total_stock != wanted.total || outcome.window != wanted.window)
    {
        tracing::warn!(
            sale.id = %wanted.id,
            armed.total = outcome.total_stock,
            "sale was armed with other settings; Redis's copy wins (a new sale needs a new SALE_ID)"
        );
    }
    Sale {
        id: wanted.id.clone(),
        total_stock: outcome.total_stock,
        window: outcome.window,
    }
}

#[derive(QueryableByName)]
struct OrderRow {
    #[diesel(sql_type = SqlUuid)]
    id: uuid::Uuid,
    #[diesel(sql_type = Text)]
    user_id: String,
    #[diesel(sql_type = Timestamptz)]
    created_at: DateTime<Utc>,
}

#[derive(QueryableByName)]
struct Regclass {
    #[diesel(sql_type = Nullable<Text>)]
    name: Option<String>,
}

/// The sale's orders as ledger entries; none if the table does not exist
/// yet (no worker ever ran, so nothing was ever persisted).
async fn persisted_orders(
    db: &PgPool,
    sale: &SaleId,
) -> anyhow::Result<Vec<(String, LedgerEntry)>> {
    let mut conn = db.get().await?;
    let table: Regclass = sql_query("SELECT to_regclass('orders')::text AS name")
        .get_result(&mut conn)
        .await?;
    if table.name.is_none() {
        return Ok(Vec::new());
    }
    let rows: Vec<OrderRow> =
        sql_query("SELECT id, user_id, created_at FROM orders WHERE sale_id = $1")
            .bind::<Text, _>(sale.as_str())
            .load(&mut conn)
            .await?;
    Ok(rows
        .into_iter()
        .map(|row| {
            let entry = LedgerEntry {
                order_id: OrderId::from(row.id),
                purchased_at: row.created_at,
            };
            (row.user_id, entry)
        })
        .collect())
}
