//! Fault injection: each test breaks one part mid-burst and then checks the
//! invariants: the persisted order ids are exactly the ones answered 201,
//! each row belongs to the user that order was answered to, and remaining
//! stock + persisted orders = total.
//!
//! Unless a test's subject is the reconciler, the reconciler leaves every
//! ledger entry to its job for longer than the test runs ([`jobs_only`]):
//! a broken push -> apalis -> worker path must fail these tests, not be
//! covered up by the reconciler.

use std::{
    collections::{BTreeMap, BTreeSet, HashMap},
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc,
    },
    time::{Duration, Instant},
};

use futures::StreamExt;
use serde_json::{json, Value};

use crate::{
    helpers::{create_database, spawn_app_with, wait_for_orders_within, OrderRow, TestConfig},
    persistence::{
        assert_persisted_by_jobs, counter, persisted_by, worker_settings, JOBS_ONLY_GRACE_MS,
    },
    support::spawn_api_process,
};
use test_support::{workspace_bin, PrivatePostgres, PrivateRedis, Process};

/// One answered purchase.
#[derive(Debug, Clone)]
struct Answer {
    user: String,
    status: u16,
    order_id: Option<String>,
    took: Duration,
    /// When the answer arrived.
    at: Instant,
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
                let at = Instant::now();
                let took = at - started;
                let (status, order_id) = match response {
                    Ok(response) => {
                        let status = response.status().as_u16();
                        let body: Value = response.json().await.unwrap_or(Value::Null);
                        (status, body["orderId"].as_str().map(str::to_owned))
                    }
                    Err(_) => (0, None),
                };
                Answer {
                    user,
                    status,
                    order_id,
                    took,
                    at,
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
    let confirmed = confirmed_orders(answers.iter());
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
    assert_rows_are(&rows, &confirmed);
    let stock = redis_cli_get(redis_url, &domain::SaleKeys::new(&config.sale_id()).stock()).await;
    assert_eq!(
        stock + rows.len() as u64,
        total,
        "remaining stock + persisted orders = total"
    );
    eprintln!(
        "[fault report] answered 201: {}, rows found: {}, remaining stock: {stock}, all rows in {:?} after the faulted burst",
        confirmed.len(),
        rows.len(),
        settling.elapsed()
    );
    rows.len()
}

/// Order id -> user of every answer 201.
fn confirmed_orders<'a>(answers: impl Iterator<Item = &'a Answer>) -> BTreeMap<String, String> {
    answers
        .filter(|a| a.status == 201)
        .filter_map(|a| Some((a.order_id.clone()?, a.user.clone())))
        .collect()
}

/// Asserts the rows are exactly the `expected` orders (order id -> user),
/// each with the user it was answered to.
fn assert_rows_are(rows: &[OrderRow], expected: &BTreeMap<String, String>) {
    let persisted: BTreeSet<&str> = rows.iter().map(|r| r.id.as_str()).collect();
    let wanted: BTreeSet<&str> = expected.keys().map(String::as_str).collect();
    let missing: Vec<(&str, &str)> = wanted
        .difference(&persisted)
        .map(|id| (*id, expected[*id].as_str()))
        .collect();
    let extra: Vec<&&str> = persisted.difference(&wanted).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "persisted orders = orders answered; {} of {} missing (order, user): {missing:?}; not answered: {extra:?}",
        missing.len(),
        wanted.len()
    );
    for row in rows {
        assert_eq!(
            Some(&row.user_id),
            expected.get(&row.id),
            "order {} belongs to the user it was answered to",
            row.id
        );
    }
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

/// Test settings for tests whose subject is not the reconciler: it checks
/// only this test's sale and leaves every ledger entry to its job for
/// longer than the test runs, so only jobs can persist the orders.
fn jobs_only(config: TestConfig) -> TestConfig {
    let sale = config.sale_id();
    config
        .set("RECONCILE_INTERVAL_MS", 300)
        .set("RECONCILE_GRACE_MS", JOBS_ONLY_GRACE_MS)
        .set("RECONCILE_SALES", sale)
        .set("WORKER_CONCURRENCY", 8)
        .set("DATABASE_POOL_MIN", 0)
}

/// Test settings for tests of the reconciler: passes every 300 ms persist
/// the test's ledger entries older than 1 s.
fn fast_reconcile(config: TestConfig) -> TestConfig {
    jobs_only(config).set("RECONCILE_GRACE_MS", 1000)
}

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

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn redis_restarted_mid_burst_answers_503_fast_then_heals_by_itself() {
    let mut redis = PrivateRedis::start();
    let database = create_database().await;
    let config = jobs_only(
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
            user: format!("rd-probe-{i}"),
            status,
            order_id: body["orderId"].as_str().map(str::to_owned),
            took: Duration::ZERO,
            at: Instant::now(),
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
    let drained = drain_jobs_then_reconcile(&database, &config, worker).await;
    let rows = assert_invariants(&database, &config, &redis.url(), &answers, 200).await;
    drained.reconciling.stop().await.expect("worker stops");
    assert_eq!(rows, 200);
    // The api's first pushes after the restart fail on the queue connection
    // the restart broke (it reconnects once a call failed): those orders, and
    // only those, are the reconciler's; every other one came by its job.
    eprintln!(
        "[fault report] after the restart {} order pushes failed; rows by jobs {}, by the reconciler {}",
        drained.push_failures,
        drained.jobs,
        persisted_by("reconciler")
    );
    assert!(
        drained.jobs >= drained.pushed as u64,
        "each pushed order by its job"
    );
    assert!(
        persisted_by("reconciler") <= drained.push_failures as u64,
        "the reconciler persisted only orders whose push failed"
    );
    assert_eq!(drained.jobs + persisted_by("reconciler"), 200);
    assert!(
        drained.push_failures <= 17,
        "only pushes in flight as the api found its queue connection broken may fail (16 + the probe)"
    );
}

/// How a test's orders reached PostgreSQL when not every one had a job.
struct Drained {
    /// Orders whose push the api saw succeed, and fail.
    pushed: usize,
    push_failures: usize,
    /// The rows that were there once the pushed orders' jobs had landed,
    /// and how many of them the jobs wrote.
    by_jobs: Vec<OrderRow>,
    jobs: u64,
    /// The worker that now also reconciles, at once.
    reconciling: order_worker::WorkerHandle,
}

/// Waits until the jobs of every order the api pushed have landed, stops
/// the jobs-only `worker` and starts one whose reconciler persists at once
/// what no job carried (a failed push, a purchase that stood behind a 503).
async fn drain_jobs_then_reconcile(
    database: &str,
    config: &TestConfig,
    worker: order_worker::WorkerHandle,
) -> Drained {
    let pushed = counter("flash_sale_order_jobs_pushed_total", &[]) as usize;
    wait_for_orders_within(database, &config.sale_id(), pushed, Duration::from_secs(60)).await;
    worker.stop().await.expect("worker stops");
    let by_jobs = wait_for_orders_within(database, &config.sale_id(), 0, Duration::ZERO).await;
    let reconciling = order_worker::spawn(worker_settings(
        &TestConfig {
            vars: config.vars.clone(),
        }
        .set("RECONCILE_GRACE_MS", 0),
    ));
    assert!(
        by_jobs.len() >= pushed,
        "{} rows for {pushed} pushed orders",
        by_jobs.len()
    );
    Drained {
        pushed,
        push_failures: counter("flash_sale_order_job_push_failures_total", &[]) as usize,
        jobs: persisted_by("job"),
        by_jobs,
        reconciling,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn redis_flushed_then_api_restarted_sells_nothing_twice() {
    let redis = PrivateRedis::start();
    let database = create_database().await;
    let config = jobs_only(
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
    assert_persisted_by_jobs(150);
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
    assert_eq!(persisted_by("reconciler"), 1, "the reconciler persisted it");
    assert_eq!(persisted_by("job"), 0, "no job was pushed");
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

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_redis_stall_longer_than_the_timeout_leaves_no_dead_or_hung_worker() {
    let redis = Arc::new(PrivateRedis::start());
    let database = create_database().await;
    // No reconciler: only a live job loop can persist the orders after the stall.
    let config = jobs_only(
        TestConfig::active(50)
            .set("DATABASE_URL", &database)
            .set("REDIS_URL", redis.url()),
    );
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
    assert_persisted_by_jobs(40);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_purchase_answered_503_while_redis_froze_mid_burst_either_stood_or_lets_the_retry_buy() {
    let redis = Arc::new(PrivateRedis::start());
    let database = create_database().await;
    let config = jobs_only(
        TestConfig::active(1000)
            .set("DATABASE_URL", &database)
            .set("REDIS_URL", redis.url())
            .set("REDIS_COMMAND_TIMEOUT_MS", 1000),
    );
    let worker = order_worker::spawn(worker_settings(&config));
    let app = spawn_app_with(TestConfig {
        vars: config.vars.clone(),
    })
    .await;

    let frozen = freeze_mid_burst(&app, &redis, Duration::from_millis(2500)).await;
    let retries = retry_each_503(&app, &frozen.answers).await;
    let ledger = ledger(&redis.url(), &config).await;
    // A purchase that stood behind a 503 has no job, only its ledger entry:
    // once the jobs have landed, the reconciler may persist it.
    let draining = Instant::now();
    let drained = drain_jobs_then_reconcile(&database, &config, worker).await;
    let draining = draining.elapsed();

    let unavailable = frozen.answers.iter().filter(|a| a.status == 503).count();
    assert!(
        frozen.before > 0 && frozen.after > 0,
        "the freeze landed mid-burst: {} answers before it, {} after the thaw",
        frozen.before,
        frozen.after
    );
    assert!(unavailable > 0, "the freeze cost some purchases a 503");
    assert_statuses(&frozen.answers, &[201, 503], "a purchase (stock is plenty)");
    assert_statuses(&retries, &[201, 409], "a retry");
    let answered = confirmed_orders(frozen.answers.iter().chain(&retries));
    let stood = stood_behind_503(&retries, &ledger);
    assert_eq!(
        drained.jobs,
        drained.by_jobs.len() as u64,
        "jobs wrote every row so far"
    );
    assert!(
        drained
            .by_jobs
            .iter()
            .all(|row| answered.get(&row.id) == Some(&row.user_id)),
        "jobs persist only orders answered 201, each to its user"
    );
    let expected: BTreeMap<String, String> =
        answered.clone().into_iter().chain(stood.clone()).collect();
    let rows = wait_for_orders_within(
        &database,
        &config.sale_id(),
        expected.len(),
        Duration::from_secs(30),
    )
    .await;
    drained.reconciling.stop().await.expect("worker stops");
    assert_rows_are(&rows, &expected);
    let stock = redis_cli_get(
        &redis.url(),
        &domain::SaleKeys::new(&config.sale_id()).stock(),
    )
    .await;
    assert_eq!(
        stock + rows.len() as u64,
        1000,
        "remaining stock + rows = total"
    );
    let reconciled = persisted_by("reconciler");
    assert!(
        reconciled >= stood.len() as u64,
        "the reconciler persisted the purchases that stood behind a 503"
    );
    eprintln!(
        "[fault report] redis frozen 2.5 s mid-burst: {} answers before, {} after the thaw; \
         {unavailable} answered 503: {} stood (409 with their order on retry), {} lost (201 on retry); \
         rows {} = {} answered 201 + {} stood; {} orders pushed ({} pushes failed), rows by jobs {} ({draining:?} after the retries), by the reconciler {reconciled}",
        frozen.before,
        frozen.after,
        stood.len(),
        unavailable - stood.len(),
        rows.len(),
        answered.len(),
        stood.len(),
        drained.pushed,
        drained.push_failures,
        drained.jobs,
    );
}

/// A burst with Redis frozen in its middle.
struct FrozenBurst {
    answers: Vec<Answer>,
    /// Answers that arrived before the freeze, and after the thaw.
    before: usize,
    after: usize,
}

/// Fires 400 purchases (different users, 32 at a time) and freezes Redis
/// for `pause` once 100 are answered, while the next ones are in flight.
async fn freeze_mid_burst(
    app: &crate::helpers::TestApp,
    redis: &Arc<PrivateRedis>,
    pause: Duration,
) -> FrozenBurst {
    let progress = Arc::new(AtomicUsize::new(0));
    let firing = tokio::spawn(burst(
        app.address.clone(),
        users("fz", 400),
        32,
        progress.clone(),
    ));
    wait_for_progress(&progress, 100).await;
    let frozen = redis.clone();
    let froze_at = Instant::now();
    tokio::task::spawn_blocking(move || frozen.stall(pause))
        .await
        .expect("stall");
    let thawed_at = Instant::now();
    let answers = firing.await.expect("burst");
    FrozenBurst {
        before: answers.iter().filter(|a| a.at < froze_at).count(),
        after: answers.iter().filter(|a| a.at > thawed_at).count(),
        answers,
    }
}

fn assert_statuses(answers: &[Answer], allowed: &[u16], what: &str) {
    let odd: Vec<&Answer> = answers
        .iter()
        .filter(|a| !allowed.contains(&a.status))
        .collect();
    assert!(odd.is_empty(), "{what} is one of {allowed:?}: {odd:?}");
}

/// The orders (order id -> user) of the retries answered 409: purchases
/// that stood although they were answered 503. Each retry, 409 or a fresh
/// 201, must answer the order the ledger holds for its user.
fn stood_behind_503(
    retries: &[Answer],
    ledger: &HashMap<String, String>,
) -> BTreeMap<String, String> {
    let mut stood = BTreeMap::new();
    for retry in retries {
        let order = retry
            .order_id
            .clone()
            .expect("a 201 or 409 names its order");
        assert_eq!(
            ledger.get(&retry.user),
            Some(&order),
            "{}'s retry answers the order the ledger holds",
            retry.user
        );
        if retry.status == 409 {
            stood.insert(order, retry.user.clone());
        }
    }
    stood
}

/// Retries once the purchase of every buyer answered 503; a retry answered
/// 503 again (Redis still catching up) is tried again a little later.
async fn retry_each_503(app: &crate::helpers::TestApp, answers: &[Answer]) -> Vec<Answer> {
    let mut retries = Vec::new();
    for user in answers.iter().filter(|a| a.status == 503).map(|a| &a.user) {
        let mut tries = 0;
        let retry = loop {
            let started = Instant::now();
            let response = app.purchase(user).await;
            let status = response.status().as_u16();
            let body: Value = response.json().await.unwrap_or(Value::Null);
            tries += 1;
            if status != 503 || tries == 10 {
                break Answer {
                    user: user.clone(),
                    status,
                    order_id: body["orderId"].as_str().map(str::to_owned),
                    took: started.elapsed(),
                    at: Instant::now(),
                };
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        };
        retries.push(retry);
    }
    retries
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

/// The sale's ledger: user -> order id.
async fn ledger(redis_url: &str, config: &TestConfig) -> HashMap<String, String> {
    use fred::prelude::{ClientLike, HashesInterface};
    let client = fred::prelude::Client::new(
        fred::prelude::Config::from_url(redis_url).expect("url"),
        None,
        None,
        None,
    );
    client.init().await.expect("connect");
    let ledger: HashMap<String, String> = client
        .hgetall(domain::SaleKeys::new(&config.sale_id()).buyers())
        .await
        .expect("HGETALL");
    ledger
        .into_iter()
        .filter_map(|(user, entry)| Some((user, entry.split('|').next()?.to_owned())))
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
        let replica_now = replica_clock(&client, base).await;

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

/// What `base`'s own clock says: the `timestamp` of an error body, which
/// the api writes on its local clock.
async fn replica_clock(client: &reqwest::Client, base: &str) -> chrono::DateTime<chrono::Utc> {
    let missing = client
        .get(format!("{base}/no-such-route"))
        .send()
        .await
        .expect("404");
    assert_eq!(missing.status(), 404);
    let body: Value = missing.json().await.expect("json");
    let stamp = body["timestamp"].as_str().expect("timestamp");
    chrono::DateTime::parse_from_rfc3339(stamp)
        .expect("ISO-8601 timestamp")
        .with_timezone(&chrono::Utc)
}
