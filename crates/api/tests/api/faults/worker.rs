//! The order worker killed, restarted at once, or failing on every job.

use std::{
    sync::{atomic::AtomicUsize, Arc},
    time::Duration,
};

use serde_json::Value;

use super::*;
use crate::{
    helpers::{create_database, spawn_app_with, wait_for_orders_within, TestConfig},
    persistence::{assert_persisted_by_jobs, worker_settings},
};
use test_support::{workspace_bin, Process};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_worker_killed_mid_burst_loses_no_order() {
    let database = create_database().await;
    let config = jobs_only(TestConfig::active(300).set("DATABASE_URL", &database));
    let app = spawn_app_with(TestConfig {
        vars: config.vars.clone(),
    })
    .await;
    let worker_bin = workspace_bin("order-worker");
    let mut worker = Process::spawn(&worker_bin, &config.vars);
    let progress = Arc::new(AtomicUsize::new(0));

    let firing = tokio::spawn(burst(
        app.address.clone(),
        users("wk", 400),
        32,
        progress.clone(),
    ));
    wait_for_progress(&progress, 150).await;
    worker.kill();
    let answers = firing.await.expect("burst");
    let _replacement = Process::spawn(&worker_bin, &config.vars);

    assert_eq!(answers.iter().filter(|a| a.status == 201).count(), 300);
    let rows = assert_invariants(
        &database,
        &config,
        &crate::helpers::redis_url(),
        &answers,
        300,
    )
    .await;
    assert_eq!(rows, 300);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_worker_restarted_at_once_under_the_same_name_keeps_working() {
    let database = create_database().await;
    let config = jobs_only(TestConfig::active(400).set("DATABASE_URL", &database)).set(
        "WORKER_NAME",
        format!("same-name-{}", uuid::Uuid::new_v4().simple()),
    );
    let app = spawn_app_with(TestConfig {
        vars: config.vars.clone(),
    })
    .await;
    let worker_bin = workspace_bin("order-worker");
    let mut first = Process::spawn(&worker_bin, &config.vars);
    let progress = Arc::new(AtomicUsize::new(0));

    let firing = tokio::spawn(burst(
        app.address.clone(),
        users("rs", 400),
        32,
        progress.clone(),
    ));
    wait_for_progress(&progress, 150).await;
    first.terminate();
    let exited = first.wait_exit(Duration::from_secs(20));
    let _second = Process::spawn(&worker_bin, &config.vars);
    let answers = firing.await.expect("burst");

    assert!(
        exited.is_some_and(|s| s.success()),
        "SIGTERM ends the worker cleanly: {exited:?}"
    );
    let rows = assert_invariants(
        &database,
        &config,
        &crate::helpers::redis_url(),
        &answers,
        400,
    )
    .await;
    assert_eq!(rows, 400);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_job_that_keeps_failing_lands_once_the_cause_is_gone() {
    let database = create_database().await;
    let config = jobs_only(TestConfig::active(5).set("DATABASE_URL", &database))
        .set("WORKER_MAX_RETRIES", 1);
    let worker = order_worker::spawn(worker_settings(&config));
    let app = spawn_app_with(TestConfig {
        vars: config.vars.clone(),
    })
    .await;
    wait_for_orders_within(&database, &config.sale_id(), 0, Duration::from_secs(1)).await;
    let rename = |sql: &'static str| {
        let database = database.clone();
        async move {
            use diesel_async::{AsyncConnection, RunQueryDsl};
            let mut conn = diesel_async::AsyncPgConnection::establish(&database)
                .await
                .expect("connect");
            diesel::sql_query(sql)
                .execute(&mut conn)
                .await
                .expect("rename");
        }
    };
    // Wait until the worker has created the table, then take it away.
    for _ in 0..100 {
        if crate::helpers::table_exists(&database, "orders").await {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    rename("ALTER TABLE orders RENAME TO orders_away").await;

    let answer: Value = app.purchase("persistent").await.json().await.expect("json");
    tokio::time::sleep(Duration::from_secs(3)).await;
    rename("ALTER TABLE orders_away RENAME TO orders").await;

    let rows =
        wait_for_orders_within(&database, &config.sale_id(), 1, Duration::from_secs(30)).await;
    worker.stop().await.expect("worker stops");
    assert_eq!(rows.len(), 1, "the order lands once the table is back");
    assert_eq!(rows[0].id, answer["orderId"].as_str().expect("orderId"));
    assert_persisted_by_jobs(1);
}
