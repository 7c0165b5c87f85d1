//! Batched persistence: job handlers hand their order to one batcher, which
//! writes up to [`MAX_BATCH`] orders per `INSERT … ON CONFLICT DO NOTHING`.
//!
//! A job completes only when its batch is committed, so at-least-once
//! delivery is unchanged; a failed batch fails every job in it and each is
//! retried (and, past its retries, reconciled) as before.

use std::{collections::HashSet, time::Duration};

use domain::PersistOrder;
use tokio::sync::{mpsc, oneshot};

use crate::{
    db::{self, PgPool},
    metrics,
};

/// Most orders in one INSERT.
pub const MAX_BATCH: usize = 500;
/// How long a batch waits to fill once it has its first order.
const MAX_WAIT: Duration = Duration::from_millis(2);
/// The longest one batch may take (connection and insert).
const DB_TIMEOUT: Duration = Duration::from_secs(10);

type Reply = oneshot::Sender<Result<(), String>>;

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
    pub async fn persist_all(&self, orders: Vec<PersistOrder>) -> Result<(), String> {
        let results = futures::future::join_all(orders.into_iter().map(|o| self.persist(o))).await;
        results.into_iter().collect()
    }

    /// Persists one order; returns once its batch is committed.
    pub async fn persist(&self, order: PersistOrder) -> Result<(), String> {
        let (reply, done) = oneshot::channel();
        self.tx
            .send((order, reply))
            .await
            .map_err(|_| "the batcher stopped".to_owned())?;
        done.await
            .map_err(|_| "the batcher dropped the order".to_owned())?
    }
}

async fn run(pool: PgPool, mut rx: mpsc::Receiver<(PersistOrder, Reply)>) {
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
        let result = write(&pool, &orders).await;
        for reply in replies {
            let _ = reply.send(result.clone());
        }
    }
}

async fn write(pool: &PgPool, orders: &[PersistOrder]) -> Result<(), String> {
    let started = std::time::Instant::now();
    let written = tokio::time::timeout(DB_TIMEOUT, async {
        let mut conn = pool.get().await.map_err(|e| e.to_string())?;
        let inserted = db::insert_orders(&mut conn, orders)
            .await
            .map_err(|e| e.to_string())?;
        let conflicts = if inserted < orders.len() {
            // Counting is best effort: the orders are committed either way.
            report_conflicts(&mut conn, orders).await.unwrap_or(0)
        } else {
            0
        };
        Ok::<_, String>((inserted, conflicts))
    })
    .await
    .unwrap_or_else(|_| Err(format!("PostgreSQL did not answer within {DB_TIMEOUT:?}")));
    metrics::db_query("insert_batch", started.elapsed());
    let (inserted, conflicts) = written?;
    metrics::persisted("job", inserted);
    metrics::job_done_n("persisted", inserted);
    metrics::job_done_n("conflict", conflicts);
    metrics::job_done_n("duplicate", orders.len() - inserted - conflicts);
    Ok(())
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
    let existing: HashSet<uuid::Uuid> = db::existing_order_ids(conn, &ids)
        .await?
        .into_iter()
        .collect();
    let mut conflicts = 0;
    for order in orders
        .iter()
        .filter(|o| !existing.contains(&o.order_id.as_uuid()))
    {
        let user = order.user_id.as_str();
        let standing = db::orders_of_users(conn, order.sale_id.as_str(), &[user]).await?;
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
