//! A Redis primary killed mid-sale behind Sentinel: the api and the worker
//! follow the promoted replica by themselves, no 201 is lost and no unit
//! is sold twice (`REDIS_MIN_REPLICA_ACKS=1`).

use std::{
    collections::HashMap,
    sync::{
        atomic::{AtomicUsize, Ordering},
        Mutex,
    },
    time::{Duration, Instant},
};

use futures::StreamExt;
use serde_json::Value;
use test_support::{create_database, PrivateRedis, PrivateSentinels};

use crate::{
    helpers::{spawn_app_with, wait_for_orders_within, TestApp, TestConfig},
    persistence::worker_settings,
};

const STOCK: u64 = 500;
const BUYERS: usize = 2_000;
/// Answers (of any kind) before the primary is killed.
const KILL_AFTER: usize = 200;

/// A buyer's final answer: status, order id (201/409), when its request
/// was sent and when the answer came.
struct Answer {
    status: u16,
    order: Option<String>,
    sent: Instant,
    at: Instant,
}

/// Buys until the answer is not a 503 (for at most 30 s), counting every
/// answer in `answers`; the primary is killed when it reaches KILL_AFTER.
async fn buy(
    app: &TestApp,
    user: String,
    answers: &AtomicUsize,
    primary: &Mutex<Option<PrivateRedis>>,
    killed_at: &Mutex<Option<Instant>>,
) -> (String, Answer) {
    let started = Instant::now();
    loop {
        let sent = Instant::now();
        let response = app.purchase(&user).await;
        let status = response.status().as_u16();
        let body: Value = response.json().await.unwrap_or(Value::Null);
        if answers.fetch_add(1, Ordering::AcqRel) + 1 == KILL_AFTER {
            if let Some(mut redis) = primary.lock().expect("lock").take() {
                redis.kill();
                *killed_at.lock().expect("lock") = Some(Instant::now());
            }
        }
        if status != 503 || started.elapsed() > Duration::from_secs(30) {
            let order = body["orderId"].as_str().map(str::to_owned);
            return (
                user,
                Answer {
                    status,
                    order,
                    sent,
                    at: Instant::now(),
                },
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_primary_killed_mid_sale_loses_no_201_and_sells_nothing_twice() {
    let primary = PrivateRedis::start();
    let _replicas = [
        PrivateRedis::start_replica_of(&primary),
        PrivateRedis::start_replica_of(&primary),
    ];
    let sentinels = PrivateSentinels::start(&primary, 3, "flash");
    let first_primary = primary.port;
    let queue = PrivateRedis::start();
    let database = create_database().await;
    let config = TestConfig::active(STOCK)
        .set("REDIS_URL", sentinels.url())
        .set("REDIS_QUEUE_URL", queue.url())
        .set("DATABASE_URL", &database)
        .set("REDIS_MIN_REPLICA_ACKS", 1)
        // A purchase whose acks did not come in time (503) may still stand:
        // the reconciler persists it after this grace.
        .set("RECONCILE_GRACE_MS", 2_000);
    let worker = order_worker::spawn(worker_settings(&config));
    let app = spawn_app_with(config).await;
    let sale = app.config.sale_id();

    let answers = AtomicUsize::new(0);
    let primary = Mutex::new(Some(primary));
    let killed_at = Mutex::new(None);
    let finals: HashMap<String, Answer> = futures::stream::iter(0..BUYERS)
        .map(|i| buy(&app, format!("fo-{i}"), &answers, &primary, &killed_at))
        .buffer_unordered(32)
        .collect()
        .await;

    let killed_at = killed_at
        .lock()
        .expect("lock")
        .expect("the primary was killed");
    let promoted = sentinels.primary_port();
    assert!(
        promoted.is_some_and(|port| port != first_primary),
        "a replica was promoted: {promoted:?}"
    );
    let winners: Vec<(&String, &Answer)> = finals.iter().filter(|(_, a)| a.status == 201).collect();
    let confirmed: HashMap<&str, &str> = winners
        .iter()
        .map(|(user, a)| {
            (
                user.as_str(),
                a.order.as_deref().expect("a 201 has its order"),
            )
        })
        .collect();
    let statuses = finals.values().fold(HashMap::new(), |mut n, a| {
        *n.entry(a.status).or_insert(0) += 1;
        n
    });
    let last_before = winners
        .iter()
        .map(|(_, a)| a.at)
        .filter(|at| *at < killed_at)
        .max();
    // The first 201 of a purchase sent after the kill: one already in
    // flight may still be answered from before it.
    let first_after = winners
        .iter()
        .filter(|(_, a)| a.sent > killed_at)
        .map(|(_, a)| a.at)
        .min();
    let buying_took = killed_at.elapsed();

    // Every 201 has its row; purchases that stood behind a 503 get theirs
    // from the reconciler: rows and stock add up to the total.
    let rows =
        wait_for_orders_within(&database, &sale, confirmed.len(), Duration::from_secs(30)).await;
    let row_orders: HashMap<&str, &str> = rows
        .iter()
        .map(|r| (r.user_id.as_str(), r.id.as_str()))
        .collect();
    let lost: Vec<_> = confirmed
        .iter()
        .filter(|(user, order)| row_orders.get(*user) != Some(*order))
        .collect();
    let mut stock = None;
    let mut rows_now = rows.len();
    for _ in 0..100 {
        let status = app.sale_status().await;
        let left = status["stockRemaining"].as_u64();
        rows_now = wait_for_orders_within(&database, &sale, 0, Duration::ZERO)
            .await
            .len();
        stock = left;
        if left.is_some_and(|left| left + rows_now as u64 == STOCK) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // A winner's retry is told the order it holds.
    let (winner, answer) = winners.first().expect("someone bought");
    let retry = app.purchase(winner).await;
    let retry_status = retry.status().as_u16();
    let retry_body: Value = retry.json().await.unwrap_or(Value::Null);
    worker.stop().await.expect("worker stops");

    eprintln!(
        "failover: sentinel, primary killed after {KILL_AFTER} answers; answers {statuses:?}; \
         201s {}; rows {rows_now}; lost {}; oversold {}; downtime (last 201 before the kill to \
         the first 201 of a purchase sent after it) {:?}; the kill was {buying_took:?} before \
         every buyer had a final answer",
        confirmed.len(),
        lost.len(),
        rows_now.saturating_sub(STOCK as usize),
        first_after
            .zip(last_before)
            .map(|(after, before)| after - before),
    );
    assert!(lost.is_empty(), "201s without their row: {lost:?}");
    assert!(rows_now as u64 <= STOCK, "oversold: {rows_now} rows");
    assert_eq!(
        stock.map(|left| left + rows_now as u64),
        Some(STOCK),
        "stock left + rows = the total"
    );
    assert!(first_after.is_some(), "sales went on after the failover");
    assert_eq!(retry_status, 409);
    assert_eq!(retry_body["orderId"].as_str(), answer.order.as_deref());
}
