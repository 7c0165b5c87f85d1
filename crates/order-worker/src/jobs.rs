//! Job handlers. Every handler is idempotent: at-least-once delivery must
//! never duplicate an order.

use apalis::prelude::Data;
use domain::PersistOrder;

use crate::db::{self, Inserted, PgPool};

/// What handlers share.
#[derive(Clone)]
pub struct JobContext {
    pub pool: PgPool,
}

/// Why a job failed this time; apalis retries it with backoff.
#[derive(Debug, thiserror::Error)]
pub enum JobError {
    #[error("no PostgreSQL connection")]
    Pool(#[from] diesel_async::pooled_connection::bb8::RunError),
    #[error("PostgreSQL query failed")]
    Query(#[from] diesel::result::Error),
}

/// Persists one confirmed purchase as an order row.
#[tracing::instrument(
    name = "persist_order",
    skip_all,
    fields(order.id = %job.order_id, sale.id = %job.sale_id, user.id = %job.user_id)
)]
pub async fn persist_order(job: PersistOrder, ctx: Data<JobContext>) -> Result<(), JobError> {
    let mut conn = ctx.pool.get().await.inspect_err(log_failure)?;
    match db::insert_order(&mut conn, &job)
        .await
        .inspect_err(log_failure)?
    {
        Inserted::New => tracing::debug!("order persisted"),
        Inserted::AlreadyPersisted => tracing::debug!("order was persisted before"),
        Inserted::ConflictingOrder => {
            tracing::error!("user already has another order for this sale; job dropped")
        }
    }
    Ok(())
}

fn log_failure(error: &impl std::error::Error) {
    tracing::warn!(error = %error, "persisting order failed; will retry");
}
