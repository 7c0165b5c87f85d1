//! The apalis storage of the order queue, built the same way in both binaries.

use std::time::Duration;

use apalis_redis::{Config, ConnectionManager, RedisStorage};
use redis::{aio::ConnectionManagerConfig, Client, RedisError};

use crate::{config::RedisConfig, PersistOrders};

/// The order queue's storage.
pub type OrderStorage = RedisStorage<PersistOrders, ConnectionManager>;

/// A reconnecting connection for apalis with bounded connect and response
/// times, so a Redis outage turns into errors instead of hung calls.
///
/// Lazy: it connects on first use, so a process can start while Redis is
/// down and recover by itself when it returns.
pub fn connection(redis: &RedisConfig) -> Result<ConnectionManager, RedisError> {
    let client = Client::open(redis.url.as_str())?;
    let config = ConnectionManagerConfig::new()
        .set_connection_timeout(Some(redis.command_timeout))
        .set_response_timeout(Some(redis.command_timeout))
        .set_number_of_retries(2)
        .set_max_delay(Duration::from_millis(500));
    ConnectionManager::new_lazy_with_config(client, config)
}

/// Jobs a worker fetches per poll: enough to fill the worker's batches.
const FETCH_BATCH: usize = 100;

/// How often a worker says it is alive. A loop that misses
/// [`MISSED_HEARTBEATS`] in a row counts as dead and another worker takes
/// its jobs back: 30 s, where apalis's defaults (30 s x 10) made a killed
/// worker's jobs wait five minutes.
const HEARTBEAT: Duration = Duration::from_secs(5);
const MISSED_HEARTBEATS: usize = 6;

/// The storage of `queue` on `conn`; the queue name is always explicit.
///
/// No pub/sub events (nobody listens; each would cost a PUBLISH per job)
/// and no task locks (each lock scans the whole active list with LREM, and
/// a fetch already moves a job into one worker's in-flight set).
pub fn storage(conn: ConnectionManager, queue: &str) -> OrderStorage {
    let config = Config::default()
        .queue(queue)
        .batch_size(FETCH_BATCH)
        .heartbeat_interval(HEARTBEAT)
        .missed_heartbeats(MISSED_HEARTBEATS)
        .emit_events(false)
        .lock_tasks(false);
    RedisStorage::new(conn).with_config(config)
}
