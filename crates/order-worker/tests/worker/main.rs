//! The worker's integration tests, against real PostgreSQL and Redis.

mod housekeeping;

use std::time::Duration;

use apalis_core::{backend::TaskSink, task::builder::TaskBuilder};
use chrono::Utc;
use diesel::{sql_query, sql_types::BigInt, QueryableByName};
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use domain::{config::Env, OrderId, PersistOrder, PersistOrders, SaleId, UserId};
use order_worker::WorkerSettings;

use test_support::{create_database, redis_url};

#[derive(QueryableByName)]
struct Count {
    #[diesel(sql_type = BigInt)]
    n: i64,
}

async fn count(url: &str, sql: &str) -> i64 {
    let mut conn = AsyncPgConnection::establish(url).await.expect("connect");
    sql_query(sql)
        .get_result::<Count>(&mut conn)
        .await
        .map(|c| c.n)
        .unwrap_or(-1)
}

fn job(user: &str) -> PersistOrder {
    PersistOrder {
        order_id: OrderId::new(),
        sale_id: SaleId::parse("worker-test").expect("valid"),
        user_id: UserId::parse(user).expect("valid"),
        purchased_at: Utc::now(),
    }
}

/// A job carrying one order.
fn single(order: PersistOrder) -> PersistOrders {
    PersistOrders {
        orders: vec![order],
    }
}

/// Settings of a test worker; it reconciles only the sales matching `sales`.
fn settings_for(database_url: &str, queue: &str, sales: &str) -> WorkerSettings {
    WorkerSettings::from_env(&Env::from_pairs([
        ("DATABASE_URL", database_url.to_owned()),
        ("DATABASE_POOL_MIN", "0".to_owned()),
        ("REDIS_URL", redis_url()),
        ("ORDER_QUEUE", queue.to_owned()),
        ("WORKER_CONCURRENCY", "16".to_owned()),
        ("RECONCILE_INTERVAL_MS", "200".to_owned()),
        ("RECONCILE_GRACE_MS", "0".to_owned()),
        ("RECONCILE_SALES", sales.to_owned()),
        ("METRICS_PORT", "0".to_owned()),
    ]))
    .expect("valid settings")
}

/// Settings of a test worker that reconciles no sale.
fn settings(database_url: &str, queue: &str) -> WorkerSettings {
    settings_for(database_url, queue, "none-of-this-test")
}

/// Points both of `settings`' Redis connections at `private`.
fn on_private(settings: &mut WorkerSettings, private: &test_support::PrivateRedis) {
    settings.redis.url = private.url();
    settings.queue_redis.url = private.url();
}

fn unique_queue() -> String {
    format!("test:{}:orders", uuid::Uuid::new_v4().simple())
}

/// Polls `sql` until it counts `expected` or `timeout` passes; returns the last count.
async fn wait_for_count(url: &str, sql: &str, expected: i64, timeout: Duration) -> i64 {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let n = count(url, sql).await;
        if n >= expected || tokio::time::Instant::now() > deadline {
            return n;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workers_migrating_at_once_apply_the_migrations_exactly_once() {
    let url = create_database().await;

    let results = futures::future::join_all((0..4).map(|_| orders::migrate(&url))).await;

    let applied: Vec<usize> = results.into_iter().map(|r| r.expect("migrate")).collect();
    assert_eq!(applied.iter().sum::<usize>(), 1, "{applied:?}");
    assert_eq!(count(&url, "SELECT count(*) AS n FROM orders").await, 0);
}

/// The batcher the job handlers use, on a migrated fresh database.
async fn batcher() -> (String, order_worker::batch::Batcher) {
    let url = create_database().await;
    orders::migrate(&url).await.expect("migrate");
    let pool = orders::pool(&settings(&url, "unused").database);
    (url, order_worker::batch::Batcher::spawn(pool))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_order_persisted_twice_is_stored_once() {
    let (url, batcher) = batcher().await;
    let order = job("twice");

    batcher
        .persist(order.clone())
        .await
        .expect("first delivery");
    batcher
        .persist(order.clone())
        .await
        .expect("second delivery");

    assert_eq!(count(&url, "SELECT count(*) AS n FROM orders").await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_mixing_a_redelivered_order_with_new_ones_stores_each_once() {
    let (url, batcher) = batcher().await;
    let seen = job("seen-before");
    batcher.persist(seen.clone()).await.expect("first delivery");

    // Sent together, so they share one batch (one INSERT).
    let results = futures::future::join_all(
        [seen.clone(), job("new-1"), job("new-2")].map(|o| batcher.persist(o)),
    )
    .await;

    assert!(results.iter().all(Result::is_ok), "{results:?}");
    assert_eq!(count(&url, "SELECT count(*) AS n FROM orders").await, 3);
}

/// A job's batch and a reconciler page can hold the same orders (the
/// reconciler repairs ledger entries whose jobs are still queued, as in a
/// backlog drain), each in its own order. Two inserts taking the same rows
/// in opposite orders each wait for a row the other took first: PostgreSQL
/// found that deadlock 107 times in one `make bench` drain, failing job
/// batches (retried) and reconciler passes. Inserts take their rows in
/// order-id order, so one waits for the other instead.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn inserts_of_the_same_orders_in_opposite_orders_do_not_deadlock() {
    let url = create_database().await;
    orders::migrate(&url).await.expect("migrate");
    let mut first = AsyncPgConnection::establish(&url).await.expect("connect");
    let mut second = AsyncPgConnection::establish(&url).await.expect("connect");
    const ROUNDS: usize = 5;
    const ORDERS: usize = 2000;
    for round in 0..ROUNDS {
        let forward: Vec<PersistOrder> = (0..ORDERS)
            .map(|i| job(&format!("deadlock-{round}-{i}")))
            .collect();
        let backward: Vec<PersistOrder> = forward.iter().rev().cloned().collect();
        let (a, b) = tokio::join!(
            orders::insert_orders(&mut first, &forward),
            orders::insert_orders(&mut second, &backward),
        );
        let (a, b) = (a.expect("first insert"), b.expect("second insert"));
        assert_eq!(a + b, ORDERS, "round {round}: each order inserted once");
    }
    let total = count(&url, "SELECT count(*) AS n FROM orders").await;
    assert_eq!(total, (ROUNDS * ORDERS) as i64);
}

/// Index scans PostgreSQL counted on the orders table's indexes, after
/// flushing this connection's own pending statistics.
async fn orders_index_scans(conn: &mut AsyncPgConnection) -> i64 {
    sql_query("SELECT pg_stat_force_next_flush()")
        .execute(conn)
        .await
        .expect("flush");
    sql_query("SELECT pg_stat_clear_snapshot()")
        .execute(conn)
        .await
        .expect("fresh snapshot");
    sql_query(
        "SELECT coalesce(sum(idx_scan), 0)::bigint AS n FROM pg_stat_user_indexes \
         WHERE relname = 'orders'",
    )
    .get_result::<Count>(conn)
    .await
    .expect("index scans")
    .n
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn new_orders_are_inserted_without_looking_each_up_first() {
    let url = create_database().await;
    orders::migrate(&url).await.expect("migrate");
    let mut conn = AsyncPgConnection::establish(&url).await.expect("connect");
    let new: Vec<PersistOrder> = (0..50).map(|i| job(&format!("new-{i}"))).collect();
    let before = orders_index_scans(&mut conn).await;

    let inserted = orders::insert_new_orders(&mut conn, &new)
        .await
        .expect("insert");

    assert_eq!(inserted, 50);
    assert_eq!(
        orders_index_scans(&mut conn).await - before,
        0,
        "new orders are checked by the unique indexes as they are inserted, \
         not looked up in them first"
    );
    // A row already there fails the whole statement: nothing is inserted.
    let mut again = vec![job("one-more")];
    again.push(new[0].clone());
    let refused = orders::insert_new_orders(&mut conn, &again).await;
    assert!(
        matches!(
            refused,
            Err(diesel::result::Error::DatabaseError(
                diesel::result::DatabaseErrorKind::UniqueViolation,
                _
            ))
        ),
        "{refused:?}"
    );
    assert_eq!(count(&url, "SELECT count(*) AS n FROM orders").await, 50);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batches_go_plainly_and_skip_rows_already_there_only_while_they_come() {
    let recorder = metrics_exporter_prometheus::PrometheusBuilder::new()
        .install_recorder()
        .expect("recorder");
    let (url, batcher) = batcher().await;
    let ways = || {
        let scrape = recorder.render();
        ["new", "skipping", "retried-skipping"].map(|way| {
            scrape
                .lines()
                .find(|l| {
                    l.starts_with(&format!("flash_sale_batch_inserts_total{{way=\"{way}\"}}"))
                })
                .and_then(|l| l.rsplit(' ').next())
                .and_then(|v| v.parse::<f64>().ok())
                .unwrap_or(0.0)
        })
    };
    // One order a batch, so each step is one batch.
    let a = job("a");
    batcher.persist(a.clone()).await.expect("new");
    assert_eq!(ways(), [1.0, 0.0, 0.0], "a batch of new orders, plainly");

    // A run of redeliveries: the first meets its row already there and goes
    // again skipping; the next goes skipping at once.
    batcher.persist(a.clone()).await.expect("redelivered");
    assert_eq!(ways(), [1.0, 0.0, 1.0]);
    batcher.persist(a.clone()).await.expect("again");
    assert_eq!(ways(), [1.0, 1.0, 1.0]);
    // New orders still go skipping for SKIP_AFTER_ROWS_THERE batches after
    // the last that had rows already there, then plainly again.
    let hold = order_worker::batch::SKIP_AFTER_ROWS_THERE;
    for i in 0..hold {
        batcher.persist(job(&format!("b-{i}"))).await.expect("new");
    }
    assert_eq!(ways(), [1.0, 1.0 + f64::from(hold), 1.0]);
    batcher.persist(job("c")).await.expect("new");
    assert_eq!(ways(), [2.0, 1.0 + f64::from(hold), 1.0]);
    assert_eq!(
        count(&url, "SELECT count(*) AS n FROM orders").await,
        2 + i64::from(hold)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_refuses_a_second_order_of_one_user_in_one_sale() {
    let (url, batcher) = batcher().await;
    let kept = job("greedy");
    batcher.persist(kept.clone()).await.expect("first order");

    // Redis never confirms this; if it ever arrived, UNIQUE (sale_id, user_id) holds.
    batcher
        .persist(job("greedy"))
        .await
        .expect("completes, dropped");

    assert_eq!(count(&url, "SELECT count(*) AS n FROM orders").await, 1);
    let sql = format!(
        "SELECT count(*) AS n FROM orders WHERE id = '{}'",
        kept.order_id
    );
    assert_eq!(
        count(&url, &sql).await,
        1,
        "the first order is the one kept"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_job_delivered_twice_through_the_queue_inserts_once() {
    let url = create_database().await;
    let queue = format!("test:{}:orders", uuid::Uuid::new_v4().simple());
    let settings = settings(&url, &queue);
    let conn = domain::queue::connection(&settings.redis).expect("queue connection");
    let mut storage = domain::queue::storage(conn, &queue);
    let order = job("delivered-twice");
    for _ in 0..2 {
        storage
            .push_task(TaskBuilder::new(single(order.clone())).build())
            .await
            .expect("push");
    }
    storage
        .push_task(
            TaskBuilder::new(PersistOrders {
                orders: vec![order.clone(), job("someone-else")],
            })
            .build(),
        )
        .await
        .expect("push");

    let worker = order_worker::spawn(settings);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    let sql = "SELECT count(*) AS n FROM orders";
    while count(&url, sql).await < 2 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Give a wrongly duplicated insert the time to show up.
    tokio::time::sleep(Duration::from_millis(500)).await;
    worker.stop().await.expect("worker stops cleanly");

    assert_eq!(count(&url, sql).await, 2);
    let same = format!(
        "SELECT count(*) AS n FROM orders WHERE id = '{}'",
        order.order_id
    );
    assert_eq!(count(&url, &same).await, 1);
}

#[derive(QueryableByName)]
struct Row {
    #[diesel(sql_type = diesel::sql_types::Text)]
    user_id: String,
    #[diesel(sql_type = diesel::sql_types::Timestamptz)]
    purchased_at: chrono::DateTime<Utc>,
}

/// The api pushes one sale's orders in the compact form; a job an older api
/// queued is in the object form. Both are persisted, each order with its
/// own user and time.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn jobs_in_the_compact_and_the_object_form_are_both_persisted() {
    let url = create_database().await;
    let queue = unique_queue();
    let settings = settings(&url, &queue);
    let conn = domain::queue::connection(&settings.redis).expect("queue connection");
    let mut storage = domain::queue::storage(conn.clone(), &queue);
    let at = |millis| domain::time::from_millis(millis).expect("in range");
    let mut compact = vec![job("compact-1"), job("compact-2")];
    compact[0].purchased_at = at(1_772_359_200_001);
    compact[1].purchased_at = at(1_772_359_200_002);
    let mut objects = vec![job("object-1")];
    objects[0].purchased_at = at(1_772_359_200_003) + chrono::Duration::microseconds(7);
    for orders in [compact, objects] {
        storage
            .push_task(TaskBuilder::new(PersistOrders { orders }).build())
            .await
            .expect("push");
    }
    let mut redis = conn;
    let queued: Vec<String> = redis::cmd("HVALS")
        .arg(format!("{queue}:data"))
        .query_async(&mut redis)
        .await
        .expect("HVALS");
    assert_eq!(queued.len(), 2, "{queued:?}");
    assert!(
        queued.iter().any(|j| j.contains(r#""sold":[["#)),
        "{queued:?}"
    );
    assert!(
        queued.iter().any(|j| j.contains(r#""orders":[{"#)),
        "{queued:?}"
    );

    let worker = order_worker::spawn(settings);
    let persisted = wait_for_count(
        &url,
        "SELECT count(*) AS n FROM orders",
        3,
        Duration::from_secs(15),
    )
    .await;
    worker.stop().await.expect("worker stops cleanly");
    assert_eq!(persisted, 3);

    let mut db = AsyncPgConnection::establish(&url).await.expect("connect");
    let rows: Vec<Row> =
        sql_query("SELECT user_id, created_at AS purchased_at FROM orders ORDER BY user_id")
            .load(&mut db)
            .await
            .expect("rows");
    let rows: Vec<(String, i64)> = rows
        .into_iter()
        .map(|r| (r.user_id, r.purchased_at.timestamp_micros()))
        .collect();
    assert_eq!(
        rows,
        vec![
            ("compact-1".to_owned(), 1_772_359_200_001_000),
            ("compact-2".to_owned(), 1_772_359_200_002_000),
            ("object-1".to_owned(), 1_772_359_200_003_007),
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrate_alone_is_idempotent() {
    let url = create_database().await;
    let settings = settings(&url, "unused");

    order_worker::migrate(&settings).await.expect("first");
    order_worker::migrate(&settings).await.expect("second");

    assert_eq!(count(&url, "SELECT count(*) AS n FROM orders").await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_reconciler_persists_ledger_entries_that_no_job_delivered() {
    let url = create_database().await;
    let sale = SaleId::parse(&format!("test-{}", uuid::Uuid::new_v4().simple())).expect("valid");
    let keys = domain::SaleKeys::new(&sale);
    let orphan = domain::LedgerEntry {
        order_id: OrderId::new(),
        purchased_at: Utc::now(),
    };
    let mut redis = domain::queue::connection(&settings(&url, "unused").redis).expect("redis");
    let _: () = redis::cmd("HSET")
        .arg(keys.buyers())
        .arg("orphan-buyer")
        .arg(orphan.encode())
        .query_async(&mut redis)
        .await
        .expect("HSET");

    let worker = order_worker::spawn(settings_for(&url, &unique_queue(), sale.as_str()));
    let sql = format!(
        "SELECT count(*) AS n FROM orders WHERE id = '{}' AND user_id = 'orphan-buyer'",
        orphan.order_id
    );
    let found = wait_for_count(&url, &sql, 1, Duration::from_secs(15)).await;
    worker.stop().await.expect("worker stops cleanly");

    assert_eq!(found, 1);
}

/// A free port for a test worker's metrics.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// `flash_sale_orders_persisted_total{source}` of the worker serving metrics on `port`.
async fn persisted_by(port: u16, source: &str) -> f64 {
    let scrape = reqwest::get(format!("http://127.0.0.1:{port}/metrics"))
        .await
        .expect("scrape")
        .text()
        .await
        .expect("body");
    let series = format!("flash_sale_orders_persisted_total{{source=\"{source}\"}} ");
    scrape
        .lines()
        .find_map(|l| l.strip_prefix(&series))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0)
}

/// `count` orders of `sale` bought a minute ago, in its ledger, and a job
/// each, due `due` from now.
async fn ledger_and_jobs(
    url: &str,
    sale: &SaleId,
    queue: &str,
    count: usize,
    due: Duration,
) -> Vec<PersistOrder> {
    let settings = settings(url, queue);
    let mut conn = domain::queue::connection(&settings.redis).expect("queue connection");
    let at =
        domain::time::from_millis((Utc::now() - chrono::Duration::minutes(1)).timestamp_millis())
            .expect("in range");
    let orders: Vec<PersistOrder> = (0..count)
        .map(|i| PersistOrder {
            sale_id: sale.clone(),
            purchased_at: at,
            ..job(&format!("queued-{i}"))
        })
        .collect();
    let mut hset = redis::cmd("HSET");
    hset.arg(domain::SaleKeys::new(sale).buyers());
    for order in &orders {
        let entry = domain::LedgerEntry {
            order_id: order.order_id,
            purchased_at: order.purchased_at,
        };
        hset.arg(order.user_id.as_str()).arg(entry.encode());
    }
    let _: () = hset.query_async(&mut conn).await.expect("HSET");
    let mut storage = domain::queue::storage(conn, queue);
    for order in &orders {
        storage
            .push_task(
                TaskBuilder::new(single(order.clone()))
                    .run_after(due)
                    .build(),
            )
            .await
            .expect("push");
    }
    orders
}

/// A worker back after an outage finds a backlog and its orders in the
/// ledger, older than the grace, with no rows. The reconciler leaves them
/// to the jobs: it persisted them itself before, racing the jobs (365,627
/// of 606,031 orders in one `make bench` drain), whose batches then found
/// their rows there and went again, skipping.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reconciler_leaves_a_backlogs_orders_to_its_jobs() {
    let url = create_database().await;
    let queue = unique_queue();
    let sale = SaleId::parse(&format!("test-{}", uuid::Uuid::new_v4().simple())).expect("valid");
    // Due in 2 s: the reconciler's first pass (at start) sees them all waiting.
    ledger_and_jobs(&url, &sale, &queue, 20, Duration::from_secs(2)).await;
    let mut settings = settings_for(&url, &queue, sale.as_str());
    settings.reconcile.backlog_jobs = 10;
    // One pass (at start) in the test's time.
    settings.reconcile.interval = Duration::from_secs(60);
    let port = free_port();
    settings.metrics_port = port;

    let worker = order_worker::spawn(settings);
    let rows = wait_for_count(
        &url,
        "SELECT count(*) AS n FROM orders",
        20,
        Duration::from_secs(15),
    )
    .await;
    let (by_jobs, by_reconciler) = (
        persisted_by(port, "job").await,
        persisted_by(port, "reconciler").await,
    );
    worker.stop().await.expect("worker stops cleanly");

    assert_eq!(rows, 20);
    assert_eq!(
        (by_jobs, by_reconciler),
        (20.0, 0.0),
        "(by jobs, by the reconciler)"
    );
}

/// A backlog that does not drain (jobs due an hour from now here; a jammed
/// queue in life) holds repairs back for `backlog_wait` only: an order no
/// job carries is persisted after it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backlog_that_does_not_drain_holds_repairs_back_only_so_long() {
    let url = create_database().await;
    let queue = unique_queue();
    let sale = SaleId::parse(&format!("test-{}", uuid::Uuid::new_v4().simple())).expect("valid");
    ledger_and_jobs(&url, &sale, &queue, 12, Duration::from_secs(3600)).await;
    let orphan = domain::LedgerEntry {
        order_id: OrderId::new(),
        purchased_at: Utc::now() - chrono::Duration::minutes(1),
    };
    let mut redis = domain::queue::connection(&settings(&url, "unused").redis).expect("redis");
    let _: () = redis::cmd("HSET")
        .arg(domain::SaleKeys::new(&sale).buyers())
        .arg("orphan-buyer")
        .arg(orphan.encode())
        .query_async(&mut redis)
        .await
        .expect("HSET");
    let mut settings = settings_for(&url, &queue, sale.as_str());
    settings.reconcile.backlog_jobs = 10;
    settings.reconcile.backlog_wait = Duration::from_secs(2);
    let started = std::time::Instant::now();

    let worker = order_worker::spawn(settings);
    let sql = format!(
        "SELECT count(*) AS n FROM orders WHERE id = '{}'",
        orphan.order_id
    );
    let found = wait_for_count(&url, &sql, 1, Duration::from_secs(15)).await;
    let took = started.elapsed();
    worker.stop().await.expect("worker stops cleanly");

    assert_eq!(found, 1, "the orphan is persisted once the wait is over");
    assert!(
        took >= Duration::from_secs(2),
        "not before the wait: {took:?}"
    );
}

/// fred continues a scan when a page is dropped without `next()`: a walk
/// that failed (an insert refused, a pass timed out) went on reading the
/// whole ledger from Redis for no one, a warning logged per page (1,626 of
/// them after three failed walks in one `make bench` drain). A failed walk
/// now stops its scan.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reconciler_walk_that_fails_stops_reading_the_ledger() {
    // A Redis of its own: its command counts are this test's alone.
    let private = test_support::PrivateRedis::start();
    let url = create_database().await;
    orders::migrate(&url).await.expect("migrate");
    // Reads work, every insert fails.
    let mut db = AsyncPgConnection::establish(&url).await.expect("connect");
    sql_query("ALTER TABLE orders ADD CONSTRAINT refuse_all CHECK (false) NOT VALID")
        .execute(&mut db)
        .await
        .expect("constraint");
    let sale = SaleId::parse(&format!("test-{}", uuid::Uuid::new_v4().simple())).expect("valid");
    let entries = 20_000;
    let at = Utc::now() - chrono::Duration::minutes(1);
    let mut ledger = redis::Client::open(private.url())
        .expect("client")
        .get_multiplexed_async_connection()
        .await
        .expect("connect");
    let mut hset = redis::cmd("HSET");
    hset.arg(domain::SaleKeys::new(&sale).buyers());
    for i in 0..entries {
        let entry = domain::LedgerEntry {
            order_id: OrderId::new(),
            purchased_at: at,
        };
        hset.arg(format!("buyer-{i}")).arg(entry.encode());
    }
    let _: () = hset.query_async(&mut ledger).await.expect("HSET");
    private.cli(&["CONFIG", "RESETSTAT"]);

    let mut settings = settings_for(&url, &unique_queue(), sale.as_str());
    // One pass: the first runs at once, the next a minute later.
    settings.reconcile.interval = Duration::from_secs(60);
    on_private(&mut settings, &private);
    let worker = order_worker::spawn(settings);
    // The pass fails at its first page's insert; a scan left running would
    // read the other 19 pages in well under this.
    tokio::time::sleep(Duration::from_secs(3)).await;
    worker.stop().await.expect("worker stops cleanly");

    let stats = private.cli(&["INFO", "commandstats"]);
    let hscans: u64 = stats
        .lines()
        .find_map(|l| l.strip_prefix("cmdstat_hscan:calls="))
        .and_then(|rest| rest.split(',').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    assert_eq!(count(&url, "SELECT count(*) AS n FROM orders").await, 0);
    assert!(
        (1..=2).contains(&hscans),
        "the failed walk read {hscans} pages of {} (HSCAN, 1,000 a page)",
        entries / 1000
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reconciler_given_one_sale_finds_it_without_scanning_the_keyspace() {
    // A Redis of its own: its command counts are this test's alone.
    let private = test_support::PrivateRedis::start();
    let url = create_database().await;
    let sale = SaleId::parse(&format!("test-{}", uuid::Uuid::new_v4().simple())).expect("valid");
    let orphan = domain::LedgerEntry {
        order_id: OrderId::new(),
        purchased_at: Utc::now(),
    };
    private.cli(&[
        "HSET",
        &domain::SaleKeys::new(&sale).buyers(),
        "orphan-buyer",
        &orphan.encode(),
    ]);
    let mut settings = settings_for(&url, &unique_queue(), sale.as_str());
    on_private(&mut settings, &private);

    let worker = order_worker::spawn(settings);
    let sql = format!(
        "SELECT count(*) AS n FROM orders WHERE id = '{}'",
        orphan.order_id
    );
    let found = wait_for_count(&url, &sql, 1, Duration::from_secs(15)).await;
    worker.stop().await.expect("worker stops cleanly");

    assert_eq!(found, 1, "the named sale was reconciled");
    let stats = private.cli(&["INFO", "commandstats"]);
    assert!(
        !stats.contains("cmdstat_scan:"),
        "no SCAN for a named sale: {stats}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn promoting_a_backlog_past_luas_unpack_limit_moves_every_job() {
    let queue = unique_queue();
    let settings = settings("postgres://unused@127.0.0.1:1/none", &queue);
    let conn = domain::queue::connection(&settings.redis).expect("queue connection");
    let mut storage = domain::queue::storage(conn.clone(), &queue);
    for chunk in 0..9 {
        let jobs = (0..1000)
            .map(|i| single(job(&format!("u{chunk}-{i}"))))
            .collect();
        storage.push_bulk(jobs).await.expect("push");
    }
    let config = apalis_redis::Config::default().queue(&queue);

    let moved = order_worker::keeper::QueueKeeper::new(&queue)
        .promote_all(&mut conn.clone())
        .await
        .expect("promote");

    let mut conn = conn;
    let scheduled: usize = redis::cmd("ZCARD")
        .arg(config.scheduled_jobs_set())
        .query_async(&mut conn)
        .await
        .expect("ZCARD");
    let active: usize = redis::cmd("LLEN")
        .arg(config.active_jobs_list())
        .query_async(&mut conn)
        .await
        .expect("LLEN");
    assert_eq!((moved, scheduled, active), (9000, 0, 9000));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn twenty_thousand_jobs_pushed_while_no_worker_runs_all_drain_once_one_starts() {
    let url = create_database().await;
    let queue = unique_queue();
    let settings = settings(&url, &queue);
    let conn = domain::queue::connection(&settings.redis).expect("queue connection");
    let mut storage = domain::queue::storage(conn, &queue);
    for chunk in 0..20 {
        let jobs = (0..1000)
            .map(|i| single(job(&format!("backlog-{chunk}-{i}"))))
            .collect();
        storage.push_bulk(jobs).await.expect("push");
    }

    let worker = order_worker::spawn(settings);
    let sql = "SELECT count(*) AS n FROM orders";
    let persisted = wait_for_count(&url, sql, 20_000, Duration::from_secs(120)).await;
    worker.stop().await.expect("worker stops cleanly");

    assert_eq!(persisted, 20_000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_worker_serves_metrics_of_what_it_persisted() {
    let url = create_database().await;
    let queue = unique_queue();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port");
    let mut settings = settings(&url, &queue);
    settings.metrics_port = port;
    let conn = domain::queue::connection(&settings.redis).expect("queue connection");
    let mut storage = domain::queue::storage(conn, &queue);
    storage
        .push_bulk(
            (0..7)
                .map(|i| single(job(&format!("metered-{i}"))))
                .collect(),
        )
        .await
        .expect("push");

    let worker = order_worker::spawn(settings);
    wait_for_count(
        &url,
        "SELECT count(*) AS n FROM orders",
        7,
        Duration::from_secs(15),
    )
    .await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let scrape = reqwest::get(format!("http://127.0.0.1:{port}/metrics"))
        .await
        .expect("scrape")
        .text()
        .await
        .expect("body");
    worker.stop().await.expect("worker stops");

    let value = |name: &str| {
        scrape
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse::<f64>().ok())
    };
    assert_eq!(
        value("flash_sale_orders_persisted_total{source=\"job\"}"),
        Some(7.0),
        "{scrape}"
    );
    assert_eq!(
        value("flash_sale_jobs_total{result=\"persisted\"}"),
        Some(7.0)
    );
    assert_eq!(value("flash_sale_job_attempts_total"), Some(7.0));
    assert_eq!(value("flash_sale_queue_depth{state=\"active\"}"), Some(0.0));
    assert!(
        value("flash_sale_db_query_duration_seconds_count{query=\"insert_batch\"}")
            .is_some_and(|n| n >= 1.0)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_job_carrying_a_thousand_orders_persists_each_once() {
    let url = create_database().await;
    let queue = unique_queue();
    let settings = settings(&url, &queue);
    let conn = domain::queue::connection(&settings.redis).expect("queue connection");
    let mut storage = domain::queue::storage(conn, &queue);
    let orders: Vec<PersistOrder> = (0..1000).map(|i| job(&format!("batched-{i}"))).collect();
    storage
        .push_task(TaskBuilder::new(PersistOrders { orders }).build())
        .await
        .expect("push");

    let worker = order_worker::spawn(settings);
    let sql = "SELECT count(*) AS n FROM orders";
    let persisted = wait_for_count(&url, sql, 1000, Duration::from_secs(30)).await;
    worker.stop().await.expect("worker stops cleanly");

    assert_eq!(persisted, 1000);
}

/// How long each of `jobs` pushed one at a time, at irregular moments,
/// waits until its order is a row; the worker is otherwise idle.
async fn pick_up_waits(redis: &str, jobs: u64) -> Vec<Duration> {
    let url = create_database().await;
    let queue = unique_queue();
    let mut settings = settings(&url, &queue);
    settings.redis.url = redis.to_owned();
    settings.queue_redis.url = redis.to_owned();
    let conn = domain::queue::connection(&settings.queue_redis).expect("queue connection");
    let mut storage = domain::queue::storage(conn, &queue);
    let worker = order_worker::spawn(settings);

    let mut waits = Vec::new();
    for i in 0..jobs {
        // Irregular gaps, so pushes land at every phase of the poll tick.
        tokio::time::sleep(Duration::from_millis(37 + (i * 53) % 211)).await;
        let order = job(&format!("idle-{i}"));
        let sql = format!(
            "SELECT count(*) AS n FROM orders WHERE id = '{}'",
            order.order_id
        );
        let pushed = std::time::Instant::now();
        storage
            .push_task(TaskBuilder::new(single(order)).build())
            .await
            .expect("push");
        wait_for_count(&url, &sql, 1, Duration::from_secs(40)).await;
        waits.push(pushed.elapsed());
    }
    worker.stop().await.expect("worker stops cleanly");
    waits
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_worker_picks_up_every_job_within_a_second() {
    let waits = pick_up_waits(&redis_url(), 40).await;

    let slowest = waits.iter().max().copied().unwrap_or_default();
    assert!(
        slowest < Duration::from_secs(1),
        "slowest pick-up {slowest:?}: {waits:?}"
    );
}
