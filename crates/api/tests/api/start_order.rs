//! Start in any order: an api started before Redis, or before PostgreSQL
//! for a sale Redis does not hold, listens, answers 503 and is not ready,
//! and sells as soon as its dependency comes up, without a restart.

use std::time::{Duration, Instant};

use reqwest::Client;
use serde_json::{json, Value};
use test_support::{PrivatePostgres, PrivateRedis};

use crate::{helpers::TestConfig, support::spawn_api_process};

/// What the api answers a purchase and its health check now.
async fn answers(client: &Client, base: &str, user: &str) -> (u16, u16, Value) {
    let purchase = client
        .post(format!("{base}/api/purchases"))
        .json(&json!({ "userId": user }))
        .send()
        .await
        .expect("the api answers")
        .status()
        .as_u16();
    let health = client
        .get(format!("{base}/api/health"))
        .send()
        .await
        .expect("the api answers");
    let status = health.status().as_u16();
    (purchase, status, health.json().await.expect("json"))
}

/// Buys as `user` every 50 ms until a 201; how long that took from now.
async fn first_sale_after(client: &Client, base: &str, user: &str) -> Duration {
    let started = Instant::now();
    loop {
        let (purchase, _, _) = answers(client, base, user).await;
        if purchase == 201 {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "no sale 20 s after the dependency came up (last answer {purchase})"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_api_started_before_redis_sells_within_3_s_of_redis_coming_up() {
    // The port is known; nothing listens on it yet.
    let mut redis = PrivateRedis::start();
    redis.stop();
    let config = TestConfig::active(5).set("REDIS_URL", redis.url());
    let (_api, base) = spawn_api_process(&config, &[]).await;
    let client = Client::new();

    let (purchase, ready, health) = answers(&client, &base, "early-bird").await;
    assert_eq!(purchase, 503, "Redis is down: no sale yet");
    assert_eq!(ready, 503, "not ready before Redis: {health}");

    redis.start_again();
    let took = first_sale_after(&client, &base, "early-bird").await;

    assert!(
        took < Duration::from_secs(3),
        "sold {took:?} after Redis came up"
    );
    let (_, ready, health) = answers(&client, &base, "early-bird").await;
    assert_eq!(ready, 200, "{health}");
    assert_eq!(health["sale"], "armed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_api_started_before_postgres_arms_a_new_sale_within_3_s_of_postgres_coming_up() {
    // A new sale: Redis does not hold it, so arming asks PostgreSQL which
    // orders stand, and PostgreSQL is down.
    let postgres = PrivatePostgres::start();
    postgres.stop();
    let config = TestConfig::active(5).set("DATABASE_URL", postgres.url());
    let (_api, base) = spawn_api_process(&config, &[]).await;
    let client = Client::new();

    let (purchase, ready, health) = answers(&client, &base, "first-in-line").await;
    assert_eq!(purchase, 503, "the sale cannot be armed yet");
    assert_eq!(ready, 503, "{health}");
    assert_eq!(health["sale"], "arming");

    postgres.start_again();
    let took = first_sale_after(&client, &base, "first-in-line").await;

    assert!(
        took < Duration::from_secs(3),
        "sold {took:?} after PostgreSQL came up"
    );
}

/// An api stopped before it could arm its sale stops trying: it must not
/// arm it later behind the back of whatever runs the sale by then.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_api_stopped_while_arming_stops_trying() {
    let mut redis = PrivateRedis::start();
    redis.stop();
    let config = TestConfig::active(5).set("REDIS_URL", redis.url());
    let app = crate::helpers::spawn_app_with(config).await;
    let meta = app.keys().meta();
    // Past the first attempt: the retries are running.
    tokio::time::sleep(Duration::from_millis(600)).await;
    app.stop().await;

    redis.start_again();
    // Ten retry periods with Redis up.
    tokio::time::sleep(Duration::from_millis(2_500)).await;

    assert_eq!(
        redis.cli(&["EXISTS", &meta]),
        "0",
        "the stopped api armed its sale"
    );
}
