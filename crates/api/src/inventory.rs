//! The sale's inventory in Redis: arming, purchases, stock and the ledger.
//!
//! Scripts are loaded once and called by SHA, and loaded again after a
//! `SCRIPT FLUSH` or a Redis restart (NOSCRIPT): by fred's
//! `evalsha_with_reload`, or on the purchase path by `evalsha_rebuilding`.

use std::{
    future::Future,
    time::{Duration, Instant},
};

use crate::settings::ReplicaAcks;
use domain::{
    config::RedisConfig,
    scripts::{arm_args, purchase_args, ARM_LUA, PURCHASE_LUA, READING_LUA},
    ArmMode, ArmOutcome, LedgerEntry, OrderId, PurchaseOutcome, Reading, SaleKeys, SaleWindow,
    ScriptReplyError, UserId,
};
use fred::{
    prelude::{
        ClientLike, Error as FredError, HashesInterface, KeysInterface, Pool, ServerInterface,
    },
    types::{scan::Scanner, scripts::Script},
};

/// A Redis call that did not give an answer we can use.
#[derive(Debug, Clone, thiserror::Error)]
pub enum InventoryError {
    #[error("redis call failed")]
    Redis(#[from] FredError),
    #[error(transparent)]
    Reply(#[from] ScriptReplyError),
    /// Fewer replicas than `REDIS_MIN_REPLICA_ACKS` confirmed the batch's
    /// writes in time: its purchases may vanish in a failover, so none is
    /// confirmed (503; a retry finds the order if it stood).
    #[error("{acked} of {wanted} replicas acknowledged the purchase in time")]
    NotReplicated { acked: i64, wanted: u32 },
    /// The thread's purchase batcher is gone: the server is stopping.
    #[error("the purchase batcher is not running")]
    Stopping,
}

/// Limits the purchase script enforces per user.
#[derive(Debug, Clone, Copy)]
pub struct AttemptLimit {
    pub max_attempts: u32,
    pub window_seconds: u64,
}

#[derive(Clone)]
pub struct Inventory {
    redis: RedisConfig,
    pool: Pool,
    keys: SaleKeys,
    purchase: Script,
    arm: Script,
    reading: Script,
}

impl Inventory {
    /// Connects a pool of pipelined connections with bounded command times
    /// (one server or a cluster); fred reconnects by itself (forever, with
    /// backoff) after an outage. Scripts are loaded on every primary.
    pub async fn connect(
        redis: &RedisConfig,
        pool_size: usize,
        keys: SaleKeys,
    ) -> Result<Self, FredError> {
        let pool = domain::inventory_redis::builder(redis)?.build_pool(pool_size)?;
        pool.init().await?;
        let inventory = Self::over(pool, redis, keys);
        inventory.purchase.load(inventory.pool.next()).await?;
        inventory.arm.load(inventory.pool.next()).await?;
        inventory.reading.load(inventory.pool.next()).await?;
        Ok(inventory)
    }

    /// Builds the pool and connects in the background: Redis may come up
    /// later (the client keeps trying, as after an outage), and calls made
    /// meanwhile fail after the command timeout. Only a malformed URL
    /// fails here. Scripts are loaded by their first call (NOSCRIPT).
    pub fn start(redis: &RedisConfig, pool_size: usize, keys: SaleKeys) -> Result<Self, FredError> {
        let pool = domain::inventory_redis::patient_builder(redis)?.build_pool(pool_size)?;
        drop(pool.connect_pool());
        Ok(Self::over(pool, redis, keys))
    }

    /// The inventory of `keys` over `pool`.
    fn over(pool: Pool, redis: &RedisConfig, keys: SaleKeys) -> Self {
        Self {
            redis: redis.clone(),
            pool,
            keys,
            purchase: Script::from_lua(PURCHASE_LUA),
            arm: Script::from_lua(ARM_LUA),
            reading: Script::from_lua(READING_LUA),
        }
    }

    /// The same inventory over one connection of its own, driven by the
    /// calling thread's runtime (an actix worker's): its calls then never
    /// hop to the threads that drive the shared pool and back. Connects in
    /// the background; calls made meanwhile wait for the connection (within
    /// the command timeout on one server; on a cluster they fail until it
    /// knows the slots, hence [`Self::is_connected`]). The scripts are on
    /// the server already.
    pub fn on_this_thread(&self) -> Result<Self, FredError> {
        let pool = domain::inventory_redis::patient_builder(&self.redis)?.build_pool(1)?;
        drop(pool.connect_pool());
        Ok(Self {
            pool,
            ..self.clone()
        })
    }

    /// Waits up to `limit` for every connection of the pool (on a cluster:
    /// until it knows the slots); whether they are up.
    pub async fn wait_connected(&self, limit: Duration) -> bool {
        matches!(
            tokio::time::timeout(limit, self.pool.wait_for_connect()).await,
            Ok(Ok(()))
        )
    }

    /// Whether its connection is up (a thread's own connection is not, for
    /// a moment after start and while it reconnects).
    pub fn is_connected(&self) -> bool {
        self.pool.next().is_connected()
    }

    /// Looks at the sale, or makes it whole from `ledger` (the orders that
    /// stand), as `mode` allows; see `lua/arm.lua`. Arming stages the
    /// orders in a hash of their own first, a thousand per call, so a sale
    /// of any size is rebuilt without one huge call.
    pub async fn arm(
        &self,
        mode: ArmMode,
        ledger: &[(String, LedgerEntry)],
    ) -> Result<ArmOutcome, InventoryError> {
        let mut keys = vec![self.keys.meta(), self.keys.stock(), self.keys.buyers()];
        if let ArmMode::Arm { .. } = mode {
            let staging = self.keys.restore(&OrderId::new().to_string());
            let client = self.pool.next();
            for chunk in ledger.chunks(1000) {
                let pairs: Vec<(String, String)> = chunk
                    .iter()
                    .map(|(user, entry)| (user.clone(), entry.encode()))
                    .collect();
                let _: () = timed("arm_stage", client.hset(&staging, pairs)).await?;
            }
            // A rebuild that fails before its script runs leaves no litter.
            let _: () = timed("arm_stage", client.expire(&staging, 3600, None)).await?;
            keys.push(staging);
        }
        let args = arm_args(mode, ledger);
        let reply: String = timed(
            "arm",
            self.arm.evalsha_with_reload(self.pool.next(), keys, args),
        )
        .await?;
        Ok(ArmOutcome::parse(&reply)?)
    }

    /// Decides a batch of purchases in one atomic script call, in order:
    /// one outcome per `(user, order id)`, as separate calls in that order
    /// would have decided them. With `acks.min > 0`, the outcomes count
    /// only once that many replicas have every write up to the call (one
    /// `WAIT` on the same connection for the whole batch).
    pub async fn purchase(
        &self,
        batch: &[(UserId, OrderId)],
        limit: AttemptLimit,
        window: &SaleWindow,
        acks: ReplicaAcks,
    ) -> Result<Vec<PurchaseOutcome>, InventoryError> {
        let call = || {
            let mut keys = Vec::with_capacity(3 + batch.len());
            keys.extend([self.keys.stock(), self.keys.buyers(), self.keys.meta()]);
            if limit.max_attempts > 0 {
                // Without a limit the script keeps no counters: no keys to send.
                keys.extend(batch.iter().map(|(user, _)| self.keys.attempts(user)));
            }
            let args = purchase_args(
                limit.max_attempts,
                limit.window_seconds,
                window,
                acks.min > 0,
                batch.iter().map(|(user, order)| (user.as_str(), *order)),
            );
            (keys, args)
        };
        let client = self.pool.next();
        let replies: Vec<String> = if acks.min > 0 {
            let (keys, args) = call();
            self.purchase_replicated(client, keys, args, acks).await?
        } else {
            timed("purchase", evalsha_rebuilding(&self.purchase, client, call)).await?
        };
        if replies.len() != 1 + batch.len() {
            return Err(ScriptReplyError(format!(
                "{} replies to {} purchases (and the batch's own)",
                replies.len(),
                batch.len()
            ))
            .into());
        }
        Ok(PurchaseOutcome::parse_batch(&replies)?)
    }

    /// The purchase script with `WAIT` right behind it, pipelined on one
    /// connection (on a cluster: the sale's primary) and written together,
    /// so the `WAIT` always counts the acks of this script's writes. Sent
    /// one after the other, a reconnection in between would put the `WAIT`
    /// on a fresh connection that wrote nothing, and it would pass at once
    /// whatever the replicas have. Commands get one attempt
    /// (`max_command_attempts = 1` in `domain::inventory_redis`, which this
    /// relies on): a connection lost under the pipeline fails it (503), and
    /// so does a MOVED or ASK on a cluster, where fred would re-send the
    /// script to the slot's new owner but the keyless `WAIT` would stay on
    /// the old one. The script is re-loaded once on NOSCRIPT.
    async fn purchase_replicated(
        &self,
        client: &fred::prelude::Client,
        keys: Vec<String>,
        args: Vec<String>,
        acks: ReplicaAcks,
    ) -> Result<Vec<String>, InventoryError> {
        use fred::types::{ClusterHash, CustomCommand, Value};
        let slot = fred::util::redis_keyslot(self.keys.stock().as_bytes());
        let at_sale = fred::types::config::Options {
            cluster_hash: Some(ClusterHash::Custom(slot)),
            ..Default::default()
        };
        let wanted = i64::from(acks.min);
        let timeout_ms = i64::try_from(acks.timeout.as_millis()).unwrap_or(i64::MAX);
        let mut evalsha: Vec<Value> = Vec::with_capacity(2 + keys.len() + args.len());
        evalsha.push(Value::from(self.purchase.sha1().clone()));
        evalsha.push(Value::from(keys.len() as i64));
        evalsha.extend(keys.into_iter().map(Value::from));
        evalsha.extend(args.into_iter().map(Value::from));
        let mut reloaded = false;
        loop {
            let pipeline = client.pipeline();
            let command = CustomCommand::new_static("EVALSHA", ClusterHash::Custom(slot), false);
            let _: () = pipeline.custom(command, evalsha.clone()).await?;
            let _: () = pipeline
                .with_options(&at_sale)
                .wait(wanted, timeout_ms)
                .await?;
            let started = Instant::now();
            let mut results = pipeline.try_all::<Value>().await.into_iter();
            let script = results.next().unwrap_or_else(|| Err(lost_reply()));
            let waited = results.next().unwrap_or_else(|| Err(lost_reply()));
            crate::metrics::redis_call("purchase", started.elapsed(), script.is_ok());
            let script = match script {
                Err(error) if !reloaded && error.details().starts_with("NOSCRIPT") => {
                    reloaded = true;
                    timed("script_load", self.purchase.load(client)).await?;
                    continue;
                }
                other => other?,
            };
            let acked: i64 = waited?.convert()?;
            if acked < wanted {
                crate::metrics::replica_acks_missing();
                return Err(InventoryError::NotReplicated {
                    acked,
                    wanted: acks.min,
                });
            }
            return Ok(script.convert()?);
        }
    }

    /// Remaining stock and Redis's clock, in one round trip.
    pub async fn reading(&self) -> Result<Reading, InventoryError> {
        let reply: String = timed(
            "reading",
            self.reading.evalsha_with_reload(
                self.pool.next(),
                vec![self.keys.stock(), self.keys.buyers(), self.keys.meta()],
                Vec::<String>::new(),
            ),
        )
        .await?;
        Ok(Reading::parse(&reply)?)
    }

    /// The user's ledger entry, if they bought.
    pub async fn ledger_entry(&self, user: &UserId) -> Result<Option<LedgerEntry>, InventoryError> {
        let raw: Option<String> = timed(
            "ledger_entry",
            self.pool.next().hget(self.keys.buyers(), user.as_str()),
        )
        .await?;
        raw.map(|raw| LedgerEntry::parse(&raw).map_err(|e| ScriptReplyError(e.0).into()))
            .transpose()
    }

    /// `hash` of every buyer's user id, read a page at a time (HSCAN):
    /// one reply per thousand buyers, never one of the whole ledger.
    pub async fn buyer_hashes(
        &self,
        hash: impl Fn(&str) -> u64,
    ) -> Result<std::collections::HashSet<u64>, InventoryError> {
        use futures::TryStreamExt;
        let client = self.pool.next();
        let mut set = std::collections::HashSet::new();
        let mut pages = std::pin::pin!(client.hscan(self.keys.buyers(), "*", Some(1000)));
        while let Some(mut page) = pages.try_next().await? {
            let users = page.take_results().map(|m| m.inner()).unwrap_or_default();
            set.extend(users.keys().filter_map(|user| user.as_str().map(&hash)));
            page.next();
        }
        Ok(set)
    }

    /// Round trip time of a PING.
    pub async fn ping(&self) -> Result<Duration, InventoryError> {
        let started = Instant::now();
        let _: String = timed("ping", self.pool.next().ping(None)).await?;
        Ok(started.elapsed())
    }
}

/// `script`'s call of the keys and arguments `call` builds, re-loaded once
/// on NOSCRIPT (a Redis restarted or flushed). fred's `evalsha_with_reload`
/// clones them all for that retry, on every call: a purchase batch's
/// strings copied, then dropped, for a reply that almost never comes.
/// Here they are built again only when it does.
async fn evalsha_rebuilding<R: fred::types::FromValue>(
    script: &Script,
    client: &fred::prelude::Client,
    call: impl Fn() -> (Vec<String>, Vec<String>),
) -> Result<R, FredError> {
    use fred::prelude::LuaInterface;
    let (keys, args) = call();
    match client.evalsha(script.sha1().clone(), keys, args).await {
        Err(error) if error.details().starts_with("NOSCRIPT") => {
            script.load(client).await?;
            let (keys, args) = call();
            client.evalsha(script.sha1().clone(), keys, args).await
        }
        result => result,
    }
}

/// Runs one Redis call, recording its latency and whether it failed.
async fn timed<T>(
    command: &'static str,
    call: impl Future<Output = Result<T, FredError>>,
) -> Result<T, FredError> {
    let started = Instant::now();
    let result = call.await;
    crate::metrics::redis_call(command, started.elapsed(), result.is_ok());
    result
}

/// A pipeline that answered fewer replies than it was sent commands.
fn lost_reply() -> FredError {
    FredError::new(fred::error::ErrorKind::Protocol, "pipeline reply missing")
}
