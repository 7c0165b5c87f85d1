use serde_json::Value;

use crate::helpers::{redis_get, spawn_app, spawn_app_with, TestConfig};

#[tokio::test]
async fn purchase_returns_201_with_the_seeds_body() {
    let app = spawn_app().await;

    let response = app.purchase("buyer-1").await;

    assert_eq!(response.status(), 201);
    let body: Value = response.json().await.expect("json");
    assert_eq!(body["success"], true);
    assert_eq!(body["message"], "Purchase confirmed!");
    let order_id = body["orderId"].as_str().expect("orderId");
    assert!(uuid::Uuid::parse_str(order_id).is_ok());
}

#[tokio::test]
async fn a_second_purchase_of_the_same_user_returns_409_with_the_first_order() {
    let app = spawn_app().await;
    let first: Value = app.purchase("dup-user").await.json().await.expect("json");

    let response = app.purchase("dup-user").await;

    assert_eq!(response.status(), 409);
    let body: Value = response.json().await.expect("json");
    assert_eq!(body["statusCode"], 409);
    assert_eq!(body["message"], "You have already purchased this item.");
    assert_eq!(body["error"], "Conflict");
    assert_eq!(body["path"], "/api/purchases");
    assert_eq!(body["orderId"], first["orderId"]);
    assert_eq!(app.sale_status().await["stockRemaining"], 9);
}

#[tokio::test]
async fn purchase_returns_410_once_stock_is_gone() {
    let app = spawn_app_with(TestConfig::active(1)).await;
    assert_eq!(app.purchase("last-buyer").await.status(), 201);

    let response = app.purchase("too-late").await;

    assert_eq!(response.status(), 410);
    let body: Value = response.json().await.expect("json");
    assert_eq!(body["message"], "Sorry, the item is sold out.");
    assert_eq!(body["error"], "Gone");
    assert_eq!(redis_get(&app.keys().stock()).await.as_deref(), Some("0"));
}

#[tokio::test]
async fn an_earlier_buyer_still_gets_409_after_the_sale_sold_out() {
    let app = spawn_app_with(TestConfig::active(1)).await;
    assert_eq!(app.purchase("early").await.status(), 201);
    assert_eq!(app.purchase("other").await.status(), 410);

    assert_eq!(app.purchase("early").await.status(), 409);
}

#[tokio::test]
async fn purchase_status_is_false_for_an_unknown_user() {
    let app = spawn_app().await;

    let response = app.purchase_status("nobody-here").await;

    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.expect("json");
    assert_eq!(body["purchased"], false);
    assert_eq!(body["userId"], "nobody-here");
    assert!(body.get("orderId").is_none());
}

#[tokio::test]
async fn purchase_status_shows_the_order_right_after_the_purchase() {
    let app = spawn_app().await;
    let bought: Value = app
        .purchase("status-check")
        .await
        .json()
        .await
        .expect("json");

    let body: Value = app
        .purchase_status("status-check")
        .await
        .json()
        .await
        .expect("json");

    assert_eq!(body["purchased"], true);
    assert_eq!(body["userId"], "status-check");
    assert_eq!(body["orderId"], bought["orderId"]);
    assert!(body["purchasedAt"]
        .as_str()
        .is_some_and(|t| t.ends_with('Z')));
}

#[tokio::test]
async fn stock_drops_by_one_per_purchase() {
    let app = spawn_app().await;

    for i in 0..3 {
        assert_eq!(app.purchase(&format!("stock-{i}")).await.status(), 201);
    }

    assert_eq!(app.sale_status().await["stockRemaining"], 7);
}

#[tokio::test]
async fn the_ledger_records_the_order_id_the_api_answered() {
    let app = spawn_app().await;
    let body: Value = app
        .purchase("ledger-user")
        .await
        .json()
        .await
        .expect("json");

    let entry = crate::helpers::redis()
        .await
        .hget::<Option<String>, _, _>(app.keys().buyers(), "ledger-user")
        .await
        .expect("HGET")
        .expect("ledger entry");

    let order_id = body["orderId"].as_str().expect("orderId");
    assert!(entry.starts_with(&format!("{order_id}|")), "{entry}");
}

use fred::prelude::HashesInterface;

#[tokio::test]
async fn once_sold_out_the_api_answers_non_buyers_without_redis() {
    let app = spawn_app_with(TestConfig::active(2)).await;
    let first: Value = app.purchase("so-1").await.json().await.expect("json");
    assert_eq!(app.purchase("so-2").await.status(), 201);
    let scripts = |scrape: &str| {
        crate::helpers::sample(
            scrape,
            "flash_sale_redis_command_duration_seconds_count",
            &[("command", "purchase")],
        )
        .unwrap_or(0.0)
    };
    // The buyer set loads in the background after the last unit sold.
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let before = app.get("/metrics").await.text().await.expect("metrics");

    let mut late = Vec::new();
    for i in 0..20 {
        late.push(
            app.purchase(&format!("so-late-{i}"))
                .await
                .status()
                .as_u16(),
        );
    }
    let after_late = app.get("/metrics").await.text().await.expect("metrics");
    let again = app.purchase("so-1").await;

    let after = app.get("/metrics").await.text().await.expect("metrics");
    assert!(late.iter().all(|s| *s == 410), "{late:?}");
    assert_eq!(
        scripts(&after_late),
        scripts(&before),
        "no purchase script ran for the late shoppers"
    );
    assert_eq!(
        again.status(),
        409,
        "an earlier buyer is never told sold out"
    );
    let body: Value = again.json().await.expect("json");
    assert_eq!(
        body["orderId"], first["orderId"],
        "the order comes from Redis"
    );
    assert_eq!(scripts(&after), scripts(&after_late) + 1.0);
}
