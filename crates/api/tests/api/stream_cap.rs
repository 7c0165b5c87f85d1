//! `SSE_MAX_CLIENTS`: a replica serves that many live streams at once and
//! refuses the next with 503 until one closes.

use std::time::Duration;

use serde_json::{json, Value};
use test_support::eventually;

use crate::helpers::{sample, spawn_app_with, TestApp, TestConfig};

const REFUSED: &str = "Too many open live streams on this server; poll /api/sale/status instead.";

async fn open_stream(app: &TestApp) -> reqwest::Response {
    app.client
        .get(format!("{}/api/sale/events", app.address))
        .send()
        .await
        .expect("request sent")
}

/// Streams refused so far by this process.
async fn refused(app: &TestApp) -> f64 {
    let scrape = app.get("/metrics").await.text().await.expect("text");
    sample(&scrape, "flash_sale_sse_refused_total", &[]).unwrap_or(0.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_past_sse_max_clients_get_503_until_one_closes() {
    let app = spawn_app_with(TestConfig::active(5).set("SSE_MAX_CLIENTS", 2)).await;
    let first = open_stream(&app).await;
    let second = open_stream(&app).await;
    assert_eq!(
        (first.status().as_u16(), second.status().as_u16()),
        (200, 200)
    );
    let refused_before = refused(&app).await;

    let third = open_stream(&app).await;

    assert_eq!(third.status(), 503);
    assert_eq!(third.headers()["retry-after"], "5");
    let body: Value = third.json().await.expect("json body");
    assert_eq!(body["statusCode"], 503);
    assert_eq!(body["error"], "Service Unavailable");
    assert_eq!(body["message"], REFUSED);
    assert_eq!(body["path"], "/api/sale/events");
    assert!(body["timestamp"].as_str().is_some_and(|t| t.ends_with('Z')));
    assert_eq!(refused(&app).await - refused_before, 1.0);
    // What the refused page polls instead is not capped.
    assert_eq!(app.get("/api/sale/status").await.status(), 200);

    drop(first);
    let reopened = eventually(Duration::from_secs(3), || async {
        let response = open_stream(&app).await;
        (response.status() == 200).then_some(response)
    })
    .await
    .expect("a closed stream gives its place back within 3 s");
    // Two open again: the cap holds as before.
    assert_eq!(open_stream(&app).await.status(), 503);
    drop((second, reopened));
}

#[tokio::test]
async fn the_refusal_is_documented_and_its_body_matches_the_document() {
    let app = spawn_app_with(TestConfig::active(1).set("SSE_MAX_CLIENTS", 1)).await;
    let _open = open_stream(&app).await;

    let refused = open_stream(&app).await;

    assert_eq!(refused.status(), 503);
    let body: Value = refused.json().await.expect("json body");
    let doc = crate::openapi::document(&app).await;
    let documented = &doc["paths"]["/api/sale/events"]["get"]["responses"]["503"];
    assert!(
        documented["headers"]["Retry-After"].is_object(),
        "{documented}"
    );
    let schema = &documented["content"]["application/json"]["schema"];
    assert!(
        schema.is_object(),
        "the 503 of /api/sale/events is not documented"
    );
    let mut root = json!({ "components": doc["components"].clone() });
    if let (Some(root), Some(schema)) = (root.as_object_mut(), schema.as_object()) {
        root.extend(schema.clone());
    }
    let validator = jsonschema::validator_for(&root).expect("valid schema");
    let problems: Vec<String> = validator
        .iter_errors(&body)
        .map(|e| e.to_string())
        .collect();
    assert!(problems.is_empty(), "{problems:?} in {body}");
}
