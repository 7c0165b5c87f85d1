//! Job handlers. Every handler is idempotent: at-least-once delivery must
//! never duplicate an order.

use apalis::prelude::Data;
use domain::PersistOrder;

use std::time::{Duration, Instant};

use crate::{
    db::{self, Inserted, PgPool},
    metrics,
};

/// What handlers share.
#[derive(Clone)]
pub struct JobContext {
    pub pool: PgPool,
}

/// The longest a job waits for PostgreSQL (connection and insert together).
/// A call that never returns must not pin a job slot forever.
const DB_TIMEOUT: Duration = Duration::from_secs(10);

/// Why a job failed this time; apalis retries it with backoff.
#[derive(Debug, thiserror::Error)]
pub enum JobError {
    #[error("PostgreSQL did not answer within {0:?}")]
    Timeout(Duration),
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
    metrics::job_attempt();
    let started = Instant::now();
    let inserted = tokio::time::timeout(DB_TIMEOUT, async {
        let mut conn = ctx.pool.get().await?;
        Ok::<_, JobError>(db::insert_order(&mut conn, &job).await?)
    })
    .await
    .unwrap_or(Err(JobError::Timeout(DB_TIMEOUT)));
    metrics::db_query("insert_order", started.elapsed());
    match inserted.inspect_err(log_failure)? {
        Inserted::New => {
            metrics::job_done("persisted");
            metrics::persisted("job", 1);
            tracing::debug!("order persisted");
        }
        Inserted::AlreadyPersisted => {
            metrics::job_done("duplicate");
            tracing::debug!("order was persisted before");
        }
        Inserted::ConflictingOrder => {
            metrics::job_done("conflict");
            tracing::error!("user already has another order for this sale; job dropped");
        }
    }
    Ok(())
}

fn log_failure(error: &impl std::error::Error) {
    metrics::job_failed();
    tracing::warn!(error = %error, "persisting order failed; will retry");
}
