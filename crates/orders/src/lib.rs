//! The orders table in PostgreSQL, and everything either service asks of it:
//! the pool, the embedded migrations (the worker applies them), the batched
//! insert, and the reads of the reconciler and of a sale rebuilt after
//! Redis lost it. One owner of the table, so a column is renamed in one
//! place.

use anyhow::Context;
use diesel::{prelude::*, sql_query};
use diesel_async::{
    pooled_connection::{bb8, AsyncDieselConnectionManager},
    AsyncConnection, AsyncMigrationHarness, AsyncPgConnection, RunQueryDsl,
};
use diesel_migrations::{embed_migrations, EmbeddedMigrations, MigrationHarness};
use domain::{config::DatabaseConfig, PersistOrder};

mod schema;

use chrono::{DateTime, Utc};
use domain::{LedgerEntry, OrderId, SaleId, UserId};

use crate::schema::orders;

pub type PgPool = bb8::Pool<AsyncPgConnection>;

/// The SQL migrations of `migrations/`, compiled into the binary.
pub const MIGRATIONS: EmbeddedMigrations = embed_migrations!("../../migrations");

/// Key of the advisory lock that serialises migrations across workers.
const MIGRATION_LOCK_KEY: i64 = 0x0f1a_5e5a_1e00_0001;

/// A pool that connects lazily: a service starts even if PostgreSQL is down
/// and what needs it waits (and retries) until it is back.
pub fn pool(config: &DatabaseConfig) -> PgPool {
    let manager = AsyncDieselConnectionManager::<AsyncPgConnection>::new(&config.url);
    bb8::Pool::builder()
        .max_size(config.pool_max)
        .min_idle(Some(config.pool_min))
        .idle_timeout(Some(config.idle_timeout))
        .connection_timeout(config.connect_timeout)
        .build_unchecked(manager)
}

/// Applies pending migrations, holding an advisory lock so that several
/// workers starting at once apply them exactly once.
pub async fn migrate(url: &str) -> anyhow::Result<usize> {
    let mut conn = AsyncPgConnection::establish(url)
        .await
        .context("connecting to PostgreSQL to run migrations")?;
    sql_query(format!("SELECT pg_advisory_lock({MIGRATION_LOCK_KEY})"))
        .execute(&mut conn)
        .await
        .context("taking the migration lock")?;
    let mut harness = AsyncMigrationHarness::new(conn);
    let applied = harness
        .run_pending_migrations(MIGRATIONS)
        .map(|versions| versions.len())
        .map_err(|e| anyhow::anyhow!("applying migrations: {e}"));
    let mut conn = harness.into_inner();
    // The lock also goes with the session; unlock anyway so a pooled or
    // long-lived connection never keeps it.
    let unlocked = sql_query(format!("SELECT pg_advisory_unlock({MIGRATION_LOCK_KEY})"))
        .execute(&mut conn)
        .await;
    let applied = applied?;
    unlocked.context("releasing the migration lock")?;
    Ok(applied)
}

#[derive(Insertable)]
#[diesel(table_name = orders)]
struct NewOrder<'a> {
    id: uuid::Uuid,
    sale_id: &'a str,
    user_id: &'a str,
    created_at: chrono::DateTime<chrono::Utc>,
}

impl<'a> From<&'a PersistOrder> for NewOrder<'a> {
    fn from(job: &'a PersistOrder) -> Self {
        NewOrder {
            id: job.order_id.as_uuid(),
            sale_id: job.sale_id.as_str(),
            user_id: job.user_id.as_str(),
            created_at: job.purchased_at,
        }
    }
}

/// Inserts many orders in one statement, each looked up in both unique
/// indexes first: rows already there are skipped. Returns how many were new.
pub async fn insert_orders(
    conn: &mut AsyncPgConnection,
    jobs: &[PersistOrder],
) -> QueryResult<usize> {
    insert(conn, jobs, true).await
}

/// Inserts many new orders in one plain `INSERT`: the unique indexes check
/// each row as they take it, with no lookup first, which costs PostgreSQL
/// less CPU per order than [`insert_orders`]
/// (`docs/profile/postgres-insert.md` measures both). A row already there
/// fails the whole statement with a `UniqueViolation` and nothing is
/// inserted (outside a transaction; inside one, the failure aborts it).
pub async fn insert_new_orders(
    conn: &mut AsyncPgConnection,
    jobs: &[PersistOrder],
) -> QueryResult<usize> {
    insert(conn, jobs, false).await
}

/// One INSERT of `jobs`, `ON CONFLICT DO NOTHING` when `skipping`.
///
/// The rows go in order-id order. Two inserts holding some of the same
/// orders (a job's batch and a reconciler page, which comes in the ledger's
/// hash order) each wait on a row the other inserted and has not committed;
/// taken in opposite orders, each waits for the other: a deadlock, and
/// PostgreSQL fails one of them after `deadlock_timeout`. In one order the
/// second waits for the first and then skips (or, inserting plainly, fails
/// on) the rows it finds.
async fn insert(
    conn: &mut AsyncPgConnection,
    jobs: &[PersistOrder],
    skipping: bool,
) -> QueryResult<usize> {
    if jobs.is_empty() {
        return Ok(0);
    }
    let mut rows: Vec<NewOrder<'_>> = jobs.iter().map(NewOrder::from).collect();
    rows.sort_unstable_by_key(|row| row.id);
    let insert = diesel::insert_into(orders::table).values(rows);
    if skipping {
        insert.on_conflict_do_nothing().execute(conn).await
    } else {
        insert.execute(conn).await
    }
}

/// Which of `users` have an order in `sale`, and which: (user id, order id).
pub async fn orders_of_users(
    conn: &mut AsyncPgConnection,
    sale: &str,
    users: &[&str],
) -> QueryResult<Vec<(String, uuid::Uuid)>> {
    orders::table
        .filter(orders::sale_id.eq(sale))
        .filter(orders::user_id.eq_any(users))
        .select((orders::user_id, orders::id))
        .load(conn)
        .await
}

/// How many orders a sale has in PostgreSQL.
pub async fn count_orders(conn: &mut AsyncPgConnection, sale: &str) -> QueryResult<i64> {
    orders::table
        .filter(orders::sale_id.eq(sale))
        .count()
        .get_result(conn)
        .await
}

/// Which of `ids` are already orders.
pub async fn existing_order_ids(
    conn: &mut AsyncPgConnection,
    ids: &[uuid::Uuid],
) -> QueryResult<Vec<uuid::Uuid>> {
    orders::table
        .filter(orders::id.eq_any(ids))
        .select(orders::id)
        .load(conn)
        .await
}

/// A sale's orders as ledger entries (user id, entry); none if the table
/// does not exist yet (no worker ever ran, so nothing was ever persisted).
pub async fn ledger_of_sale(
    conn: &mut AsyncPgConnection,
    sale: &SaleId,
) -> anyhow::Result<Vec<(String, LedgerEntry)>> {
    #[derive(QueryableByName)]
    struct Table {
        #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Text>)]
        name: Option<String>,
    }
    let table: Table = sql_query("SELECT to_regclass('orders')::text AS name")
        .get_result(conn)
        .await?;
    if table.name.is_none() {
        return Ok(Vec::new());
    }
    let rows: Vec<(uuid::Uuid, String, DateTime<Utc>)> = orders::table
        .filter(orders::sale_id.eq(sale.as_str()))
        .select((orders::id, orders::user_id, orders::created_at))
        .load(conn)
        .await?;
    Ok(rows.into_iter().map(ledger_entry).collect())
}

/// `user`'s order in `sale`, if there is one.
pub async fn order_of(
    conn: &mut AsyncPgConnection,
    sale: &SaleId,
    user: &UserId,
) -> QueryResult<Option<LedgerEntry>> {
    let row: Option<(uuid::Uuid, String, DateTime<Utc>)> = orders::table
        .filter(orders::sale_id.eq(sale.as_str()))
        .filter(orders::user_id.eq(user.as_str()))
        .select((orders::id, orders::user_id, orders::created_at))
        .first(conn)
        .await
        .optional()?;
    Ok(row.map(|row| ledger_entry(row).1))
}

/// A row as the ledger holds it: (user id, entry).
pub fn ledger_entry(row: (uuid::Uuid, String, DateTime<Utc>)) -> (String, LedgerEntry) {
    let (id, user, created_at) = row;
    let entry = LedgerEntry {
        order_id: OrderId::from(id),
        purchased_at: created_at,
    };
    (user, entry)
}
