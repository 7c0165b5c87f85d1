//! Redis losing part of a sale: keys vanishing while it is armed, a ledger
//! or meta gone with the stock still there, ledger entries lost (a failover
//! to a replica that lagged). None of it may sell a unit twice or leave a
//! buyer with a second 201.

use std::time::Duration;

use api::{
    arming::{self, Wanted},
    inventory::Inventory,
    Settings,
};
use domain::SaleKeys;
use fred::prelude::{HashesInterface, KeysInterface, LuaInterface};
use serde_json::Value;

use crate::{
    helpers::{
        create_database, forget_sale, redis, redis_get, sale_with_orders, spawn_app_with, TestApp,
        TestConfig,
    },
    persistence::worker_settings,
    support::spawn_api_process,
};

/// Purchases `user` every 100 ms until the answer's status is not
/// `status`, for at most `limit`; returns the last answer.
async fn purchase_until_not(
    app: &TestApp,
    user: &str,
    status: u16,
    limit: Duration,
) -> (u16, Value) {
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        let response = app.purchase(user).await;
        let got = response.status().as_u16();
        let body: Value = response.json().await.unwrap_or(Value::Null);
        if got != status || tokio::time::Instant::now() > deadline {
            return (got, body);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn arming_while_the_keys_vanish_never_resets_the_stock_to_full() {
    let (config, database, _bodies, worker) =
        sale_with_orders(5, &["race-1", "race-2", "race-3"]).await;
    worker.stop().await.expect("worker stops");
    let settings = Settings::from_env(&config.env()).expect("settings");
    let keys = SaleKeys::new(&config.sale_id());
    let inventory = Inventory::connect(&settings.redis, 2, keys.clone())
        .await
        .expect("connect");
    let standing = arming::Standing {
        db: api::db::pool(&settings.database),
        queue: domain::queue::connection(&settings.queue_redis).expect("queue connection"),
        queue_name: settings.queue.clone(),
        unpushed: Default::default(),
        push_limit: Duration::from_secs(1),
    };
    let wanted = Wanted {
        id: config.sale_id(),
        total: 5,
        window: settings.sale.window,
    };
    // A deleter that reads the stock and deletes the sale in one step, as
    // fast as it can: whatever stock arming ever wrote, it sees.
    let stop = tokio_util::sync::CancellationToken::new();
    let deleter = {
        let (stop, keys) = (stop.clone(), keys.clone());
        tokio::spawn(async move {
            let redis = redis().await;
            let mut seen = Vec::new();
            while !stop.is_cancelled() {
                let stock: Option<String> = redis
                    .eval(
                        "local s = redis.call('GET', KEYS[1]) redis.call('DEL', KEYS[1], KEYS[2], KEYS[3]) return s",
                        vec![keys.stock(), keys.meta(), keys.buyers()],
                        Vec::<String>::new(),
                    )
                    .await
                    .expect("EVAL");
                seen.extend(stock);
                tokio::task::yield_now().await;
            }
            seen
        })
    };

    for _ in 0..300 {
        let _ = arming::ensure_armed(&inventory, &standing, &wanted).await;
    }
    stop.cancel();
    let seen = deleter.await.expect("deleter");

    assert!(!seen.is_empty(), "arming ran while the keys were deleted");
    assert!(
        seen.iter().all(|stock| stock == "2"),
        "every stock written is total minus the 3 persisted orders: {seen:?}"
    );
    drop(database);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_sale_whose_ledger_is_lost_gives_no_second_201_and_is_rebuilt_from_postgres() {
    let (config, _db, bodies, worker) = sale_with_orders(5, &["ll-1", "ll-2", "ll-3"]).await;
    let app = spawn_app_with(config).await;
    let _: i64 = redis().await.del(app.keys().buyers()).await.expect("DEL");

    let first = app.purchase("ll-2").await.status();
    let (status, body) = purchase_until_not(&app, "ll-2", 503, Duration::from_secs(5)).await;

    assert_eq!(first, 503, "a stock without its ledger is not sold from");
    assert_eq!(status, 409, "the earlier buyer is known again");
    assert_eq!(body["orderId"], bodies[1]["orderId"]);
    assert_eq!(app.sale_status().await["stockRemaining"], 2);
    worker.stop().await.expect("worker stops");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_sale_whose_meta_is_lost_is_repaired_by_a_new_api() {
    let (config, _db, bodies, worker) = sale_with_orders(5, &["ml-1", "ml-2"]).await;
    let keys = SaleKeys::new(&config.sale_id());
    let _: i64 = redis().await.del(keys.meta()).await.expect("DEL");

    let app = spawn_app_with(config).await;

    let status = app.sale_status().await;
    assert_eq!(status["totalStock"], 5);
    assert_eq!(status["stockRemaining"], 3);
    let again = app.purchase("ml-1").await;
    assert_eq!(again.status(), 409);
    let body: Value = again.json().await.expect("json");
    assert_eq!(body["orderId"], bodies[0]["orderId"]);
    worker.stop().await.expect("worker stops");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rows_whose_ledger_entries_vanished_are_put_back_and_taken_out_of_the_stock() {
    let (config, database, bodies, worker) = sale_with_orders(5, &["fo-1", "fo-2", "fo-3"]).await;
    worker.stop().await.expect("worker stops");
    // A failover to a replica that missed the last purchase: its ledger
    // entry and its stock decrement are both gone, the sale is whole.
    let keys = SaleKeys::new(&config.sale_id());
    let redis = redis().await;
    let _: i64 = redis.hdel(keys.buyers(), "fo-3").await.expect("HDEL");
    let _: i64 = redis.incr(keys.stock()).await.expect("INCR");

    let config = config
        .set("RECONCILE_GRACE_MS", 0)
        .set("DATABASE_URL", &database);
    let worker = order_worker::spawn(worker_settings(&config));
    let mut restored = None;
    for _ in 0..50 {
        restored = redis
            .hget::<Option<String>, _, _>(keys.buyers(), "fo-3")
            .await
            .expect("HGET");
        if restored.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let app = spawn_app_with(config).await;
    let retry = app.purchase("fo-3").await;
    worker.stop().await.expect("worker stops");

    let order = bodies[2]["orderId"].as_str().expect("orderId");
    assert!(
        restored.is_some_and(|entry| entry.starts_with(order)),
        "the ledger holds fo-3's order again"
    );
    assert_eq!(app.sale_status().await["stockRemaining"], 2);
    assert_eq!(retry.status(), 409);
    let body: Value = retry.json().await.expect("json");
    assert_eq!(body["orderId"], order);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_replica_that_saw_the_sale_sold_out_sells_again_once_a_rebuild_brings_stock_back() {
    let database = create_database().await;
    orders::migrate(&database).await.expect("migrate");
    let config = TestConfig::active(2).set("DATABASE_URL", &database);
    let replica = spawn_app_with(TestConfig {
        vars: config.vars.clone(),
    })
    .await;
    let kept: Value = replica
        .purchase("so-kept")
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(replica.purchase("so-lost").await.status(), 201);
    assert_eq!(replica.purchase("so-late").await.status(), 410);
    // Redis loses the sale and the queue with only the first order
    // persisted: the rebuild puts one unit back on sale.
    insert_order(&database, &config, "so-kept", &kept["orderId"]).await;
    forget_sale(&replica.keys()).await;
    let queue = config.get("ORDER_QUEUE").expect("ORDER_QUEUE");
    let _: i64 = redis()
        .await
        .del(format!("{queue}:data"))
        .await
        .expect("DEL");
    let other = spawn_app_with(TestConfig {
        vars: config.vars.clone(),
    })
    .await;
    assert_eq!(other.sale_status().await["stockRemaining"], 1);

    let (status, _) = purchase_until_not(&replica, "so-late", 410, Duration::from_secs(5)).await;

    assert_eq!(
        status, 201,
        "the replica sells the unit the rebuild brought back"
    );
    assert_eq!(other.purchase("so-other").await.status(), 410);
}

async fn insert_order(database: &str, config: &TestConfig, user: &str, order: &Value) {
    use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
    let mut conn = AsyncPgConnection::establish(database)
        .await
        .expect("connect");
    diesel::sql_query(
        "INSERT INTO orders (id, sale_id, user_id, created_at) VALUES ($1::uuid, $2, $3, now())",
    )
    .bind::<diesel::sql_types::Text, _>(order.as_str().expect("orderId"))
    .bind::<diesel::sql_types::Text, _>(config.sale_id().as_str())
    .bind::<diesel::sql_types::Text, _>(user)
    .execute(&mut conn)
    .await
    .expect("insert");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_sold_out_replica_judges_the_end_on_redis_clock_not_its_own() {
    // The sale ends in an hour; this replica's clock is two hours ahead.
    let config = TestConfig::active(1).set(
        "SALE_END_TIME",
        (chrono::Utc::now() + chrono::Duration::hours(1)).to_rfc3339(),
    );
    let (_api, base) = spawn_api_process(&config, &[("FLASH_SALE_CLOCK_SKEW_MS", "7200000")]).await;
    let client = reqwest::Client::new();
    let buy = |user: &'static str| {
        let (client, base) = (client.clone(), base.clone());
        async move {
            client
                .post(format!("{base}/api/purchases"))
                .json(&serde_json::json!({ "userId": user }))
                .send()
                .await
                .expect("purchase")
                .status()
                .as_u16()
        }
    };

    let scripts = || {
        let (client, base) = (client.clone(), base.clone());
        async move {
            crate::helpers::sample(
                &crate::support::scrape_metrics(&client, &base).await,
                "flash_sale_redis_command_duration_seconds_count",
                &[("command", "purchase")],
            )
            .unwrap_or(0.0)
        }
    };

    let first = buy("sk-1").await;
    // The buyer set loads in the background; then late shoppers are
    // answered in-process, on the clock the freeze took from Redis.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before = scripts().await;
    let statuses = [first, buy("sk-2").await, buy("sk-3").await];
    let after = scripts().await;
    let skewed = crate::support::replica_clock(&client, &base).await - chrono::Utc::now();

    assert!(
        (skewed - chrono::Duration::hours(2)).num_seconds().abs() < 60,
        "the replica's clock runs two hours ahead: {skewed}"
    );
    assert_eq!(after, before, "the late shoppers were answered in-process");
    assert_eq!(statuses, [201, 410, 410], "sold out, not ended");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_ended_sale_whose_keys_expired_still_answers_from_postgres() {
    let database = create_database().await;
    let ends = chrono::Utc::now() + chrono::Duration::seconds(2);
    let config = TestConfig::active(3)
        .set("DATABASE_URL", &database)
        .set("SALE_END_TIME", ends.to_rfc3339());
    let worker = order_worker::spawn(worker_settings(&config));
    let app = spawn_app_with(TestConfig {
        vars: config.vars.clone(),
    })
    .await;
    let bought: Value = app.purchase("ret-1").await.json().await.expect("json");
    crate::helpers::wait_for_orders(&database, &config.sale_id(), 1).await;
    worker.stop().await.expect("worker stops");
    let wait = (ends - chrono::Utc::now()).to_std().unwrap_or_default();
    tokio::time::sleep(wait + Duration::from_millis(200)).await;
    // What the reconciler does a retention after the end.
    forget_sale(&app.keys()).await;

    let status = app.get("/api/sale/status").await;
    let lookup: Value = app
        .purchase_status("ret-1")
        .await
        .json()
        .await
        .expect("json");
    let late = app.purchase("ret-2").await;

    assert_eq!(status.status(), 200);
    let status: Value = status.json().await.expect("json");
    assert_eq!(status["status"], "ended");
    assert_eq!(lookup["purchased"], true);
    assert_eq!(lookup["orderId"], bought["orderId"]);
    assert_eq!(late.status(), 400);
    let body: Value = late.json().await.expect("json");
    assert_eq!(body["message"], "The sale has ended.");
}

/// A sale sold out to 200,000 buyers: a replica learns the buyer set a page
/// at a time in the background, never with one reply of the whole ledger
/// (make chaos saw HGETALLs of 384,000 buyers time out again and again,
/// saturate Redis and leave buyers without answers), and answers late
/// shoppers in-process once it has.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_sale_sold_out_to_many_buyers_is_learned_a_page_at_a_time() {
    let redis = test_support::PrivateRedis::start();
    let config = TestConfig::active(200_000).set("REDIS_URL", redis.url());
    let keys = SaleKeys::new(&config.sale_id());
    let app = spawn_app_with(config).await;
    // The whole stock sold: 200,000 ledger entries, stock 0 (one Lua call
    // per 10,000 buyers; the sale stays whole).
    let fill = "local base = tonumber(ARGV[1]) for i = base, base + 9999 do \
                redis.call('HSET', KEYS[1], 'bulk-' .. i, ARGV[2]) end \
                redis.call('DECRBY', KEYS[2], 10000) return 1";
    let entry = format!("{}|1772359200123", domain::OrderId::new());
    for chunk in 0..20 {
        let base = (chunk * 10_000).to_string();
        redis.cli(&[
            "eval",
            fill,
            "2",
            &keys.buyers(),
            &keys.stock(),
            &base,
            &entry,
        ]);
    }
    assert_eq!(redis.cli(&["get", &keys.stock()]), "0");

    // Late shoppers keep coming until a round of them costs no script call
    // (the replica has learned the sale; how long that takes depends on the
    // machine, so the rounds are bounded by time, not by count).
    let mut statuses = Vec::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    for round in 0.. {
        let before = evalsha_calls(&redis.cli(&["info", "commandstats"]));
        let answers = futures::future::join_all(
            (0..20).map(|i| app.purchase_status_code(format!("late-{round}-{i}"))),
        )
        .await;
        statuses.extend(answers);
        let after = evalsha_calls(&redis.cli(&["info", "commandstats"]));
        if (round >= 10 && after == before) || std::time::Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let stats = redis.cli(&["info", "commandstats"]);
    let scripts_before = evalsha_calls(&stats);
    let last =
        futures::future::join_all((0..50).map(|i| app.purchase_status_code(format!("last-{i}"))))
            .await;
    let scripts_after = evalsha_calls(&redis.cli(&["info", "commandstats"]));

    assert!(
        statuses.iter().chain(&last).all(|s| *s == 410),
        "every late shopper is told sold out"
    );
    assert!(
        !stats.contains("cmdstat_hgetall"),
        "never one reply of the whole ledger"
    );
    assert!(
        stats.contains("cmdstat_hscan"),
        "the buyer set was read a page at a time"
    );
    assert_eq!(
        scripts_after, scripts_before,
        "once learned, late shoppers cost Redis nothing"
    );
}

fn evalsha_calls(commandstats: &str) -> u64 {
    commandstats
        .lines()
        .find(|l| l.starts_with("cmdstat_evalsha:"))
        .and_then(|l| l.split("calls=").nth(1))
        .and_then(|rest| rest.split(',').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

/// In one step (no reconciler pass in between): a failover loses `lost`'s
/// entry and stock decrement and rolls the last writer back to `previous`,
/// then `newcomer` buys and its job never leaves the api (the push failed).
/// The ledger's size and the stock end as they were. Returns the new order.
async fn lose_one_and_sell_one_without_a_job(
    keys: &SaleKeys,
    lost: &str,
    previous: &str,
    newcomer: &str,
) -> String {
    let entry = domain::LedgerEntry {
        order_id: domain::OrderId::new(),
        purchased_at: chrono::Utc::now() - chrono::Duration::seconds(30),
    };
    let script = "redis.call('HDEL', KEYS[1], ARGV[1]) \
                  redis.call('HSET', KEYS[2], 'last', ARGV[2]) \
                  redis.call('HSET', KEYS[1], ARGV[3], ARGV[4]) \
                  redis.call('HSET', KEYS[2], 'last', ARGV[5]) return 1";
    let _: i64 = redis()
        .await
        .eval(
            script,
            vec![keys.buyers(), keys.meta()],
            vec![
                lost.to_owned(),
                previous.to_owned(),
                newcomer.to_owned(),
                entry.encode(),
                entry.order_id.to_string(),
            ],
        )
        .await
        .expect("EVAL");
    entry.order_id.to_string()
}

/// Changes that leave the ledger's size and the row count as they were (a
/// buyer lost in a failover, another's purchase with no job) must still
/// make the reconciler look: the first is put back, the second persisted.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn changes_that_cancel_out_in_the_counts_are_still_reconciled() {
    let (config, database, bodies, worker) = sale_with_orders(5, &["co-1", "co-2", "co-3"]).await;
    worker.stop().await.expect("worker stops");
    let config = config.set("RECONCILE_GRACE_MS", 0);
    let reconciling = order_worker::spawn(worker_settings(&config));
    // Let passes find ledger and rows in agreement.
    let passes =
        || crate::persistence::counter("flash_sale_reconciler_passes_total", &[("result", "ok")]);
    let started = passes();
    while passes() < started + 3 {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let keys = SaleKeys::new(&config.sale_id());

    let previous = bodies[1]["orderId"].as_str().expect("orderId");
    let unpushed = lose_one_and_sell_one_without_a_job(&keys, "co-3", previous, "co-new").await;
    let rows = crate::helpers::wait_for_orders_within(
        &database,
        &config.sale_id(),
        4,
        Duration::from_secs(5),
    )
    .await;
    let restored: Option<String> = redis()
        .await
        .hget(keys.buyers(), "co-3")
        .await
        .expect("HGET");
    reconciling.stop().await.expect("worker stops");

    assert!(
        rows.iter().any(|r| r.id == unpushed),
        "the purchase with no job is persisted"
    );
    let lost = bodies[2]["orderId"].as_str().expect("orderId");
    assert!(
        restored.is_some_and(|e| e.starts_with(lost)),
        "the lost buyer is back"
    );
    assert_eq!(
        redis_get(&keys.stock()).await.as_deref(),
        Some("1"),
        "5 - 4 buyers"
    );
}

/// A sale whose ledger Redis lost while its orders were still queued (no
/// worker had persisted them): the rebuild takes them from the queue, so
/// none of their units is sold again and their buyers get 409.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_lost_ledger_is_rebuilt_from_the_queue_as_well_as_from_postgres() {
    let database = create_database().await;
    let config = TestConfig::active(5).set("DATABASE_URL", &database);
    let app = spawn_app_with(config).await;
    let mut orders = Vec::new();
    for user in ["qd-1", "qd-2", "qd-3"] {
        let body: Value = app.purchase(user).await.json().await.expect("json");
        orders.push(body["orderId"].clone());
    }
    let _: i64 = redis().await.del(app.keys().buyers()).await.expect("DEL");

    let (status, body) = purchase_until_not(&app, "qd-2", 503, Duration::from_secs(5)).await;

    assert_eq!(status, 409, "a queued order's buyer cannot buy again");
    assert_eq!(body["orderId"], orders[1]);
    assert_eq!(app.sale_status().await["stockRemaining"], 2);
}

/// A ledger lost right after a 201 whose push has not gone out yet (the
/// push failpoint holds it for 500 ms): the order is in neither the queue
/// nor PostgreSQL, so the rebuild waits for the api's own pushes before it
/// reads the queue, and the buyer still gets 409 with their order.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_ledger_lost_before_the_push_landed_waits_for_the_push() {
    let database = create_database().await;
    let config = TestConfig::active(5).set("DATABASE_URL", &database);
    let (_api, base) =
        spawn_api_process(&config, &[("FLASH_SALE_FAILPOINT", "pause:before-push")]).await;

    let (first, bought) = buy_at(&base, "unpushed").await;
    let keys = SaleKeys::new(&config.sale_id());
    let _: i64 = redis().await.del(keys.buyers()).await.expect("DEL");
    let queued_when_lost = queued_orders(&config).await;
    let again = buy_at_until_not_503(&base, "unpushed").await;

    assert_eq!(first, 201);
    assert_eq!(
        queued_when_lost, 0,
        "the push was still held when the ledger went"
    );
    assert_eq!(again.0, 409, "the unpushed order's buyer cannot buy again");
    assert_eq!(again.1["orderId"], bought["orderId"]);
}

/// The same loss a step earlier: after the script confirmed the order,
/// before it was handed to the pusher (the failpoint holds it there for
/// 500 ms). A lookup notices the lost ledger and starts the rebuild while
/// the order is held (a lookup does not queue behind the held batch, as a
/// purchase on its thread would); the rebuild must wait for it too.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_ledger_lost_between_the_script_and_the_hand_over_waits_for_the_order() {
    let database = create_database().await;
    let config = TestConfig::active(5).set("DATABASE_URL", &database);
    let (_api, base) = spawn_api_process(
        &config,
        &[("FLASH_SALE_FAILPOINT", "pause:after-purchase-script")],
    )
    .await;
    let keys = SaleKeys::new(&config.sale_id());
    let held = tokio::spawn({
        let base = base.clone();
        async move { buy_at(&base, "held").await }
    });
    let mut confirmed = false;
    for _ in 0..200 {
        let entry: Option<String> = redis()
            .await
            .hget(keys.buyers(), "held")
            .await
            .expect("HGET");
        if entry.is_some() {
            confirmed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let _: i64 = redis().await.del(keys.buyers()).await.expect("DEL");
    let lookup = reqwest::get(format!("{base}/api/purchases/someone-else"))
        .await
        .expect("lookup")
        .status()
        .as_u16();
    let answered_when_rebuilt = held.is_finished();
    let (first, bought) = held.await.expect("held purchase");
    let again = buy_at_until_not_503(&base, "held").await;

    assert!(confirmed, "the script wrote the ledger entry");
    assert_eq!(
        lookup, 503,
        "the lost ledger is noticed and the rebuild starts"
    );
    assert!(
        !answered_when_rebuilt,
        "the order was still held when the rebuild started"
    );
    assert_eq!(first, 201);
    assert_eq!(again.0, 409, "the held order's buyer cannot buy again");
    assert_eq!(again.1["orderId"], bought["orderId"]);
}

/// `user`'s purchase from the api at `base`: the status and the JSON body.
async fn buy_at(base: &str, user: &str) -> (u16, Value) {
    let response = reqwest::Client::new()
        .post(format!("{base}/api/purchases"))
        .json(&serde_json::json!({ "userId": user }))
        .send()
        .await
        .expect("purchase");
    let status = response.status().as_u16();
    (
        status,
        response.json::<Value>().await.unwrap_or(Value::Null),
    )
}

/// [`buy_at`] every 100 ms while it answers 503 (a rebuild under way), for
/// up to 5 s; the last answer.
async fn buy_at_until_not_503(base: &str, user: &str) -> (u16, Value) {
    let mut answer = buy_at(base, user).await;
    for _ in 0..50 {
        if answer.0 != 503 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        answer = buy_at(base, user).await;
    }
    answer
}

/// How many orders of `config`'s sale its order queue holds now.
async fn queued_orders(config: &TestConfig) -> usize {
    let settings = Settings::from_env(&config.env()).expect("settings");
    let mut queue = domain::queue::connection(&settings.queue_redis).expect("queue connection");
    domain::queue::orders_in_queue(&mut queue, &settings.queue, &config.sale_id())
        .await
        .expect("read the queue")
        .len()
}

/// A ledger entry that names another order than the buyer's row (Redis
/// confirmed the buyer twice after losing the first): the row stands and
/// the ledger is corrected to it, the stock untouched.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_ledger_entry_naming_another_order_than_the_row_is_corrected_to_the_row() {
    let (config, _database, bodies, worker) = sale_with_orders(5, &["wo-1", "wo-2"]).await;
    worker.stop().await.expect("worker stops");
    let keys = SaleKeys::new(&config.sale_id());
    let other = domain::LedgerEntry {
        order_id: domain::OrderId::new(),
        purchased_at: chrono::Utc::now(),
    };
    let _: i64 = redis()
        .await
        .hset(keys.buyers(), ("wo-2", other.encode()))
        .await
        .expect("HSET");

    let reconciling =
        order_worker::spawn(worker_settings(&config.set("RECONCILE_GRACE_MS", 600_000)));
    let row = bodies[1]["orderId"].as_str().expect("orderId").to_owned();
    let mut corrected = None;
    for _ in 0..50 {
        let held: Option<String> = redis()
            .await
            .hget(keys.buyers(), "wo-2")
            .await
            .expect("HGET");
        if held.as_deref().is_some_and(|e| e.starts_with(&row)) {
            corrected = held;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    reconciling.stop().await.expect("worker stops");

    assert!(
        corrected.is_some(),
        "the ledger names the row's order again"
    );
    assert_eq!(redis_get(&keys.stock()).await.as_deref(), Some("3"));
}

/// While a sale's ledger is lost a lookup cannot say "not purchased": it
/// answers 503 (and starts the rebuild), then the buyer's order.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_lookup_on_a_lost_ledger_waits_for_the_rebuild_instead_of_saying_no() {
    let (config, _db, bodies, worker) = sale_with_orders(5, &["lk-1", "lk-2"]).await;
    let app = spawn_app_with(config).await;
    let _: i64 = redis().await.del(app.keys().buyers()).await.expect("DEL");

    let first = app.purchase_status("lk-1").await.status();
    let mut found = Value::Null;
    for _ in 0..50 {
        let response = app.purchase_status("lk-1").await;
        if response.status() == 200 {
            found = response.json().await.expect("json");
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    worker.stop().await.expect("worker stops");

    assert_eq!(first, 503);
    assert_eq!(found["purchased"], true);
    assert_eq!(found["orderId"], bodies[0]["orderId"]);
}
