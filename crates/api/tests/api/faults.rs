//! Fault injection: each test breaks one part mid-burst and then checks the
//! invariants: the persisted order ids are exactly the ones answered 201,
//! no user has two orders, and remaining stock + persisted orders = total.

use std::{
    collections::BTreeSet,
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc,
    },
    time::{Duration, Instant},
};

use futures::StreamExt;
use serde_json::{json, Value};

use crate::{
    helpers::{create_database, spawn_app_with, wait_for_orders_within, TestConfig},
    persistence::worker_settings,
    support::spawn_api_process,
};
use test_support::{workspace_bin, PrivatePostgres, PrivateRedis, Process};

/// One answered purchase.
#[derive(Debug, Clone)]
struct Answer {
    status: u16,
    order_id: Option<String>,
    took: Duration,
}

/// Fires one purchase per user, `concurrency` at a time, counting answers in `progress`.
async fn burst(
    base: String,
    users: Vec<String>,
    concurrency: usize,
    progress: Arc<AtomicUsize>,
) -> Vec<Answer> {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("client");
    futures::stream::iter(users)
        .map(|user| {
            let client = client.clone();
            let progress = progress.clone();
            let url = format!("{base}/api/purchases");
            async move {
                let started = Instant::now();
                let response = client
                    .post(url)
                    .json(&json!({ "userId": user }))
                    .send()
                    .await;
                progress.fetch_add(1, Ordering::SeqCst);
                let took = started.elapsed();
                match response {
                    Ok(response) => {
                        let status = response.status().as_u16();
                        let body: Value = response.json().await.unwrap_or(Value::Null);
                        let order_id = body["orderId"].as_str().map(str::to_owned);
                        Answer {
                            status,
                            order_id,
                            took,
                        }
                    }
                    Err(_) => Answer {
                        status: 0,
                        order_id: None,
                        took,
                    },
                }
            }
        })
        .buffer_unordered(concurrency)
        .collect()
        .await
}

fn users(prefix: &str, n: usize) -> Vec<String> {
    (0..n).map(|i| format!("{prefix}-{i:04}")).collect()
}

async fn wait_for_progress(progress: &AtomicUsize, at_least: usize) {
    while progress.load(Ordering::SeqCst) < at_least {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// The invariants every fault must leave intact; returns the rows found.
async fn assert_invariants(
    database: &str,
    config: &TestConfig,
    redis_url: &str,
    answers: &[Answer],
    total: u64,
) -> usize {
    let confirmed: BTreeSet<String> = answers
        .iter()
        .filter(|a| a.status == 201)
        .filter_map(|a| a.order_id.clone())
        .collect();
    assert_eq!(
        answers
            .iter()
            .filter(|a| a.status >= 500 && a.status != 503)
            .count(),
        0,
        "no 5xx but 503"
    );
    let settling = Instant::now();
    let rows = wait_for_orders_within(
        database,
        &config.sale_id(),
        confirmed.len(),
        Duration::from_secs(90),
    )
    .await;
    let persisted: BTreeSet<String> = rows.iter().map(|r| r.id.clone()).collect();
    let buyers: BTreeSet<&str> = rows.iter().map(|r| r.user_id.as_str()).collect();
    assert_eq!(
        persisted, confirmed,
        "persisted orders = orders answered 201"
    );
    assert_eq!(buyers.len(), rows.len(), "no user has two orders");
    let stock = redis_cli_get(redis_url, &domain::SaleKeys::new(&config.sale_id()).stock()).await;
    assert_eq!(
        stock + rows.len() as u64,
        total,
        "remaining stock + persisted orders = total"
    );
    eprintln!(
        "[fault report] answered 201: {}, rows found: {}, duplicate users: {}, remaining stock: {stock}, all rows in {:?} after the faulted burst",
        confirmed.len(),
        rows.len(),
        rows.len() - buyers.len(),
        settling.elapsed()
    );
    rows.len()
}

async fn redis_cli_get(url: &str, key: &str) -> u64 {
    use fred::prelude::{ClientLike, KeysInterface};
    let client = fred::prelude::Client::new(
        fred::prelude::Config::from_url(url).expect("url"),
        None,
        None,
        None,
    );
    client.init().await.expect("connect");
    client
        .get::<Option<u64>, _>(key)
        .await
        .expect("GET")
        .unwrap_or(0)
}

/// Test settings: fast reconciler passes for the test's own sale only.
fn fast_reconcile(config: TestConfig) -> TestConfig {
    let sale = config.sale_id();
    config
        .set("RECONCILE_INTERVAL_MS", 300)
        .set("RECONCILE_GRACE_MS", 1000)
        .set("RECONCILE_SALES", sale)
        .set("WORKER_CONCURRENCY", 8)
        .set("DATABASE_POOL_MIN", 0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_worker_killed_mid_burst_loses_no_order() {
    let database = create_database().await;
    let config = fast_reconcile(TestConfig::active(300).set("DATABASE_URL", &database));
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
async fn postgres_stopped_mid_burst_delays_orders_but_loses_none() {
    let postgres = PrivatePostgres::start();
    let database = postgres.url();
    let config = fast_reconcile(TestConfig::active(200).set("DATABASE_URL", &database));
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
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn redis_restarted_mid_burst_answers_503_fast_then_heals_by_itself() {
    let mut redis = PrivateRedis::start();
    let database = create_database().await;
    let config = fast_reconcile(
        TestConfig::active(200)
            .set("DATABASE_URL", &database)
            .set("REDIS_URL", redis.url()),
    );
    let worker = order_worker::spawn(worker_settings(&config));
    let app = spawn_app_with(TestConfig {
        vars: config.vars.clone(),
    })
    .await;
    let progress = Arc::new(AtomicUsize::new(0));

    let mut answers = burst(
        app.address.clone(),
        users("rd-a", 100),
        16,
        progress.clone(),
    )
    .await;
    redis.stop();
    let health = app.get("/api/health").await.status();
    let during = burst(app.address.clone(), users("rd-b", 50), 16, progress.clone()).await;
    redis.start_again();
    let mut healed_after = None;
    let restarted = Instant::now();
    for i in 0.. {
        let probe = app.purchase(&format!("rd-probe-{i}")).await;
        let status = probe.status().as_u16();
        let body: Value = probe.json().await.unwrap_or(Value::Null);
        answers.push(Answer {
            status,
            order_id: body["orderId"].as_str().map(str::to_owned),
            took: Duration::ZERO,
        });
        if status == 201 {
            healed_after = Some(restarted.elapsed());
            break;
        }
        assert!(
            restarted.elapsed() < Duration::from_secs(15),
            "no recovery within 15 s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    answers.extend(burst(app.address.clone(), users("rd-c", 150), 16, progress).await);

    assert_eq!(health, 503, "health is 503 while Redis is down");
    assert!(
        during.iter().all(|a| a.status == 503),
        "{:?}",
        during.iter().map(|a| a.status).collect::<Vec<_>>()
    );
    let slowest = during.iter().map(|a| a.took).max().unwrap_or_default();
    assert!(
        slowest < Duration::from_millis(2500),
        "503s must be fast, slowest {slowest:?}"
    );
    eprintln!("[fault report] redis down: {} purchases got 503, slowest {slowest:?}; first 201 {healed_after:?} after restart", during.len());
    assert!(healed_after.is_some());
    answers.extend(during);
    let rows = assert_invariants(&database, &config, &redis.url(), &answers, 200).await;
    worker.stop().await.expect("worker stops");
    assert_eq!(rows, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn redis_flushed_then_api_restarted_sells_nothing_twice() {
    let redis = PrivateRedis::start();
    let database = create_database().await;
    let config = fast_reconcile(
        TestConfig::active(150)
            .set("DATABASE_URL", &database)
            .set("REDIS_URL", redis.url()),
    );
    let worker = order_worker::spawn(worker_settings(&config));
    let first = spawn_app_with(TestConfig {
        vars: config.vars.clone(),
    })
    .await;
    let progress = Arc::new(AtomicUsize::new(0));
    let mut answers = burst(
        first.address.clone(),
        users("fl", 100),
        16,
        progress.clone(),
    )
    .await;
    wait_for_orders_within(&database, &config.sale_id(), 100, Duration::from_secs(30)).await;

    redis.cli(&["flushall"]);
    first.stop().await;
    let restarted = spawn_app_with(TestConfig {
        vars: config.vars.clone(),
    })
    .await;
    let again = burst(
        restarted.address.clone(),
        users("fl", 100),
        16,
        progress.clone(),
    )
    .await;
    answers.extend(
        burst(
            restarted.address.clone(),
            users("fl-new", 100),
            16,
            progress,
        )
        .await,
    );

    assert!(
        again.iter().all(|a| a.status == 409),
        "earlier buyers cannot buy again"
    );
    assert_eq!(answers.iter().filter(|a| a.status == 201).count(), 150);
    let rows = assert_invariants(&database, &config, &redis.url(), &answers, 150).await;
    worker.stop().await.expect("worker stops");
    assert_eq!(rows, 150);
}

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
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_worker_restarted_at_once_under_the_same_name_keeps_working() {
    let database = create_database().await;
    let config = fast_reconcile(TestConfig::active(400).set("DATABASE_URL", &database)).set(
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
    let config = fast_reconcile(TestConfig::active(5).set("DATABASE_URL", &database))
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
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_redis_stall_longer_than_the_timeout_leaves_no_dead_or_hung_worker() {
    let redis = Arc::new(PrivateRedis::start());
    let database = create_database().await;
    // No reconciler: only a live job loop can persist the orders after the stall.
    let config = fast_reconcile(
        TestConfig::active(50)
            .set("DATABASE_URL", &database)
            .set("REDIS_URL", redis.url()),
    )
    .set("RECONCILE_SALES", "none");
    let worker = order_worker::spawn(worker_settings(&config));
    let app = spawn_app_with(TestConfig {
        vars: config.vars.clone(),
    })
    .await;
    let progress = Arc::new(AtomicUsize::new(0));
    let mut answers = burst(app.address.clone(), users("st-a", 20), 8, progress.clone()).await;
    wait_for_orders_within(&database, &config.sale_id(), 20, Duration::from_secs(15)).await;

    // Frozen for 3 s: three times the 1 s client timeout.
    let frozen = redis.clone();
    tokio::task::spawn_blocking(move || frozen.stall(Duration::from_secs(3)))
        .await
        .expect("stall");
    answers.extend(burst(app.address.clone(), users("st-b", 20), 8, progress).await);

    let rows =
        wait_for_orders_within(&database, &config.sale_id(), 40, Duration::from_secs(30)).await;
    worker
        .stop()
        .await
        .expect("the worker is alive and stops cleanly");
    assert_eq!(answers.iter().filter(|a| a.status == 201).count(), 40);
    assert_eq!(rows.len(), 40, "orders after the stall are persisted");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigterm_lets_the_api_answer_every_purchase_it_took() {
    let database = create_database().await;
    let config = fast_reconcile(TestConfig::active(1000).set("DATABASE_URL", &database));
    let (mut api, base) = spawn_api_process(&config, &[]).await;
    let progress = Arc::new(AtomicUsize::new(0));

    let firing = tokio::spawn(burst(base, users("gs", 600), 32, progress.clone()));
    wait_for_progress(&progress, 200).await;
    api.terminate();
    let answers = firing.await.expect("burst");
    let exited = api.wait_exit(Duration::from_secs(35));

    let answered: BTreeSet<String> = answers.iter().filter_map(|a| a.order_id.clone()).collect();
    let ledger = ledger_order_ids(&crate::helpers::redis_url(), &config).await;
    assert!(exited.is_some_and(|s| s.success()), "{exited:?}");
    assert!(answered.len() >= 200, "{}", answered.len());
    assert_eq!(ledger, answered, "every purchase the api took was answered");
}

async fn ledger_order_ids(redis_url: &str, config: &TestConfig) -> BTreeSet<String> {
    use fred::prelude::{ClientLike, HashesInterface};
    let client = fred::prelude::Client::new(
        fred::prelude::Config::from_url(redis_url).expect("url"),
        None,
        None,
        None,
    );
    client.init().await.expect("connect");
    let ledger: std::collections::HashMap<String, String> = client
        .hgetall(domain::SaleKeys::new(&config.sale_id()).buyers())
        .await
        .expect("HGETALL");
    ledger
        .values()
        .filter_map(|v| v.split('|').next().map(str::to_owned))
        .collect()
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
    for (i, skew) in ["7200000", "-7200000"].into_iter().enumerate() {
        let (process, base) =
            spawn_api_process(&config, &[("FLASH_SALE_CLOCK_SKEW_MS", skew)]).await;
        replicas.push((i, base, process));
    }

    let client = reqwest::Client::new();
    for (i, base, _) in &replicas {
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
        assert_eq!(status["status"], "active", "replica {i}");
        assert_eq!(bought.status(), 201, "replica {i}");
    }
}
