//! A closed-loop burst: `concurrency` shoppers, each sending its next
//! purchase as soon as its previous one is answered, until `total` are sent.

use std::{
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc,
    },
    time::{Duration, Instant},
};

use crate::{
    report::Report,
    shop::Shop,
    stats::{Latencies, Statuses},
};

pub struct Burst {
    pub statuses: Statuses,
    pub latencies: Latencies,
    /// Order ids of the 201 answers.
    pub order_ids: Vec<String>,
    pub took: Duration,
}

impl Burst {
    pub fn rate(&self) -> f64 {
        self.statuses.total() as f64 / self.took.as_secs_f64().max(1e-9)
    }

    /// Says its answers and latency, and records them as figures.
    pub fn describe(&self, report: &mut Report) {
        report.say(format!(
            "  answers: {} in {:.2} s ({:.0} req/s)",
            self.statuses.line(),
            self.took.as_secs_f64(),
            self.rate()
        ));
        report.say(format!("  latency: {}", self.latencies.line()));
        report.figure("statuses", self.statuses.to_json());
        report.figure("seconds", self.took.as_secs_f64());
        report.figure("requestsPerSecond", self.rate());
        report.figure("latency", self.latencies.summary());
    }
}

/// Purchases for `user(i)`, i in 0..total; bodies are kept only for 201s.
pub async fn purchases(
    shop: &Shop,
    total: u64,
    concurrency: u64,
    user: impl Fn(u64) -> String + Send + Sync + 'static,
) -> Burst {
    let next = Arc::new(AtomicU64::new(0));
    let user = Arc::new(user);
    let started = Instant::now();
    let shoppers = (0..concurrency.min(total).max(1)).map(|_| {
        let (shop, next, user) = (shop.clone(), next.clone(), user.clone());
        tokio::spawn(async move {
            let mut own = Burst {
                statuses: Statuses::default(),
                latencies: Latencies::default(),
                order_ids: Vec::new(),
                took: Duration::ZERO,
            };
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= total {
                    return own;
                }
                let answer = shop.purchase(&user(i), true).await;
                own.statuses.add(answer.status);
                own.latencies.record(answer.took);
                if answer.status == 201 {
                    if let Some(id) = answer.body.as_ref().and_then(|b| b["orderId"].as_str()) {
                        own.order_ids.push(id.to_owned());
                    }
                }
            }
        })
    });
    let mut burst = Burst {
        statuses: Statuses::default(),
        latencies: Latencies::default(),
        order_ids: Vec::new(),
        took: Duration::ZERO,
    };
    // A shopper task only ends by returning; a panic would be a bug here.
    for own in futures::future::join_all(shoppers)
        .await
        .into_iter()
        .flatten()
    {
        burst.statuses.merge(&own.statuses);
        burst.latencies.add(&own.latencies);
        burst.order_ids.extend(own.order_ids);
    }
    burst.took = started.elapsed();
    burst
}
