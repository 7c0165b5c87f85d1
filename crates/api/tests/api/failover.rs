//! A Redis primary killed mid-sale, behind Sentinel and in a Cluster with
//! replicas: the api and the worker follow the promoted replica by
//! themselves, no 201 is lost and no unit is sold twice
//! (`REDIS_MIN_REPLICA_ACKS=1`).

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
use test_support::{create_database, PrivateRedis, PrivateRedisCluster, PrivateSentinels};

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

/// The sale's settings on `redis_url`, the queue there too or on `queue`;
/// a purchase whose acks did not come in time (503) may still stand, and
/// so may one whose job the failover lost: the reconciler persists them
/// after a 2 s grace.
fn config(redis_url: String, queue: Option<&PrivateRedis>, database: &str) -> TestConfig {
    let config = TestConfig::active(STOCK)
        .set("REDIS_URL", redis_url)
        .set("DATABASE_URL", database)
        .set("REDIS_MIN_REPLICA_ACKS", 1)
        .set("RECONCILE_GRACE_MS", 2_000);
    match queue {
        Some(queue) => config.set("REDIS_QUEUE_URL", queue.url()),
        None => config,
    }
}

/// Buys until the answer is not a 503 (for at most 30 s), counting every
/// answer; the `KILL_AFTER`th runs `kill` (once).
async fn buy(
    app: &TestApp,
    user: String,
    answers: &AtomicUsize,
    kill: &(dyn Fn() + Sync),
) -> (String, Answer) {
    let started = Instant::now();
    loop {
        let sent = Instant::now();
        let response = app.purchase(&user).await;
        let status = response.status().as_u16();
        let body: Value = response.json().await.unwrap_or(Value::Null);
        if answers.fetch_add(1, Ordering::AcqRel) + 1 == KILL_AFTER {
            kill();
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

/// 2,000 buyers (32 at a time) on the sale, `kill` run after 200 answers
/// (it returns when the primary is dead); then the invariants, asserted,
/// and the failover line printed.
async fn sale_through_a_kill(
    topology: &str,
    app: &TestApp,
    database: &str,
    kill: &(dyn Fn() + Sync),
) {
    let sale = app.config.sale_id();
    let answers = AtomicUsize::new(0);
    let killed_at = Mutex::new(None);
    let kill_once = || {
        kill();
        *killed_at.lock().expect("lock") = Some(Instant::now());
    };
    let finals: HashMap<String, Answer> = futures::stream::iter(0..BUYERS)
        .map(|i| buy(app, format!("fo-{i}"), &answers, &kill_once))
        .buffer_unordered(32)
        .collect()
        .await;
    let killed_at = killed_at
        .lock()
        .expect("lock")
        .expect("the primary was killed");
    let buying_took = killed_at.elapsed();

    let winners: Vec<(&String, &Answer)> = finals.iter().filter(|(_, a)| a.status == 201).collect();
    let confirmed: HashMap<&str, &str> = winners
        .iter()
        .map(|(user, a)| {
            let order = a.order.as_deref().expect("a 201 has its order");
            (user.as_str(), order)
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

    // Every 201 has its row; purchases that stood behind a 503 get theirs
    // from the reconciler: rows and stock add up to the total.
    let rows =
        wait_for_orders_within(database, &sale, confirmed.len(), Duration::from_secs(30)).await;
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
        let left = app.sale_status().await["stockRemaining"].as_u64();
        rows_now = wait_for_orders_within(database, &sale, 0, Duration::ZERO)
            .await
            .len();
        stock = left;
        if left.is_some_and(|left| left + rows_now as u64 == STOCK) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // A winner's retry is told the order it holds (a 503 — a replica slow
    // to acknowledge on a busy machine — is retried, as a buyer would).
    let (winner, answer) = winners.first().expect("someone bought");
    // Up to 20 s: under load the sentinels may fail over twice, and the
    // first promoted node then stays a primary without replicas (503s)
    // until they demote it, some 8 s later.
    let (mut retry_status, mut retry_body) = (503, Value::Null);
    for _ in 0..200 {
        let retry = app.purchase(winner).await;
        retry_status = retry.status().as_u16();
        retry_body = retry.json().await.unwrap_or(Value::Null);
        if retry_status != 503 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    eprintln!(
        "failover: {topology}, primary killed after {KILL_AFTER} answers; answers {statuses:?}; \
         201s {}; rows {rows_now}; lost {}; oversold {}; downtime (last 201 before the kill to \
         the first 201 of a purchase sent after it) {:?}; every buyer answered {buying_took:?} \
         after the kill",
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

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_sentinel_primary_killed_mid_sale_loses_no_201_and_sells_nothing_twice() {
    let (primary, _replicas, sentinels) = sentinel_topology("flash");
    let first_primary = primary.port;
    let database = create_database().await;
    let queue = PrivateRedis::start();
    let config = config(sentinels.url(), Some(&queue), &database);
    let worker = order_worker::spawn(worker_settings(&config));
    let app = spawn_app_with(config).await;
    let primary = Mutex::new(Some(primary));
    let kill = || {
        if let Some(mut redis) = primary.lock().expect("lock").take() {
            redis.kill();
        }
    };

    sale_through_a_kill(
        "sentinel (primary, 2 replicas, 3 sentinels; the order queue on a Redis of its own)",
        &app,
        &database,
        &kill,
    )
    .await;

    worker.stop().await.expect("worker stops");
    let promoted = sentinels.primary_port();
    assert!(
        promoted.is_some_and(|port| port != first_primary),
        "a replica was promoted: {promoted:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_cluster_primary_killed_mid_sale_loses_no_201_and_sells_nothing_twice() {
    let cluster = std::sync::Arc::new(PrivateRedisCluster::start_with_replicas(3, 1));
    let queue = PrivateRedis::start();
    let database = create_database().await;
    let config = config(cluster.url(), Some(&queue), &database);
    let worker = order_worker::spawn(worker_settings(&config));
    let app = spawn_app_with(config).await;
    // The primary that holds this sale's slot.
    let victim = cluster.port_of(&app.keys().meta());
    // Like a supervisor: the killed node is started again 3 s after it
    // died and rejoins as the promoted replica's replica, so the shard has
    // a replica to acknowledge purchases again.
    let supervisor = tokio::task::spawn_blocking({
        let cluster = cluster.clone();
        move || {
            let deadline = Instant::now() + Duration::from_secs(60);
            while cluster.answers(victim) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
            std::thread::sleep(Duration::from_secs(3));
            cluster.restart(victim);
        }
    });
    let kill = || cluster.kill(victim);

    sale_through_a_kill(
        "cluster (3 primaries, 3 replicas; the sale's primary killed, restarted 3 s later)",
        &app,
        &database,
        &kill,
    )
    .await;

    worker.stop().await.expect("worker stops");
    supervisor.await.expect("the supervisor ran");
    assert!(
        cluster.port_of(&app.keys().meta()) != victim,
        "the sale's slot moved to the promoted replica"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_queue_connection_follows_the_primary_the_sentinels_name() {
    let mut primary = PrivateRedis::start();
    let replica = PrivateRedis::start_replica_of(&primary);
    let sentinels = PrivateSentinels::start(&primary, 3, "queue");
    let redis = domain::config::RedisConfig {
        url: sentinels.url(),
        command_timeout: Duration::from_secs(1),
    };
    let mut queue = domain::queue::connection(&redis).expect("a sentinel URL");
    let set = |key: &'static str| redis::cmd("SET").arg(key).arg("1").clone();
    let _: () = set("before")
        .query_async(&mut queue)
        .await
        .expect("SET on the primary");

    primary.kill();
    let deadline = Instant::now() + Duration::from_secs(30);
    while sentinels.primary_port() != Some(replica.port) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The same connection, the next calls: they reach the promoted replica.
    let mut written = Err(None);
    for _ in 0..40 {
        match set("after").query_async::<()>(&mut queue).await {
            Ok(()) => {
                written = Ok(());
                break;
            }
            Err(error) => written = Err(Some(error)),
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }

    assert_eq!(
        sentinels.primary_port(),
        Some(replica.port),
        "the replica was promoted"
    );
    written.expect("a write through the queue's connection after the failover");
    assert_eq!(replica.cli(&["GET", "after"]), "1");
}

/// A failover while the old primary is still up (an operator's `SENTINEL
/// FAILOVER`, or sentinels that wrongly thought it down): the api keeps
/// writing there until the sentinels demote it, which drops its clients
/// (about 8 s later: they wait to see it report itself primary). With
/// acknowledgements from every replica (2), no 201 of that window can be
/// lost: once one replica is promoted, the old primary cannot collect two
/// acks. (With 1 it can: the replica not yet repointed still acknowledges
/// the old primary, then resyncs from the new one.) Then the api must find
/// the new primary by itself, with no restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_primary_demoted_under_open_connections_is_left_for_the_new_one() {
    let (primary, replicas, sentinels) = sentinel_topology("demoted");
    let database = create_database().await;
    let queue = PrivateRedis::start();
    let config = config(sentinels.url(), Some(&queue), &database).set("REDIS_MIN_REPLICA_ACKS", 2);
    let app = spawn_app_with(config).await;
    let mut confirmed = vec![bought(&app, "before").await];

    // NOGOODSLAVE until the sentinels have seen the replicas report in.
    let mut asked = String::new();
    for _ in 0..100 {
        asked = sentinels.cli(&["SENTINEL", "FAILOVER", "demoted"]);
        if asked == "OK" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(asked, "OK", "the sentinels start a failover");
    let started = Instant::now();
    let mut sold_on_the_new_primary = None;
    let mut i = 0;
    while started.elapsed() < Duration::from_secs(40) {
        i += 1;
        let user = format!("after-{i}");
        if app.purchase(&user).await.status() == 201 {
            confirmed.push(user.clone());
            let now = sentinels.primary_port();
            let holder = replicas.iter().find(|r| Some(r.port) == now);
            if holder.is_some_and(|r| r.cli(&["HEXISTS", &app.keys().buyers(), &user]) == "1") {
                sold_on_the_new_primary = Some(started.elapsed());
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let old = primary.cli(&["ROLE"]);
    let now = sentinels.primary_port();
    let holder = replicas
        .iter()
        .find(|r| Some(r.port) == now)
        .expect("a replica is the primary now");
    let lost: Vec<&String> = confirmed
        .iter()
        .filter(|user| holder.cli(&["HEXISTS", &app.keys().buyers(), user]) != "1")
        .collect();

    assert!(
        old.starts_with("slave"),
        "the sentinels demoted the old primary: {old}"
    );
    assert!(
        sold_on_the_new_primary.is_some(),
        "purchases are confirmed on the promoted primary without a restart"
    );
    assert!(
        lost.is_empty(),
        "201s the failover took back: {lost:?} of {}",
        confirmed.len()
    );
}

/// Production Sentinel setups require a password. One URL with it
/// (`redis-sentinel://:password@…`, no `REDIS_QUEUE_URL`) must serve the
/// api, the worker and the order queue, which follows the sentinels with
/// a client of its own (redis-rs): the order reaches PostgreSQL through
/// its job.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_sentinel_url_with_a_password_serves_the_api_the_worker_and_the_queue() {
    const PASSWORD: &str = "s3cret-p@ss";
    let primary = PrivateRedis::start();
    let replica = PrivateRedis::start_replica_of(&primary);
    for redis in [&replica, &primary] {
        assert_eq!(redis.cli(&["CONFIG", "SET", "masterauth", PASSWORD]), "OK");
        assert_eq!(redis.cli(&["CONFIG", "SET", "requirepass", PASSWORD]), "OK");
    }
    let sentinels = PrivateSentinels::start_with_password(&primary, 3, "locked", PASSWORD);
    let database = create_database().await;
    // The URL carries it percent-encoded (`p%40ss`).
    let config = config(sentinels.url(), None, &database).set("RECONCILE_GRACE_MS", 60_000);
    let worker = order_worker::spawn(worker_settings(&config));
    let app = spawn_app_with(config).await;

    let buyer = bought(&app, "locked-in").await;
    let rows =
        wait_for_orders_within(&database, &app.config.sale_id(), 1, Duration::from_secs(20)).await;
    worker.stop().await.expect("worker stops");

    assert_eq!(rows.len(), 1, "the order was persisted");
    assert_eq!(rows[0].user_id, buyer);
    crate::persistence::assert_persisted_by_jobs(1);
}

/// `user` buys (retried while the answer is 503); the user.
async fn bought(app: &TestApp, user: &str) -> String {
    let answer = app.purchase_until_not_503(user).await;
    assert_eq!(answer.status(), 201, "{user} bought");
    user.to_owned()
}

/// A primary, two replicas and three sentinels naming it `name`.
fn sentinel_topology(name: &str) -> (PrivateRedis, [PrivateRedis; 2], PrivateSentinels) {
    let primary = PrivateRedis::start();
    let replicas = [
        PrivateRedis::start_replica_of(&primary),
        PrivateRedis::start_replica_of(&primary),
    ];
    let sentinels = PrivateSentinels::start(&primary, 3, name);
    (primary, replicas, sentinels)
}
