use serde_json::{json, Value};

use crate::helpers::{spawn_app_with, TestConfig};

fn with_user_limit() -> TestConfig {
    TestConfig::active(10)
        .set("USER_MAX_ATTEMPTS", 3)
        .set("USER_ATTEMPT_WINDOW_SECONDS", 3600)
}

#[tokio::test]
async fn a_user_gets_201_409_409_then_429() {
    let app = spawn_app_with(with_user_limit()).await;

    let mut statuses = Vec::new();
    for _ in 0..4 {
        statuses.push(app.purchase("eager").await);
    }

    let codes: Vec<u16> = statuses.iter().map(|r| r.status().as_u16()).collect();
    assert_eq!(codes, [201, 409, 409, 429]);
    let body: Value = statuses.pop().expect("four").json().await.expect("json");
    assert_eq!(
        body["message"],
        "Too many purchase attempts. Maximum 3 attempts allowed."
    );
    assert_eq!(body["error"], "Too Many Requests");
}

#[tokio::test]
async fn the_attempt_counter_expires_with_its_window() {
    let app = spawn_app_with(with_user_limit()).await;
    app.purchase("ttl-user").await;

    let ttl: i64 = crate::helpers::redis()
        .await
        .ttl(
            app.keys()
                .attempts(&domain::UserId::parse("ttl-user").expect("valid")),
        )
        .await
        .expect("TTL");

    assert!((3590..=3600).contains(&ttl), "ttl {ttl}");
}

#[tokio::test]
async fn invalid_requests_do_not_use_up_attempts() {
    let app = spawn_app_with(with_user_limit()).await;
    for _ in 0..5 {
        let response = app
            .post_purchase_json(&json!({"userId": "careful", "extra": 1}))
            .await;
        assert_eq!(response.status(), 400);
    }

    let codes = [
        app.purchase("careful").await.status().as_u16(),
        app.purchase("careful").await.status().as_u16(),
        app.purchase("careful").await.status().as_u16(),
    ];

    assert_eq!(codes, [201, 409, 409]);
}

#[tokio::test]
async fn the_user_limit_is_shared_by_replicas_of_one_sale() {
    let config = with_user_limit();
    let sale = config.sale_id();
    let first = spawn_app_with(config).await;
    let second = spawn_app_with(with_user_limit().set("SALE_ID", sale)).await;

    first.purchase("roamer").await;
    second.purchase("roamer").await;
    first.purchase("roamer").await;

    assert_eq!(second.purchase("roamer").await.status(), 429);
}

#[tokio::test]
async fn an_address_past_its_limit_gets_429_in_the_seeds_words() {
    let config = TestConfig::active(100).set("IP_RATE_LIMIT_PER_SECOND", 3);
    let app = spawn_app_with(config).await;

    let mut codes = Vec::new();
    for i in 0..5 {
        codes.push(app.purchase(&format!("ip-{i}")).await);
    }

    let statuses: Vec<u16> = codes.iter().map(|r| r.status().as_u16()).collect();
    assert_eq!(&statuses[..3], [201, 201, 201]);
    assert_eq!(statuses[3], 429);
    let body: Value = codes.remove(3).json().await.expect("json");
    assert_eq!(body["message"], "ThrottlerException: Too Many Requests");
    assert_eq!(body["statusCode"], 429);
    // The status endpoint is what every open page polls: never throttled.
    for _ in 0..10 {
        assert_eq!(app.get("/api/sale/status").await.status(), 200);
    }
}

#[tokio::test]
async fn a_forged_forwarded_for_from_an_untrusted_peer_is_ignored() {
    let config = TestConfig::active(100).set("IP_RATE_LIMIT_PER_SECOND", 2);
    let app = spawn_app_with(config).await;

    let mut statuses = Vec::new();
    for i in 0..4 {
        let response = app
            .client
            .post(format!("{}/api/purchases", app.address))
            .header("x-forwarded-for", format!("203.0.113.{i}"))
            .json(&json!({"userId": format!("forger-{i}")}))
            .send()
            .await
            .expect("sent");
        statuses.push(response.status().as_u16());
    }

    assert_eq!(statuses, [201, 201, 429, 429]);
}

#[tokio::test]
async fn behind_a_trusted_proxy_each_client_has_its_own_quota() {
    let config = TestConfig::active(100)
        .set("IP_RATE_LIMIT_PER_SECOND", 1)
        .set("TRUSTED_PROXIES", "127.0.0.1");
    let app = spawn_app_with(config).await;

    let mut statuses = Vec::new();
    for i in 0..3 {
        let response = app
            .client
            .post(format!("{}/api/purchases", app.address))
            .header("x-forwarded-for", format!("198.51.100.{i}"))
            .json(&json!({"userId": format!("proxied-{i}")}))
            .send()
            .await
            .expect("sent");
        statuses.push(response.status().as_u16());
    }

    assert_eq!(statuses, [201, 201, 201]);
}

use fred::prelude::KeysInterface;
