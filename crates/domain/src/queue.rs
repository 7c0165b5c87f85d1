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

/// The storage of `queue` on `conn`; the queue name is always explicit.
pub fn storage(conn: ConnectionManager, queue: &str) -> OrderStorage {
    RedisStorage::new(conn).with_config(Config::default().queue(queue).batch_size(FETCH_BATCH))
}
