//! What keeps Redis holding only live work: a failed loop's jobs given back
//! at once, finished jobs swept, ended sales' keys removed, and conflicts
//! counted rather than dropped silently.

use std::time::Duration;

use apalis_core::backend::TaskSink;
use chrono::Utc;
use domain::{LedgerEntry, OrderId, PersistOrders, SaleId, SaleKeys};
use redis::AsyncCommands;
use test_support::{create_database, eventually, PrivatePostgres, PrivateRedis};

use crate::{count, job, settings, settings_for, single, unique_queue, wait_for_count};

/// Bytes Redis uses for every key of `queue`.
async fn queue_memory(conn: &mut redis::aio::ConnectionManager, queue: &str) -> u64 {
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{queue}*"))
        .query_async(conn)
        .await
        .expect("KEYS");
    let mut bytes = 0;
    for key in keys {
        let used: Option<u64> = redis::cmd("MEMORY")
            .arg("USAGE")
            .arg(&key)
            .query_async(conn)
            .await
            .expect("MEMORY USAGE");
        bytes += used.unwrap_or(0);
    }
    bytes
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn after_a_hundred_thousand_orders_the_queue_holds_under_a_megabyte() {
    let url = create_database().await;
    let queue = unique_queue();
    let mut settings = settings(&url, &queue);
    settings.finished_job_retention = Duration::ZERO;
    let mut conn = domain::queue::connection(&settings.queue_redis).expect("queue connection");
    let mut storage = domain::queue::storage(conn.clone(), &queue);
    // 10,000 jobs of 10 orders: the api's group commit packs several
    // orders per job, a few in a quiet moment, hundreds in a rush.
    for chunk in 0..10 {
        let jobs = (0..1000)
            .map(|j| PersistOrders {
                orders: (0..10)
                    .map(|o| job(&format!("mem-{chunk}-{j}-{o}")))
                    .collect(),
            })
            .collect();
        storage.push_bulk(jobs).await.expect("push");
    }
    let before = queue_memory(&mut conn, &queue).await;

    let worker = order_worker::spawn(settings);
    let sql = "SELECT count(*) AS n FROM orders";
    let persisted = wait_for_count(&url, sql, 100_000, Duration::from_secs(180)).await;
    let drained = eventually(Duration::from_secs(30), || {
        let (mut conn, queue) = (conn.clone(), queue.clone());
        async move {
            let bytes = queue_memory(&mut conn, &queue).await;
            (bytes < 1_000_000).then_some(bytes)
        }
    })
    .await;
    worker.stop().await.expect("worker stops cleanly");

    eprintln!(
        "[queue memory] {before} bytes with 100,000 orders queued, {drained:?} after the drain"
    );
    assert_eq!(persisted, 100_000);
    assert!(before > 1_000_000, "the backlog itself is large: {before}");
    assert!(
        drained.is_some(),
        "the queue is back under 1 MB after the drain"
    );
}

/// A worker on a private Redis and PostgreSQL whose loop holds five jobs:
/// PostgreSQL went down after it fetched them, so it keeps retrying.
struct Held {
    redis: PrivateRedis,
    postgres: PrivatePostgres,
    url: String,
    queue: String,
    worker: order_worker::WorkerHandle,
}

/// PostgreSQL back: how many of the held jobs' orders land within 12 s
/// (apalis alone would give a dead loop's jobs back only after 30).
async fn held_jobs_landed(
    postgres: PrivatePostgres,
    url: &str,
    worker: order_worker::WorkerHandle,
) -> i64 {
    postgres.start_again();
    let sql = "SELECT count(*) AS n FROM orders";
    let persisted = wait_for_count(url, sql, 5, Duration::from_secs(12)).await;
    worker.stop().await.expect("worker stops cleanly");
    persisted
}

async fn jobs_held_by_a_loop() -> Held {
    let redis = PrivateRedis::start();
    let postgres = PrivatePostgres::start();
    let url = postgres.url();
    let queue = unique_queue();
    let mut settings = settings(&url, &queue);
    settings.redis.url = redis.url();
    settings.queue_redis.url = redis.url();
    let conn = domain::queue::connection(&settings.queue_redis).expect("queue connection");
    let mut storage = domain::queue::storage(conn, &queue);
    let worker = order_worker::spawn(settings);
    let sql = "SELECT count(*) AS n FROM orders";
    assert_eq!(
        wait_for_count(&url, sql, 0, Duration::from_secs(15)).await,
        0
    );
    postgres.stop();
    let jobs: Vec<PersistOrders> = (0..5).map(|i| single(job(&format!("held-{i}")))).collect();
    storage.push_bulk(jobs).await.expect("push");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    Held {
        redis,
        postgres,
        url,
        queue,
        worker,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_loop_that_fails_gives_its_jobs_back_at_once() {
    let Held {
        redis,
        postgres,
        url,
        queue,
        worker,
    } = jobs_held_by_a_loop().await;
    // Redis frozen past the response timeout: the loop's next call times
    // out and it is dropped holding the jobs; the supervisor starts another.
    let redis = std::sync::Arc::new(redis);
    let frozen = redis.clone();
    tokio::task::spawn_blocking(move || frozen.stall(Duration::from_secs(2)))
        .await
        .expect("stall");
    tokio::time::sleep(Duration::from_millis(500)).await;
    let loops = redis.cli(&["zrange", &format!("{queue}:workers"), "0", "-1"]);
    let persisted = held_jobs_landed(postgres, &url, worker).await;

    assert!(
        loops.ends_with("-1"),
        "the first loop died and a second runs: {loops}"
    );
    assert_eq!(
        persisted, 5,
        "the jobs came back long before apalis's 30 s orphan check"
    );
}

/// Redis gone, not just slow: the loop dies and its jobs cannot be given
/// back until Redis returns; they are given back then, not 30 s later.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_loop_that_died_with_redis_gives_its_jobs_back_when_redis_returns() {
    let Held {
        mut redis,
        postgres,
        url,
        worker,
        ..
    } = jobs_held_by_a_loop().await;

    // A clean shutdown keeps the data (AOF): the held jobs are still in the
    // dead loop's in-flight set when Redis comes back.
    redis.stop();
    tokio::time::sleep(Duration::from_secs(2)).await;
    redis.start_again();
    let persisted = held_jobs_landed(postgres, &url, worker).await;

    assert_eq!(persisted, 5, "the jobs came back as soon as Redis did");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_conflicting_order_is_counted_as_a_conflict_not_a_duplicate() {
    let recorder = metrics_exporter_prometheus::PrometheusBuilder::new()
        .install_recorder()
        .expect("recorder");
    let (url, batcher) = crate::batcher().await;
    let kept = job("twice-confirmed");

    batcher.persist(kept.clone()).await.expect("first order");
    batcher.persist(kept.clone()).await.expect("redelivery");
    batcher
        .persist(job("twice-confirmed"))
        .await
        .expect("conflict");

    let scrape = recorder.render();
    let value = |result: &str| {
        scrape
            .lines()
            .find(|l| l.starts_with(&format!("flash_sale_jobs_total{{result=\"{result}\"}}")))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse::<f64>().ok())
    };
    assert_eq!(value("conflict"), Some(1.0), "{scrape}");
    assert_eq!(value("duplicate"), Some(1.0), "{scrape}");
    assert_eq!(count(&url, "SELECT count(*) AS n FROM orders").await, 1);
}

/// A sale `<prefix>-<random>` that ended a minute ago with one buyer in its ledger.
async fn ended_sale(
    redis: &mut redis::aio::ConnectionManager,
    prefix: &str,
) -> (SaleId, LedgerEntry) {
    let sale =
        SaleId::parse(&format!("{prefix}-{}", uuid::Uuid::new_v4().simple())).expect("valid");
    let keys = SaleKeys::new(&sale);
    let ended = Utc::now() - chrono::Duration::minutes(1);
    let entry = LedgerEntry {
        order_id: OrderId::new(),
        purchased_at: ended - chrono::Duration::minutes(10),
    };
    let started = (ended - chrono::Duration::hours(1)).timestamp_millis();
    let _: () = redis::pipe()
        .hset_multiple(
            keys.meta(),
            &[
                ("total", 5),
                ("startsAt", started),
                ("endsAt", ended.timestamp_millis()),
            ],
        )
        .set(keys.stock(), 4)
        .hset(keys.buyers(), "the-buyer", entry.encode())
        .query_async(redis)
        .await
        .expect("write the sale");
    (sale, entry)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ended_sale_whose_orders_are_all_persisted_leaves_redis() {
    let url = create_database().await;
    db_migrate(&url).await;
    let probe = settings(&url, "unused");
    let mut redis = domain::queue::connection(&probe.redis).expect("redis");
    // Both sales of this test, and no other, reconciled.
    let prefix = format!("test-{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
    let (persisted, entry) = ended_sale(&mut redis, &prefix).await;
    let (unpersisted, _) = ended_sale(&mut redis, &prefix).await;
    insert_row(&url, &persisted, "the-buyer", &entry).await;
    // Entries younger than the grace are left to jobs.
    let mut settings = settings_for(&url, &unique_queue(), &format!("{prefix}-*"));
    settings.reconcile.grace = Duration::from_secs(3600 * 24);
    settings.reconcile.sale_retention = Duration::ZERO;
    let worker = order_worker::spawn(settings);

    let keys = SaleKeys::new(&persisted);
    let gone = eventually(Duration::from_secs(10), || {
        let (mut redis, keys) = (redis.clone(), keys.clone());
        async move {
            let left: u64 = redis
                .exists(vec![keys.meta(), keys.stock(), keys.buyers()])
                .await
                .ok()?;
            (left == 0).then_some(())
        }
    })
    .await;
    let other = SaleKeys::new(&unpersisted);
    let kept: u64 = redis
        .exists(vec![other.meta(), other.stock(), other.buyers()])
        .await
        .expect("EXISTS");
    worker.stop().await.expect("worker stops");

    assert!(gone.is_some(), "the settled sale's keys are removed");
    assert_eq!(
        kept, 3,
        "a sale with an order not yet in PostgreSQL keeps its keys"
    );
}

async fn db_migrate(url: &str) {
    orders::migrate(url).await.expect("migrate");
}

async fn insert_row(url: &str, sale: &SaleId, user: &str, entry: &LedgerEntry) {
    use diesel_async::{AsyncConnection, AsyncPgConnection};
    let mut conn = AsyncPgConnection::establish(url).await.expect("connect");
    let order = domain::PersistOrder {
        order_id: entry.order_id,
        sale_id: sale.clone(),
        user_id: domain::UserId::parse(user).expect("valid"),
        purchased_at: entry.purchased_at,
    };
    orders::insert_orders(&mut conn, &[order])
        .await
        .expect("insert");
}
