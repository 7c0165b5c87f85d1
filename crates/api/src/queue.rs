//! Pushing orders onto the apalis queue, group-committed.
//!
//! Each purchase batcher hands the orders its script call confirmed to its
//! thread's pusher task, before it answers their buyers, and does not wait
//! for the push: the order is already in the Redis ledger, so a 201 never
//! depended on the push (a failed one is persisted by the worker's
//! reconciler), and a buyer who hangs up cannot stop the hand-over. The
//! pusher takes every order waiting (up to [`MAX_ORDERS_PER_JOB`] a job)
//! and pushes them as one [`PersistOrders`] job. A quiet shop pushes one
//! order per job with no added wait; in a rush, the orders confirmed while
//! one push is in flight ride the next one, so Redis sees one push (and the
//! worker one job) per batch instead of one per purchase.

use apalis_core::{backend::TaskSink, task::builder::TaskBuilder};
use domain::{config::RedisConfig, queue::OrderStorage, PersistOrder, PersistOrders};
use tokio::sync::mpsc;

/// The most orders one job carries.
pub const MAX_ORDERS_PER_JOB: usize = 500;
/// Batches of orders that may wait for the pusher before batchers wait to
/// hand theirs over (a batch is at most [`crate::batch::MAX_PURCHASES`]).
const WAITING: usize = 64;

#[derive(Clone)]
pub struct OrderQueue {
    tx: mpsc::Sender<Vec<PersistOrder>>,
    redis: RedisConfig,
    queue: String,
}

/// The pusher is gone (its runtime is stopping): the orders handed over
/// are left to the worker's reconciler.
#[derive(Debug, Clone, Copy, thiserror::Error)]
#[error("the order pusher is not running")]
pub struct PusherGone;

impl OrderQueue {
    /// Starts a pusher to `queue` on the current runtime, over a connection
    /// of its own (made on first use); it ends when every clone of this
    /// `OrderQueue` is dropped and the waiting orders are pushed.
    pub fn spawn(redis: &RedisConfig, queue: &str) -> Result<Self, redis::RedisError> {
        let storage: OrderStorage =
            domain::queue::storage(domain::queue::connection(redis)?, queue);
        let (tx, rx) = mpsc::channel(WAITING);
        tokio::spawn(run(storage, rx));
        Ok(Self {
            tx,
            redis: redis.clone(),
            queue: queue.to_owned(),
        })
    }

    /// Another pusher to the same queue, on the calling thread's runtime.
    pub fn on_this_thread(&self) -> Result<Self, redis::RedisError> {
        Self::spawn(&self.redis, &self.queue)
    }

    /// Hands `orders` to the pusher: they go out in its next job. Returns
    /// once they are handed over (at once, unless [`WAITING`] batches are
    /// already waiting for a push), not when they are pushed.
    pub async fn hand_over(&self, orders: Vec<PersistOrder>) -> Result<(), PusherGone> {
        self.tx.send(orders).await.map_err(|_| PusherGone)
    }
}

async fn run(mut storage: OrderStorage, mut rx: mpsc::Receiver<Vec<PersistOrder>>) {
    let mut waiting = Vec::with_capacity(WAITING);
    while rx.recv_many(&mut waiting, WAITING).await > 0 {
        let mut orders: Vec<PersistOrder> = waiting.drain(..).flatten().collect();
        while !orders.is_empty() {
            let rest = orders.split_off(orders.len().min(MAX_ORDERS_PER_JOB));
            push(&mut storage, orders).await;
            orders = rest;
        }
    }
}

/// Pushes one job of `orders`; a failure is logged and counted, and left to
/// the worker's reconciler (the orders are in the ledger).
async fn push(storage: &mut OrderStorage, orders: Vec<PersistOrder>) {
    let count = orders.len() as u64;
    crate::metrics::batch_pushed();
    let job = PersistOrders { orders };
    let mut pushed = storage
        .push_task(TaskBuilder::new(job.clone()).build())
        .await;
    if pushed.is_err() {
        // The first call after Redis dropped the connection fails and
        // makes it reconnect: one more try, and a Redis restart costs
        // no push. (A push that did land twice is harmless: orders
        // insert once.)
        pushed = storage.push_task(TaskBuilder::new(job).build()).await;
    }
    crate::metrics::jobs_pushed(count, pushed.is_ok());
    if let Err(error) = pushed {
        tracing::error!(
            orders = count,
            error = domain::telemetry::chain(&error),
            "order job not queued; the reconciler will persist its orders"
        );
    }
}
