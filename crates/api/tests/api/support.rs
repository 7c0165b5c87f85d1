//! The api binary as a process of its own, for tests that kill or skew it.

use std::time::Duration;

use test_support::{free_port, Process};

/// The api binary as its own process on a free port, with `extra` variables;
/// returns it with its base URL once it answers.
pub async fn spawn_api_process(
    config: &crate::helpers::TestConfig,
    extra: &[(&str, &str)],
) -> (Process, String) {
    let port = free_port();
    let mut vars = config.vars.clone();
    vars.push(("PORT".into(), port.to_string()));
    vars.extend(
        extra
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
    );
    let process = Process::spawn(std::path::Path::new(env!("CARGO_BIN_EXE_api")), &vars);
    let base = format!("http://127.0.0.1:{port}");
    wait_until_up(&base).await;
    (process, base)
}

/// Waits until `base` answers its health check.
pub async fn wait_until_up(base: &str) {
    let client = reqwest::Client::new();
    for _ in 0..200 {
        if client
            .get(format!("{base}/api/health"))
            .send()
            .await
            .is_ok()
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("{base} did not come up");
}

/// What `base`'s own clock says: the `timestamp` of an error body, which
/// the api writes on its local clock.
pub async fn replica_clock(client: &reqwest::Client, base: &str) -> chrono::DateTime<chrono::Utc> {
    let missing = client
        .get(format!("{base}/no-such-route"))
        .send()
        .await
        .expect("404");
    assert_eq!(missing.status(), 404);
    let body: serde_json::Value = missing.json().await.expect("json");
    let stamp = body["timestamp"].as_str().expect("timestamp");
    chrono::DateTime::parse_from_rfc3339(stamp)
        .expect("ISO-8601 timestamp")
        .with_timezone(&chrono::Utc)
}

/// `base`'s `GET /metrics` (served on the api's port with `METRICS_PORT=0`).
pub async fn scrape_metrics(client: &reqwest::Client, base: &str) -> String {
    client
        .get(format!("{base}/metrics"))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("metrics text")
}
