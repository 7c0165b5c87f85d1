//! Pushing orders onto the apalis queue, group-committed.
//!
//! Purchase handlers hand their order to one pusher task and wait for its
//! push. The pusher takes every order waiting (up to [`MAX_ORDERS_PER_JOB`])
//! and pushes them as one [`PersistOrders`] job. A quiet shop pushes one
//! order per job with no added wait; in a rush, the orders confirmed while
//! one push is in flight ride the next one, so Redis sees one push per
//! batch instead of one per purchase.

use apalis_core::{backend::TaskSink, task::builder::TaskBuilder};
use domain::{config::RedisConfig, queue::OrderStorage, PersistOrder, PersistOrders};
use tokio::sync::{mpsc, oneshot};

/// The most orders one job carries.
pub const MAX_ORDERS_PER_JOB: usize = 500;
/// Orders that may wait for the pusher before handlers wait to hand theirs over.
const WAITING: usize = 8 * MAX_ORDERS_PER_JOB;

type Reply = oneshot::Sender<Result<(), PushError>>;

#[derive(Clone)]
pub struct OrderQueue {
    tx: mpsc::Sender<(PersistOrder, Reply)>,
    redis: RedisConfig,
    queue: String,
}

/// Why an order's job is not in Redis. Cloned to every order of the job,
/// hence the shared source.
#[derive(Debug, Clone, thiserror::Error)]
pub enum PushError {
    #[error("the order pusher is not running")]
    PusherGone,
    #[error("pushing the order job failed")]
    Redis(#[source] std::sync::Arc<apalis_core::backend::TaskSinkError<apalis_redis::Error>>),
}

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

    /// Queues one order; returns when the job carrying it is in Redis (or
    /// its push failed). Bounded by the Redis response timeout.
    pub async fn push(&self, order: PersistOrder) -> Result<(), PushError> {
        let (reply, pushed) = oneshot::channel();
        self.tx
            .send((order, reply))
            .await
            .map_err(|_| PushError::PusherGone)?;
        pushed.await.map_err(|_| PushError::PusherGone)?
    }
}

async fn run(mut storage: OrderStorage, mut rx: mpsc::Receiver<(PersistOrder, Reply)>) {
    let mut waiting = Vec::with_capacity(MAX_ORDERS_PER_JOB);
    while rx.recv_many(&mut waiting, MAX_ORDERS_PER_JOB).await > 0 {
        let (orders, replies): (Vec<PersistOrder>, Vec<Reply>) = waiting.drain(..).unzip();
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
        let pushed = pushed
            .map(|_| ())
            .map_err(|e| PushError::Redis(std::sync::Arc::new(e)));
        for reply in replies {
            let _ = reply.send(pushed.clone());
        }
    }
}
