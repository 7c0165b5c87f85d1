//! User ids as the seed accepts them: any script, any identity provider's
//! subject, from the body to Redis to PostgreSQL and back through a
//! percent-encoded lookup. The cases are `crates/domain/user-ids.json`,
//! which the storefront checks too.

use serde_json::{json, Value};

use crate::{
    helpers::{create_database, spawn_app_with, wait_for_orders, TestApp, TestConfig},
    persistence::{assert_persisted_by_jobs, worker_settings},
};

fn cases() -> Value {
    serde_json::from_str(include_str!("../../../domain/user-ids.json")).expect("user-ids.json")
}

/// A case: a string, or `{repeat, times}`.
fn case(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other["repeat"]
            .as_str()
            .expect("repeat")
            .repeat(other["times"].as_u64().expect("times") as usize),
    }
}

/// `GET /api/purchases/{user}`, the user percent-encoded as one segment.
async fn lookup(app: &TestApp, user: &str) -> Value {
    let mut url = reqwest::Url::parse(&app.address).expect("url");
    url.path_segments_mut()
        .expect("base")
        .extend(["api", "purchases", user]);
    let response = app.client.get(url).send().await.expect("lookup");
    assert_eq!(response.status(), 200, "lookup of {user:?}");
    response.json().await.expect("json")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_accepted_user_id_buys_once_is_looked_up_and_lands_as_it_is() {
    let accepted: Vec<String> = cases()["accepted"]
        .as_array()
        .expect("accepted")
        .iter()
        .map(case)
        .collect();
    let database = create_database().await;
    let config = TestConfig::active(100).set("DATABASE_URL", &database);
    let worker = order_worker::spawn(worker_settings(&config));
    let app = spawn_app_with(TestConfig {
        vars: config.vars.clone(),
    })
    .await;

    let mut answered = Vec::new();
    for user in &accepted {
        let first = app.post_purchase_json(&json!({ "userId": user })).await;
        assert_eq!(first.status(), 201, "{user:?}");
        let order: Value = first.json().await.expect("json");
        let again = app.post_purchase_json(&json!({ "userId": user })).await;
        assert_eq!(again.status(), 409, "{user:?} buys once");
        let found = lookup(&app, user).await;
        assert_eq!(found["purchased"], true, "{user:?}");
        assert_eq!(found["userId"], json!(user));
        assert_eq!(found["orderId"], order["orderId"], "{user:?}");
        answered.push((
            order["orderId"].as_str().expect("orderId").to_owned(),
            user.clone(),
        ));
    }
    let rows = wait_for_orders(&database, &config.sale_id(), accepted.len()).await;
    worker.stop().await.expect("worker stops");

    let mut rows: Vec<(String, String)> = rows.into_iter().map(|r| (r.id, r.user_id)).collect();
    rows.sort();
    answered.sort();
    assert_eq!(
        rows, answered,
        "each order landed under its buyer's id, byte for byte"
    );
    assert_persisted_by_jobs(accepted.len());
    let stock: Value = app.sale_status().await;
    assert_eq!(stock["stockRemaining"], 100 - accepted.len());
}

#[tokio::test]
async fn every_refused_user_id_says_what_is_wrong_and_changes_nothing() {
    let app = spawn_app_with(TestConfig::active(5).set("USER_MAX_ATTEMPTS", 3)).await;

    for refused in cases()["refused"].as_array().expect("refused") {
        let user = case(&refused["userId"]);
        let response = app.post_purchase_json(&json!({ "userId": user })).await;
        assert_eq!(response.status(), 400, "{user:?}");
        let body: Value = response.json().await.expect("json");
        assert_eq!(body["message"], json!([refused["message"]]), "{user:?}");
    }

    assert_eq!(app.sale_status().await["stockRemaining"], 5);
    let attempts = std::process::Command::new("redis-cli")
        .args(["-u", &crate::helpers::redis_url(), "--scan", "--pattern"])
        .arg(format!("{{sale:{}}}:attempts:*", app.config.sale_id()))
        .output()
        .expect("redis-cli");
    let attempts = String::from_utf8_lossy(&attempts.stdout);
    assert!(
        attempts.trim().is_empty(),
        "a refused request uses no attempt: {attempts}"
    );
}
