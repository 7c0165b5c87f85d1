//! The order worker: consumes `PersistOrders` jobs and writes order rows.
//!
//! `main.rs` only reads settings and calls [`run`] or [`migrate`]; tests call
//! [`spawn`] to run the real worker in-process. [`Worker`] is built, then
//! runs until stopped.

pub mod batch;
pub mod jobs;
pub mod keeper;
pub mod metrics;
pub mod poll;
pub mod reconcile;
pub mod settings;

use std::time::Duration;

use anyhow::Context;
use apalis::layers::retry::backoff::MakeBackoff;
use apalis::{
    layers::retry::{backoff::ExponentialBackoffMaker, HasherRng},
    prelude::*,
};
use tokio_util::sync::CancellationToken;

pub use settings::WorkerSettings;

use crate::{
    jobs::{persist_orders, JobContext},
    keeper::QueueKeeper,
    poll::Ticker,
    reconcile::Reconciler,
};

/// Applies the migrations alone (`order-worker migrate`).
pub async fn migrate(settings: &WorkerSettings) -> anyhow::Result<()> {
    let applied = orders::migrate(&settings.database.url).await?;
    tracing::info!(applied, "migrations up to date");
    Ok(())
}

/// Runs the worker until `shutdown` is cancelled (see [`Worker`]).
pub async fn run(settings: WorkerSettings, shutdown: CancellationToken) -> anyhow::Result<()> {
    Worker::build(settings)?.run_until_stopped(shutdown).await
}

/// The worker with its connections made. Every connection is lazy and
/// reconnects forever, so a worker started while Redis or PostgreSQL is
/// down waits for them instead of exiting.
pub struct Worker {
    settings: WorkerSettings,
    pool: orders::PgPool,
    queue: domain::queue::QueueConnection,
    /// The inventory Redis (the ledgers), which may be a cluster: fred.
    ledger: fred::clients::Client,
    keeper: QueueKeeper,
}

impl Worker {
    pub fn build(settings: WorkerSettings) -> anyhow::Result<Self> {
        let queue = domain::queue::connection(&settings.queue_redis)
            .context("creating the queue connection")?;
        let ledger = domain::inventory_redis::builder(&settings.redis)
            .and_then(|builder| builder.build())
            .context("creating the ledger connection")?;
        Ok(Self {
            pool: orders::pool(&settings.database),
            keeper: QueueKeeper::new(&settings.queue),
            queue,
            ledger,
            settings,
        })
    }

    /// Runs until `shutdown` is cancelled.
    ///
    /// Migrations are applied first (retried while PostgreSQL is
    /// unreachable). Three tasks then run side by side: the apalis loop
    /// persisting jobs, the queue keeper (promoting due jobs so the queue
    /// never jams, sweeping finished ones), and the reconciler making
    /// ledgers and rows agree.
    pub async fn run_until_stopped(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        metrics::serve(self.settings.metrics_port);
        if !migrate_when_reachable(&self.settings, &shutdown).await {
            return Ok(());
        }
        let _connection = fred::prelude::ClientLike::connect(&self.ledger);
        let background = [
            tokio::spawn(self.keeper.clone().run(
                self.queue.clone(),
                self.pool.clone(),
                self.settings.poll_interval,
                self.settings.finished_job_retention,
                shutdown.clone(),
            )),
            tokio::spawn(
                Reconciler::new(
                    self.ledger.clone(),
                    self.pool.clone(),
                    self.settings.reconcile.clone(),
                )
                .watching(reconcile::Backlog::new(
                    self.keeper.clone(),
                    self.queue.clone(),
                ))
                .run(shutdown.clone()),
            ),
        ];
        self.supervise(&shutdown).await;
        for task in background {
            if tokio::time::timeout(Duration::from_secs(5), task)
                .await
                .is_err()
            {
                tracing::warn!("a background task did not stop within 5 s; leaving it");
            }
        }
        tracing::info!("worker stopped");
        Ok(())
    }

    /// Runs the apalis loop until `shutdown`. When it fails (Redis gone, a
    /// timeout), the jobs it held are given back and it is built again
    /// after a pause, under a new name (apalis refuses a name that was
    /// alive less than 30 s ago).
    async fn supervise(&self, shutdown: &CancellationToken) {
        let context = JobContext {
            batcher: batch::Batcher::spawn(self.pool.clone()),
            finished: keeper::Finished::spawn(self.queue.clone(), &self.settings.queue),
        };
        let mut restarts = 0u32;
        while !shutdown.is_cancelled() {
            let name = format!("{}-{restarts}", self.settings.name);
            if let Err(error) = self.keeper.promote_all(&mut self.queue.clone()).await {
                tracing::warn!(%error, "promoting due jobs failed");
            }
            let job_loop = run_once(
                &self.settings,
                &name,
                self.queue.clone(),
                context.clone(),
                shutdown.clone(),
            );
            let result = bounded(job_loop, shutdown).await;
            self.give_back(&name, shutdown).await;
            match result {
                Ok(()) if shutdown.is_cancelled() => break,
                Ok(()) => tracing::warn!("worker loop ended by itself; restarting"),
                Err(error) => tracing::error!(
                    error = format!("{error:#}"),
                    "worker loop failed; restarting"
                ),
            }
            restarts += 1;
            let pause = Duration::from_millis(200 * u64::from(restarts.min(10)));
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = tokio::time::sleep(pause) => {}
            }
        }
    }

    /// Whatever the stopped loop `name` still held goes back to the queue
    /// now, not when another worker finds the loop dead 30 s later. A loop
    /// usually fails because Redis went away: the jobs are given back as
    /// soon as it answers again (the next loop could not run before that
    /// either), or at shutdown's first chance.
    async fn give_back(&self, name: &str, shutdown: &CancellationToken) {
        let mut pause = Duration::from_millis(100);
        loop {
            match self.keeper.release(&mut self.queue.clone(), name).await {
                Ok(0) => return,
                Ok(released) => {
                    tracing::info!(released, %name, "jobs of the stopped loop given back");
                    return;
                }
                Err(error) => {
                    tracing::warn!(%error, %name, "giving back the stopped loop's jobs failed; retrying")
                }
            }
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(pause) => {}
            }
            pause = (pause * 2).min(Duration::from_secs(2));
        }
    }
}

/// How long in-flight jobs get to finish after a shutdown request. Past it
/// the worker exits anyway: an unfinished job is redelivered or persisted
/// by the reconciler, and an orchestrator would SIGKILL us soon after.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(20);

/// Runs the job loop; once `shutdown` fires it gets [`SHUTDOWN_GRACE`].
async fn bounded(
    job_loop: impl std::future::Future<Output = anyhow::Result<()>>,
    shutdown: &CancellationToken,
) -> anyhow::Result<()> {
    let grace_over = async {
        shutdown.cancelled().await;
        tokio::time::sleep(SHUTDOWN_GRACE).await;
    };
    tokio::select! {
        result = job_loop => result,
        _ = grace_over => {
            tracing::warn!("in-flight jobs did not finish within the shutdown grace; exiting");
            Ok(())
        }
    }
}

/// Runs [`run`] on the current runtime; for tests and embedding.
pub fn spawn(settings: WorkerSettings) -> WorkerHandle {
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(run(settings, shutdown.clone()));
    WorkerHandle { shutdown, task }
}

/// A worker running in-process.
pub struct WorkerHandle {
    shutdown: CancellationToken,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
}

impl WorkerHandle {
    /// Asks the worker to stop and waits until it has.
    pub async fn stop(self) -> anyhow::Result<()> {
        self.shutdown.cancel();
        self.task.await.context("worker task panicked")?
    }
}

async fn migrate_when_reachable(settings: &WorkerSettings, shutdown: &CancellationToken) -> bool {
    let mut delay = Duration::from_millis(250);
    loop {
        match orders::migrate(&settings.database.url).await {
            Ok(applied) => {
                tracing::info!(applied, "migrations up to date");
                return true;
            }
            Err(error) => tracing::warn!(
                error = format!("{error:#}"),
                "cannot apply migrations yet; retrying"
            ),
        }
        tokio::select! {
            _ = shutdown.cancelled() => return false,
            _ = tokio::time::sleep(delay) => {}
        }
        delay = (delay * 2).min(Duration::from_secs(10));
    }
}

async fn run_once(
    settings: &WorkerSettings,
    name: &str,
    conn: domain::queue::QueueConnection,
    context: JobContext,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let storage = domain::queue::storage(conn, &settings.queue);
    // Short on purpose: a job holds a concurrency slot (and delays a graceful
    // stop) while it sleeps; a longer outage is the reconciler's to cover.
    let backoff = ExponentialBackoffMaker::new(
        Duration::from_millis(100),
        Duration::from_secs(2),
        0.5,
        HasherRng::default(),
    )
    .context("building the retry backoff")?
    .make_backoff();
    let worker = WorkerBuilder::new(name)
        .backend(storage.poll_with_strategy(Ticker::new(settings.poll_interval)))
        .data(context)
        .concurrency(settings.concurrency)
        .retry(RetryPolicy::retries(settings.max_retries).with_backoff(backoff))
        .build(persist_orders);
    tracing::info!(%name, queue = %settings.queue, concurrency = settings.concurrency, "worker started");
    worker
        .run_until(async move {
            shutdown.cancelled().await;
            Ok::<(), WorkerError>(())
        })
        .await
        .context("apalis worker")
}
