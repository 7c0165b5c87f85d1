//! Pushing `PersistOrder` jobs onto the apalis queue.

use apalis_core::{backend::TaskSink, task::builder::TaskBuilder};
use domain::{queue::OrderStorage, PersistOrder};

#[derive(Clone)]
pub struct OrderQueue {
    storage: OrderStorage,
}

#[derive(Debug, thiserror::Error)]
#[error("pushing the order job failed: {0}")]
pub struct PushError(String);

impl OrderQueue {
    pub fn new(storage: OrderStorage) -> Self {
        Self { storage }
    }

    /// Pushes one job. Bounded by the Redis response timeout.
    pub async fn push(&self, job: PersistOrder) -> Result<(), PushError> {
        let mut storage = self.storage.clone();
        storage
            .push_task(TaskBuilder::new(job).build())
            .await
            .map_err(|e| PushError(e.to_string()))
    }
}
