//! Keeping apalis-redis's queue healthy: due jobs promoted in chunks (see
//! `lua/promote_due.lua`), a failed loop's jobs given back at once
//! (`lua/release_jobs.lua`), and finished jobs removed after a retention,
//! so the queue holds only live work. The handlers note each finished job
//! ([`Finished`]) and the keeper removes the noted ones a retention later
//! (`lua/sweep_noted.lua`: each job touched once); once per retention a
//! walk of apalis's whole done set (`lua/sweep_finished.lua`) catches any
//! job whose note was lost.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use apalis_redis::Config;
use domain::queue::QueueConnection;
use domain::PersistOrders;
use redis::{AsyncCommands, RedisResult, Script};
use tokio_util::sync::CancellationToken;

use orders::PgPool;

/// Jobs moved or swept per script call: far below Lua's ~8,000 `unpack`
/// limit, and short enough not to stall Redis.
const CHUNK: usize = 1000;

/// How often noted finished jobs are swept.
const SWEEP_EVERY: Duration = Duration::from_secs(5);

/// Notes waiting for the recorder before a handler's note is dropped (the
/// walk of the done set catches what a dropped note leaves).
const NOTES_WAITING: usize = 10_000;

/// Notes that a job finished: its orders are committed. Group-committed:
/// one `ZADD` carries every note of the moment.
#[derive(Clone)]
pub struct Finished {
    tx: tokio::sync::mpsc::Sender<String>,
}

impl Finished {
    /// Starts the recorder on the current runtime.
    pub fn spawn(mut conn: QueueConnection, queue: &str) -> Self {
        let key = noted_set(queue);
        let (tx, mut rx) = tokio::sync::mpsc::channel::<String>(NOTES_WAITING);
        tokio::spawn(async move {
            let mut ids = Vec::with_capacity(CHUNK);
            while rx.recv_many(&mut ids, CHUNK).await > 0 {
                let now = epoch_seconds();
                let members: Vec<(u64, &String)> = ids.iter().map(|id| (now, id)).collect();
                let noted: RedisResult<()> = conn.zadd_multiple(&key, &members).await;
                if let Err(error) = noted {
                    tracing::debug!(%error, "noting finished jobs failed; the done-set walk will find them");
                }
                ids.clear();
            }
        });
        Self { tx }
    }

    /// Notes job `id` (never waits: a full recorder drops the note).
    pub fn note(&self, id: String) {
        let _ = self.tx.try_send(id);
    }
}

/// The sorted set of jobs noted finished, by when.
fn noted_set(queue: &str) -> String {
    format!("{queue}:noted-finished")
}

#[derive(Clone)]
pub struct QueueKeeper {
    queue: String,
    config: Config,
    promote: Script,
    release: Script,
    sweep_noted: Script,
    sweep: Script,
}

/// Jobs waiting or kept, by where apalis-redis holds them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Depth {
    pub scheduled: u64,
    pub active: u64,
    pub done: u64,
    pub dead: u64,
}

impl QueueKeeper {
    pub fn new(queue: &str) -> Self {
        Self {
            queue: queue.to_owned(),
            config: Config::default().queue(queue),
            promote: Script::new(include_str!("../lua/promote_due.lua")),
            release: Script::new(include_str!("../lua/release_jobs.lua")),
            sweep_noted: Script::new(include_str!("../lua/sweep_noted.lua")),
            sweep: Script::new(include_str!("../lua/sweep_finished.lua")),
        }
    }

    /// Moves every due job to the active list; returns how many moved.
    pub async fn promote_all(&self, conn: &mut QueueConnection) -> RedisResult<usize> {
        let mut moved = 0;
        loop {
            let n: usize = self
                .promote
                .key(self.config.scheduled_jobs_set())
                .key(self.config.active_jobs_list())
                .key(self.config.signal_list())
                .arg(epoch_seconds())
                .arg(CHUNK)
                .invoke_async(conn)
                .await?;
            moved += n;
            if n < CHUNK {
                return Ok(moved);
            }
        }
    }

    /// Gives the jobs held by the stopped loop `worker` back to the queue.
    pub async fn release(&self, conn: &mut QueueConnection, worker: &str) -> RedisResult<usize> {
        let queue = &self.queue;
        self.release
            .key(self.config.workers_set())
            .key(self.config.active_jobs_list())
            .key(format!("{}:{worker}", self.config.inflight_jobs_set()))
            .key(format!("{queue}:workers:metadata:{worker}"))
            .arg(worker)
            .invoke_async(conn)
            .await
    }

    /// Removes the jobs noted finished more than `retention` ago.
    pub async fn sweep_noted(
        &self,
        conn: &mut QueueConnection,
        retention: Duration,
    ) -> RedisResult<usize> {
        let before = epoch_seconds().saturating_sub(retention.as_secs());
        let mut removed = 0;
        loop {
            let (looked, n): (usize, usize) = self
                .sweep_noted
                .key(noted_set(&self.queue))
                .key(self.config.done_jobs_set())
                .key(self.config.job_data_hash())
                .arg(self.config.job_meta_hash())
                .arg(before)
                .arg(CHUNK)
                .invoke_async(conn)
                .await?;
            removed += n;
            if looked < CHUNK || n == 0 {
                return Ok(removed);
            }
        }
    }

    /// Walks apalis's whole done and dead sets: done jobs finished more
    /// than `retention` ago (whatever their note), and dead ones whose every
    /// order is in PostgreSQL (the reconciler persisted them from the
    /// ledger). Costly on a big queue: run once per retention.
    pub async fn sweep(
        &self,
        conn: &mut QueueConnection,
        pool: &PgPool,
        retention: Duration,
    ) -> anyhow::Result<usize> {
        let before = epoch_seconds().saturating_sub(retention.as_secs());
        let mut removed = 0;
        let mut cursor = "0".to_owned();
        loop {
            let (next, n): (String, usize) = self
                .sweep
                .key(self.config.done_jobs_set())
                .key(self.config.job_data_hash())
                .arg(self.config.job_meta_hash())
                .arg(before)
                .arg(&cursor)
                .arg(CHUNK)
                .invoke_async(conn)
                .await?;
            removed += n;
            if next == "0" {
                break;
            }
            cursor = next;
        }
        Ok(removed + self.sweep_dead(conn, pool, before).await?)
    }

    async fn sweep_dead(
        &self,
        conn: &mut QueueConnection,
        pool: &PgPool,
        before: u64,
    ) -> anyhow::Result<usize> {
        let dead: Vec<String> = conn.smembers(self.config.dead_jobs_set()).await?;
        let mut removed = 0;
        for id in dead {
            let meta = format!("{}:{id}", self.config.job_meta_hash());
            let done_at: Option<u64> = conn.hget(&meta, "done_at").await?;
            if done_at.is_none_or(|at| at >= before) {
                continue;
            }
            let payload: Option<Vec<u8>> = conn.hget(self.config.job_data_hash(), &id).await?;
            let persisted = match payload.map(|p| serde_json::from_slice::<PersistOrders>(&p)) {
                Some(Ok(job)) => all_persisted(pool, &job).await?,
                // Nothing readable to persist: nothing to keep.
                _ => true,
            };
            if persisted {
                redis::pipe()
                    .hdel(self.config.job_data_hash(), &id)
                    .del(&meta)
                    .srem(self.config.dead_jobs_set(), &id)
                    .exec_async(conn)
                    .await?;
                removed += 1;
            }
        }
        Ok(removed)
    }

    /// Jobs waiting (scheduled, active) and kept (done, dead).
    pub async fn depth(&self, conn: &mut QueueConnection) -> RedisResult<Depth> {
        let (scheduled, active, done, dead) = redis::pipe()
            .zcard(self.config.scheduled_jobs_set())
            .llen(self.config.active_jobs_list())
            .scard(self.config.done_jobs_set())
            .scard(self.config.dead_jobs_set())
            .query_async(conn)
            .await?;
        Ok(Depth {
            scheduled,
            active,
            done,
            dead,
        })
    }

    /// Promotes every `interval`, reports the depth about once a second and
    /// sweeps finished jobs every few seconds, until `shutdown`.
    pub async fn run(
        self,
        mut conn: QueueConnection,
        pool: PgPool,
        interval: Duration,
        retention: Duration,
        shutdown: CancellationToken,
    ) {
        let mut tick = tokio::time::interval(interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut last_depth = Instant::now() - Duration::from_secs(1);
        let mut last_sweep = Instant::now();
        let mut last_walk = Instant::now();
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tick.tick() => {}
            }
            if let Err(error) = self.promote_all(&mut conn).await {
                tracing::debug!(%error, "promoting due jobs failed; retrying");
            }
            if last_depth.elapsed() >= Duration::from_secs(1) {
                last_depth = Instant::now();
                if let Ok(depth) = self.depth(&mut conn).await {
                    crate::metrics::queue_depth(depth);
                }
            }
            if last_sweep.elapsed() >= SWEEP_EVERY {
                last_sweep = Instant::now();
                match self.sweep_noted(&mut conn, retention).await {
                    Ok(0) => {}
                    Ok(removed) => tracing::debug!(removed, "finished jobs removed"),
                    Err(error) => {
                        tracing::debug!(%error, "sweeping finished jobs failed; retrying")
                    }
                }
            }
            if last_walk.elapsed() >= retention.max(SWEEP_EVERY * 12) {
                last_walk = Instant::now();
                match self.sweep(&mut conn, &pool, retention).await {
                    Ok(0) => {}
                    Ok(removed) => tracing::info!(removed, "finished jobs without a note removed"),
                    Err(error) => tracing::debug!(
                        error = format!("{error:#}"),
                        "walking the done set failed; next time"
                    ),
                }
            }
        }
    }
}

/// Whether every order of `job` stands in PostgreSQL: its own row, or a row
/// of the same buyer for the same sale (the order that conflicted with it
/// and stands instead, never to be persisted itself).
async fn all_persisted(pool: &PgPool, job: &PersistOrders) -> anyhow::Result<bool> {
    let mut conn = pool.get().await?;
    for order in &job.orders {
        let user = order.user_id.as_str();
        let rows = orders::orders_of_users(&mut conn, order.sale_id.as_str(), &[user]).await?;
        if rows.is_empty() {
            return Ok(false);
        }
    }
    Ok(true)
}

/// Now in epoch seconds, apalis-redis's unit for due and finish times.
fn epoch_seconds() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs()
}
