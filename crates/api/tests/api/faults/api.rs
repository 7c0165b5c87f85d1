//! The api dying after the script, stopped with SIGTERM, or with a clock hours off.

use std::{
    collections::BTreeSet,
    sync::{atomic::AtomicUsize, Arc},
    time::Duration,
};

use serde_json::{json, Value};

use super::*;
use crate::{
    helpers::{create_database, sample, spawn_app_with, wait_for_orders_within, TestConfig},
    persistence::{assert_persisted_by_jobs, persisted_by, worker_settings},
    support::{scrape_metrics, spawn_api_process},
};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_api_dying_between_script_and_push_loses_no_order() {
    let database = create_database().await;
    let config = fast_reconcile(TestConfig::active(10).set("DATABASE_URL", &database));
    let worker = order_worker::spawn(worker_settings(&config));
    let (mut crashing, base) = spawn_api_process(
        &config,
        &[("FLASH_SALE_FAILPOINT", "after-purchase-script")],
    )
    .await;
    let client = reqwest::Client::new();

    let died = client
        .post(format!("{base}/api/purchases"))
        .json(&json!({"userId": "unlucky"}))
        .send()
        .await;
    crashing.kill();
    let app = spawn_app_with(TestConfig {
        vars: config.vars.clone(),
    })
    .await;
    let status: Value = app
        .purchase_status("unlucky")
        .await
        .json()
        .await
        .expect("json");

    assert!(died.is_err(), "the api died before answering");
    assert_eq!(status["purchased"], true, "the purchase is in the ledger");
    let order_id = status["orderId"].as_str().expect("orderId").to_owned();
    let rows =
        wait_for_orders_within(&database, &config.sale_id(), 1, Duration::from_secs(30)).await;
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].id, order_id);
    let retry = app.purchase("unlucky").await;
    assert_eq!(retry.status(), 409);
    let body: Value = retry.json().await.expect("json");
    assert_eq!(body["orderId"], order_id);
    assert_eq!(app.sale_status().await["stockRemaining"], 9);
    worker.stop().await.expect("worker stops");
    assert_eq!(persisted_by("reconciler"), 1, "the reconciler persisted it");
    assert_eq!(persisted_by("job"), 0, "no job was pushed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigterm_lets_the_api_answer_every_purchase_it_took() {
    let database = create_database().await;
    let config = jobs_only(TestConfig::active(1000).set("DATABASE_URL", &database));
    let (mut api, base) = spawn_api_process(&config, &[]).await;
    let progress = Arc::new(AtomicUsize::new(0));

    let firing = tokio::spawn(burst(base, users("gs", 600), 32, progress.clone()));
    wait_for_progress(&progress, 200).await;
    api.terminate();
    let answers = firing.await.expect("burst");
    let exited = api.wait_exit(Duration::from_secs(35));

    let answered: BTreeSet<String> = answers.iter().filter_map(|a| a.order_id.clone()).collect();
    let ledger: BTreeSet<String> = ledger(&crate::helpers::redis_url(), &config)
        .await
        .into_values()
        .collect();
    assert!(exited.is_some_and(|s| s.success()), "{exited:?}");
    assert!(answered.len() >= 200, "{}", answered.len());
    assert_eq!(ledger, answered, "every purchase the api took was answered");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn replicas_whose_clocks_disagree_by_hours_agree_the_sale_is_open() {
    // The sale opened a second ago and runs for an hour; one replica's clock
    // is two hours ahead (it would say "ended"), the other's two hours
    // behind (it would say "not started").
    let config = TestConfig::active(10)
        .set(
            "SALE_START_TIME",
            (chrono::Utc::now() - chrono::Duration::seconds(1)).to_rfc3339(),
        )
        .set(
            "SALE_END_TIME",
            (chrono::Utc::now() + chrono::Duration::hours(1)).to_rfc3339(),
        );
    let mut replicas = Vec::new();
    for (i, skew) in [7_200_000_i64, -7_200_000].into_iter().enumerate() {
        let (process, base) =
            spawn_api_process(&config, &[("FLASH_SALE_CLOCK_SKEW_MS", &skew.to_string())]).await;
        replicas.push((i, skew, base, process));
    }

    let client = reqwest::Client::new();
    for (i, skew, base, _) in &replicas {
        let status: Value = client
            .get(format!("{base}/api/sale/status"))
            .send()
            .await
            .expect("status")
            .json()
            .await
            .expect("json");
        let bought = client
            .post(format!("{base}/api/purchases"))
            .json(&json!({"userId": format!("skewed-{i}")}))
            .send()
            .await
            .expect("purchase");
        let replica_now = crate::support::replica_clock(&client, base).await;

        // The skew is in effect: the replica's own clock is hours off.
        let off_by = replica_now - chrono::Utc::now();
        assert!(
            (off_by - chrono::Duration::milliseconds(*skew))
                .num_seconds()
                .abs()
                < 60,
            "replica {i} runs {off_by} off real time, {skew} ms wanted"
        );
        assert_eq!(status["status"], "active", "replica {i}");
        assert_eq!(bought.status(), 201, "replica {i}");
    }
}

/// A buyer who gives up (closes the tab, loses the network) after the
/// purchase script ran but before the api queued the order: the purchase
/// stood, so its job must still be pushed, not left to the reconciler.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_buyer_who_hangs_up_after_the_script_still_gets_a_queued_order() {
    let database = create_database().await;
    let config = jobs_only(TestConfig::active(5).set("DATABASE_URL", &database));
    let worker = order_worker::spawn(worker_settings(&config));
    let (_api, base) = spawn_api_process(
        &config,
        &[("FLASH_SALE_FAILPOINT", "pause:after-purchase-script")],
    )
    .await;

    let hung_up = reqwest::Client::new()
        .post(format!("{base}/api/purchases"))
        .json(&json!({"userId": "impatient"}))
        .timeout(Duration::from_millis(200))
        .send()
        .await;
    let rows =
        wait_for_orders_within(&database, &config.sale_id(), 1, Duration::from_secs(10)).await;
    worker.stop().await.expect("worker stops");

    assert!(hung_up.is_err(), "the client gave up before the answer");
    assert_eq!(
        rows.len(),
        1,
        "the order was queued and persisted by its job"
    );
    assert_eq!(rows[0].user_id, "impatient");
    assert_persisted_by_jobs(1);
}

/// A buyer who hangs up while the script decides their purchase: what
/// Redis answered still reaches this replica's view (here its stock gauge;
/// likewise the stock its open pages see and the sold-out freeze). The
/// thread's batcher brings it there, not the buyer's handler, which the
/// closed connection dropped before the answer came.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_buyer_who_hangs_up_still_moves_the_replicas_view_of_the_stock() {
    let config = TestConfig::active(5);
    let (_api, base) = spawn_api_process(
        &config,
        &[("FLASH_SALE_FAILPOINT", "pause:after-purchase-script")],
    )
    .await;
    let client = reqwest::Client::new();
    let stock = || async {
        sample(
            &scrape_metrics(&client, &base).await,
            "flash_sale_stock_remaining",
            &[("sale", config.sale_id().as_str())],
        )
    };
    let before = stock().await;

    let hung_up = client
        .post(format!("{base}/api/purchases"))
        .json(&json!({"userId": "gone-before-the-answer"}))
        .timeout(Duration::from_millis(200))
        .send()
        .await;
    let mut after = stock().await;
    for _ in 0..60 {
        if after == Some(4.0) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        after = stock().await;
    }

    assert!(hung_up.is_err(), "the client gave up before the answer");
    assert_ne!(before, Some(4.0), "the gauge moved only with the purchase");
    assert_eq!(after, Some(4.0), "the replica saw the unit go");
}

/// A bug that panics while a batch's answers are brought to the replica's
/// view (`panic:seen`: every batch) must not stop the thread's batcher:
/// its buyers, and the next ones on the same connection (so the same
/// thread), still get Redis's answers instead of 503s.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panic_showing_a_batchs_answers_stops_nothing() {
    let config = TestConfig::active(5);
    let (_api, base) = spawn_api_process(&config, &[("FLASH_SALE_FAILPOINT", "panic:seen")]).await;
    // One connection: every purchase goes to the same worker thread.
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(1)
        .build()
        .expect("client");

    let mut statuses = Vec::new();
    for user in ["first-after-bug", "second-after-bug", "first-after-bug"] {
        let response = client
            .post(format!("{base}/api/purchases"))
            .json(&json!({"userId": user}))
            .send()
            .await
            .expect("purchase");
        statuses.push(response.status().as_u16());
    }

    assert_eq!(statuses, [201, 201, 409]);
}

/// SIGTERM just after a 201 whose push has not gone out yet (the push
/// failpoint holds it for 500 ms): the stop pushes it before the workers and
/// their pushers stop, so the order arrives by its job, not 10 s later by
/// the reconciler (the graceful-stop promise of a 201 that does not wait for
/// its push).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_graceful_stop_pushes_the_orders_it_answered_first() {
    let database = create_database().await;
    let config = jobs_only(TestConfig::active(5).set("DATABASE_URL", &database));
    let worker = order_worker::spawn(worker_settings(&config));
    let (mut api, base) =
        spawn_api_process(&config, &[("FLASH_SALE_FAILPOINT", "pause:before-push")]).await;

    let bought = reqwest::Client::new()
        .post(format!("{base}/api/purchases"))
        .json(&json!({"userId": "last-before-stop"}))
        .send()
        .await
        .expect("purchase");
    api.terminate();
    let exited = api.wait_exit(Duration::from_secs(35));
    let rows =
        wait_for_orders_within(&database, &config.sale_id(), 1, Duration::from_secs(5)).await;
    worker.stop().await.expect("worker stops");

    assert_eq!(bought.status(), 201);
    assert!(exited.is_some_and(|s| s.success()), "{exited:?}");
    assert_eq!(
        rows.len(),
        1,
        "the answered order was pushed before the stop"
    );
    assert_eq!(rows[0].user_id, "last-before-stop");
    assert_persisted_by_jobs(1);
}
