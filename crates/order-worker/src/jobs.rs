//! Job handlers. Every handler is idempotent: at-least-once delivery must
//! never duplicate an order.

use apalis::prelude::Data;
use domain::PersistOrder;

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

/// Persists one confirmed purchase as an order row (in a batch with the
/// other jobs in flight).
#[tracing::instrument(
    name = "persist_order",
    skip_all,
    fields(order.id = %job.order_id, sale.id = %job.sale_id, user.id = %job.user_id)
)]
pub async fn persist_order(job: PersistOrder, ctx: Data<JobContext>) -> Result<(), JobError> {
    metrics::job_attempt();
    ctx.batcher.persist(job).await.map_err(|e| {
        metrics::job_failed();
        tracing::warn!(error = %e, "persisting order failed; will retry");
        JobError(e)
    })
}
