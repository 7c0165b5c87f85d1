use chrono::{DateTime, SecondsFormat, Utc};

use crate::helpers::{spawn_app, spawn_app_with, TestConfig};

#[tokio::test]
async fn status_has_every_field_with_the_seeds_types() {
    let app = spawn_app().await;

    let status = app.sale_status().await;

    assert_eq!(status["status"], "active");
    for field in ["startsAt", "endsAt"] {
        assert!(status[field].is_string(), "{field}");
    }
    assert!(status["stockRemaining"].is_u64());
    assert_eq!(status["totalStock"], 10);
}

#[tokio::test]
async fn status_dates_are_iso_strings_that_round_trip_like_javascripts() {
    let app = spawn_app().await;

    let status = app.sale_status().await;

    for field in ["startsAt", "endsAt"] {
        let raw = status[field].as_str().expect("string");
        let parsed: DateTime<Utc> = raw.parse().expect("ISO-8601");
        assert_eq!(parsed.to_rfc3339_opts(SecondsFormat::Millis, true), raw);
    }
    assert_eq!(status["startsAt"], "2020-01-01T00:00:00.000Z");
}

#[tokio::test]
async fn stock_remaining_stays_between_zero_and_total() {
    let app = spawn_app_with(TestConfig::active(2)).await;
    for user in ["a", "b", "c"] {
        app.purchase(user).await;
    }

    let status = app.sale_status().await;

    assert_eq!(status["stockRemaining"], 0);
    assert_eq!(status["totalStock"], 2);
}

#[tokio::test]
async fn an_upcoming_sale_says_so_and_refuses_purchases() {
    let config = TestConfig::active(5)
        .set("SALE_START_TIME", "2098-01-01T00:00:00Z")
        .set("SALE_END_TIME", "2099-01-01T00:00:00Z");
    let app = spawn_app_with(config).await;

    let status = app.sale_status().await;
    let response = app.purchase("early-bird").await;

    assert_eq!(status["status"], "upcoming");
    assert_eq!(response.status(), 400);
    let body: serde_json::Value = response.json().await.expect("json");
    assert_eq!(
        body["message"],
        "The sale has not started yet. Please wait."
    );
    assert_eq!(app.sale_status().await["stockRemaining"], 5);
}

#[tokio::test]
async fn an_ended_sale_says_so_and_refuses_purchases() {
    let config = TestConfig::active(5)
        .set("SALE_START_TIME", "2020-01-01T00:00:00Z")
        .set("SALE_END_TIME", "2020-01-02T00:00:00Z");
    let app = spawn_app_with(config).await;

    let status = app.sale_status().await;
    let response = app.purchase("late-comer").await;

    assert_eq!(status["status"], "ended");
    assert_eq!(response.status(), 400);
    let body: serde_json::Value = response.json().await.expect("json");
    assert_eq!(body["message"], "The sale has ended.");
    assert_eq!(body["error"], "Bad Request");
}

#[tokio::test]
async fn root_names_the_server_and_its_sale() {
    let app = spawn_app().await;

    let body: serde_json::Value = app.get("/").await.json().await.expect("json");

    assert_eq!(body["name"], "flash-sale-api");
    assert_eq!(body["saleId"], app.config.sale_id().as_str());
    assert!(body["version"].is_string());
}

#[tokio::test]
async fn a_purchase_shows_in_the_next_status_read_of_its_replica_at_once() {
    let app = spawn_app_with(TestConfig::active(5)).await;
    assert_eq!(app.sale_status().await["stockRemaining"], 5);

    app.purchase("seen-at-once").await;

    // Well inside the 50 ms a kept reading may answer for.
    assert_eq!(app.sale_status().await["stockRemaining"], 4);
}

#[tokio::test]
async fn another_replicas_sale_shows_within_fifty_milliseconds() {
    let config = TestConfig::active(5);
    let sale = config.sale_id();
    let first = spawn_app_with(config).await;
    let second = spawn_app_with(TestConfig::active(5).set("SALE_ID", &sale)).await;
    assert_eq!(first.sale_status().await["stockRemaining"], 5);

    second.purchase("bought-elsewhere").await;
    tokio::time::sleep(std::time::Duration::from_millis(60)).await;

    assert_eq!(first.sale_status().await["stockRemaining"], 4);
}
