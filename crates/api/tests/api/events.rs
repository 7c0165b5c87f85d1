use std::time::Duration;

use serde_json::Value;

use crate::helpers::{sample, spawn_app_with, TestApp, TestConfig};

/// Opens the live stream of `app`.
async fn open_stream(app: &TestApp) -> reqwest::Response {
    let response = app
        .client
        .get(format!("{}/api/sale/events", app.address))
        .send()
        .await
        .expect("stream opened");
    assert_eq!(response.status(), 200);
    response
}

/// The `status` events of an open stream, read until `count` arrived.
async fn status_events(
    app: &TestApp,
    count: usize,
    during: impl std::future::Future<Output = ()>,
) -> Vec<Value> {
    let (first, _) = tokio::sync::oneshot::channel();
    status_events_then(app, count, first, during).await
}

/// [`status_events`], telling `first` when the first event arrived.
async fn status_events_then(
    app: &TestApp,
    count: usize,
    first: tokio::sync::oneshot::Sender<()>,
    during: impl std::future::Future<Output = ()>,
) -> Vec<Value> {
    let mut first = Some(first);
    let response = open_stream(app).await;
    assert!(response.headers()["content-type"]
        .to_str()
        .unwrap_or("")
        .starts_with("text/event-stream"));
    let mut response = response;
    let mut buffer = String::new();
    let mut events = Vec::new();
    let mut during = Box::pin(during);
    let mut during_done = false;
    let reading = async {
        while events.len() < count {
            tokio::select! {
                chunk = response.chunk() => {
                    let Ok(Some(chunk)) = chunk else { break };
                    buffer.push_str(&String::from_utf8_lossy(&chunk));
                    while let Some(end) = buffer.find("\n\n") {
                        let block: String = buffer.drain(..end + 2).collect();
                        if block.contains("event: status") {
                            let data = block.lines().find_map(|l| l.strip_prefix("data: ")).unwrap_or("null");
                            events.push(serde_json::from_str(data).expect("json data"));
                            if let Some(first) = first.take() {
                                let _ = first.send(());
                            }
                        }
                    }
                }
                _ = &mut during, if !during_done => during_done = true,
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(10), reading)
        .await
        .expect("events in time");
    events
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_stream_sends_the_status_at_once_then_each_purchase() {
    let app = spawn_app_with(TestConfig::active(5)).await;
    // Buys once the page has its first event.
    let (shown, first_shown) = tokio::sync::oneshot::channel::<()>();
    let buy = async {
        let _ = first_shown.await;
        assert_eq!(app.purchase("live-1").await.status(), 201);
    };
    let events = status_events_then(&app, 2, shown, buy).await;

    assert_eq!(events[0]["status"], "active");
    assert_eq!(events[0]["stockRemaining"], 5);
    assert_eq!(events[0]["totalStock"], 5);
    assert_eq!(events[1]["stockRemaining"], 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_stream_turns_an_upcoming_sale_active_when_it_starts() {
    let starts = chrono::Utc::now() + chrono::Duration::seconds(2);
    let config = TestConfig::active(3).set("SALE_START_TIME", starts.to_rfc3339());
    let app = spawn_app_with(config).await;

    let events = status_events(&app, 2, async {}).await;

    assert_eq!(events[0]["status"], "upcoming");
    assert_eq!(events[1]["status"], "active");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fifty_open_pages_cost_one_redis_read_per_tick_not_one_per_page() {
    let app = spawn_app_with(TestConfig::active(5)).await;
    let reads = |scrape: &str| {
        sample(
            scrape,
            "flash_sale_redis_command_duration_seconds_count",
            &[("command", "reading")],
        )
        .unwrap_or(0.0)
    };
    let mut streams = Vec::new();
    for _ in 0..50 {
        streams.push(open_stream(&app).await);
    }
    let before = reads(&app.get("/metrics").await.text().await.expect("text"));

    tokio::time::sleep(Duration::from_secs(2)).await;
    let scrape = app.get("/metrics").await.text().await.expect("text");

    // One read per tick (4 a second at 250 ms): at least half of them on a
    // busy machine, never one per page.
    let per_second = (reads(&scrape) - before) / 2.0;
    let ticks_per_second = 1.0 / api::feed::TICK.as_secs_f64();
    assert!(
        per_second >= ticks_per_second / 2.0,
        "{per_second} stock reads per second: the open pages are not fed"
    );
    assert!(
        per_second <= ticks_per_second * 2.0,
        "{per_second} stock reads per second for 50 pages"
    );
    assert!(sample(&scrape, "flash_sale_sse_clients", &[]).is_some_and(|n| n >= 50.0));
    drop(streams);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_streams_do_not_hold_up_a_graceful_stop() {
    let app = spawn_app_with(TestConfig::active(5)).await;
    let _open = open_stream(&app).await;

    let started = std::time::Instant::now();
    app.stop().await;

    let took = started.elapsed();
    assert!(took < Duration::from_secs(5), "stopping took {took:?}");
}
