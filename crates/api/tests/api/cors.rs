//! CORS (`CORS_ORIGINS`): what a browser on an allowed or a refused origin
//! gets. CORS tells browsers which pages may read the answers; it is not
//! access control (curl ignores it), so the refused cases also check that
//! nothing a browser would send on its own changes the sale.

use reqwest::{header::HeaderMap, Method, RequestBuilder};
use serde_json::Value;

use crate::helpers::{spawn_app_with, TestApp, TestConfig};

const SHOP: &str = "https://shop.example.com";
const ELSEWHERE: &str = "https://elsewhere.example.com";

async fn shop_app() -> TestApp {
    spawn_app_with(
        TestConfig::active(3).set("CORS_ORIGINS", format!("{SHOP},http://localhost:5173")),
    )
    .await
}

fn from(app: &TestApp, origin: &str, method: Method, path: &str) -> RequestBuilder {
    app.client
        .request(method, format!("{}{path}", app.address))
        .header("origin", origin)
}

/// What a browser sends before a cross-origin JSON POST.
async fn preflight(app: &TestApp, origin: &str) -> reqwest::Response {
    from(app, origin, Method::OPTIONS, "/api/purchases")
        .header("access-control-request-method", "POST")
        .header("access-control-request-headers", "content-type")
        .send()
        .await
        .expect("sent")
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

#[tokio::test]
async fn an_allowed_origin_is_echoed_on_a_simple_get() {
    let app = shop_app().await;

    let response = from(&app, SHOP, Method::GET, "/api/sale/status")
        .send()
        .await
        .expect("sent");

    assert_eq!(response.status(), 200);
    let headers = response.headers();
    assert_eq!(header(headers, "access-control-allow-origin"), Some(SHOP));
    assert_eq!(
        header(headers, "access-control-allow-credentials"),
        Some("true")
    );
    // The answer depends on the origin: caches must keep one per origin.
    assert!(header(headers, "vary").is_some_and(|v| v.to_ascii_lowercase().contains("origin")));
}

#[tokio::test]
async fn a_preflight_from_an_allowed_origin_allows_a_json_post() {
    let app = shop_app().await;

    let response = preflight(&app, SHOP).await;

    assert!(response.status().is_success(), "{}", response.status());
    let headers = response.headers();
    assert_eq!(header(headers, "access-control-allow-origin"), Some(SHOP));
    let methods = header(headers, "access-control-allow-methods").unwrap_or_default();
    assert!(methods.split(',').any(|m| m.trim() == "POST"), "{methods}");
    let allowed = header(headers, "access-control-allow-headers").unwrap_or_default();
    assert!(
        allowed.to_ascii_lowercase().contains("content-type"),
        "{allowed}"
    );
    let bought = from(&app, SHOP, Method::POST, "/api/purchases")
        .json(&serde_json::json!({ "userId": "cors-shopper" }))
        .send()
        .await
        .expect("sent");
    assert_eq!(bought.status(), 201);
    assert_eq!(
        header(bought.headers(), "access-control-allow-origin"),
        Some(SHOP)
    );
}

#[tokio::test]
async fn a_refused_origin_gets_no_cors_headers_and_changes_nothing() {
    let app = shop_app().await;

    // A simple GET is answered as to anyone, but the browser hides it from the page.
    let get = from(&app, ELSEWHERE, Method::GET, "/api/sale/status")
        .send()
        .await
        .expect("sent");
    // A JSON POST is preflighted, the preflight is refused: the POST is never sent.
    let refused = preflight(&app, ELSEWHERE).await;
    // The only POST a browser sends without asking (a form's text/plain) is no purchase.
    let form = from(&app, ELSEWHERE, Method::POST, "/api/purchases")
        .header("content-type", "text/plain")
        .body(r#"{"userId":"cors-elsewhere"}"#)
        .send()
        .await
        .expect("sent");

    assert_eq!(get.status(), 200);
    assert_eq!(
        refused.status(),
        400,
        "actix-cors refuses a preflight from an unknown origin"
    );
    assert_eq!(form.status(), 415);
    // Without an allow-origin naming it, the page reads nothing (actix-cors
    // still adds `allow-credentials: true`, which grants nothing alone).
    for headers in [get.headers(), refused.headers(), form.headers()] {
        assert_eq!(header(headers, "access-control-allow-origin"), None);
        assert_eq!(header(headers, "access-control-allow-methods"), None);
    }
    let status = app.sale_status().await;
    assert_eq!(status["stockRemaining"], 3);
    let purchase: Value = app
        .purchase_status("cors-elsewhere")
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(purchase["purchased"], false);
}
