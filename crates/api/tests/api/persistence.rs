use domain::config::Env;
use order_worker::WorkerSettings;
use serde_json::Value;

use crate::helpers::{create_database, spawn_app_with, wait_for_orders, TestConfig};

fn worker_settings(config: &TestConfig) -> WorkerSettings {
    let mut vars = config.vars.clone();
    vars.push(("WORKER_CONCURRENCY".into(), "4".into()));
    vars.push(("DATABASE_POOL_MIN".into(), "0".into()));
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
