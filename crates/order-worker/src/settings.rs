//! The worker's settings, read once at start.
//!
//! Besides the shared variables of `domain::config` (Redis, PostgreSQL,
//! `ORDER_QUEUE`, `LOG_FORMAT`):
//! - `WORKER_CONCURRENCY` (`16`): jobs persisted at once by this process
//! - `WORKER_NAME` (`order-worker-<host>-<pid>-<random>`): must be unique per
//!   process, apalis refuses a name still registered by a recent process
//! - `WORKER_POLL_INTERVAL_MS` (`100`): how often an idle worker asks for jobs
//! - `WORKER_MAX_RETRIES` (`10`): in-process retries of a failing job, with
//!   exponential backoff from 100 ms up to 10 s

use std::time::Duration;

use domain::{
    config::{self, ConfigError, DatabaseConfig, Env, RedisConfig},
    telemetry::LogFormat,
};

#[derive(Debug, Clone)]
pub struct WorkerSettings {
    pub redis: RedisConfig,
    pub database: DatabaseConfig,
    pub queue: String,
    pub name: String,
    pub concurrency: usize,
    pub poll_interval: Duration,
    pub max_retries: usize,
    pub log_format: LogFormat,
}

impl WorkerSettings {
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        let concurrency: usize = env.parse("WORKER_CONCURRENCY", 16)?;
        if concurrency == 0 {
            return Err(ConfigError::new(
                "WORKER_CONCURRENCY",
                "0",
                "must be at least 1",
            ));
        }
        let poll_ms: u64 = env.parse("WORKER_POLL_INTERVAL_MS", 100)?;
        if poll_ms == 0 {
            return Err(ConfigError::new(
                "WORKER_POLL_INTERVAL_MS",
                "0",
                "must be at least 1",
            ));
        }
        Ok(Self {
            redis: RedisConfig::from_env(env)?,
            database: DatabaseConfig::from_env(env)?,
            queue: config::order_queue(env),
            name: env.string("WORKER_NAME", &default_name()),
            concurrency,
            poll_interval: Duration::from_millis(poll_ms),
            max_retries: env.parse("WORKER_MAX_RETRIES", 10)?,
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
