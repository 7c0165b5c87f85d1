//! Purchases group-committed: one purchase-script call for many buyers.
//!
//! Each actix worker thread has a batcher task. Purchase handlers hand it
//! their buyer and wait for their own outcome. The batcher takes every
//! purchase waiting (up to [`MAX_PURCHASES`] and [`MAX_BYTES`] of user ids)
//! and decides them in one `EVALSHA`, in arrival order. A lone buyer's
//! purchase goes out at once, alone, with no added wait; in a rush, the
//! purchases that arrive while one call is in flight ride the next one, so
//! Redis runs one script (and the api makes one round trip) per batch
//! instead of one per buyer. In a rush (the previous batch had more than
//! one purchase) the batcher first lets its thread read the requests that
//! already arrived, one scheduler turn, so they join the batch at hand.
//!
//! The script decides each purchase as a call of its own would have at that
//! point (`lua/purchase.lua`): a buyer twice in a batch gets a 201 and then
//! a 409 with that order; one buyer's refusal never fails the others. A
//! batch whose call fails fails every purchase in it, each with the error
//! (503), exactly as their separate calls would have in that outage.

use domain::{OrderId, PersistOrder, PurchaseOutcome, SaleId, UserId};
use tokio::sync::{mpsc, oneshot};

use crate::{
    inventory::{AttemptLimit, Inventory, InventoryError},
    queue::OrderQueue,
    sale::ArmedSale,
    settings::ReplicaAcks,
};

/// The most purchases one script call decides: the call holds Redis for
/// every other client while it runs (a few microseconds a purchase).
pub const MAX_PURCHASES: usize = 256;
/// The most bytes of user ids one call carries (a user id is at most 255
/// characters, up to 1,020 bytes).
pub const MAX_BYTES: usize = 64 * 1024;
/// Purchases that may wait for the batcher before handlers wait to hand
/// theirs over.
const WAITING: usize = 8 * MAX_PURCHASES;

type Reply = oneshot::Sender<Result<PurchaseOutcome, InventoryError>>;

/// One purchase waiting for its batch.
struct Waiting {
    user: UserId,
    order: OrderId,
    reply: Reply,
}

/// Hands purchases to a batcher task on the runtime that made it.
#[derive(Clone)]
pub struct Purchases {
    tx: mpsc::Sender<Waiting>,
}

impl Purchases {
    /// Starts a batcher on the current runtime. Each batch goes over `own`
    /// when it is connected, else over `shared` (the same calls, with a hop
    /// to the threads that drive the shared pool). Until `sale` is armed
    /// every purchase is answered `NotArmed`. `acks`: replicas each batch
    /// must reach before its outcomes count. The orders a batch confirms
    /// are handed to `queue`, and every outcome the script gave is shown to
    /// `seen`, before their buyers are answered: this task does both, so a
    /// buyer who hangs up (dropping their handler) cannot stop either.
    pub fn spawn(
        own: Inventory,
        shared: Inventory,
        limit: AttemptLimit,
        sale: ArmedSale,
        acks: ReplicaAcks,
        queue: OrderQueue,
        seen: impl Fn(&PurchaseOutcome) + Send + 'static,
    ) -> Self {
        let (tx, rx) = mpsc::channel(WAITING);
        let paths = Paths { own, shared, queue };
        tokio::spawn(run(rx, paths, (limit, acks), sale, seen));
        Self { tx }
    }

    /// Decides `user`'s purchase under the order id `order`, in the next
    /// batch.
    pub async fn decide(
        &self,
        user: UserId,
        order: OrderId,
    ) -> Result<PurchaseOutcome, InventoryError> {
        let (reply, decided) = oneshot::channel();
        self.tx
            .send(Waiting { user, order, reply })
            .await
            .map_err(|_| InventoryError::Stopping)?;
        decided.await.map_err(|_| InventoryError::Stopping)?
    }
}

/// Where a batcher's calls and orders go.
struct Paths {
    own: Inventory,
    shared: Inventory,
    queue: OrderQueue,
}

async fn run(
    mut rx: mpsc::Receiver<Waiting>,
    Paths { own, shared, queue }: Paths,
    (limit, acks): (AttemptLimit, ReplicaAcks),
    sale: ArmedSale,
    seen: impl Fn(&PurchaseOutcome) + Send,
) {
    let mut carried: Option<Waiting> = None;
    let mut batch: Vec<(UserId, OrderId)> = Vec::with_capacity(MAX_PURCHASES);
    let mut replies: Vec<Reply> = Vec::with_capacity(MAX_PURCHASES);
    let mut rush = false;
    loop {
        let first = match carried.take() {
            Some(waiting) => waiting,
            None => match rx.recv().await {
                Some(waiting) => waiting,
                None => return,
            },
        };
        if rush {
            // In a rush (the last batch had company), the thread's other
            // connections get one turn first: the purchases that already
            // arrived on them join this batch instead of waiting a whole
            // call for the next. Buyers one at a time never wait (only the
            // first purchase after a rush waits that one turn).
            tokio::task::yield_now().await;
        }
        let mut bytes = first.user.as_str().len();
        batch.push((first.user, first.order));
        replies.push(first.reply);
        while batch.len() < MAX_PURCHASES {
            let Ok(next) = rx.try_recv() else { break };
            bytes += next.user.as_str().len();
            if bytes > MAX_BYTES {
                carried = Some(next);
                break;
            }
            batch.push((next.user, next.order));
            replies.push(next.reply);
        }
        rush = batch.len() > 1;
        let inventory = if own.is_connected() { &own } else { &shared };
        // Until the confirmed orders are handed over, a rebuild waits.
        let _deciding = queue.deciding(batch.len());
        let decided = match sale.get() {
            Some(sale) => {
                crate::metrics::purchase_batch();
                inventory.purchase(&batch, limit, &sale.window, acks).await
            }
            None => Ok(vec![PurchaseOutcome::NotArmed; batch.len()]),
        };
        match decided {
            Ok(outcomes) => {
                if let Some(sale) = sale.get() {
                    queue_confirmed(&queue, &sale.id, &mut batch, &outcomes).await;
                }
                show(&seen, &outcomes);
                for (reply, outcome) in replies.drain(..).zip(outcomes) {
                    let _ = reply.send(Ok(outcome));
                }
            }
            Err(error) => {
                for reply in replies.drain(..) {
                    let _ = reply.send(Err(error.clone()));
                }
            }
        }
        batch.clear();
    }
}

/// Shows every outcome to `seen`. A panic there is logged and goes no
/// further: this task decides every purchase of its thread, and the
/// answers Redis gave stand whatever the replica's view makes of them.
fn show(seen: &impl Fn(&PurchaseOutcome), outcomes: &[PurchaseOutcome]) {
    let shown = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        crate::failpoint::panic_if("seen");
        outcomes.iter().for_each(seen);
    }));
    if shown.is_err() {
        tracing::error!(
            outcomes = outcomes.len(),
            "bringing a batch's answers to this replica's view panicked; its buyers are answered anyway"
        );
    }
}

/// Hands the orders `outcomes` confirmed to the pusher (draining `batch`),
/// before any buyer is answered, so a graceful stop that drains the pushers
/// finds every order it answered 201 (and this task, not the handlers,
/// does it: a buyer who hangs up cannot stop it). A pusher that is gone
/// leaves them to the worker's reconciler, as a failed push does: they are
/// in the ledger.
async fn queue_confirmed(
    queue: &OrderQueue,
    sale: &SaleId,
    batch: &mut Vec<(UserId, OrderId)>,
    outcomes: &[PurchaseOutcome],
) {
    let orders: Vec<PersistOrder> = batch
        .drain(..)
        .zip(outcomes)
        .filter_map(|((user_id, order_id), outcome)| match *outcome {
            PurchaseOutcome::Confirmed { purchased_at, .. } => Some(PersistOrder {
                order_id,
                sale_id: sale.clone(),
                user_id,
                purchased_at,
            }),
            _ => None,
        })
        .collect();
    if orders.is_empty() {
        return;
    }
    crate::failpoint::crash_if("after-purchase-script");
    crate::failpoint::pause_if("after-purchase-script").await;
    let count = orders.len() as u64;
    if queue.hand_over(orders).await.is_err() {
        crate::metrics::jobs_pushed(count, false);
        tracing::error!(
            orders = count,
            "order pusher gone; the reconciler will persist these orders"
        );
    }
}
