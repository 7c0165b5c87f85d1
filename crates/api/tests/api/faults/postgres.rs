//! PostgreSQL stopped mid-burst.

use std::{
    sync::{atomic::AtomicUsize, Arc},
    time::Duration,
};

use serde_json::Value;

use super::*;
use crate::{
    helpers::{spawn_app_with, TestConfig},
    persistence::{assert_persisted_by_jobs, worker_settings},
};
use test_support::PrivatePostgres;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_stopped_mid_burst_delays_orders_but_loses_none() {
    let postgres = PrivatePostgres::start();
    let database = postgres.url();
    let config = jobs_only(TestConfig::active(200).set("DATABASE_URL", &database));
    let worker = order_worker::spawn(worker_settings(&config));
    let app = spawn_app_with(TestConfig {
        vars: config.vars.clone(),
    })
    .await;
    let progress = Arc::new(AtomicUsize::new(0));

    let firing = tokio::spawn(burst(
        app.address.clone(),
        users("pg", 300),
        16,
        progress.clone(),
    ));
    wait_for_progress(&progress, 80).await;
    postgres.stop();
    let answers = firing.await.expect("burst");
    let health: Value = app.get("/api/health").await.json().await.expect("json");
    tokio::time::sleep(Duration::from_secs(2)).await;
    postgres.start_again();

    assert_eq!(
        health["status"], "degraded",
        "PostgreSQL down is degraded, not down"
    );
    assert_eq!(
        answers.iter().filter(|a| a.status == 201).count(),
        200,
        "sales went on"
    );
    let rows = assert_invariants(
        &database,
        &config,
        &crate::helpers::redis_url(),
        &answers,
        200,
    )
    .await;
    worker.stop().await.expect("worker stops");
    assert_eq!(rows, 200);
    assert_persisted_by_jobs(200);
}
