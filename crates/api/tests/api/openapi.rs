use serde_json::{json, Value};

use crate::helpers::{spawn_app_with, TestApp, TestConfig};

pub async fn document(app: &TestApp) -> Value {
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
            "/api/config",
            "/api/health",
            "/api/purchases",
            "/api/purchases/me",
            "/api/purchases/{user_id}",
            "/api/sale/events",
            "/api/sale/status",
            "/metrics"
        ]
    );
    assert!(doc["paths"]["/api/purchases"]["post"]["requestBody"].is_object());
    // The bearer scheme of BUYER_AUTH=jwt, optional on each purchase route.
    assert_eq!(
        doc["components"]["securitySchemes"]["bearer"],
        serde_json::json!({
            "type": "http",
            "scheme": "bearer",
            "bearerFormat": "JWT",
            "description": "BUYER_AUTH=jwt: a token from the shop's identity provider; its sub is the buyer"
        })
    );
    for (path, method) in [
        ("/api/purchases", "post"),
        ("/api/purchases/{user_id}", "get"),
        ("/api/purchases/me", "get"),
    ] {
        assert_eq!(
            doc["paths"][path][method]["security"],
            serde_json::json!([{}, {"bearer": []}]),
            "{method} {path}"
        );
    }
}

/// Asserts `response` answers `status`, then validates its body against
/// the schema documented for that status.
async fn assert_documented(
    doc: &Value,
    path: &str,
    method: &str,
    status: u16,
    response: reqwest::Response,
) {
    assert_eq!(response.status(), status, "{method} {path}");
    let body: Value = response.json().await.expect("json");
    assert_matches(doc, path, method, status, &body);
}

#[tokio::test]
async fn real_responses_match_their_documented_schemas() {
    let app = spawn_app_with(TestConfig::active(2).set("USER_MAX_ATTEMPTS", 3)).await;
    let doc = document(&app).await;
    let purchases = "/api/purchases";
    let lookup = "/api/purchases/{user_id}";

    let bought = app.purchase("schema-1").await;
    assert_documented(&doc, purchases, "post", 201, bought).await;
    let again = app.purchase("schema-1").await;
    assert_documented(&doc, purchases, "post", 409, again).await;
    let invalid = app.post_purchase_json(&json!({"hack": 1})).await;
    assert_documented(&doc, purchases, "post", 400, invalid).await;
    assert_eq!(app.purchase("schema-1").await.status(), 409);
    let limited = app.purchase("schema-1").await;
    assert_documented(&doc, purchases, "post", 429, limited).await;
    assert_eq!(app.purchase("schema-2").await.status(), 201);
    let gone = app.purchase("schema-3").await;
    assert_documented(&doc, purchases, "post", 410, gone).await;
    let too_big = app
        .post_purchase_raw(
            "application/json",
            format!(r#"{{"userId":"{}"}}"#, "x".repeat(5000)),
        )
        .await;
    assert_documented(&doc, purchases, "post", 413, too_big).await;
    let wrong_type = app.post_purchase_raw("text/plain", "x").await;
    assert_documented(&doc, purchases, "post", 415, wrong_type).await;
    for user in ["schema-1", "nobody"] {
        let status = app.purchase_status(user).await;
        assert_documented(&doc, lookup, "get", 200, status).await;
    }
    let bad_user = app.purchase_status(&"z".repeat(256)).await;
    assert_documented(&doc, lookup, "get", 400, bad_user).await;
    let sale = app.get("/api/sale/status").await;
    assert_documented(&doc, "/api/sale/status", "get", 200, sale).await;
    let health = app.get("/api/health").await;
    assert_documented(&doc, "/api/health", "get", 200, health).await;
    assert_documented(&doc, "/", "get", 200, app.get("/").await).await;
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
