//! What every handler shares.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use diesel_async::{pooled_connection::bb8, AsyncPgConnection};
use domain::{SaleId, SaleWindow};

use crate::{
    arming::{self, Wanted},
    feed::SaleFeed,
    inventory::{AttemptLimit, Inventory},
    queue::OrderQueue,
};

pub type PgPool = bb8::Pool<AsyncPgConnection>;

/// Re-arming is tried at most this often per replica while Redis lacks the sale.
const REARM_INTERVAL: Duration = Duration::from_millis(500);

/// The Redis paths of one actix worker thread: a connection and an order
/// pusher of its own, driven by the thread's own runtime, so the purchase
/// and status handlers reach Redis without handing every call to the
/// threads that drive the shared pool and waiting to be woken back.
pub struct ThreadPaths {
    own: Inventory,
    shared: Inventory,
    pub queue: OrderQueue,
    /// This thread's last stock reading, answering status polls for 50 ms.
    pub recent: crate::recent::RecentReading,
}

impl ThreadPaths {
    /// The thread's own connection when it is up, else the shared pool.
    pub fn inventory(&self) -> &Inventory {
        if self.own.is_connected() {
            &self.own
        } else {
            &self.shared
        }
    }
}

pub struct AppState {
    pub sale: Sale,
    pub inventory: Inventory,
    pub queue: OrderQueue,
    pub db: PgPool,
    pub attempt_limit: AttemptLimit,
    /// The sale's purchase counters and stock gauge.
    pub metrics: crate::metrics::SaleMetrics,
    /// Live stock for open storefronts.
    pub feed: SaleFeed,
    /// Set once this replica has seen the sale sold out.
    pub sold_out: crate::soldout::SoldOut,
    /// Fired when the server starts a graceful stop (ends SSE streams).
    pub shutdown: tokio_util::sync::CancellationToken,
    /// Stock changes this process made or saw; kept readings older than
    /// the latest change are not used.
    pub stock_changes: crate::recent::StockChanges,
    /// Last re-arm attempt; the lock makes re-arming single-flight.
    pub rearm: Arc<tokio::sync::Mutex<Option<Instant>>>,
}

impl AppState {
    /// This thread's own paths; the shared ones if they cannot be made
    /// (they work the same, only with the hop between threads).
    pub fn on_this_thread(&self) -> ThreadPaths {
        let own = self.inventory.on_this_thread().unwrap_or_else(|error| {
            tracing::warn!(%error, "no Redis connection of this thread; using the shared pool");
            self.inventory.clone()
        });
        let queue = self.queue.on_this_thread().unwrap_or_else(|error| {
            tracing::warn!(%error, "no order pusher of this thread; using the shared one");
            self.queue.clone()
        });
        ThreadPaths {
            own,
            shared: self.inventory.clone(),
            queue,
            recent: Default::default(),
        }
    }

    /// Re-arms the sale in the background after Redis lost it (restarted
    /// without its data, flushed): stock and ledger come back from
    /// PostgreSQL. One attempt at a time, at most every 500 ms; the request
    /// that noticed answers 503 and the next ones find the sale again.
    pub fn heal(self: Arc<Self>) {
        let Ok(mut last) = self.rearm.clone().try_lock_owned() else {
            return;
        };
        if last.is_some_and(|at| at.elapsed() < REARM_INTERVAL) {
            return;
        }
        *last = Some(Instant::now());
        tokio::spawn(async move {
            let wanted = Wanted {
                id: self.sale.id.clone(),
                total: self.sale.total_stock,
                window: self.sale.window,
            };
            match arming::ensure_armed(&self.inventory, &self.db, &wanted).await {
                Ok(_) => {
                    self.stock_changes.seen();
                    tracing::info!(sale.id = %self.sale.id, "sale re-armed")
                }
                Err(error) => {
                    tracing::warn!(error = format!("{error:#}"), "re-arming failed; will retry")
                }
            }
            drop(last);
        });
    }
}

/// The sale as armed in Redis (which wins over this replica's settings).
#[derive(Debug, Clone)]
pub struct Sale {
    pub id: SaleId,
    pub total_stock: u64,
    pub window: SaleWindow,
}
