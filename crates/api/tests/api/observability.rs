use serde_json::json;

use crate::helpers::{sample, spawn_app_with, TestConfig};

#[tokio::test]
async fn metrics_count_purchases_by_outcome_and_show_the_stock() {
    let app = spawn_app_with(TestConfig::active(2)).await;
    let sale = app.config.sale_id().to_string();
    for user in ["m-a", "m-a", "m-b", "m-c"] {
        app.purchase(user).await;
    }
    app.post_purchase_json(&json!({"userId": ""})).await;

    let scrape = app.get("/metrics").await.text().await.expect("text");

    let purchases = |outcome| {
        sample(
            &scrape,
            "flash_sale_purchases_total",
            &[("sale", &sale), ("outcome", outcome)],
        )
    };
    assert_eq!(purchases("confirmed"), Some(2.0), "{scrape}");
    assert_eq!(purchases("duplicate"), Some(1.0));
    assert_eq!(purchases("sold_out"), Some(1.0));
    assert_eq!(purchases("invalid"), Some(1.0));
    assert_eq!(
        sample(&scrape, "flash_sale_stock_remaining", &[("sale", &sale)]),
        Some(0.0)
    );
    let created = sample(
        &scrape,
        "flash_sale_http_request_duration_seconds_count",
        &[
            ("route", "/api/purchases"),
            ("status", "201"),
            ("method", "POST"),
        ],
    );
    assert!(created.is_some_and(|n| n >= 2.0), "{created:?}");
    // A 201 does not wait for its order's push: it follows at once.
    let mut pushed = None;
    for _ in 0..100 {
        let scrape = app.get("/metrics").await.text().await.expect("text");
        pushed = sample(&scrape, "flash_sale_order_jobs_pushed_total", &[]);
        if pushed.is_some_and(|n| n >= 2.0) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(pushed, Some(2.0), "both confirmed orders were queued");
    let scripts = sample(
        &scrape,
        "flash_sale_redis_command_duration_seconds_count",
        &[("command", "purchase")],
    );
    // m-a, m-a, m-b ran the script; m-c came after the sell-out: in-process.
    assert!(scripts.is_some_and(|n| n >= 3.0), "{scripts:?}");
}

#[tokio::test]
async fn routes_are_counted_by_pattern_not_by_user_id() {
    let app = spawn_app_with(TestConfig::active(2)).await;
    app.purchase_status("pattern-user-1").await;

    let scrape = app.get("/metrics").await.text().await.expect("text");

    assert!(
        scrape.contains(r#"route="/api/purchases/{user_id}""#),
        "{scrape}"
    );
    assert!(!scrape.contains("pattern-user-1"));
}

#[tokio::test]
async fn every_response_carries_a_request_id_and_a_sent_one_is_kept() {
    let app = spawn_app_with(TestConfig::active(2)).await;

    let generated = app.get("/api/sale/status").await;
    let kept = app
        .client
        .get(format!("{}/api/sale/status", app.address))
        .header("x-request-id", "trace-me-42")
        .send()
        .await
        .expect("sent");
    let refused = app
        .client
        .get(format!("{}/api/sale/status", app.address))
        .header("x-request-id", "not a token")
        .send()
        .await
        .expect("sent");

    let id = |r: &reqwest::Response| {
        r.headers()
            .get("x-request-id")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    assert!(id(&generated).is_some_and(|v| uuid::Uuid::parse_str(&v).is_ok()));
    assert_eq!(id(&kept).as_deref(), Some("trace-me-42"));
    assert!(id(&refused).is_some_and(|v| v != "not a token"));
}

/// The api's own binary at the default level, JSON: purchases and errors
/// are logged a line each (flushed at exit), successful reads are not —
/// unless `api::observe=debug` asks for them.
#[tokio::test]
async fn errors_are_logged_at_info_and_purchases_and_reads_at_debug() {
    for (filter, all_logged) in [("info", false), ("info,api::observe=debug", true)] {
        let port = test_support::free_port();
        let log_path = std::env::temp_dir().join(format!("fs-log-{}.jsonl", uuid::Uuid::new_v4()));
        let log = std::fs::File::create(&log_path).expect("log file");
        let config = crate::helpers::TestConfig::active(5).set("PORT", port);
        let mut api = std::process::Command::new(test_support::workspace_bin("api"))
            .envs(config.vars.iter().map(|(k, v)| (k, v)))
            .env("RUST_LOG", filter)
            .env("LOG_FORMAT", "json")
            .stdout(log)
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("spawn api");
        let base = format!("http://127.0.0.1:{port}");
        crate::support::wait_until_up(&base).await;
        let client = reqwest::Client::new();
        let status = client
            .get(format!("{base}/api/sale/status"))
            .send()
            .await
            .expect("sent");
        assert_eq!(status.status(), 200);
        let bought = client
            .post(format!("{base}/api/purchases"))
            .json(&serde_json::json!({"userId": "logged-buyer"}))
            .send()
            .await
            .expect("sent");
        assert_eq!(bought.status(), 201);
        let missing = client
            .get(format!("{base}/nowhere"))
            .send()
            .await
            .expect("sent");
        assert_eq!(missing.status(), 404);
        let _ = std::process::Command::new("kill")
            .args(["-TERM", &api.id().to_string()])
            .status();
        let _ = api.wait();

        let lines: Vec<serde_json::Value> = std::fs::read_to_string(&log_path)
            .expect("log")
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .filter(|l: &serde_json::Value| l["message"] == "request completed")
            .collect();
        let logged = |status: u16| lines.iter().any(|l| l["http.status"] == status);
        assert_eq!(logged(201), all_logged, "{filter}: the purchase logged?");
        assert!(logged(404), "{filter}: an error answer is logged");
        assert_eq!(
            lines.iter().any(|l| {
                // The route is the event's field at info, its span's at debug.
                let route = "/api/sale/status";
                l["http.status"] == 200
                    && (l["http.route"] == route || l["span"]["http.route"] == route)
            }),
            all_logged,
            "{filter}: status reads logged?"
        );
        std::fs::remove_file(log_path).ok();
    }
}
