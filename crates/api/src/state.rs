//! What every handler shares.

use std::sync::Arc;

use actix_web::web;

use domain::PurchaseOutcome;

use crate::{
    arming::Healer,
    auth::BuyerAuth,
    batch::Purchases,
    db::PgPool,
    feed::SaleFeed,
    inventory::{AttemptLimit, Inventory},
    metrics::SaleMetrics,
    queue::OrderQueue,
    recent::{RecentReading, StockChanges},
    sale::{ArmedSale, Sale},
    soldout::SoldOut,
};

/// The Redis paths of one actix worker thread: a connection and an order
/// pusher of its own, driven by the thread's own runtime, so the purchase
/// and status handlers reach Redis without handing every call to the
/// threads that drive the shared pool and waiting to be woken back.
pub struct ThreadPaths {
    own: Inventory,
    shared: Inventory,
    /// This thread's purchase batcher (over its own connection).
    pub purchases: Purchases,
    /// This thread's last stock reading, answering status polls for 50 ms.
    pub recent: RecentReading,
    /// This thread's last status body, reused while nothing moved.
    pub status_bodies: crate::status::StatusBodies,
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
    /// The sale's id, as configured.
    pub sale_id: domain::SaleId,
    /// The sale as armed in Redis; empty until this replica has armed it
    /// (it starts before its dependencies and answers 503 until then).
    pub sale: ArmedSale,
    pub inventory: Inventory,
    pub queue: OrderQueue,
    pub db: PgPool,
    pub attempt_limit: AttemptLimit,
    /// Replicas a purchase batch must reach before its answers.
    pub replica_acks: crate::settings::ReplicaAcks,
    /// The sale's purchase counters and stock gauge.
    pub metrics: SaleMetrics,
    /// Live stock for open storefronts.
    pub feed: SaleFeed,
    /// Answers purchases in-process while Redis says the sale is sold out.
    pub sold_out: SoldOut,
    /// Fired when the server starts a graceful stop (ends SSE streams).
    pub shutdown: tokio_util::sync::CancellationToken,
    /// Stock changes this process made or saw; kept readings older than
    /// the latest change are not used.
    pub stock_changes: Arc<StockChanges>,
    /// Re-arms the sale when Redis lost it.
    pub healer: Healer,
    /// Who the buyer is: the body's `userId`, or a verified token's `sub`.
    pub auth: BuyerAuth,
    /// Where the storefront sends a buyer to sign in (`jwt` mode).
    pub sign_in_url: Option<String>,
}

impl AppState {
    /// The armed sale, or the 503 every request gets until it is armed.
    pub fn armed(&self) -> Result<&Sale, crate::error::ApiError> {
        self.sale.get().ok_or(crate::error::ApiError::NotArmed)
    }

    /// This thread's own paths; the shared ones if they cannot be made
    /// (they work the same, only with the hop between threads). Its
    /// batcher brings every script answer to `state`'s view
    /// ([`Self::after_purchase`]) itself, whether or not its buyer is still
    /// connected to hear it.
    pub fn on_this_thread(state: &web::Data<Self>) -> ThreadPaths {
        let own = state.inventory.on_this_thread().unwrap_or_else(|error| {
            tracing::warn!(%error, "no Redis connection of this thread; using the shared pool");
            state.inventory.clone()
        });
        let queue = state.queue.on_this_thread().unwrap_or_else(|error| {
            tracing::warn!(%error, "no order pusher of this thread; using the shared one");
            state.queue.clone()
        });
        let seen = {
            let state = state.clone();
            move |reply: &PurchaseOutcome| state.after_purchase(reply)
        };
        let purchases = Purchases::spawn(
            own.clone(),
            state.inventory.clone(),
            state.attempt_limit,
            state.sale.clone(),
            state.replica_acks,
            queue,
            seen,
        );
        ThreadPaths {
            own,
            shared: state.inventory.clone(),
            purchases,
            recent: Default::default(),
            status_bodies: Default::default(),
        }
    }

    /// What the purchase script's answer means for this replica: the stock
    /// it shows, the sold-out freeze, and re-arming a sale Redis lost.
    pub fn after_purchase(&self, reply: &PurchaseOutcome) {
        match *reply {
            PurchaseOutcome::Confirmed {
                stock_left,
                purchased_at,
            } => {
                self.stock_changes.seen();
                self.metrics.stock(stock_left);
                self.feed.observe(stock_left);
                if let (0, Some(sale)) = (stock_left, self.sale.get()) {
                    // The last unit: every buyer is in the ledger now.
                    let buyers = sale.total_stock;
                    self.sold_out.seen(&self.inventory, buyers, purchased_at);
                }
            }
            PurchaseOutcome::SoldOut { buyers, now } => {
                self.stock_changes.seen();
                self.metrics.stock(0);
                self.feed.observe(0);
                self.sold_out.seen(&self.inventory, buyers, now);
            }
            PurchaseOutcome::NotArmed => {
                self.stock_changes.seen();
                tracing::error!(sale.id = %self.sale_id, "sale missing or partly lost in redis; re-arming");
                self.healer.heal();
            }
            PurchaseOutcome::Duplicate(_)
            | PurchaseOutcome::TooManyAttempts
            | PurchaseOutcome::NotStarted
            | PurchaseOutcome::Ended => {}
        }
    }
}
