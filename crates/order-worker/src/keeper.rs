//! Keeps the queue from jamming: see `lua/promote_due.lua` for why.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use apalis_redis::Config;
use redis::{aio::ConnectionManager, RedisResult, Script};
use tokio_util::sync::CancellationToken;

/// Jobs moved per script call: far below Lua's ~8,000 `unpack` limit, and
/// short enough not to stall Redis.
const CHUNK: usize = 1000;

#[derive(Clone)]
pub struct Promoter {
    script: Script,
    keys: [String; 3],
}

impl Promoter {
    pub fn new(queue: &str) -> Self {
        let config = Config::default().queue(queue);
        Self {
            script: Script::new(include_str!("../lua/promote_due.lua")),
            keys: [
                config.scheduled_jobs_set(),
                config.active_jobs_list(),
                config.signal_list(),
            ],
        }
    }

    /// Moves every due job to the active list; returns how many moved.
    pub async fn promote_all(&self, conn: &mut ConnectionManager) -> RedisResult<usize> {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs();
        let mut moved = 0;
        loop {
            let n: usize = self
                .script
                .key(&self.keys[0])
                .key(&self.keys[1])
                .key(&self.keys[2])
                .arg(now)
                .arg(CHUNK)
                .invoke_async(conn)
                .await?;
            moved += n;
            if n < CHUNK {
                return Ok(moved);
            }
        }
    }

    /// Jobs waiting: (scheduled, active).
    pub async fn depth(&self, conn: &mut ConnectionManager) -> RedisResult<(u64, u64)> {
        redis::pipe()
            .cmd("ZCARD")
            .arg(&self.keys[0])
            .cmd("LLEN")
            .arg(&self.keys[1])
            .query_async(conn)
            .await
    }

    /// Promotes every `interval` until `shutdown`; reports the queue depth
    /// about once a second.
    pub async fn run(
        self,
        mut conn: ConnectionManager,
        interval: Duration,
        shutdown: CancellationToken,
    ) {
        let mut tick = tokio::time::interval(interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut last_depth = std::time::Instant::now() - Duration::from_secs(1);
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tick.tick() => {}
            }
            if let Err(error) = self.promote_all(&mut conn).await {
                tracing::debug!(%error, "promoting due jobs failed; retrying");
            }
            if last_depth.elapsed() >= Duration::from_secs(1) {
                last_depth = std::time::Instant::now();
                if let Ok((scheduled, active)) = self.depth(&mut conn).await {
                    crate::metrics::queue_depth(scheduled, active);
                }
            }
        }
    }
}
