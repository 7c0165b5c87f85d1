use serde_json::{json, Value};

use crate::helpers::{spawn_app_with, TestApp, TestConfig};

async fn document(app: &TestApp) -> Value {
    let response = app.get("/api/openapi.json").await;
    assert_eq!(response.status(), 200);
    response.json().await.expect("json")
}

/// Validates `body` against the schema documented for this answer.
fn assert_matches(doc: &Value, path: &str, method: &str, status: u16, body: &Value) {
    let schema = &doc["paths"][path][method]["responses"][status.to_string()]["content"]
        ["application/json"]["schema"];
    assert!(
        schema.is_object(),
        "{method} {path} {status} is not documented"
    );
    let mut root = json!({ "components": doc["components"].clone() });
    if let (Some(root), Some(schema)) = (root.as_object_mut(), schema.as_object()) {
        root.extend(schema.clone());
    }
    let validator = jsonschema::validator_for(&root).expect("valid schema");
    let problems: Vec<String> = validator.iter_errors(body).map(|e| e.to_string()).collect();
    assert!(
        problems.is_empty(),
        "{method} {path} {status}: {problems:?} in {body}"
    );
}

#[tokio::test]
async fn the_document_is_openapi_3_1_and_lists_every_route() {
    let app = spawn_app_with(TestConfig::active(1)).await;

    let doc = document(&app).await;

    assert!(doc["openapi"]
        .as_str()
        .is_some_and(|v| v.starts_with("3.1")));
    let mut paths: Vec<&str> = doc["paths"]
        .as_object()
        .expect("paths")
        .keys()
        .map(String::as_str)
        .collect();
    paths.sort();
    assert_eq!(
        paths,
        [
            "/",
            "/api/health",
            "/api/purchases",
            "/api/purchases/{user_id}",
            "/api/sale/events",
            "/api/sale/status",
            "/metrics"
        ]
    );
    assert!(doc["paths"]["/api/purchases"]["post"]["requestBody"].is_object());
}

#[tokio::test]
async fn real_responses_match_their_documented_schemas() {
    let app = spawn_app_with(TestConfig::active(2).set("USER_MAX_ATTEMPTS", 3)).await;
    let doc = document(&app).await;
    let body = |r: reqwest::Response| async move { r.json::<Value>().await.expect("json") };
    let mut checked = 0;
    let mut check = |path: &str, method: &str, status: u16, value: &Value| {
        assert_matches(&doc, path, method, status, value);
        checked += 1;
    };

    let bought = app.purchase("schema-1").await;
    assert_eq!(bought.status(), 201);
    check("/api/purchases", "post", 201, &body(bought).await);
    let again = app.purchase("schema-1").await;
    check("/api/purchases", "post", 409, &body(again).await);
    let invalid = app.post_purchase_json(&json!({"hack": 1})).await;
    check("/api/purchases", "post", 400, &body(invalid).await);
    app.purchase("schema-1").await;
    let limited = app.purchase("schema-1").await;
    assert_eq!(limited.status(), 429);
    check("/api/purchases", "post", 429, &body(limited).await);
    assert_eq!(app.purchase("schema-2").await.status(), 201);
    let gone = app.purchase("schema-3").await;
    check("/api/purchases", "post", 410, &body(gone).await);
    let too_big = app
        .post_purchase_raw(
            "application/json",
            format!(r#"{{"userId":"{}"}}"#, "x".repeat(5000)),
        )
        .await;
    check("/api/purchases", "post", 413, &body(too_big).await);
    let wrong_type = app.post_purchase_raw("text/plain", "x").await;
    check("/api/purchases", "post", 415, &body(wrong_type).await);
    for user in ["schema-1", "nobody"] {
        let status = app.purchase_status(user).await;
        check("/api/purchases/{user_id}", "get", 200, &body(status).await);
    }
    let bad_user = app.purchase_status(&"z".repeat(70)).await;
    check(
        "/api/purchases/{user_id}",
        "get",
        400,
        &body(bad_user).await,
    );
    check(
        "/api/sale/status",
        "get",
        200,
        &body(app.get("/api/sale/status").await).await,
    );
    check(
        "/api/health",
        "get",
        200,
        &body(app.get("/api/health").await).await,
    );
    check("/", "get", 200, &body(app.get("/").await).await);

    assert_eq!(checked, 13);
}

#[tokio::test]
async fn the_docs_page_and_its_assets_are_served_from_the_binary() {
    let app = spawn_app_with(TestConfig::active(1)).await;

    let page = app.get("/api/docs/").await;
    let css = app.get("/api/docs/swagger-ui.css").await;

    assert_eq!(page.status(), 200);
    assert!(page.text().await.expect("html").contains("swagger-ui"));
    assert_eq!(css.status(), 200);
}
