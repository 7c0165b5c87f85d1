//! PostgreSQL, as the api needs it: health checks, and the orders of a sale
//! Redis lost (to rebuild it without selling twice).

use chrono::{DateTime, Utc};
use diesel::{
    sql_query,
    sql_types::{Nullable, Text, Timestamptz, Uuid as SqlUuid},
    QueryableByName,
};
use diesel_async::{
    pooled_connection::{bb8, AsyncDieselConnectionManager},
    AsyncPgConnection, RunQueryDsl,
};
use domain::{config::DatabaseConfig, LedgerEntry, OrderId, SaleId};

pub type PgPool = bb8::Pool<AsyncPgConnection>;

/// A small lazy pool, so the api starts and sells while PostgreSQL is down.
pub fn pool(config: &DatabaseConfig) -> PgPool {
    let manager = AsyncDieselConnectionManager::<AsyncPgConnection>::new(&config.url);
    bb8::Pool::builder()
        .max_size(2)
        .min_idle(Some(0))
        .connection_timeout(config.connect_timeout)
        .build_unchecked(manager)
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

/// `user`'s order in `sale`, if PostgreSQL has one.
pub async fn order_of(
    db: &PgPool,
    sale: &SaleId,
    user: &domain::UserId,
) -> anyhow::Result<Option<LedgerEntry>> {
    let mut conn = db.get().await?;
    let rows: Vec<OrderRow> =
        sql_query("SELECT id, user_id, created_at FROM orders WHERE sale_id = $1 AND user_id = $2")
            .bind::<Text, _>(sale.as_str())
            .bind::<Text, _>(user.as_str())
            .load(&mut conn)
            .await?;
    Ok(rows.into_iter().next().map(|row| LedgerEntry {
        order_id: OrderId::from(row.id),
        purchased_at: row.created_at,
    }))
}

/// The sale's orders as ledger entries; none if the table does not exist
/// yet (no worker ever ran, so nothing was ever persisted).
pub async fn persisted_orders(
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
