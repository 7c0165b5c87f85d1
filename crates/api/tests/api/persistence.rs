use domain::config::Env;
use order_worker::WorkerSettings;
use serde_json::Value;

use crate::helpers::{create_database, spawn_app_with, wait_for_orders, TestConfig};

pub fn worker_settings(config: &TestConfig) -> WorkerSettings {
    let mut vars = config.vars.clone();
    vars.push(("WORKER_CONCURRENCY".into(), "4".into()));
    vars.push(("DATABASE_POOL_MIN".into(), "0".into()));
    vars.push(("RECONCILE_INTERVAL_MS".into(), "200".into()));
    vars.push(("RECONCILE_GRACE_MS".into(), "0".into()));
    if config.get("RECONCILE_SALES").is_none() {
        vars.push(("RECONCILE_SALES".into(), config.sale_id().to_string()));
    }
    WorkerSettings::from_env(&Env::from_pairs(vars)).expect("worker settings")
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
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_purchase_whose_job_push_failed_is_still_201_and_lands_through_the_reconciler() {
    let database = create_database().await;
    let config = TestConfig::active(5).set("DATABASE_URL", &database);
    let worker = order_worker::spawn(worker_settings(&config));
    // The api's queue points where nothing listens: every push fails.
    let app = spawn_app_with(config.set("REDIS_QUEUE_URL", "redis://127.0.0.1:1")).await;

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
}
