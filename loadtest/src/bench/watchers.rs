//! What open storefronts cost: `BENCH_WATCHERS` pages on
//! `GET /api/sale/events` of one api while buyers purchase from it at
//! `BENCH_WATCH_PURCHASES` a second; the api's CPU over that time, its
//! memory per open page, and what each page receives.

use std::{
    sync::{
        atomic::{AtomicU64, AtomicUsize, Ordering},
        Arc,
    },
    time::{Duration, Instant},
};

use anyhow::{bail, Context};
use tokio::task::JoinSet;

use super::{procfs, stack};

/// The watchers row's figures.
#[derive(Debug, Clone)]
pub struct WatchersSample {
    pub watchers: usize,
    pub seconds: f64,
    /// Purchases answered 201 per second while measuring.
    pub purchases_per_second: f64,
    /// The api's CPU over the measured time, as a share of one core.
    pub api_cpu_share: f64,
    /// The api's resident memory grown per open page, in KB.
    pub kb_per_watcher: f64,
    /// The same on `bare-actix`, actix-web alone ([`floor_kb`]).
    pub floor_kb_per_watcher: f64,
    /// Status events and bytes one page received per second (mean).
    pub events_per_watcher_second: f64,
    pub bytes_per_watcher_second: f64,
}

/// What every page received, counted as it arrives.
#[derive(Default)]
struct Received {
    bytes: AtomicU64,
    events: AtomicU64,
    open: AtomicUsize,
}

/// Opens `watchers` pages on `api`, then measures `duration` of purchases
/// at `purchases_per_second` beside them.
pub async fn measure(
    api: &stack::Api,
    watchers: usize,
    purchases_per_second: u32,
    duration: Duration,
) -> anyhow::Result<WatchersSample> {
    let rss_before = procfs::rss_mb(api.pid())?.0;
    let (mut pages, received) = open(&api.base(), watchers).await?;
    let rss_open = procfs::rss_mb(api.pid())?.0;
    let (bytes_before, events_before) = (
        received.bytes.load(Ordering::Acquire),
        received.events.load(Ordering::Acquire),
    );
    let cpu_before = procfs::cpu(api.pid())?;
    let started = Instant::now();

    let bought = buy_for(api, purchases_per_second, duration).await?;

    let seconds = started.elapsed().as_secs_f64();
    let api_cpu = procfs::cpu(api.pid())? - cpu_before;
    let bytes = received.bytes.load(Ordering::Acquire) - bytes_before;
    let events = received.events.load(Ordering::Acquire) - events_before;
    if received.open.load(Ordering::Acquire) < watchers {
        bail!("streams closed while measuring");
    }
    pages.abort_all();
    let per_page_second = |n: u64| n as f64 / watchers as f64 / seconds;
    Ok(WatchersSample {
        watchers,
        seconds,
        purchases_per_second: bought as f64 / seconds,
        api_cpu_share: api_cpu / seconds,
        kb_per_watcher: (rss_open - rss_before) * 1024.0 / watchers as f64,
        floor_kb_per_watcher: f64::NAN,
        events_per_watcher_second: per_page_second(events),
        bytes_per_watcher_second: per_page_second(bytes),
    })
}

/// The api's memory per open page set beside actix-web's own: `bare-actix`
/// (a server of one event stream) with as many pages open, in KB per page.
pub async fn floor_kb(bare: &stack::Api, watchers: usize) -> anyhow::Result<f64> {
    let rss_before = procfs::rss_mb(bare.pid())?.0;
    let (mut pages, received) = open(&bare.base(), watchers).await?;
    let rss_open = procfs::rss_mb(bare.pid())?.0;
    pages.abort_all();
    let events = received.events.load(Ordering::Acquire);
    if events < watchers as u64 {
        bail!("bare-actix: {events} events on {watchers} streams; every stream takes one at once");
    }
    Ok((rss_open - rss_before) * 1024.0 / watchers as f64)
}

/// Opens `watchers` pages on `base`'s event stream, at most a few hundred
/// connecting at once, and lets each take its first event.
async fn open(
    base: &str,
    watchers: usize,
) -> anyhow::Result<(JoinSet<anyhow::Result<()>>, Arc<Received>)> {
    let received = Arc::new(Received::default());
    let mut pages = JoinSet::new();
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()?;
    let url = format!("{base}/api/sale/events");
    println!("[bench] opening {watchers} event streams on {base}");
    for _ in 0..watchers {
        pages.spawn(watch(client.clone(), url.clone(), received.clone()));
        while pages.len() - received.open.load(Ordering::Acquire) > 200 {
            tokio::time::sleep(Duration::from_millis(5)).await;
            if let Some(ended) = pages.try_join_next() {
                ended.context("a page")??;
                bail!("a page's stream ended while opening the others");
            }
        }
    }
    let opening = Instant::now();
    while received.open.load(Ordering::Acquire) < watchers {
        if opening.elapsed() > Duration::from_secs(60) {
            bail!(
                "only {} of {watchers} streams opened",
                received.open.load(Ordering::Acquire)
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Let every page take its first event before measuring.
    tokio::time::sleep(Duration::from_secs(2)).await;
    Ok((pages, received))
}

/// One open page: reads its stream for as long as it is open.
async fn watch(
    client: reqwest::Client,
    url: String,
    received: Arc<Received>,
) -> anyhow::Result<()> {
    let mut response = client.get(&url).send().await?;
    if response.status() != 200 {
        bail!("the stream answered {}", response.status());
    }
    received.open.fetch_add(1, Ordering::AcqRel);
    while let Some(chunk) = response.chunk().await? {
        received
            .bytes
            .fetch_add(chunk.len() as u64, Ordering::Relaxed);
        let events = chunk
            .windows(b"event: status".len())
            .filter(|w| *w == b"event: status")
            .count();
        received.events.fetch_add(events as u64, Ordering::Relaxed);
    }
    received.open.fetch_sub(1, Ordering::AcqRel);
    Ok(())
}

/// Buys at `per_second` for `duration`, a new buyer each time; the 201s.
async fn buy_for(api: &stack::Api, per_second: u32, duration: Duration) -> anyhow::Result<u64> {
    let client = reqwest::Client::new();
    let url = format!("{}/api/purchases", api.base());
    let mut tick = tokio::time::interval(Duration::from_secs(1) / per_second.max(1));
    let started = Instant::now();
    let mut bought = 0;
    let mut i = 0u64;
    while started.elapsed() < duration {
        tick.tick().await;
        i += 1;
        let answer = client
            .post(&url)
            .json(&serde_json::json!({ "userId": format!("watch-buyer-{i}") }))
            .send()
            .await?;
        if answer.status() == 201 {
            bought += 1;
        }
    }
    Ok(bought)
}
