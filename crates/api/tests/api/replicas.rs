//! `REDIS_MIN_REPLICA_ACKS`: a 201 only once the purchase reached a
//! replica, so a failover to that replica cannot take it back; without the
//! acknowledgement a fast 503, and the retry finds the order if it stood.

use std::time::{Duration, Instant};

use serde_json::Value;
use test_support::{PrivateRedis, PrivateRedisCluster};

use crate::helpers::{spawn_app_with, TestConfig};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_201_waits_for_a_replica_and_a_replica_that_does_not_answer_gives_a_fast_503() {
    let primary = PrivateRedis::start();
    let replica = PrivateRedis::start_replica_of(&primary);
    // Stock to spare: purchases answered 503 may stand and take a unit.
    let config = TestConfig::active(100)
        .set("REDIS_URL", primary.url())
        .set("REDIS_MIN_REPLICA_ACKS", 1)
        // Long enough for a busy machine's replica, short enough to see.
        .set("REDIS_REPLICA_ACK_TIMEOUT_MS", 500);
    let app = spawn_app_with(config).await;

    let first = app.purchase("acked").await;
    assert_eq!(first.status(), 201, "the replica acknowledged");
    let first: Value = first.json().await.expect("json");
    let on_replica = replica.cli(&["HGET", &app.keys().buyers(), "acked"]);
    assert!(
        on_replica.starts_with(first["orderId"].as_str().expect("orderId")),
        "a 201's order is on the replica when it is answered: {on_replica:?}"
    );

    replica.pause();
    let asked = Instant::now();
    let unacked = app.purchase("unacked").await;
    let took = asked.elapsed();
    let status = unacked.status();
    let retry_after = unacked.headers().get("retry-after").cloned();
    replica.resume();

    assert_eq!(status, 503, "no replica acknowledged: never a 201");
    assert_eq!(
        retry_after.as_ref().and_then(|v| v.to_str().ok()),
        Some("1")
    );
    assert!(took < Duration::from_secs(2), "answered in {took:?}");
    // The purchase stood on the primary: the retry is told so, with it.
    let retry = app.purchase_until_not_503("unacked").await;
    assert_eq!(retry.status(), 409);
    let body: Value = retry.json().await.expect("json");
    assert!(body["orderId"].is_string(), "{body}");
    // Once the replica caught up, new buyers get 201s again.
    let mut after = 503;
    for i in 0..50 {
        after = app.purchase(&format!("after-{i}")).await.status().as_u16();
        if after == 201 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(after, 201);
}

/// On a cluster the `WAIT` must go to the primary that holds the sale's
/// slot (it ran the script): only that primary's replica is stopped here,
/// so a `WAIT` sent to any other primary would be acknowledged and turn
/// into a 201 the sale's replica never saw.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_a_cluster_the_acks_are_asked_of_the_sales_own_primary() {
    let cluster = PrivateRedisCluster::start_with_replicas(3, 1);
    let queue = PrivateRedis::start();
    let config = TestConfig::active(100)
        .set("REDIS_URL", cluster.url())
        .set("REDIS_QUEUE_URL", queue.url())
        .set("REDIS_MIN_REPLICA_ACKS", 1)
        .set("REDIS_REPLICA_ACK_TIMEOUT_MS", 300);
    let app = spawn_app_with(config).await;
    assert_eq!(app.purchase_until_not_503("acked").await.status(), 201);

    let replica = cluster.replica_of(cluster.port_of(&app.keys().stock()));
    cluster.pause(replica);
    let mut statuses = Vec::new();
    // A WAIT sent to a random primary would find this one 1 time in 3.
    for i in 0..4 {
        statuses.push(
            app.purchase(&format!("unacked-{i}"))
                .await
                .status()
                .as_u16(),
        );
    }
    cluster.resume(replica);

    assert_eq!(
        statuses, [503; 4],
        "the sale's replica is stopped: no purchase is confirmed"
    );
}
