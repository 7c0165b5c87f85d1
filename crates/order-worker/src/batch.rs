//! Batched persistence: job handlers hand their order to one batcher, which
//! writes up to [`MAX_BATCH`] orders per `INSERT … ON CONFLICT DO NOTHING`.
//!
//! A job completes only when its batch is committed, so at-least-once
//! delivery holds: a failed batch fails every job in it, and each is
//! retried (and, past its retries, reconciled from the ledger).

use std::{collections::HashSet, sync::Arc, time::Duration};

use domain::PersistOrder;
use tokio::sync::{mpsc, oneshot};

use orders::PgPool;

use crate::metrics;

/// Most orders in one INSERT.
pub const MAX_BATCH: usize = 500;
/// How long a batch waits to fill once it has its first order.
const MAX_WAIT: Duration = Duration::from_millis(2);
/// The longest one batch may take (connection and insert).
const DB_TIMEOUT: Duration = Duration::from_secs(10);

/// Why a batch, and every order in it, was not committed. Cloned to each
/// order's waiter, hence the shared sources.
#[derive(Debug, Clone, thiserror::Error)]
pub enum PersistError {
    #[error("the batcher is not running")]
    BatcherGone,
    #[error("no PostgreSQL connection")]
    Connection(#[source] Arc<bb8::RunError<diesel_async::pooled_connection::PoolError>>),
    #[error("the insert failed")]
    Insert(#[source] Arc<diesel::result::Error>),
    #[error("PostgreSQL did not answer within {0:?}")]
    Timeout(Duration),
}

type Reply = oneshot::Sender<Result<(), PersistError>>;

#[derive(Clone)]
pub struct Batcher {
    tx: mpsc::Sender<(PersistOrder, Reply)>,
}

impl Batcher {
    /// Starts the batch loop on the current runtime.
    pub fn spawn(pool: PgPool) -> Self {
        let (tx, rx) = mpsc::channel(MAX_BATCH * 4);
        tokio::spawn(run(pool, rx));
        Self { tx }
    }

    /// Persists a job's orders; returns once every one is committed.
    pub async fn persist_all(&self, orders: Vec<PersistOrder>) -> Result<(), PersistError> {
        let results = futures::future::join_all(orders.into_iter().map(|o| self.persist(o))).await;
        results.into_iter().collect()
    }

    /// Persists one order; returns once its batch is committed.
    pub async fn persist(&self, order: PersistOrder) -> Result<(), PersistError> {
        let (reply, done) = oneshot::channel();
        self.tx
            .send((order, reply))
            .await
            .map_err(|_| PersistError::BatcherGone)?;
        done.await.map_err(|_| PersistError::BatcherGone)?
    }
}

async fn run(pool: PgPool, mut rx: mpsc::Receiver<(PersistOrder, Reply)>) {
    // Whether the last batch had rows already there: redeliveries come in
    // runs (a restarted worker's jobs, a backlog the reconciler persisted
    // first), and while they do, a plain insert first would fail and be
    // sent again for nearly every batch.
    let mut skipping = false;
    while let Some(first) = rx.recv().await {
        let mut batch = vec![first];
        let deadline = tokio::time::Instant::now() + MAX_WAIT;
        while batch.len() < MAX_BATCH {
            match tokio::time::timeout_at(deadline, rx.recv()).await {
                Ok(Some(item)) => batch.push(item),
                _ => break,
            }
        }
        let (orders, replies): (Vec<PersistOrder>, Vec<Reply>) = batch.into_iter().unzip();
        let result = write(&pool, &orders, skipping).await;
        if let Ok(inserted) = result {
            skipping = inserted < orders.len();
        }
        let result = result.map(|_| ());
        for reply in replies {
            let _ = reply.send(result.clone());
        }
    }
}

/// Inserts `orders` (each looked up first when `skipping`); how many were new.
async fn write(
    pool: &PgPool,
    orders: &[PersistOrder],
    skipping: bool,
) -> Result<usize, PersistError> {
    let started = std::time::Instant::now();
    let written = tokio::time::timeout(DB_TIMEOUT, async {
        let mut conn = pool
            .get()
            .await
            .map_err(|e| PersistError::Connection(Arc::new(e)))?;
        let inserted = insert(&mut conn, orders, skipping)
            .await
            .map_err(|e| PersistError::Insert(Arc::new(e)))?;
        let conflicts = if inserted < orders.len() {
            // Counting is best effort: the orders are committed either way.
            report_conflicts(&mut conn, orders).await.unwrap_or(0)
        } else {
            0
        };
        Ok::<_, PersistError>((inserted, conflicts))
    })
    .await
    .unwrap_or(Err(PersistError::Timeout(DB_TIMEOUT)));
    metrics::db_query("insert_batch", started.elapsed());
    let (inserted, conflicts) = written?;
    metrics::persisted("job", inserted);
    metrics::job_done_n("persisted", inserted);
    metrics::job_done_n("conflict", conflicts);
    metrics::job_done_n("duplicate", orders.len() - inserted - conflicts);
    Ok(inserted)
}

/// Inserts `orders`; how many were new. A batch of new orders (nearly
/// every one) goes as a plain `INSERT`, which PostgreSQL checks against the
/// unique indexes as it takes each row; `INSERT ... ON CONFLICT DO
/// NOTHING` would look each up in both first, most of a plain insert's CPU
/// again. A batch with a row already there (a redelivered job, a conflict)
/// fails the plain insert whole and goes again skipping those rows; when
/// `skipping` (the last batch had such rows: redeliveries come in runs, a
/// restarted worker's jobs or a backlog the reconciler persisted first) it
/// goes that way at once.
async fn insert(
    conn: &mut diesel_async::AsyncPgConnection,
    orders: &[PersistOrder],
    skipping: bool,
) -> diesel::QueryResult<usize> {
    if skipping {
        metrics::insert("skipping");
        return orders::insert_orders(conn, orders).await;
    }
    match orders::insert_new_orders(conn, orders).await {
        Err(diesel::result::Error::DatabaseError(
            diesel::result::DatabaseErrorKind::UniqueViolation,
            _,
        )) => {
            metrics::insert("retried-skipping");
            orders::insert_orders(conn, orders).await
        }
        inserted => {
            metrics::insert("new");
            inserted
        }
    }
}

/// Orders the insert skipped are redeliveries, unless their id is missing:
/// then their user already has another order for the sale (a conflict:
/// Redis confirmed the user twice, e.g. after losing its ledger). The row
/// that stands wins; both order ids are logged. Returns the conflicts.
async fn report_conflicts(
    conn: &mut diesel_async::AsyncPgConnection,
    orders: &[PersistOrder],
) -> diesel::QueryResult<usize> {
    let ids: Vec<uuid::Uuid> = orders.iter().map(|o| o.order_id.as_uuid()).collect();
    let existing: HashSet<uuid::Uuid> = orders::existing_order_ids(conn, &ids)
        .await?
        .into_iter()
        .collect();
    let mut conflicts = 0;
    for order in orders
        .iter()
        .filter(|o| !existing.contains(&o.order_id.as_uuid()))
    {
        let user = order.user_id.as_str();
        let standing = orders::orders_of_users(conn, order.sale_id.as_str(), &[user]).await?;
        let standing = standing.first().map(|(_, id)| id.to_string());
        tracing::error!(
            order.id = %order.order_id,
            standing.order.id = standing.as_deref().unwrap_or("none"),
            sale.id = %order.sale_id,
            user.id = %order.user_id,
            "conflict: the user already has another order for this sale; this order was dropped"
        );
        conflicts += 1;
    }
    Ok(conflicts)
}
