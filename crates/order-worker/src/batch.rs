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
        if inserted < orders.len() {
            report_skipped(&mut conn, orders).await;
        }
        Ok::<_, String>(inserted)
    })
    .await
    .unwrap_or_else(|_| Err(format!("PostgreSQL did not answer within {DB_TIMEOUT:?}")));
    metrics::db_query("insert_batch", started.elapsed());
    let inserted = written?;
    metrics::persisted("job", inserted);
    metrics::job_done_n("persisted", inserted);
    metrics::job_done_n("duplicate", orders.len() - inserted);
    Ok(())
}

/// Orders the insert skipped are redeliveries, unless their id is missing:
/// then the user has another order for the sale, which Redis never confirms.
async fn report_skipped(conn: &mut diesel_async::AsyncPgConnection, orders: &[PersistOrder]) {
    let ids: Vec<uuid::Uuid> = orders.iter().map(|o| o.order_id.as_uuid()).collect();
    let Ok(existing) = db::existing_order_ids(conn, &ids).await else {
        return;
    };
    let existing: HashSet<uuid::Uuid> = existing.into_iter().collect();
    for order in orders
        .iter()
        .filter(|o| !existing.contains(&o.order_id.as_uuid()))
    {
        tracing::error!(order.id = %order.order_id, sale.id = %order.sale_id, user.id = %order.user_id,
            "user already has another order for this sale; order dropped");
    }
}
