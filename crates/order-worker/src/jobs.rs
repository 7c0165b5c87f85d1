//! Job handlers. Every handler is idempotent: at-least-once delivery must
//! never duplicate an order.

use apalis::prelude::{Data, TaskId};
use domain::PersistOrders;

use crate::{
    batch::{Batcher, PersistError},
    keeper::Finished,
    metrics,
};

/// What handlers share.
#[derive(Clone)]
pub struct JobContext {
    pub batcher: Batcher,
    /// Notes each job whose orders are committed, for the sweep.
    pub finished: Finished,
}

/// Persists a job's confirmed purchases as order rows (in INSERT batches
/// shared with the other jobs in flight). The job succeeds only when every
/// order is committed; a retry re-inserts them all, and the ones already
/// there are skipped (`crate::batch`: a plain INSERT that meets them goes
/// again with ON CONFLICT DO NOTHING). A failed job is retried by apalis
/// with backoff.
#[tracing::instrument(name = "persist_orders", skip_all, fields(orders = job.orders.len()))]
pub async fn persist_orders(
    job: PersistOrders,
    id: TaskId,
    ctx: Data<JobContext>,
) -> Result<(), PersistError> {
    metrics::job_attempt();
    ctx.batcher.persist_all(job.orders).await.inspect_err(|e| {
        metrics::job_failed();
        tracing::warn!(
            error = domain::telemetry::chain(e),
            "persisting orders failed; will retry"
        );
    })?;
    ctx.finished.note(id.to_string());
    Ok(())
}
