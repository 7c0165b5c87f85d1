//! Job handlers. Every handler is idempotent: at-least-once delivery must
//! never duplicate an order.

use apalis::prelude::Data;
use domain::PersistOrders;

use crate::{batch::Batcher, metrics};

/// What handlers share.
#[derive(Clone)]
pub struct JobContext {
    pub batcher: Batcher,
}

/// Why a job failed this time; apalis retries it with backoff.
#[derive(Debug, thiserror::Error)]
#[error("persisting the order failed: {0}")]
pub struct JobError(String);

/// Persists a job's confirmed purchases as order rows (in INSERT batches
/// shared with the other jobs in flight). The job succeeds only when every
/// order is committed; a retry re-inserts them all, and the ones already
/// there are skipped (ON CONFLICT DO NOTHING).
#[tracing::instrument(name = "persist_orders", skip_all, fields(orders = job.orders.len()))]
pub async fn persist_orders(job: PersistOrders, ctx: Data<JobContext>) -> Result<(), JobError> {
    metrics::job_attempt();
    ctx.batcher.persist_all(job.orders).await.map_err(|e| {
        metrics::job_failed();
        tracing::warn!(error = %e, "persisting order failed; will retry");
        JobError(e)
    })
}
