//! Pushing orders onto the apalis queue, group-committed.
//!
//! Each purchase batcher (a task of its own, which a closed connection
//! cannot stop) hands the orders its script call confirmed to its thread's
//! pusher task before it answers their buyers, and does not wait for the
//! push: the order is already in the Redis ledger, so a 201 never depended
//! on the push (a failed one is persisted by the worker's reconciler). The
//! pusher takes every order waiting (up to [`MAX_ORDERS_PER_JOB`] a job)
//! and pushes them as one [`PersistOrders`] job. A quiet shop pushes one
//! order per job with no added wait; in a rush, the orders confirmed while
//! one push is in flight ride the next one, so Redis sees one push (and the
//! worker one job) per batch instead of one per purchase.
//!
//! A graceful stop [`OrderQueue::drain`]s first: the orders handed over are
//! pushed before the workers (whose runtimes drive the pushers) stop, and
//! from then on a batch waits for its push before its buyers are answered.

use std::{
    sync::{
        atomic::{AtomicBool, AtomicUsize, Ordering},
        Arc,
    },
    time::{Duration, Instant},
};

use apalis_core::{backend::TaskSink, task::builder::TaskBuilder};
use domain::{config::RedisConfig, queue::OrderStorage, PersistOrder, PersistOrders};
use tokio::sync::{mpsc, oneshot};

/// The most orders one job carries.
pub const MAX_ORDERS_PER_JOB: usize = 500;
/// Batches of orders that may wait for the pusher before batchers wait to
/// hand theirs over (a batch is at most [`crate::batch::MAX_PURCHASES`]).
const WAITING: usize = 64;

/// A batch of orders, and who waits for its push (while draining).
type HandedOver = (Vec<PersistOrder>, Option<oneshot::Sender<()>>);

#[derive(Clone)]
pub struct OrderQueue {
    tx: mpsc::Sender<HandedOver>,
    redis: RedisConfig,
    queue: String,
    /// Shared by every thread's pusher of the process.
    pending: Pending,
}

/// Orders handed over and not pushed yet (pushed or failed), across the
/// process's pushers, and whether the process is stopping.
#[derive(Clone, Default)]
struct Pending {
    orders: Arc<AtomicUsize>,
    draining: Arc<AtomicBool>,
}

/// Purchases of a script call in flight, counted as unpushed ([`OrderQueue::deciding`]).
pub struct Deciding {
    orders: Arc<AtomicUsize>,
    purchases: usize,
}

impl Drop for Deciding {
    fn drop(&mut self) {
        self.orders.fetch_sub(self.purchases, Ordering::AcqRel);
    }
}

/// The orders a process confirmed (from its script call on) and has not
/// pushed yet (pushed, or the push failed), across its pushers. A sale
/// rebuilt while some are on their way would miss them: neither the queue
/// nor PostgreSQL holds them yet. (A push that failed is not waited for:
/// its order is in the ledger for the reconciler, and lost with it.)
#[derive(Clone, Default)]
pub struct Unpushed(Arc<AtomicUsize>);

impl Unpushed {
    /// Waits until none is left, polling every millisecond; false when some
    /// are still on their way after `limit`.
    pub async fn settled(&self, limit: Duration) -> bool {
        let started = Instant::now();
        while self.0.load(Ordering::SeqCst) > 0 {
            if started.elapsed() >= limit {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        true
    }
}

/// The pusher is gone (its runtime is stopping): the orders handed over
/// are left to the worker's reconciler.
#[derive(Debug, Clone, Copy, thiserror::Error)]
#[error("the order pusher is not running")]
pub struct PusherGone;

impl OrderQueue {
    /// Starts a pusher to `queue` on the current runtime, over a connection
    /// of its own (made on first use); it ends with its runtime, or when
    /// every clone of this `OrderQueue` is dropped and the waiting orders
    /// are pushed.
    pub fn spawn(redis: &RedisConfig, queue: &str) -> Result<Self, redis::RedisError> {
        Self::spawn_with(redis, queue, Pending::default())
    }

    fn spawn_with(
        redis: &RedisConfig,
        queue: &str,
        pending: Pending,
    ) -> Result<Self, redis::RedisError> {
        let storage: OrderStorage =
            domain::queue::storage(domain::queue::connection(redis)?, queue);
        let (tx, rx) = mpsc::channel(WAITING);
        tokio::spawn(run(storage, rx, pending.orders.clone()));
        Ok(Self {
            tx,
            redis: redis.clone(),
            queue: queue.to_owned(),
            pending,
        })
    }

    /// Another pusher to the same queue, on the calling thread's runtime
    /// (drained with this one).
    pub fn on_this_thread(&self) -> Result<Self, redis::RedisError> {
        Self::spawn_with(&self.redis, &self.queue, self.pending.clone())
    }

    /// Hands `orders` to the pusher: they go out in its next job. Returns
    /// once they are handed over (at once, unless [`WAITING`] batches are
    /// already waiting for a push), not when they are pushed; once the
    /// process is draining, when they are pushed (or their push failed).
    pub async fn hand_over(&self, orders: Vec<PersistOrder>) -> Result<(), PusherGone> {
        let count = orders.len();
        // SeqCst with `drain`'s store-then-load: either it sees these
        // orders counted, or this sees it draining (and waits for the push).
        self.pending.orders.fetch_add(count, Ordering::SeqCst);
        let (pushed, done) = if self.pending.draining.load(Ordering::SeqCst) {
            let (tx, rx) = oneshot::channel();
            (Some(tx), Some(rx))
        } else {
            (None, None)
        };
        if self.tx.send((orders, pushed)).await.is_err() {
            self.pending.orders.fetch_sub(count, Ordering::AcqRel);
            return Err(PusherGone);
        }
        if let Some(done) = done {
            done.await.map_err(|_| PusherGone)?;
        }
        Ok(())
    }

    /// Counts the orders this process confirmed and has not pushed yet.
    pub fn unpushed(&self) -> Unpushed {
        Unpushed(self.pending.orders.clone())
    }

    /// Counts `purchases` whose script call is about to run as unpushed
    /// until the guard drops: an order the call confirms is in the ledger
    /// from that moment, before it is handed over (which counts it again),
    /// so a rebuild and a graceful stop wait for it from then on. Drop the
    /// guard after the hand-over.
    pub fn deciding(&self, purchases: usize) -> Deciding {
        self.pending.orders.fetch_add(purchases, Ordering::SeqCst);
        Deciding {
            orders: self.pending.orders.clone(),
            purchases,
        }
    }

    /// Before a graceful stop: from now on a hand-over waits for its push,
    /// and this waits (up to `limit`) until every order handed over so far
    /// is pushed or its push failed. The number still waiting when `limit`
    /// ran out (left to the reconciler).
    pub async fn drain(&self, limit: Duration) -> usize {
        self.pending.draining.store(true, Ordering::SeqCst);
        let started = Instant::now();
        loop {
            let left = self.pending.orders.load(Ordering::SeqCst);
            if left == 0 || started.elapsed() >= limit {
                return left;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

async fn run(
    mut storage: OrderStorage,
    mut rx: mpsc::Receiver<HandedOver>,
    pending: Arc<AtomicUsize>,
) {
    let mut waiting = Vec::with_capacity(WAITING);
    let mut waiters = Vec::new();
    while rx.recv_many(&mut waiting, WAITING).await > 0 {
        let mut orders = Vec::new();
        for (batch, waiter) in waiting.drain(..) {
            orders.extend(batch);
            waiters.extend(waiter);
        }
        while !orders.is_empty() {
            let rest = orders.split_off(orders.len().min(MAX_ORDERS_PER_JOB));
            let count = orders.len();
            push(&mut storage, orders).await;
            pending.fetch_sub(count, Ordering::AcqRel);
            orders = rest;
        }
        for waiter in waiters.drain(..) {
            let _ = waiter.send(());
        }
    }
}

/// Pushes one job of `orders`; a failure is logged and counted, and left to
/// the worker's reconciler (the orders are in the ledger).
async fn push(storage: &mut OrderStorage, orders: Vec<PersistOrder>) {
    let count = orders.len() as u64;
    crate::failpoint::pause_if("before-push").await;
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
