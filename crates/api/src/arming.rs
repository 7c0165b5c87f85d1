//! Arming a sale in Redis, and re-arming it after Redis lost all or part of it.
//!
//! A sale is sold from only while it is whole in Redis: meta, stock and a
//! ledger that add up (`lua/arm.lua`). The first api to start for a
//! `SALE_ID` finds it missing and writes it; a restart or another replica
//! finds it whole and takes Redis's copy. Whenever it is missing or partly
//! lost, the orders that stand decide: every order PostgreSQL holds for the
//! sale, and every one still in the queue on its way there, goes back into
//! the ledger and out of the stock, so no earlier buyer can buy again and
//! the stock is never restored to full. Nothing is ever written without
//! them: if PostgreSQL or the queue cannot be asked, the sale stays unarmed
//! (503) rather than risk selling twice.

use std::{
    collections::HashMap,
    sync::Arc,
    time::{Duration, Instant},
};

use domain::{ArmMode, ArmOutcome, ArmedSale, LedgerEntry, SaleId, SaleWindow, ScriptReplyError};

use crate::{
    db::{self, PgPool},
    inventory::{Inventory, InventoryError},
    recent::StockChanges,
    sale::Sale,
};

#[derive(Debug, thiserror::Error)]
pub enum ArmError {
    #[error("Redis did not answer the arming script")]
    Redis(#[from] InventoryError),
    #[error("the sale is missing from Redis and PostgreSQL cannot be asked which orders it has")]
    Database(#[source] anyhow::Error),
    #[error("the sale is missing from Redis and the order queue cannot be asked which orders are on their way")]
    Queue(#[source] redis::RedisError),
    #[error(
        "the sale is missing from Redis and orders this api confirmed are not in the queue yet"
    )]
    Unpushed,
}

/// Where the orders that stand are: PostgreSQL's rows, and the jobs still
/// in the order queue (confirmed, not yet persisted).
#[derive(Clone)]
pub struct Standing {
    pub db: PgPool,
    pub queue: domain::queue::QueueConnection,
    pub queue_name: String,
    /// This process's confirmed orders still on their way to the queue.
    pub unpushed: crate::queue::Unpushed,
    /// How long a rebuild waits for them.
    pub push_limit: Duration,
}

impl Standing {
    /// Every order that stands for `sale`, one per buyer. The queue is read
    /// first: a job swept after that read has its rows by the time
    /// PostgreSQL is. A row wins over a queued order of the same buyer.
    ///
    /// A 201 does not wait for its push, so this process's orders still on
    /// their way are waited for before the queue is read (a ledger lost
    /// right after a 201 would otherwise put that unit back on sale); if
    /// they do not land in time the sale stays unarmed and is tried again.
    async fn orders(&self, sale: &SaleId) -> Result<Vec<(String, LedgerEntry)>, ArmError> {
        if !self.unpushed.settled(self.push_limit).await {
            return Err(ArmError::Unpushed);
        }
        let queued =
            domain::queue::orders_in_queue(&mut self.queue.clone(), &self.queue_name, sale)
                .await
                .map_err(ArmError::Queue)?;
        let rows = db::persisted_orders(&self.db, sale)
            .await
            .map_err(ArmError::Database)?;
        let mut orders: HashMap<String, LedgerEntry> = queued
            .into_iter()
            .map(|order| {
                let entry = LedgerEntry {
                    order_id: order.order_id,
                    purchased_at: order.purchased_at,
                };
                (order.user_id.into(), entry)
            })
            .collect();
        orders.extend(rows);
        Ok(orders.into_iter().collect())
    }
}

/// What the sale should be if it has to be written.
#[derive(Debug, Clone)]
pub struct Wanted {
    pub id: SaleId,
    pub total: u64,
    pub window: SaleWindow,
}

/// Makes sure the sale is whole and returns it as Redis holds it.
pub async fn ensure_armed(
    inventory: &Inventory,
    standing: &Standing,
    wanted: &Wanted,
) -> Result<Sale, ArmError> {
    let look = inventory.arm(ArmMode::Look, &[]).await?;
    if let ArmOutcome::Whole(armed) = look {
        return Ok(sale(wanted, armed));
    }
    // Missing or partly lost: only the orders that stand may rebuild it.
    let orders = standing.orders(&wanted.id).await?;
    let mode = ArmMode::Arm {
        total: wanted.total,
        window: wanted.window,
    };
    let armed = match inventory.arm(mode, &orders).await? {
        ArmOutcome::Whole(armed) => armed,
        ArmOutcome::NotArmed => {
            let reply = ScriptReplyError("NOT_ARMED in arm mode".into());
            return Err(ArmError::Redis(reply.into()));
        }
    };
    if armed.armed_now && !orders.is_empty() {
        tracing::warn!(
            sale.id = %wanted.id,
            orders = orders.len(),
            restored = armed.restored,
            "sale was missing or partly lost in Redis; rebuilt stock and ledger from PostgreSQL"
        );
    } else if armed.armed_now {
        tracing::info!(sale.id = %wanted.id, total = armed.total_stock, "sale armed");
    }
    Ok(sale(wanted, armed))
}

fn sale(wanted: &Wanted, armed: ArmedSale) -> Sale {
    if !armed.armed_now && (armed.total_stock != wanted.total || armed.window != wanted.window) {
        tracing::warn!(
            sale.id = %wanted.id,
            armed.total = armed.total_stock,
            "sale was armed with other settings; Redis's copy wins (a new sale needs a new SALE_ID)"
        );
    }
    Sale {
        id: wanted.id.clone(),
        total_stock: armed.total_stock,
        window: armed.window,
    }
}

/// Re-arming is tried at most this often per replica while Redis lacks the sale.
const REARM_INTERVAL: Duration = Duration::from_millis(500);

/// Re-arms the sale in the background when a request finds it missing or
/// partly lost (Redis restarted without its data, flushed, failed over).
/// One attempt at a time, at most every 500 ms; the request that noticed
/// answers 503 and the next ones find the sale whole again.
pub struct Healer {
    inventory: Inventory,
    standing: Standing,
    wanted: Wanted,
    stock_changes: Arc<StockChanges>,
    last: Arc<tokio::sync::Mutex<Option<Instant>>>,
}

impl Healer {
    pub fn new(
        inventory: Inventory,
        standing: Standing,
        wanted: Wanted,
        stock_changes: Arc<StockChanges>,
    ) -> Self {
        Self {
            inventory,
            standing,
            wanted,
            stock_changes,
            last: Default::default(),
        }
    }

    /// Starts a re-arm unless one runs or ran less than 500 ms ago.
    pub fn heal(&self) {
        let Ok(mut last) = self.last.clone().try_lock_owned() else {
            return;
        };
        if last.is_some_and(|at| at.elapsed() < REARM_INTERVAL) {
            return;
        }
        *last = Some(Instant::now());
        let (inventory, standing, wanted) = (
            self.inventory.clone(),
            self.standing.clone(),
            self.wanted.clone(),
        );
        let stock_changes = self.stock_changes.clone();
        tokio::spawn(async move {
            match ensure_armed(&inventory, &standing, &wanted).await {
                Ok(_) => {
                    stock_changes.seen();
                    tracing::info!(sale.id = %wanted.id, "sale re-armed")
                }
                Err(error) => {
                    tracing::warn!(error = format!("{error:#}"), "re-arming failed; will retry")
                }
            }
            drop(last);
        });
    }
}
