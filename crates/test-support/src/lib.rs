//! What the api's and the worker's integration tests share: the shared
//! Redis and PostgreSQL they run against (each test under its own keys and
//! in its own database), private servers for the tests that break one, and
//! child processes that never outlive a test.

pub mod servers;

use std::time::Duration;

use diesel::sql_query;
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};

pub use servers::*;

/// The shared Redis the tests use (each test under its own keys).
pub fn redis_url() -> String {
    std::env::var("TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

/// A PostgreSQL URL allowed to create databases.
pub fn admin_database_url() -> String {
    std::env::var("TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

/// A fresh, empty database for one test.
pub async fn create_database() -> String {
    let name = format!("fs_test_{}", uuid::Uuid::new_v4().simple());
    let admin = admin_database_url();
    let mut conn = AsyncPgConnection::establish(&admin)
        .await
        .expect("connect to TEST_DATABASE_URL");
    sql_query(format!("CREATE DATABASE {name}"))
        .execute(&mut conn)
        .await
        .expect("create test database");
    let (base, _) = admin.rsplit_once('/').expect("URL has a database path");
    format!("{base}/{name}")
}

/// Polls `check` every 50 ms until it gives `Some` or `limit` passes.
pub async fn eventually<T, F: std::future::Future<Output = Option<T>>>(
    limit: Duration,
    mut check: impl FnMut() -> F,
) -> Option<T> {
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        if let Some(found) = check().await {
            return Some(found);
        }
        if tokio::time::Instant::now() > deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
