use serde_json::{json, Value};

use crate::helpers::spawn_app;

async fn messages(response: reqwest::Response) -> Vec<String> {
    let body: Value = response.json().await.expect("json");
    assert_eq!(body["statusCode"], 400);
    assert_eq!(body["error"], "Bad Request");
    serde_json::from_value(body["message"].clone()).expect("message is a list")
}

#[tokio::test]
async fn a_missing_user_id_is_a_400_listing_the_problems() {
    let app = spawn_app().await;

    let response = app.post_purchase_json(&json!({})).await;

    assert_eq!(response.status(), 400);
    assert_eq!(
        messages(response).await,
        ["userId must be a string", "userId should not be empty"]
    );
}

#[tokio::test]
async fn an_empty_or_blank_user_id_is_a_400() {
    let app = spawn_app().await;
    for blank in ["", "   "] {
        let response = app.purchase(blank).await;
        assert_eq!(response.status(), 400);
        assert_eq!(messages(response).await, ["userId should not be empty"]);
    }
}

#[tokio::test]
async fn unknown_properties_are_refused_by_name() {
    let app = spawn_app().await;

    let response = app
        .post_purchase_json(&json!({"userId": "u1", "hack": true}))
        .await;

    assert_eq!(response.status(), 400);
    assert_eq!(messages(response).await, ["property hack should not exist"]);
    assert_eq!(app.sale_status().await["stockRemaining"], 10);
}

#[tokio::test]
async fn over_long_or_non_string_user_ids_are_refused() {
    let app = spawn_app().await;
    assert_eq!(app.purchase(&"x".repeat(256)).await.status(), 400);
    assert_eq!(
        app.post_purchase_json(&json!({"userId": 7})).await.status(),
        400
    );
    assert_eq!(app.purchase(&"x".repeat(255)).await.status(), 201);
}

#[tokio::test]
async fn malformed_json_is_a_400_in_the_json_error_shape() {
    let app = spawn_app().await;

    let response = app.post_purchase_raw("application/json", "{not json").await;

    assert_eq!(response.status(), 400);
    let body: Value = response.json().await.expect("error body is JSON");
    assert_eq!(body["message"], "Request body is not valid JSON.");
    assert_eq!(body["path"], "/api/purchases");
}

#[tokio::test]
async fn a_wrong_content_type_is_a_415_in_the_json_error_shape() {
    let app = spawn_app().await;

    let response = app
        .post_purchase_raw("text/plain", r#"{"userId":"u"}"#)
        .await;

    assert_eq!(response.status(), 415);
    let body: Value = response.json().await.expect("error body is JSON");
    assert_eq!(body["statusCode"], 415);
}

#[tokio::test]
async fn an_oversized_body_is_a_413_in_the_json_error_shape() {
    let app = spawn_app().await;
    let huge = format!(r#"{{"userId":"{}"}}"#, "x".repeat(10_000));

    let response = app.post_purchase_raw("application/json", huge).await;

    assert_eq!(response.status(), 413);
    let body: Value = response.json().await.expect("error body is JSON");
    assert_eq!(body["error"], "Payload Too Large");
    assert_eq!(app.sale_status().await["stockRemaining"], 10);
}

#[tokio::test]
async fn an_invalid_user_id_in_the_status_path_is_a_400() {
    let app = spawn_app().await;

    let response = app.purchase_status(&"y".repeat(256)).await;

    assert_eq!(response.status(), 400);
}

#[tokio::test]
async fn unknown_routes_are_404_in_the_json_error_shape() {
    let app = spawn_app().await;

    let response = app.get("/api/nothing-here").await;

    assert_eq!(response.status(), 404);
    let body: Value = response.json().await.expect("error body is JSON");
    assert_eq!(body["path"], "/api/nothing-here");
}
