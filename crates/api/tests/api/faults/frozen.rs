//! Redis frozen (SIGSTOP) in the middle of a burst: a purchase answered 503
//! may have stood; its buyer's retry must tell which.

use std::{
    collections::{BTreeMap, HashMap},
    sync::{atomic::AtomicUsize, Arc},
    time::{Duration, Instant},
};

use serde_json::Value;

use super::*;
use crate::{helpers::wait_for_orders_within, persistence::persisted_by};
use test_support::PrivateRedis;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_purchase_answered_503_while_redis_froze_mid_burst_either_stood_or_lets_the_retry_buy() {
    // The client timeout the freeze outlasts is the default 1 s.
    let redis = Arc::new(PrivateRedis::start());
    let Sale {
        database,
        config,
        worker,
        app,
    } = sale_on(&redis.url(), 1000).await;

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
    // The freeze caught requests in flight: their scripts ran after the
    // thaw, their answers had timed out. Without one such, the test would
    // not have tested what it is about.
    assert!(
        !stood.is_empty(),
        "at least one purchase stood behind its 503"
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
