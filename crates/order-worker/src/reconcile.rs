//! The reconciler: makes each sale's Redis ledger and its PostgreSQL rows
//! agree, in both directions.
//!
//! - Ledger -> rows. The ledger (`{sale:ID}:buyers`) is written atomically
//!   with the stock change, so it is the record of every 201. A job can
//!   still go missing: the push failed, the api died between script and
//!   push, apalis parked the job as dead, or the queue jammed. Entries older
//!   than the grace with no row are persisted here (idempotent inserts, so
//!   racing the job path is harmless).
//! - Rows -> ledger. Redis can lose the newest writes (a crash between
//!   fsyncs, a failover to a replica that lagged). A row whose ledger entry
//!   vanished would let its buyer buy again and leaves its unit in the
//!   stock. Such rows are put back into the ledger and out of the stock
//!   (`lua/arm.lua`, merge mode); a row always wins over a ledger entry of
//!   the same user with another order, since the row is the order that
//!   stands.
//!
//! Both walk the whole sale a page at a time, so a sale is skipped only
//! when its ledger's last writer (meta `last`: every purchase and every
//! rebuild sets it, so changes that cancel out in the counts still show)
//! and its row count are the ones the last walk found in agreement.
//!
//! Once a sale has ended and its ledger and rows agree, PostgreSQL is its
//! record: its keys are removed a retention after its end, so Redis holds
//! only live sales.

use std::{
    collections::HashMap,
    sync::Mutex,
    time::{Duration, Instant},
};

use chrono::Utc;
use domain::{
    scripts::{arm_args, ARM_LUA},
    ArmMode, ArmOutcome, LedgerEntry, PersistOrder, SaleId, SaleKeys, Scanned, UserId,
};
use fred::{
    clients::Client,
    prelude::{ClientLike, HashesInterface, KeysInterface},
    types::{
        scan::{HScanResult, Scanner},
        scripts::Script,
        Key,
    },
};
use futures::TryStreamExt;
use tokio_util::sync::CancellationToken;

use orders::PgPool;

use crate::keeper::QueueKeeper;
use domain::queue::QueueConnection;

/// Ledger entries read, or rows put back, per round trip.
const BATCH: u32 = 1000;

/// The longest one pass may take: a call that never returns must not stop
/// the reconciler for good (the next pass starts over; every step is
/// idempotent).
const PASS_TIMEOUT: Duration = Duration::from_secs(60);

#[derive(Debug, Clone)]
pub struct ReconcileSettings {
    /// Time between passes.
    pub interval: Duration,
    /// Ledger entries younger than this are left to their job.
    pub grace: Duration,
    /// Glob of the sale ids to reconcile (`*`: every sale in this Redis).
    pub sales: String,
    /// How long an ended sale's keys stay once its orders are all persisted.
    pub sale_retention: Duration,
    /// Jobs waiting in the order queue past which repairs wait (see [`Backlog`]).
    pub backlog_jobs: u64,
    /// The longest repairs wait for a backlog to drain.
    pub backlog_wait: Duration,
}

/// The order queue's backlog, as the reconciler sees it.
///
/// A worker back after an outage finds a backlog of jobs and, in the
/// ledgers, every order of it older than the grace with no row: the
/// reconciler's first pass persisted them itself, racing the jobs. In
/// `make bench`'s drain it persisted 365,627 of 606,031 orders, and the
/// jobs then found their rows there (each batch a failed plain insert sent
/// again, skipping). While more than `backlog_jobs` wait, ledger entries are
/// left to their jobs; a backlog that has not drained within `backlog_wait`
/// (a queue jammed, jobs lost inside it) is repaired all the same.
pub struct Backlog {
    keeper: QueueKeeper,
    conn: QueueConnection,
    /// Since when the backlog has been over the limit.
    since: Option<Instant>,
}

impl Backlog {
    pub fn new(keeper: QueueKeeper, conn: QueueConnection) -> Self {
        Self {
            keeper,
            conn,
            since: None,
        }
    }

    /// Whether this pass leaves missing entries to the queue. A queue that
    /// cannot be read holds nothing back.
    async fn holds_repairs(&mut self, settings: &ReconcileSettings) -> bool {
        let waiting = match self.keeper.depth(&mut self.conn).await {
            Ok(depth) => depth.scheduled + depth.active,
            Err(error) => {
                tracing::debug!(%error, "reading the queue's depth failed; repairing as usual");
                return false;
            }
        };
        if waiting <= settings.backlog_jobs {
            self.since = None;
            return false;
        }
        let since = *self.since.get_or_insert_with(Instant::now);
        if since.elapsed() >= settings.backlog_wait {
            tracing::warn!(
                waiting,
                for_s = since.elapsed().as_secs(),
                "the order queue has not drained; repairing missing orders anyway"
            );
            return false;
        }
        tracing::info!(
            waiting,
            "the order queue holds a backlog: missing ledger entries are left to its jobs"
        );
        true
    }
}

pub struct Reconciler {
    /// The inventory Redis (one server or a cluster) holding the ledgers.
    redis: Client,
    pool: PgPool,
    settings: ReconcileSettings,
    merge: Script,
    /// Per sale, the (ledger's last writer, row count) the last walk found
    /// in agreement.
    agreed: Mutex<HashMap<SaleId, (Option<String>, i64)>>,
    /// Per sale, when its next walk may start: a walk that took `d` waits
    /// 4 `d`, so a big sale's walks take at most a fifth of the time.
    next_walk: Mutex<HashMap<SaleId, Instant>>,
    /// The order queue's backlog, when the reconciler watches it.
    backlog: Option<tokio::sync::Mutex<Backlog>>,
}

/// What one pass did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Pass {
    pub sales: usize,
    /// Ledger entries persisted as rows.
    pub repaired: usize,
    /// Rows put back into a ledger.
    pub restored: usize,
    /// Ended sales whose keys were removed.
    pub expired: usize,
}

/// What one sale's check found.
#[derive(Debug, Default)]
struct SaleCheck {
    repaired: usize,
    restored: usize,
    /// Something is left for later: young entries, a sale not whole.
    unsettled: bool,
}

impl Reconciler {
    pub fn new(redis: Client, pool: PgPool, settings: ReconcileSettings) -> Self {
        Self {
            redis,
            pool,
            settings,
            merge: Script::from_lua(ARM_LUA),
            agreed: Mutex::default(),
            next_walk: Mutex::default(),
            backlog: None,
        }
    }

    /// Leaves missing entries to the queue's jobs while it holds a backlog.
    pub fn watching(mut self, backlog: Backlog) -> Self {
        self.backlog = Some(tokio::sync::Mutex::new(backlog));
        self
    }

    /// Passes until `shutdown`; the first one runs at once (worker start).
    pub async fn run(self, shutdown: CancellationToken) {
        let mut tick = tokio::time::interval(self.settings.interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tick.tick() => {}
            }
            // A pass is idempotent: abandoning one at shutdown loses nothing.
            let pass = tokio::select! {
                _ = shutdown.cancelled() => return,
                pass = tokio::time::timeout(PASS_TIMEOUT, self.pass()) => {
                    pass.unwrap_or_else(|_| Err(anyhow::anyhow!("pass timed out after {PASS_TIMEOUT:?}")))
                }
            };
            crate::metrics::reconciler_pass(pass.as_ref().ok());
            match pass {
                Ok(pass) if pass.repaired + pass.restored > 0 => tracing::warn!(
                    repaired = pass.repaired,
                    restored = pass.restored,
                    sales = pass.sales,
                    "reconciler persisted missing orders or restored lost ledger entries"
                ),
                Ok(pass) => tracing::debug!(sales = pass.sales, "reconciler pass: nothing missing"),
                Err(error) => tracing::warn!(
                    error = format!("{error:#}"),
                    "reconciler pass failed; retrying next interval"
                ),
            }
        }
    }

    /// Checks every sale that has a ledger or a meta; one sale's failure
    /// (logged) does not keep the others from being checked.
    pub async fn pass(&self) -> anyhow::Result<Pass> {
        let mut pass = Pass::default();
        let mut failed = 0;
        let hold = match &self.backlog {
            Some(backlog) => backlog.lock().await.holds_repairs(&self.settings).await,
            None => false,
        };
        for sale in self.sales().await? {
            pass.sales += 1;
            let check = match self.reconcile_sale(&sale, hold).await {
                Ok(check) => check,
                Err(error) => {
                    tracing::warn!(sale.id = %sale, error = format!("{error:#}"), "reconciling the sale failed; next pass");
                    failed += 1;
                    continue;
                }
            };
            pass.repaired += check.repaired;
            pass.restored += check.restored;
            let settled = check.repaired + check.restored == 0 && !check.unsettled;
            if settled && self.expire_if_over(&sale).await? {
                pass.expired += 1;
            }
        }
        if failed > 0 && failed == pass.sales {
            anyhow::bail!("every sale failed");
        }
        Ok(pass)
    }

    /// The sales with a ledger or a meta; on a cluster, every primary is
    /// scanned. `RECONCILE_SALES` naming one sale (no glob) is looked up
    /// directly: a SCAN walks the whole keyspace (every job key of every
    /// queue too), and a pass every few seconds made that a steady cost.
    async fn sales(&self) -> Result<Vec<SaleId>, fred::error::Error> {
        let named = &self.settings.sales;
        if !named.contains(['*', '?', '[', ']', '\\']) {
            if let Ok(sale) = SaleId::parse(named) {
                let keys = SaleKeys::new(&sale);
                let present: i64 = self.redis.exists(vec![keys.meta(), keys.buyers()]).await?;
                return Ok(if present > 0 { vec![sale] } else { Vec::new() });
            }
        }
        let mut sales = std::collections::BTreeSet::new();
        for part in [Scanned::Buyers, Scanned::Meta] {
            let pattern = SaleKeys::scan_pattern(&self.settings.sales, part);
            let keys: Vec<Key> = if self.redis.is_clustered() {
                self.redis
                    .scan_cluster_buffered(pattern, Some(1000), None)
                    .try_collect()
                    .await?
            } else {
                self.redis
                    .scan_buffered(pattern, Some(1000), None)
                    .try_collect()
                    .await?
            };
            sales.extend(
                keys.iter()
                    .filter_map(|key| key.as_str().and_then(SaleKeys::sale_of)),
            );
        }
        Ok(sales.into_iter().collect())
    }

    /// Removes a settled sale's keys once its end is a retention ago.
    async fn expire_if_over(&self, sale: &SaleId) -> anyhow::Result<bool> {
        let keys = SaleKeys::new(sale);
        let ends_at: Option<i64> = self.redis.hget(keys.meta(), "endsAt").await?;
        let Some(ends_at) = ends_at.and_then(domain::time::from_millis) else {
            return Ok(false);
        };
        let retention = chrono::Duration::from_std(self.settings.sale_retention)?;
        if Utc::now() < ends_at + retention {
            return Ok(false);
        }
        let removed: i64 = self
            .redis
            .del(vec![keys.meta(), keys.stock(), keys.buyers()])
            .await?;
        if let Ok(mut agreed) = self.agreed.lock() {
            agreed.remove(sale);
        }
        tracing::info!(sale.id = %sale, %ends_at, removed, "sale ended and every order is in PostgreSQL; its Redis keys are removed");
        Ok(removed > 0)
    }

    /// `hold`: missing entries are left to the queue (see [`Backlog`]).
    async fn reconcile_sale(&self, sale: &SaleId, hold: bool) -> anyhow::Result<SaleCheck> {
        let keys = SaleKeys::new(sale);
        let last: Option<String> = self.redis.hget(keys.meta(), "last").await?;
        let rows = {
            let mut conn = self.pool.get().await?;
            orders::count_orders(&mut conn, sale.as_str()).await?
        };
        let seen = (last, rows);
        if self.agreed.lock().ok().and_then(|a| a.get(sale).cloned()) == Some(seen.clone()) {
            return Ok(SaleCheck::default());
        }
        let now = Instant::now();
        let due = self
            .next_walk
            .lock()
            .ok()
            .and_then(|n| n.get(sale).copied());
        if due.is_some_and(|due| now < due) {
            return Ok(SaleCheck {
                unsettled: true,
                ..SaleCheck::default()
            });
        }
        let check = self.compare(sale, &keys, hold).await?;
        if let Ok(mut next) = self.next_walk.lock() {
            next.insert(sale.clone(), Instant::now() + now.elapsed() * 4);
        }
        if let Ok(mut agreed) = self.agreed.lock() {
            if check.repaired + check.restored == 0 && !check.unsettled {
                agreed.insert(sale.clone(), seen);
            } else {
                agreed.remove(sale);
            }
        }
        Ok(check)
    }

    /// One walk over the sale: every row loaded once (one query), then the
    /// ledger a page at a time. A ledger entry older than the grace with no
    /// row is persisted with its page; a row whose user the walk never met,
    /// or whose ledger entry names another order, is put back at the end.
    /// (Per-page queries made a pass over a 400,000-entry sale take longer
    /// than the faults of `make chaos` left it.)
    async fn compare(
        &self,
        sale: &SaleId,
        keys: &SaleKeys,
        hold: bool,
    ) -> anyhow::Result<SaleCheck> {
        let settled_before = Utc::now() - self.settings.grace;
        let mut check = SaleCheck::default();
        let mut conn = self.pool.get().await?;
        // user -> its row's order, taken out as the walk meets the user.
        let mut unmet: HashMap<String, LedgerEntry> = orders::ledger_of_sale(&mut conn, sale)
            .await?
            .into_iter()
            .collect();
        let mut wrong: Vec<(String, LedgerEntry)> = Vec::new();
        let mut pages = std::pin::pin!(self.redis.hscan(keys.buyers(), "*", Some(BATCH)));
        while let Some(page) = pages.try_next().await? {
            let mut page = Page(Some(page));
            let mut missing = Vec::new();
            for (user, raw) in page.take_results() {
                let (Some(user), Some(raw)) = (user.as_str(), raw.as_str()) else {
                    continue;
                };
                let Some(order) = order_of(sale, user, &raw) else {
                    continue;
                };
                match unmet.remove(user) {
                    Some(row) if row.order_id == order.order_id => {}
                    // The row is the order that stands.
                    Some(row) => wrong.push((user.to_owned(), row)),
                    None if order.purchased_at < settled_before && !hold => missing.push(order),
                    None => check.unsettled = true,
                }
            }
            check.repaired += self.persist_missing(&mut conn, missing).await?;
            page.next();
        }
        let lost: Vec<(String, LedgerEntry)> = unmet.into_iter().chain(wrong).collect();
        let back = self.restore(sale, keys, &lost).await?;
        check.restored = back.restored;
        check.unsettled |= back.unsettled;
        Ok(check)
    }

    async fn persist_missing(
        &self,
        conn: &mut diesel_async::AsyncPgConnection,
        missing: Vec<PersistOrder>,
    ) -> anyhow::Result<usize> {
        if missing.is_empty() {
            return Ok(0);
        }
        for job in &missing {
            tracing::info!(order.id = %job.order_id, sale.id = %job.sale_id, user.id = %job.user_id, "reconciling order missing from PostgreSQL");
        }
        let started = std::time::Instant::now();
        let inserted = orders::insert_orders(conn, &missing).await?;
        crate::metrics::db_query("insert_orders", started.elapsed());
        crate::metrics::persisted("reconciler", inserted);
        Ok(inserted)
    }

    /// Puts rows whose ledger entry is missing (or names another order)
    /// back into the ledger and out of the stock, a chunk at a time.
    async fn restore(
        &self,
        sale: &SaleId,
        keys: &SaleKeys,
        lost: &[(String, LedgerEntry)],
    ) -> anyhow::Result<SaleCheck> {
        let mut check = SaleCheck::default();
        for chunk in lost.chunks(BATCH as usize) {
            for (user, entry) in chunk {
                tracing::warn!(order.id = %entry.order_id, sale.id = %sale, user.id = %user, "order row missing from the Redis ledger; putting it back");
            }
            match self.merge(keys, chunk).await? {
                ArmOutcome::Whole(merged) => {
                    let restored = usize::try_from(merged.restored).unwrap_or(usize::MAX);
                    crate::metrics::ledger_restored(restored);
                    check.restored += restored;
                    // Entries corrected to another order count as repairs too.
                    check.unsettled |= restored < chunk.len();
                }
                ArmOutcome::NotArmed => {
                    // Partly lost: the api rebuilds it from every row on its next request.
                    tracing::warn!(sale.id = %sale, "sale not whole in Redis; leaving it to the api's re-arm");
                    check.unsettled = true;
                    break;
                }
            }
        }
        Ok(check)
    }

    async fn merge(
        &self,
        keys: &SaleKeys,
        lost: &[(String, LedgerEntry)],
    ) -> anyhow::Result<ArmOutcome> {
        let keys = vec![keys.meta(), keys.stock(), keys.buyers()];
        let reply: String = self
            .merge
            .evalsha_with_reload(&self.redis, keys, arm_args(ArmMode::Merge, lost))
            .await?;
        Ok(ArmOutcome::parse(&reply)?)
    }
}

/// A ledger page of a walk. fred goes on to the next page when a page is
/// dropped without `next()`: a walk abandoned on an error (or a pass timed
/// out) would read the rest of the ledger for no one, with a warning per
/// page. Dropped unfinished, this page ends the scan instead.
struct Page(Option<HScanResult>);

impl Page {
    fn take_results(&mut self) -> HashMap<Key, fred::types::Value> {
        self.0
            .as_mut()
            .and_then(|page| page.take_results())
            .map(|map| map.inner())
            .unwrap_or_default()
    }

    /// Asks for the next page (the walk goes on).
    fn next(mut self) {
        if let Some(page) = self.0.take() {
            page.next();
        }
    }
}

impl Drop for Page {
    fn drop(&mut self) {
        if let Some(page) = self.0.take() {
            page.cancel();
        }
    }
}

fn order_of(sale: &SaleId, user: &str, entry: &str) -> Option<PersistOrder> {
    let parsed = LedgerEntry::parse(entry)
        .inspect_err(|e| tracing::error!(error = %e, "skipping a malformed ledger entry"))
        .ok()?;
    let user_id = UserId::parse(user)
        .inspect_err(|e| tracing::error!(error = %e, "skipping a ledger entry with a bad user id"))
        .ok()?;
    Some(PersistOrder {
        order_id: parsed.order_id,
        sale_id: sale.clone(),
        user_id,
        purchased_at: parsed.purchased_at,
    })
}
