use serde_json::Value;

use crate::helpers::{admin_database_url, spawn_app_with, TestConfig, DEAD_DATABASE_URL};

#[tokio::test]
async fn health_is_ok_when_redis_and_postgres_are_up() {
    let app = spawn_app_with(TestConfig::active(1).set("DATABASE_URL", admin_database_url())).await;

    let response = app.get("/api/health").await;

    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.expect("json");
    assert_eq!(body["status"], "ok");
    assert_eq!(body["services"]["redis"]["status"], "up");
    assert_eq!(body["services"]["database"]["status"], "up");
    assert!(body["services"]["redis"]["latencyMs"].is_number());
    assert!(body["timestamp"].is_string());
}

#[tokio::test]
async fn health_is_degraded_but_200_when_postgres_is_down() {
    let app = replica_without_postgres(1).await;

    let response = app.get("/api/health").await;

    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.expect("json");
    assert_eq!(body["status"], "degraded");
    assert_eq!(body["services"]["database"]["status"], "down");
    // Sales go on without PostgreSQL.
    assert_eq!(app.purchase("no-db-buyer").await.status(), 201);
}

/// Balancers and readiness probes give a health check a budget of their
/// own (haproxy here 2 s, Kubernetes 1 s by default): a check that waits
/// out PostgreSQL's connect timeout would take every replica out of
/// rotation while sales could go on.
#[tokio::test]
async fn health_answers_well_within_a_probe_budget_while_postgres_is_down() {
    let app = replica_without_postgres(5).await;

    let started = std::time::Instant::now();
    let response = app.get("/api/health").await;
    let took = started.elapsed();

    assert_eq!(response.status(), 200);
    assert!(
        took < std::time::Duration::from_millis(800),
        "health took {took:?} with PostgreSQL down"
    );
}

/// A replica of an armed sale whose PostgreSQL is unreachable (connects
/// time out after `connect_timeout` seconds).
async fn replica_without_postgres(connect_timeout: u64) -> crate::helpers::TestApp {
    let config = TestConfig::active(1);
    let sale = config.sale_id();
    spawn_app_with(config).await;
    spawn_app_with(
        TestConfig::active(1)
            .set("SALE_ID", &sale)
            .set("DATABASE_URL", DEAD_DATABASE_URL)
            .set("DATABASE_CONNECT_TIMEOUT_SECONDS", connect_timeout),
    )
    .await
}
