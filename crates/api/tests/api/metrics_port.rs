//! `METRICS_PORT`: `/metrics` on a port of its own, off the public one.

use std::net::TcpListener;

use api::{Application, Settings};
use serde_json::Value;
use test_support::free_port;

use crate::helpers::{sample, spawn_app_with, TestConfig};

#[tokio::test]
async fn with_metrics_port_set_metrics_leave_the_public_port_for_their_own() {
    let metrics_port = free_port();
    let app = spawn_app_with(TestConfig::active(2).set("METRICS_PORT", metrics_port)).await;
    let sale = app.config.sale_id().to_string();
    assert_eq!(app.purchase("metrics-port-1").await.status(), 201);
    let on_metrics_port = |path: &str| {
        app.client
            .get(format!("http://127.0.0.1:{metrics_port}{path}"))
            .send()
    };

    let public = app.get("/metrics").await;
    let scrape = on_metrics_port("/metrics").await.expect("scraped");
    let api_there = on_metrics_port("/api/sale/status").await.expect("sent");

    assert_eq!(public.status(), 404);
    let body: Value = public.json().await.expect("json body");
    assert_eq!(
        (body["statusCode"].as_u64(), body["path"].as_str()),
        (Some(404), Some("/metrics"))
    );
    assert_eq!(scrape.status(), 200);
    let scrape = scrape.text().await.expect("text");
    let confirmed = sample(
        &scrape,
        "flash_sale_purchases_total",
        &[("sale", &sale), ("outcome", "confirmed")],
    );
    assert_eq!(confirmed, Some(1.0), "{scrape}");
    assert_eq!(
        api_there.status(),
        404,
        "only /metrics is on the metrics port"
    );
}

#[tokio::test]
async fn the_document_lists_metrics_though_they_are_served_elsewhere() {
    let app = spawn_app_with(TestConfig::active(1).set("METRICS_PORT", free_port())).await;

    let doc = crate::openapi::document(&app).await;

    assert!(
        doc["paths"]["/metrics"]["get"].is_object(),
        "{}",
        doc["paths"]
    );
}

#[tokio::test]
async fn the_metrics_port_closes_when_the_app_stops() {
    let metrics_port = free_port();
    let app = spawn_app_with(TestConfig::active(1).set("METRICS_PORT", metrics_port)).await;
    let url = format!("http://127.0.0.1:{metrics_port}/metrics");
    assert_eq!(
        app.client.get(&url).send().await.expect("scraped").status(),
        200
    );

    app.stop().await;

    let connected = tokio::net::TcpStream::connect(("127.0.0.1", metrics_port)).await;
    assert!(
        connected.is_err(),
        "the metrics port still accepts connections"
    );
}

#[tokio::test]
async fn a_taken_metrics_port_stops_start_up_naming_it() {
    let taken = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = taken.local_addr().expect("address").port();
    let config = TestConfig::active(1).set("METRICS_PORT", port);
    let settings = Settings::from_env(&config.env()).expect("valid settings");

    let built = Application::build(settings).await;

    let error = built.err().expect("start-up refused");
    assert!(format!("{error:#}").contains("METRICS_PORT"), "{error:#}");
}
