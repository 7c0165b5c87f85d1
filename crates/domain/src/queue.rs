//! The apalis storage of the order queue, built the same way in both binaries.

use std::time::Duration;

use apalis_redis::{Config, RedisStorage};
use redis::{aio::ConnectionManagerConfig, Client, RedisError};

pub use crate::queue_connection::QueueConnection;
use crate::{config::RedisConfig, PersistOrder, PersistOrders, SaleId};

/// The order queue's storage.
pub type OrderStorage = RedisStorage<PersistOrders, QueueConnection>;

/// A reconnecting connection for apalis with bounded connect and response
/// times, so a Redis outage turns into errors instead of hung calls; on a
/// `redis-sentinel://` URL it follows the primary the sentinels name.
///
/// Lazy: it connects on first use, so a process can start while Redis is
/// down and recover by itself when it returns.
pub fn connection(redis: &RedisConfig) -> Result<QueueConnection, RedisError> {
    let config = ConnectionManagerConfig::new()
        .set_connection_timeout(Some(redis.command_timeout))
        .set_response_timeout(Some(redis.command_timeout))
        .set_number_of_retries(2)
        .set_max_delay(Duration::from_millis(500));
    if redis.is_sentinel() {
        return QueueConnection::sentinel(&redis.url, config);
    }
    let client = Client::open(redis.url.as_str())?;
    QueueConnection::direct(client, config)
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
pub fn storage(conn: QueueConnection, queue: &str) -> OrderStorage {
    let config = Config::default()
        .queue(queue)
        .batch_size(FETCH_BATCH)
        .heartbeat_interval(HEARTBEAT)
        .missed_heartbeats(MISSED_HEARTBEATS)
        .emit_events(false)
        .lock_tasks(false);
    RedisStorage::new(conn).with_config(config)
}

/// The orders of `sale` that jobs in `queue` carry: pushed, not yet swept
/// (waiting, running, failed or done). Read a page at a time (HSCAN of
/// apalis's job data); a payload that is not a [`PersistOrders`] is
/// skipped. A sale Redis lost is rebuilt from these as well as from
/// PostgreSQL's rows: a confirmed purchase whose job has not landed yet
/// must not go back on sale.
pub async fn orders_in_queue(
    conn: &mut QueueConnection,
    queue: &str,
    sale: &SaleId,
) -> Result<Vec<PersistOrder>, RedisError> {
    let data = Config::default().queue(queue).job_data_hash();
    let mut orders = Vec::new();
    let mut cursor: u64 = 0;
    loop {
        let (next, page): (u64, Vec<(String, Vec<u8>)>) = redis::cmd("HSCAN")
            .arg(&data)
            .arg(cursor)
            .arg("COUNT")
            .arg(1000)
            .query_async(conn)
            .await?;
        for (_, payload) in page {
            if let Ok(job) = serde_json::from_slice::<PersistOrders>(&payload) {
                orders.extend(job.orders.into_iter().filter(|o| &o.sale_id == sale));
            }
        }
        if next == 0 {
            return Ok(orders);
        }
        cursor = next;
    }
}
