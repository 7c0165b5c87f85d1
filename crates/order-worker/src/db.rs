//! PostgreSQL: the pool, the embedded migrations and the order insert.

use anyhow::Context;
use diesel::{prelude::*, sql_query};
use diesel_async::{
    pooled_connection::{bb8, AsyncDieselConnectionManager},
    AsyncConnection, AsyncMigrationHarness, AsyncPgConnection, RunQueryDsl,
};
use diesel_migrations::{embed_migrations, EmbeddedMigrations, MigrationHarness};
use domain::{config::DatabaseConfig, PersistOrder};

use crate::schema::orders;

pub type PgPool = bb8::Pool<AsyncPgConnection>;

/// The SQL migrations of `migrations/`, compiled into the binary.
pub const MIGRATIONS: EmbeddedMigrations = embed_migrations!("../../migrations");

/// Key of the advisory lock that serialises migrations across workers.
const MIGRATION_LOCK_KEY: i64 = 0x0f1a_5e5a_1e00_0001;

/// A pool that connects lazily: the worker starts even if PostgreSQL is down
/// and its jobs wait (and retry) until it is back.
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

/// Inserts many orders in one statement; rows already there are skipped.
/// Returns how many were new.
pub async fn insert_orders(
    conn: &mut AsyncPgConnection,
    jobs: &[PersistOrder],
) -> QueryResult<usize> {
    if jobs.is_empty() {
        return Ok(0);
    }
    let rows: Vec<NewOrder<'_>> = jobs.iter().map(NewOrder::from).collect();
    diesel::insert_into(orders::table)
        .values(rows)
        .on_conflict_do_nothing()
        .execute(conn)
        .await
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

/// One page of a sale's orders, in id order after `after`:
/// (order id, user id, purchase time).
pub async fn orders_page(
    conn: &mut AsyncPgConnection,
    sale: &str,
    after: Option<uuid::Uuid>,
    limit: i64,
) -> QueryResult<Vec<(uuid::Uuid, String, chrono::DateTime<chrono::Utc>)>> {
    let mut query = orders::table
        .filter(orders::sale_id.eq(sale))
        .select((orders::id, orders::user_id, orders::created_at))
        .order(orders::id)
        .limit(limit)
        .into_boxed();
    if let Some(after) = after {
        query = query.filter(orders::id.gt(after));
    }
    query.load(conn).await
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
