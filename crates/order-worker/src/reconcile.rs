//! The reconciler: persists confirmed purchases that never became order rows.
//!
//! The Redis ledger (`{sale:ID}:buyers`) is written atomically with the
//! stock change, so it is the record of every 201. A job can still go
//! missing: the push failed, the api died between script and push, apalis
//! parked the job as dead after its retries, or the queue jammed. Whatever
//! the cause, comparing the ledger with PostgreSQL finds it, and the insert
//! is idempotent, so racing the normal job path is harmless.

use std::{collections::HashSet, time::Duration};

use chrono::Utc;
use domain::{LedgerEntry, PersistOrder, SaleId, UserId};
use fred::{
    clients::Client,
    prelude::{ClientLike, HashesInterface},
    types::{scan::Scanner, Key},
};
use futures::TryStreamExt;
use tokio_util::sync::CancellationToken;

use crate::db::{self, PgPool};

/// Ledger entries read and checked per round trip.
const BATCH: u32 = 500;

/// The longest one pass may take: a call that never returns must not stop
/// the reconciler for good (the next pass starts over; inserts are idempotent).
const PASS_TIMEOUT: Duration = Duration::from_secs(60);

#[derive(Debug, Clone)]
pub struct ReconcileSettings {
    /// Time between passes.
    pub interval: Duration,
    /// Entries younger than this are left to their job.
    pub grace: Duration,
    /// Glob of the sale ids to reconcile (`*`: every sale in this Redis).
    pub sales: String,
}

pub struct Reconciler {
    /// The inventory Redis (one server or a cluster) holding the ledgers.
    redis: Client,
    pool: PgPool,
    settings: ReconcileSettings,
}

/// What one pass did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Pass {
    pub sales: usize,
    pub repaired: usize,
}

impl Reconciler {
    pub fn new(redis: Client, pool: PgPool, settings: ReconcileSettings) -> Self {
        Self {
            redis,
            pool,
            settings,
        }
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
            crate::metrics::reconciler_pass(
                pass.is_ok(),
                pass.as_ref().map(|p| p.repaired).unwrap_or(0),
            );
            match pass {
                Ok(pass) if pass.repaired > 0 => {
                    tracing::warn!(
                        repaired = pass.repaired,
                        sales = pass.sales,
                        "reconciler persisted missing orders"
                    )
                }
                Ok(pass) => tracing::debug!(sales = pass.sales, "reconciler pass: nothing missing"),
                Err(error) => tracing::warn!(
                    error = format!("{error:#}"),
                    "reconciler pass failed; retrying next interval"
                ),
            }
        }
    }

    /// Checks every sale that has a ledger.
    pub async fn pass(&self) -> anyhow::Result<Pass> {
        let mut pass = Pass::default();
        for sale in self.sales().await? {
            pass.sales += 1;
            pass.repaired += self.reconcile_sale(&sale).await?;
        }
        Ok(pass)
    }

    /// The sales with a ledger; on a cluster, every primary is scanned.
    async fn sales(&self) -> Result<Vec<SaleId>, fred::error::Error> {
        let pattern = format!("{{sale:{}}}:buyers", self.settings.sales);
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
        Ok(keys
            .iter()
            .filter_map(|key| key.as_str().and_then(sale_of))
            .collect())
    }

    /// Persists the sale's ledger entries missing from PostgreSQL.
    async fn reconcile_sale(&self, sale: &SaleId) -> anyhow::Result<usize> {
        let keys = domain::SaleKeys::new(sale);
        let ledger_len: usize = self.redis.hlen(keys.buyers()).await?;
        let mut conn = self.pool.get().await?;
        let persisted = db::count_orders(&mut conn, sale.as_str()).await?;
        if usize::try_from(persisted).unwrap_or(usize::MAX) >= ledger_len {
            return Ok(0);
        }
        let settled_before = Utc::now() - self.settings.grace;
        let mut repaired = 0;
        // One page at a time: the next HSCAN is sent when the page is done with.
        let mut pages = std::pin::pin!(self.redis.hscan(keys.buyers(), "*", Some(BATCH)));
        while let Some(mut page) = pages.try_next().await? {
            let jobs: Vec<PersistOrder> = page
                .take_results()
                .map(|map| map.inner())
                .unwrap_or_default()
                .iter()
                .filter_map(|(user, entry)| {
                    order_of(sale, user.as_str()?, entry.as_str()?.as_ref())
                })
                .filter(|job| job.purchased_at < settled_before)
                .collect();
            repaired += self.persist_missing(&mut conn, jobs).await?;
            page.next();
        }
        Ok(repaired)
    }

    async fn persist_missing(
        &self,
        conn: &mut diesel_async::AsyncPgConnection,
        jobs: Vec<PersistOrder>,
    ) -> anyhow::Result<usize> {
        if jobs.is_empty() {
            return Ok(0);
        }
        let ids: Vec<uuid::Uuid> = jobs.iter().map(|j| j.order_id.as_uuid()).collect();
        let existing: HashSet<uuid::Uuid> = db::existing_order_ids(conn, &ids)
            .await?
            .into_iter()
            .collect();
        let missing: Vec<PersistOrder> = jobs
            .into_iter()
            .filter(|j| !existing.contains(&j.order_id.as_uuid()))
            .collect();
        for job in &missing {
            tracing::info!(order.id = %job.order_id, sale.id = %job.sale_id, user.id = %job.user_id, "reconciling order missing from PostgreSQL");
        }
        let started = std::time::Instant::now();
        let inserted = db::insert_orders(conn, &missing).await?;
        crate::metrics::db_query("insert_orders", started.elapsed());
        crate::metrics::persisted("reconciler", inserted);
        Ok(inserted)
    }
}

fn sale_of(key: &str) -> Option<SaleId> {
    let id = key.strip_prefix("{sale:")?.strip_suffix("}:buyers")?;
    SaleId::parse(id).ok()
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sale_ids_come_from_ledger_keys_only() {
        assert_eq!(
            sale_of("{sale:bf-26}:buyers").map(|s| s.to_string()),
            Some("bf-26".into())
        );
        assert_eq!(sale_of("{sale:bf-26}:stock"), None);
        assert_eq!(sale_of("other"), None);
    }
}
