//! Orders reach PostgreSQL through their jobs; the reconciler persists only
//! what no job carried.

use domain::config::Env;
use order_worker::WorkerSettings;
use serde_json::Value;

use crate::helpers::{create_database, sample, spawn_app_with, wait_for_orders, TestConfig};

/// The reconciler's grace in tests whose subject is not the reconciler:
/// longer than any test, so it never persists a ledger entry and a broken
/// push -> apalis -> worker path fails the test instead of being covered
/// up. Tests of the reconciler set a short `RECONCILE_GRACE_MS` themselves.
pub const JOBS_ONLY_GRACE_MS: u64 = 600_000;

/// Settings of an in-process worker for `config`'s sale. The test's own
/// variables win over these defaults: the reconciler checks only this
/// sale, every 200 ms, and leaves ledger entries to their jobs
/// ([`JOBS_ONLY_GRACE_MS`]).
pub fn worker_settings(config: &TestConfig) -> WorkerSettings {
    // The worker's metrics land in this process's recorder (the api's), so
    // a test can tell which path persisted its orders ([`persisted_by`]).
    api::metrics::handle();
    let defaults = [
        ("WORKER_CONCURRENCY", "4".to_owned()),
        ("DATABASE_POOL_MIN", "0".to_owned()),
        ("RECONCILE_INTERVAL_MS", "200".to_owned()),
        ("RECONCILE_GRACE_MS", JOBS_ONLY_GRACE_MS.to_string()),
        ("RECONCILE_SALES", config.sale_id().to_string()),
    ];
    let vars = defaults
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .chain(config.vars.iter().cloned());
    WorkerSettings::from_env(&Env::from_pairs(vars)).expect("worker settings")
}

/// Orders this process's workers persisted from `source` (`job` |
/// `reconciler`).
pub fn persisted_by(source: &str) -> u64 {
    counter("flash_sale_orders_persisted_total", &[("source", source)])
}

/// A counter of this process's recorder (what the api serves at
/// `/metrics`, in-process workers' metrics included); absent counts 0.
pub fn counter(name: &str, labels: &[(&str, &str)]) -> u64 {
    let scrape = api::metrics::handle().render();
    sample(&scrape, name, labels).unwrap_or(0.0) as u64
}

/// Asserts jobs persisted all `orders` and the reconciler none of them.
pub fn assert_persisted_by_jobs(orders: usize) {
    assert_eq!(
        persisted_by("job"),
        orders as u64,
        "orders persisted by their jobs"
    );
    assert_eq!(
        persisted_by("reconciler"),
        0,
        "orders persisted by the reconciler"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_order_row_lands_in_postgres_with_the_order_id_the_api_returned() {
    let database = create_database().await;
    let config = TestConfig::active(5).set("DATABASE_URL", &database);
    let worker = order_worker::spawn(worker_settings(&config));
    let app = spawn_app_with(config).await;

    let body: Value = app
        .purchase("persisted-buyer")
        .await
        .json()
        .await
        .expect("json");

    let rows = wait_for_orders(&database, &app.config.sale_id(), 1).await;
    worker.stop().await.expect("worker stops cleanly");
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].id, body["orderId"].as_str().expect("orderId"));
    assert_eq!(rows[0].user_id, "persisted-buyer");
    assert_persisted_by_jobs(1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn orders_queued_before_the_worker_starts_are_persisted_when_it_does() {
    let database = create_database().await;
    let config = TestConfig::active(20).set("DATABASE_URL", &database);
    let settings = worker_settings(&config);
    let app = spawn_app_with(config).await;
    let mut answered = Vec::new();
    for i in 0..20 {
        let body: Value = app
            .purchase(&format!("early-{i:02}"))
            .await
            .json()
            .await
            .expect("json");
        answered.push(body["orderId"].as_str().expect("orderId").to_owned());
    }

    let worker = order_worker::spawn(settings);
    let rows = wait_for_orders(&database, &app.config.sale_id(), 20).await;
    worker.stop().await.expect("worker stops cleanly");

    let mut persisted: Vec<String> = rows.into_iter().map(|r| r.id).collect();
    persisted.sort();
    answered.sort();
    assert_eq!(persisted, answered);
    assert_persisted_by_jobs(20);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_purchase_whose_job_push_failed_is_still_201_and_lands_through_the_reconciler() {
    let database = create_database().await;
    let config = TestConfig::active(5)
        .set("DATABASE_URL", &database)
        .set("RECONCILE_GRACE_MS", 0);
    let worker = order_worker::spawn(worker_settings(&config));
    // The api's queue is a private Redis, gone once the sale is armed (the
    // arming reads the queue for orders that stand): every push fails.
    let mut queue = test_support::PrivateRedis::start();
    let app = spawn_app_with(config.set("REDIS_QUEUE_URL", queue.url())).await;
    queue.stop();

    let started = std::time::Instant::now();
    let response = app.purchase("unqueued-buyer").await;
    let answered_in = started.elapsed();

    assert_eq!(response.status(), 201);
    assert!(
        answered_in < std::time::Duration::from_secs(3),
        "{answered_in:?}"
    );
    let body: Value = response.json().await.expect("json");
    let rows = wait_for_orders(&database, &app.config.sale_id(), 1).await;
    worker.stop().await.expect("worker stops cleanly");
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].id, body["orderId"].as_str().expect("orderId"));
    assert_eq!(persisted_by("reconciler"), 1, "the reconciler persisted it");
    assert_eq!(persisted_by("job"), 0, "no job carried it");
}
