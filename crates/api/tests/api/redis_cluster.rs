//! The inventory on a 3-primary Redis Cluster, the order queue on its own
//! standalone Redis (`REDIS_QUEUE_URL`): the scripts run unchanged because
//! every key of a sale shares the hash tag `{sale:ID}`.

use std::collections::{BTreeMap, HashMap, HashSet};

use chrono::Utc;
use domain::{LedgerEntry, OrderId, SaleId, SaleKeys};
use futures::StreamExt;
use serde_json::Value;

use crate::{
    helpers::{count, create_database, redis_url, spawn_app_with, wait_for_orders, TestConfig},
    persistence::{assert_persisted_by_jobs, persisted_by, worker_settings},
};
use test_support::PrivateRedisCluster;

fn on_cluster(config: TestConfig, cluster: &PrivateRedisCluster, database: &str) -> TestConfig {
    config
        .set("REDIS_URL", cluster.url())
        .set("REDIS_QUEUE_URL", redis_url())
        .set("DATABASE_URL", database)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_burst_on_a_three_primary_cluster_sells_exactly_the_stock() {
    let cluster = PrivateRedisCluster::start(3);
    let database = create_database().await;
    let config = on_cluster(TestConfig::active(100), &cluster, &database);
    let worker = order_worker::spawn(worker_settings(&config));
    let app = spawn_app_with(config).await;

    let answers: Vec<(u16, String, Option<String>)> = futures::stream::iter(0..300)
        .map(|i| {
            let app = &app;
            async move {
                let user = format!("buyer-{i}");
                let response = app.purchase(&user).await;
                let status = response.status().as_u16();
                let body: Value = response.json().await.expect("json");
                (status, user, body["orderId"].as_str().map(str::to_owned))
            }
        })
        .buffer_unordered(64)
        .collect()
        .await;
    let statuses: Vec<u16> = answers.iter().map(|(status, ..)| *status).collect();
    let winner = answers
        .iter()
        .find(|(status, ..)| *status == 201)
        .map(|(_, user, _)| user.clone())
        .expect("someone bought");
    let again = app.purchase(&winner).await.status().as_u16();
    let rows = wait_for_orders(&database, &app.config.sale_id(), 100).await;
    worker.stop().await.expect("worker stops cleanly");

    assert_eq!(count(&statuses, 201), 100, "{statuses:?}");
    assert_eq!(count(&statuses, 410), 200, "{statuses:?}");
    assert_eq!(
        again, 409,
        "a buyer's second attempt is refused with their order"
    );
    assert_eq!(app.sale_status().await["stockRemaining"], 0);
    let confirmed: BTreeMap<&str, &str> = answers
        .iter()
        .filter(|(status, ..)| *status == 201)
        .filter_map(|(_, user, order)| Some((order.as_deref()?, user.as_str())))
        .collect();
    let persisted: BTreeMap<&str, &str> = rows
        .iter()
        .map(|r| (r.id.as_str(), r.user_id.as_str()))
        .collect();
    assert_eq!(
        persisted, confirmed,
        "the rows are the orders answered 201, each with its buyer"
    );
    assert_persisted_by_jobs(100);
    let keys = app.keys();
    assert_eq!(cluster.cli(&["hlen", &keys.buyers()]), "100");
    let homes: HashSet<u16> = [keys.meta(), keys.stock(), keys.buyers()]
        .iter()
        .map(|key| cluster.port_of(key))
        .collect();
    assert_eq!(homes.len(), 1, "a sale's keys share one slot");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_reconciler_finds_ledgers_on_every_primary() {
    let cluster = PrivateRedisCluster::start(3);
    let database = create_database().await;
    let prefix = format!("test-{}", uuid::Uuid::new_v4().simple());
    // Sales until every primary holds at least one ledger.
    let mut sales_by_port: HashMap<u16, SaleId> = HashMap::new();
    for i in 0..200 {
        let sale = SaleId::parse(&format!("{prefix}-{i}")).expect("valid");
        let port = cluster.port_of(&SaleKeys::new(&sale).buyers());
        sales_by_port.entry(port).or_insert(sale);
        if sales_by_port.len() == cluster.ports.len() {
            break;
        }
    }
    assert_eq!(sales_by_port.len(), 3, "sales on every primary");
    for sale in sales_by_port.values() {
        let orphan = LedgerEntry {
            order_id: OrderId::new(),
            purchased_at: Utc::now(),
        };
        let buyers = SaleKeys::new(sale).buyers();
        assert_eq!(
            cluster.cli(&["hset", &buyers, "orphan-buyer", &orphan.encode()]),
            "1"
        );
    }

    let config = on_cluster(TestConfig::active(1), &cluster, &database)
        .set("RECONCILE_SALES", format!("{prefix}-*"))
        .set("RECONCILE_GRACE_MS", 0);
    let worker = order_worker::spawn(worker_settings(&config));
    let mut found = 0;
    for sale in sales_by_port.values() {
        found += wait_for_orders(&database, sale, 1).await.len();
    }
    worker.stop().await.expect("worker stops cleanly");

    assert_eq!(found, 3, "one order per ledger, whichever primary holds it");
    assert_eq!(
        persisted_by("reconciler"),
        3,
        "the reconciler persisted them"
    );
}
