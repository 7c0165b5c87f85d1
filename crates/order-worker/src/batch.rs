//! Batched persistence: job handlers hand their job's orders to one batcher,
//! which gathers jobs (for up to [`MAX_WAIT`], up to [`MAX_BATCH`] orders)
//! and writes them [`MAX_BATCH`] orders a statement (see [`insert`]).
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
/// Batches that go skipping (`ON CONFLICT DO NOTHING` at once) after one
/// that had rows already there, before a plain insert is tried again.
pub const SKIP_AFTER_ROWS_THERE: u32 = 32;
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
    tx: mpsc::Sender<(Vec<PersistOrder>, Reply)>,
}

/// Jobs that may wait for the batcher before handlers wait to hand theirs
/// over.
const WAITING_JOBS: usize = 1024;

impl Batcher {
    /// Starts the batch loop on the current runtime.
    pub fn spawn(pool: PgPool) -> Self {
        let (tx, rx) = mpsc::channel(WAITING_JOBS);
        tokio::spawn(run(pool, rx));
        Self { tx }
    }

    /// Persists a job's orders; returns once every one is committed. The
    /// job goes to the batcher whole, with one reply: a message and a
    /// wake-up per job, not per order.
    pub async fn persist_all(&self, orders: Vec<PersistOrder>) -> Result<(), PersistError> {
        if orders.is_empty() {
            return Ok(());
        }
        let (reply, done) = oneshot::channel();
        self.tx
            .send((orders, reply))
            .await
            .map_err(|_| PersistError::BatcherGone)?;
        done.await.map_err(|_| PersistError::BatcherGone)?
    }

    /// Persists one order; returns once its batch is committed.
    pub async fn persist(&self, order: PersistOrder) -> Result<(), PersistError> {
        self.persist_all(vec![order]).await
    }
}

async fn run(pool: PgPool, mut rx: mpsc::Receiver<(Vec<PersistOrder>, Reply)>) {
    // Batches still to go skipping: redeliveries come in runs (a restarted
    // worker's jobs; a backlog the reconciler, past its grace, persisted
    // partly first, a few rows in nearly every batch), and while they do a
    // plain insert first would fail and be sent again for most batches.
    let mut skip_for: u32 = 0;
    let mut replies: Vec<Reply> = Vec::new();
    while let Some((first, reply)) = rx.recv().await {
        let mut orders = first;
        replies.push(reply);
        let deadline = tokio::time::Instant::now() + MAX_WAIT;
        while orders.len() < MAX_BATCH {
            match tokio::time::timeout_at(deadline, rx.recv()).await {
                Ok(Some((more, reply))) => {
                    orders.extend(more);
                    replies.push(reply);
                }
                _ => break,
            }
        }
        // Jobs join whole, so a batch may pass MAX_BATCH by up to a job;
        // it is written MAX_BATCH orders a statement.
        let mut result = Ok(0);
        for chunk in orders.chunks(MAX_BATCH) {
            result = match write(&pool, chunk, skip_for > 0).await {
                Ok(inserted) => result.map(|sum| sum + inserted),
                Err(error) => Err(error),
            };
            if result.is_err() {
                break;
            }
        }
        if let Ok(inserted) = result {
            skip_for = if inserted < orders.len() {
                SKIP_AFTER_ROWS_THERE
            } else {
                skip_for.saturating_sub(1)
            };
        }
        let result = result.map(|_| ());
        for reply in replies.drain(..) {
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
/// `skipping` (one of the last [`SKIP_AFTER_ROWS_THERE`] batches had such
/// rows) it goes that way at once.
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
        Ok(inserted) => {
            metrics::insert("new");
            Ok(inserted)
        }
        Err(error) => Err(error),
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
