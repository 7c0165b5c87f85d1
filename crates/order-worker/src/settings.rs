//! The worker's settings, read once at start.
//!
//! Besides the shared variables of `domain::config` (Redis, PostgreSQL,
//! `ORDER_QUEUE`, `LOG_FORMAT`):
//! - `WORKER_CONCURRENCY` (`256`): jobs in flight in this process; they are
//!   written together in batches of up to 500
//! - `WORKER_NAME` (`order-worker-<host>-<pid>-<random>`): must be unique per
//!   process, apalis refuses a name still registered by a recent process
//! - `WORKER_POLL_INTERVAL_MS` (`100`): how often an idle worker asks for jobs
//! - `WORKER_MAX_RETRIES` (`5`): in-process retries of a failing job, with
//!   exponential backoff from 100 ms up to 2 s; past them the reconciler
//!   persists the order once PostgreSQL answers again
//! - `RECONCILE_INTERVAL_MS` (`10000`): how often the reconciler compares
//!   the Redis ledgers with PostgreSQL
//! - `RECONCILE_GRACE_MS` (`10000`): ledger entries younger than this are
//!   left to their job
//! - `RECONCILE_SALES` (`*`): glob of the sale ids this worker reconciles
//! - `RECONCILE_BACKLOG_JOBS` (`1000`) / `RECONCILE_BACKLOG_WAIT_MS`
//!   (`300000`): while the order queue holds more jobs than this waiting,
//!   the reconciler leaves missing ledger entries to those jobs, for at
//!   most the wait (a backlog that does not drain is repaired anyway)
//! - `SALE_RETENTION_SECONDS` (`604800`, a week): an ended sale's Redis keys
//!   are removed this long after its end, once every order is in PostgreSQL
//! - `FINISHED_JOB_RETENTION_SECONDS` (`300`): finished jobs stay in Redis
//!   this long (to look at while debugging), then they are removed
//! - `METRICS_PORT` (`9091`): where `/metrics` is served; 0 turns it off

use std::time::Duration;

use domain::{
    config::{self, ConfigError, DatabaseConfig, Env, RedisConfig},
    telemetry::LogFormat,
};

use crate::reconcile::ReconcileSettings;

#[derive(Debug, Clone)]
pub struct WorkerSettings {
    /// The Redis holding the sales' ledgers.
    pub redis: RedisConfig,
    /// The Redis holding the order queue (the same one unless split).
    pub queue_redis: RedisConfig,
    pub database: DatabaseConfig,
    pub queue: String,
    pub name: String,
    pub concurrency: usize,
    pub poll_interval: Duration,
    pub max_retries: usize,
    pub finished_job_retention: Duration,
    pub reconcile: ReconcileSettings,
    pub metrics_port: u16,
    pub log_format: LogFormat,
}

impl WorkerSettings {
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        let concurrency: usize = env.positive("WORKER_CONCURRENCY", 256)?;
        let poll_ms: u64 = env.positive("WORKER_POLL_INTERVAL_MS", 100)?;
        let redis = RedisConfig::from_env(env)?;
        let interval_ms: u64 = env.positive("RECONCILE_INTERVAL_MS", 10_000)?;
        Ok(Self {
            queue_redis: RedisConfig::queue_from_env(env, &redis)?,
            redis,
            database: DatabaseConfig::from_env(env)?,
            queue: config::order_queue(env),
            name: env.string("WORKER_NAME", &default_name()),
            concurrency,
            poll_interval: Duration::from_millis(poll_ms),
            max_retries: env.parse("WORKER_MAX_RETRIES", 5)?,
            finished_job_retention: Duration::from_secs(
                env.parse("FINISHED_JOB_RETENTION_SECONDS", 300)?,
            ),
            reconcile: ReconcileSettings {
                interval: Duration::from_millis(interval_ms),
                grace: Duration::from_millis(env.parse("RECONCILE_GRACE_MS", 10_000)?),
                sales: env.string("RECONCILE_SALES", "*"),
                backlog_jobs: env.parse("RECONCILE_BACKLOG_JOBS", 1000)?,
                backlog_wait: Duration::from_millis(
                    env.parse("RECONCILE_BACKLOG_WAIT_MS", 300_000)?,
                ),
                sale_retention: Duration::from_secs(env.parse("SALE_RETENTION_SECONDS", 604_800)?),
            },
            metrics_port: env.parse("METRICS_PORT", 9091)?,
            log_format: env.parse("LOG_FORMAT", LogFormat::Pretty)?,
        })
    }
}

fn default_name() -> String {
    let host = std::fs::read_to_string("/etc/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_else(|_| "host".to_owned());
    let random = uuid::Uuid::new_v4().simple().to_string();
    format!(
        "order-worker-{host}-{}-{}",
        std::process::id(),
        &random[..8]
    )
}
