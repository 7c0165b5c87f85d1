use std::time::Duration;

use domain::SaleKeys;
use serde_json::Value;

use crate::helpers::{
    forget_sale, redis_get, sale_with_orders, spawn_app_with, TestConfig, DEAD_DATABASE_URL,
};

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
async fn a_sale_missing_from_redis_stays_unarmed_while_postgres_cannot_be_asked() {
    let config = TestConfig::active(5);
    let sale = config.sale_id();
    spawn_app_with(config).await;
    let app = spawn_app_with(
        TestConfig::active(5)
            .set("SALE_ID", &sale)
            .set("DATABASE_URL", DEAD_DATABASE_URL)
            .set("DATABASE_CONNECT_TIMEOUT_SECONDS", 1),
    )
    .await;
    forget_sale(&app.keys()).await;

    let response = app.purchase("after-loss").await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let again = app.purchase("after-loss").await;

    assert_eq!(response.status(), 503);
    // The purchase handler writes this refusal itself: same headers and
    // body as the error middleware would.
    assert_eq!(response.headers()["retry-after"], "1");
    assert_eq!(response.headers()["content-type"], "application/json");
    let body: Value = response.json().await.expect("json");
    assert_eq!(body["statusCode"], 503);
    assert_eq!(body["error"], "Service Unavailable");
    assert_eq!(body["path"], "/api/purchases");
    assert_eq!(
        again.status(),
        503,
        "no selling without knowing the sale's orders"
    );
    assert_eq!(
        redis_get(&app.keys().stock()).await,
        None,
        "stock must not be re-created"
    );
    assert_eq!(app.get("/api/sale/status").await.status(), 503);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_sale_redis_lost_is_rebuilt_from_postgres_when_the_api_restarts() {
    let (config, _db, bodies, worker) = sale_with_orders(5, &["lost-1", "lost-2", "lost-3"]).await;
    forget_sale(&SaleKeys::new(&config.sale_id())).await;

    let app = spawn_app_with(config).await;

    let status = app.sale_status().await;
    assert_eq!(status["stockRemaining"], 2, "never restored to full");
    assert_eq!(status["totalStock"], 5);
    let again = app.purchase("lost-2").await;
    assert_eq!(again.status(), 409, "an earlier buyer cannot buy again");
    let body: Value = again.json().await.expect("json");
    assert_eq!(body["orderId"], bodies[1]["orderId"]);
    assert_eq!(app.purchase("new-1").await.status(), 201);
    assert_eq!(app.purchase("new-2").await.status(), 201);
    assert_eq!(app.purchase("new-3").await.status(), 410);
    worker.stop().await.expect("worker stops");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_running_api_re_arms_a_sale_redis_lost_by_itself() {
    let (config, _db, _bodies, worker) = sale_with_orders(4, &["kept-1", "kept-2"]).await;
    let app = spawn_app_with(config).await;
    forget_sale(&app.keys()).await;

    let noticed = app.purchase("during-loss").await;
    let mut healed = None;
    for _ in 0..50 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let response = app.purchase("during-loss").await;
        if response.status() != 503 {
            healed = Some(response.status().as_u16());
            break;
        }
    }

    assert_eq!(noticed.status(), 503);
    assert_eq!(healed, Some(201));
    assert_eq!(app.purchase("kept-1").await.status(), 409);
    assert_eq!(app.sale_status().await["stockRemaining"], 1);
    worker.stop().await.expect("worker stops");
}
