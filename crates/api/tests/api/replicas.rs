//! `REDIS_MIN_REPLICA_ACKS`: a 201 only once the purchase reached a
//! replica, so a failover to that replica cannot take it back; without the
//! acknowledgement a fast 503, and the retry finds the order if it stood.

use std::time::{Duration, Instant};

use serde_json::Value;
use test_support::PrivateRedis;

use crate::helpers::{spawn_app_with, TestConfig};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_201_waits_for_a_replica_and_a_replica_that_does_not_answer_gives_a_fast_503() {
    let primary = PrivateRedis::start();
    let replica = PrivateRedis::start_replica_of(&primary);
    let config = TestConfig::active(5)
        .set("REDIS_URL", primary.url())
        .set("REDIS_MIN_REPLICA_ACKS", 1)
        .set("REDIS_REPLICA_ACK_TIMEOUT_MS", 100);
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
    assert!(took < Duration::from_secs(1), "answered in {took:?}");
    // The purchase stood on the primary: the retry is told so, with it.
    let retry = app.purchase("unacked").await;
    assert_eq!(retry.status(), 409);
    let body: Value = retry.json().await.expect("json");
    assert!(body["orderId"].is_string(), "{body}");
    assert_eq!(app.purchase("after").await.status(), 201);
}
