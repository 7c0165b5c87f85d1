use fred::prelude::KeysInterface;
use serde_json::Value;

use crate::helpers::{redis, redis_get, spawn_app_with, TestConfig};

#[tokio::test]
async fn a_restarted_api_keeps_the_stock() {
    let config = TestConfig::active(5);
    let sale = config.sale_id();
    let first = spawn_app_with(config).await;
    first.purchase("before-restart-1").await;
    first.purchase("before-restart-2").await;
    first.stop().await;

    let restarted = spawn_app_with(TestConfig::active(5).set("SALE_ID", &sale)).await;

    let status = restarted.sale_status().await;
    assert_eq!(status["stockRemaining"], 3);
    assert_eq!(status["totalStock"], 5);
    assert_eq!(restarted.purchase("before-restart-1").await.status(), 409);
}

#[tokio::test]
async fn a_second_replica_with_other_settings_never_resets_the_sale() {
    let config = TestConfig::active(3);
    let sale = config.sale_id();
    let first = spawn_app_with(config).await;
    first.purchase("one").await;

    let second = spawn_app_with(TestConfig::active(50).set("SALE_ID", &sale)).await;

    let status = second.sale_status().await;
    assert_eq!(status["totalStock"], 3);
    assert_eq!(status["stockRemaining"], 2);
}

#[tokio::test]
async fn replicas_starting_at_once_arm_the_sale_once() {
    let config = TestConfig::active(4);
    let sale = config.sale_id();
    let apps = futures::future::join_all(
        (0..4).map(|_| spawn_app_with(TestConfig::active(4).set("SALE_ID", &sale))),
    )
    .await;
    drop(config);

    for (i, app) in apps.iter().enumerate() {
        app.purchase(&format!("replica-buyer-{i}")).await;
    }

    assert_eq!(apps[0].sale_status().await["stockRemaining"], 0);
    assert_eq!(apps[3].purchase("fifth").await.status(), 410);
}

#[tokio::test]
async fn a_sale_missing_from_redis_answers_503_and_is_not_recreated() {
    let app = spawn_app_with(TestConfig::active(5)).await;
    let keys = app.keys();
    let _: i64 = redis()
        .await
        .del(vec![keys.stock(), keys.meta(), keys.buyers()])
        .await
        .expect("DEL");

    let response = app.purchase("after-loss").await;

    assert_eq!(response.status(), 503);
    let body: Value = response.json().await.expect("json");
    assert_eq!(body["statusCode"], 503);
    assert_eq!(body["error"], "Service Unavailable");
    assert_eq!(
        redis_get(&keys.stock()).await,
        None,
        "stock must not be re-created"
    );
    assert_eq!(app.get("/api/sale/status").await.status(), 503);
}
