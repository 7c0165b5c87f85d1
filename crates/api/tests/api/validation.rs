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

/// The api's HTTP/1 connections start with 1 KB buffers (the patched
/// actix-http in vendor/): a request much larger than that, arriving in
/// pieces, with a second one pipelined behind it, is still read whole and
/// answered in order.
#[tokio::test]
async fn a_large_request_in_pieces_with_another_pipelined_behind_is_answered_in_order() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let app = spawn_app().await;
    let address = app.address.trim_start_matches("http://");
    // Just under the 4 KiB body limit: the JSON padded with whitespace.
    let body = format!(r#"{{"userId":"big-request"{}}}"#, " ".repeat(4000 - 25));
    let first = format!(
        "POST /api/purchases HTTP/1.1\r\nHost: {address}\r\nContent-Type: application/json\r\n\
         X-Padding: {}\r\nContent-Length: {}\r\n\r\n{body}",
        "p".repeat(6_000),
        body.len()
    );
    let second = format!("GET /api/purchases/big-request HTTP/1.1\r\nHost: {address}\r\n\r\n");
    let mut stream = tokio::net::TcpStream::connect(address)
        .await
        .expect("connect");
    let bytes = format!("{first}{second}").into_bytes();
    // The first request in three pieces, the last carrying the second one.
    for piece in [&bytes[..700], &bytes[700..5_000], &bytes[5_000..]] {
        stream.write_all(piece).await.expect("write");
        tokio::time::sleep(std::time::Duration::from_millis(30)).await;
    }
    let mut answers = String::new();
    while answers.matches("HTTP/1.1 ").count() < 2 || !answers.ends_with('}') {
        let mut chunk = [0u8; 4096];
        let read = tokio::time::timeout(std::time::Duration::from_secs(5), stream.read(&mut chunk))
            .await
            .expect("answered in time")
            .expect("read");
        assert!(read > 0, "connection closed early: {answers}");
        answers.push_str(&String::from_utf8_lossy(&chunk[..read]));
    }

    let created = answers.find("HTTP/1.1 201").expect(&answers);
    let looked_up = answers.rfind("HTTP/1.1 200").expect(&answers);
    assert!(created < looked_up, "{answers}");
    assert!(answers.contains(r#""purchased":true"#), "{answers}");
    assert_eq!(app.sale_status().await["stockRemaining"], 9);
}

/// Sends `request` on a connection of its own; the whole answer, read
/// until the server closes (every request here says `Connection: close`).
async fn raw(app: &crate::helpers::TestApp, request: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let address = app.address.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(address)
        .await
        .expect("connect");
    stream.write_all(request.as_bytes()).await.expect("write");
    let mut answer = Vec::new();
    tokio::time::timeout(
        std::time::Duration::from_secs(5),
        stream.read_to_end(&mut answer),
    )
    .await
    .expect("answered in time")
    .expect("read");
    String::from_utf8_lossy(&answer).into_owned()
}

/// The body of a raw answer, as JSON.
fn json_of(answer: &str) -> Value {
    let (_, body) = answer.split_once("\r\n\r\n").expect(answer);
    serde_json::from_str(body).expect(answer)
}

/// A purchase body read without `web::Json` (`src/body.rs`) answers what
/// `web::Json` under the api's `JsonConfig` did, over the wire: no
/// Content-Type is a 415, any `+json` type is JSON, a chunked body (no
/// Content-Length) past 4 KiB is a 413 and one of exactly 4 KiB is read.
#[tokio::test]
async fn bodies_are_read_as_web_json_read_them() {
    let app = spawn_app().await;
    let address = app.address.trim_start_matches("http://");
    let post = |headers: &str, body: &str| {
        format!(
            "POST /api/purchases HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n{headers}\
             Content-Length: {}\r\n\r\n{body}",
            body.len()
        )
    };

    let answer = raw(&app, &post("", r#"{"userId":"no-type"}"#)).await;
    assert!(answer.starts_with("HTTP/1.1 415"), "{answer}");

    let merge = "Content-Type: application/merge-patch+json; charset=utf-8\r\n";
    let answer = raw(&app, &post(merge, r#"{"userId":"merge-type"}"#)).await;
    assert!(answer.starts_with("HTTP/1.1 201"), "{answer}");

    // {"userId":"at-limit"} padded with spaces to exactly 4096 bytes.
    let at_limit = format!(r#"{{"userId":"at-limit"{}}}"#, " ".repeat(4096 - 21));
    assert_eq!(at_limit.len(), 4096);
    let json = "Content-Type: application/json\r\n";
    let answer = raw(&app, &post(json, &at_limit)).await;
    assert!(answer.starts_with("HTTP/1.1 201"), "{answer}");

    // Chunked: the limit is held to the bytes as they arrive.
    let over = format!(r#"{{"userId":"chunked"{}}}"#, " ".repeat(4096));
    let (head, tail) = over.split_at(3000);
    let chunked = format!(
        "POST /api/purchases HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n{json}\
         Transfer-Encoding: chunked\r\n\r\n{:x}\r\n{head}\r\n{:x}\r\n{tail}\r\n0\r\n\r\n",
        head.len(),
        tail.len()
    );
    let answer = raw(&app, &chunked).await;
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert_eq!(json_of(&answer)["error"], "Payload Too Large");
    assert_eq!(app.sale_status().await["stockRemaining"], 8);
}

/// Every refusal names the request target as sent, as the seed's
/// `request.url` did: an absolute-form target whole, whether the handler
/// writes the body (409) or `error_bodies` does (400).
#[tokio::test]
async fn a_refusal_names_an_absolute_form_target_whole() {
    let app = spawn_app().await;
    assert_eq!(app.purchase("twice").await.status(), 201);
    let target = "http://shop.example/api/purchases?from=ad";
    let post = |body: &str| {
        format!(
            "POST {target} HTTP/1.1\r\nHost: shop.example\r\nConnection: close\r\n\
             Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
    };

    let again = raw(&app, &post(r#"{"userId":"twice"}"#)).await;
    assert!(again.starts_with("HTTP/1.1 409"), "{again}");
    assert_eq!(json_of(&again)["path"], target);

    let invalid = raw(&app, &post(r#"{"userId":""}"#)).await;
    assert!(invalid.starts_with("HTTP/1.1 400"), "{invalid}");
    assert_eq!(json_of(&invalid)["path"], target);
}
