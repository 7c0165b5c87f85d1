//! Fault injection: each test breaks one part mid-burst and then checks the
//! invariants: the persisted order ids are exactly the ones answered 201,
//! each row belongs to the user that order was answered to, and remaining
//! stock + persisted orders = total.
//!
//! Unless a test's subject is the reconciler, the reconciler leaves every
//! ledger entry to its job for longer than the test runs ([`jobs_only`]):
//! a broken push -> apalis -> worker path must fail these tests, not be
//! covered up by the reconciler.
//!
//! One file per part that breaks: the worker, PostgreSQL, Redis (and Redis
//! frozen mid-burst), the api.

mod api;
mod frozen;
mod postgres;
mod redis;
mod worker;

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
    helpers::{wait_for_orders_within, OrderRow, TestConfig},
    persistence::{counter, persisted_by, worker_settings, JOBS_ONLY_GRACE_MS},
};

/// One answered purchase.
#[derive(Debug, Clone)]
pub(super) struct Answer {
    pub(super) user: String,
    pub(super) status: u16,
    pub(super) order_id: Option<String>,
    pub(super) took: Duration,
    /// When the answer arrived.
    pub(super) at: Instant,
}

/// Fires one purchase per user, `concurrency` at a time, counting answers in `progress`.
pub(super) async fn burst(
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

pub(super) fn users(prefix: &str, n: usize) -> Vec<String> {
    (0..n).map(|i| format!("{prefix}-{i:04}")).collect()
}

pub(super) async fn wait_for_progress(progress: &AtomicUsize, at_least: usize) {
    while progress.load(Ordering::SeqCst) < at_least {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// The invariants every fault must leave intact; returns the rows found.
pub(super) async fn assert_invariants(
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
pub(super) fn confirmed_orders<'a>(
    answers: impl Iterator<Item = &'a Answer>,
) -> BTreeMap<String, String> {
    answers
        .filter(|a| a.status == 201)
        .filter_map(|a| Some((a.order_id.clone()?, a.user.clone())))
        .collect()
}

/// Asserts the rows are exactly the `expected` orders (order id -> user),
/// each with the user it was answered to.
pub(super) fn assert_rows_are(rows: &[OrderRow], expected: &BTreeMap<String, String>) {
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

pub(super) async fn redis_cli_get(url: &str, key: &str) -> u64 {
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
pub(super) fn jobs_only(config: TestConfig) -> TestConfig {
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
pub(super) fn fast_reconcile(config: TestConfig) -> TestConfig {
    jobs_only(config).set("RECONCILE_GRACE_MS", 1000)
}

/// The sale's ledger: user -> order id.
pub(super) async fn ledger(redis_url: &str, config: &TestConfig) -> HashMap<String, String> {
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

/// How a test's orders reached PostgreSQL when not every one had a job.
pub(super) struct Drained {
    /// Orders whose push the api saw succeed, and fail.
    pub(super) pushed: usize,
    pub(super) push_failures: usize,
    /// The rows that were there once the pushed orders' jobs had landed,
    /// and how many of them the jobs wrote.
    pub(super) by_jobs: Vec<OrderRow>,
    pub(super) jobs: u64,
    /// The worker that now also reconciles, at once.
    pub(super) reconciling: order_worker::WorkerHandle,
}

/// Waits (10 s at most, else fails) until every purchase the api confirmed
/// has its push, or its failed push, counted: a 201 does not wait for its
/// push.
pub(super) async fn pushes_settled(config: &TestConfig) {
    let sale = config.sale_id().to_string();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let confirmed = counter(
            "flash_sale_purchases_total",
            &[("sale", &sale), ("outcome", "confirmed")],
        );
        let settled = counter("flash_sale_order_jobs_pushed_total", &[])
            + counter("flash_sale_order_job_push_failures_total", &[]);
        if settled >= confirmed {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{settled} pushes counted for {confirmed} confirmed purchases after 10 s"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Waits until the jobs of every order the api pushed have landed, stops
/// the jobs-only `worker` and starts one whose reconciler persists at once
/// what no job carried (a failed push, a purchase that stood behind a 503).
pub(super) async fn drain_jobs_then_reconcile(
    database: &str,
    config: &TestConfig,
    worker: order_worker::WorkerHandle,
) -> Drained {
    pushes_settled(config).await;
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

/// A sale of `stock` with its own database, Redis at `redis_url`, a
/// jobs-only worker and an api: what most fault tests start from.
pub(super) struct Sale {
    pub(super) database: String,
    pub(super) config: TestConfig,
    pub(super) worker: order_worker::WorkerHandle,
    pub(super) app: crate::helpers::TestApp,
}

pub(super) async fn sale_on(redis_url: &str, stock: u64) -> Sale {
    let database = crate::helpers::create_database().await;
    let config = jobs_only(
        TestConfig::active(stock)
            .set("DATABASE_URL", &database)
            .set("REDIS_URL", redis_url),
    );
    let worker = order_worker::spawn(worker_settings(&config));
    let app = crate::helpers::spawn_app_with(TestConfig {
        vars: config.vars.clone(),
    })
    .await;
    Sale {
        database,
        config,
        worker,
        app,
    }
}
