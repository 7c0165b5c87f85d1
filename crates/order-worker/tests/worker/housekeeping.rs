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
async fn queue_memory(conn: &mut domain::queue::QueueConnection, queue: &str) -> u64 {
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
/// (apalis alone would give a dead loop's jobs back only after 30), and the
/// job loops registered then (a loop that died was replaced by `…-1`).
async fn held_jobs_landed(held: Held) -> (i64, String) {
    held.postgres.start_again();
    let sql = "SELECT count(*) AS n FROM orders";
    let persisted = wait_for_count(&held.url, sql, 5, Duration::from_secs(12)).await;
    let loops = held
        .redis
        .cli(&["zrange", &format!("{}:workers", held.queue), "0", "-1"]);
    held.worker.stop().await.expect("worker stops cleanly");
    (persisted, loops)
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
    let held = jobs_held_by_a_loop().await;
    // Redis frozen past the response timeout: the loop's next call times
    // out and it is dropped holding the jobs; the supervisor starts another.
    held.redis.stall(Duration::from_secs(2));
    tokio::time::sleep(Duration::from_millis(500)).await;

    let (persisted, loops) = held_jobs_landed(held).await;

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
    let mut held = jobs_held_by_a_loop().await;

    // A clean shutdown keeps the data (AOF): the held jobs are still in the
    // dead loop's in-flight set when Redis comes back.
    held.redis.stop();
    tokio::time::sleep(Duration::from_secs(2)).await;
    held.redis.start_again();
    let (persisted, loops) = held_jobs_landed(held).await;

    // Loop ids end in their number; the id's random part may hold "-0".
    assert!(
        !loops.is_empty() && !loops.lines().any(|id| id.ends_with("-0")),
        "the first loop died with Redis and another runs: {loops}"
    );
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

/// A sale `<prefix>-<random>` that ended `ago` with one buyer in its ledger.
async fn ended_sale(
    redis: &mut domain::queue::QueueConnection,
    prefix: &str,
    ago: chrono::Duration,
) -> (SaleId, LedgerEntry) {
    let sale =
        SaleId::parse(&format!("{prefix}-{}", uuid::Uuid::new_v4().simple())).expect("valid");
    let keys = SaleKeys::new(&sale);
    let ended = Utc::now() - ago;
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
    // Retention an hour: two sales ended two hours ago, one a minute ago.
    let two_hours = chrono::Duration::hours(2);
    let (persisted, entry) = ended_sale(&mut redis, &prefix, two_hours).await;
    let (unpersisted, _) = ended_sale(&mut redis, &prefix, two_hours).await;
    let (recent, recent_entry) =
        ended_sale(&mut redis, &prefix, chrono::Duration::minutes(1)).await;
    insert_row(&url, &persisted, "the-buyer", &entry).await;
    insert_row(&url, &recent, "the-buyer", &recent_entry).await;
    // Entries younger than the grace are left to jobs.
    let mut settings = settings_for(&url, &unique_queue(), &format!("{prefix}-*"));
    settings.reconcile.grace = Duration::from_secs(3600 * 24);
    settings.reconcile.sale_retention = Duration::from_secs(3600);
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
    let young = SaleKeys::new(&recent);
    let within_retention: u64 = redis
        .exists(vec![young.meta(), young.stock(), young.buyers()])
        .await
        .expect("EXISTS");
    worker.stop().await.expect("worker stops");

    assert!(gone.is_some(), "the settled sale's keys are removed");
    assert_eq!(
        kept, 3,
        "a sale with an order not yet in PostgreSQL keeps its keys"
    );
    assert_eq!(
        within_retention, 3,
        "a settled sale that ended less than the retention ago keeps its keys"
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

/// A dead job (apalis gave up on it) whose orders all stand in PostgreSQL
/// (by the reconciler, or a conflicting order of the same buyer that stands
/// instead) is swept; one whose order is nowhere yet is kept.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_jobs_are_swept_once_their_orders_stand_in_postgres() {
    let url = create_database().await;
    db_migrate(&url).await;
    let queue = unique_queue();
    let probe = settings(&url, &queue);
    let mut conn = domain::queue::connection(&probe.queue_redis).expect("queue connection");
    let config = apalis_redis::Config::default().queue(&queue);
    let persisted = job("dead-persisted");
    let conflicting = job("dead-conflict");
    let nowhere = job("dead-nowhere");
    let pool = orders::pool(&probe.database);
    {
        let mut db = pool.get().await.expect("connection");
        let standing = domain::PersistOrder {
            order_id: OrderId::new(),
            ..conflicting.clone()
        };
        orders::insert_orders(&mut db, &[persisted.clone(), standing])
            .await
            .expect("insert");
    }
    let old = Utc::now().timestamp() - 3600;
    for (id, order) in [("j1", &persisted), ("j2", &conflicting), ("j3", &nowhere)] {
        let payload = serde_json::to_vec(&single(order.clone())).expect("json");
        let _: () = redis::pipe()
            .hset(config.job_data_hash(), id, payload)
            .hset(format!("{}:{id}", config.job_meta_hash()), "done_at", old)
            .sadd(config.dead_jobs_set(), id)
            .query_async(&mut conn)
            .await
            .expect("a dead job");
    }

    let swept = order_worker::keeper::QueueKeeper::new(&queue)
        .sweep(&mut conn, &pool, Duration::from_secs(60))
        .await
        .expect("sweep");

    let left: Vec<String> = conn
        .smembers(config.dead_jobs_set())
        .await
        .expect("SMEMBERS");
    assert_eq!(swept, 2);
    assert_eq!(left, ["j3"], "the job whose order is nowhere stays");
}

/// Finished jobs stay for the retention (to look at), then leave.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn finished_jobs_stay_for_the_retention_then_leave() {
    let url = create_database().await;
    let queue = unique_queue();
    let mut settings = settings(&url, &queue);
    settings.finished_job_retention = Duration::from_secs(3);
    let mut conn = domain::queue::connection(&settings.queue_redis).expect("queue connection");
    let mut storage = domain::queue::storage(conn.clone(), &queue);
    let data = apalis_redis::Config::default()
        .queue(&queue)
        .job_data_hash();
    storage
        .push_bulk((0..10).map(|i| single(job(&format!("kept-{i}")))).collect())
        .await
        .expect("push");
    let worker = order_worker::spawn(settings);
    let sql = "SELECT count(*) AS n FROM orders";
    assert_eq!(
        wait_for_count(&url, sql, 10, Duration::from_secs(15)).await,
        10
    );

    let kept: u64 = conn.hlen(&data).await.expect("HLEN");
    let gone = eventually(Duration::from_secs(15), || {
        let (mut conn, data) = (conn.clone(), data.clone());
        async move {
            let left: u64 = conn.hlen(&data).await.ok()?;
            (left == 0).then_some(())
        }
    })
    .await;
    worker.stop().await.expect("worker stops");

    assert_eq!(
        kept, 10,
        "just finished, the jobs are still there to look at"
    );
    assert!(gone.is_some(), "a retention later they are gone");
}
