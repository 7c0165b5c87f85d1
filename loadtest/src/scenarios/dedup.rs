//! One user, 100 requests at the same instant: exactly one 201. With the
//! per-user limit off the rest are 409; with it on, 409 or 429.

use std::sync::Arc;

use tokio::sync::Barrier;

use crate::{
    report::Report,
    shop::Shop,
    stats::{Latencies, Statuses},
    Options,
};

pub async fn run(shop: &Shop, options: &Options) -> anyhow::Result<Report> {
    let limit_on = options.user_limit;
    let mut report = Report::new(if limit_on {
        "dedup-limit-on"
    } else {
        "dedup-limit-off"
    });
    let total = options.requests.unwrap_or(100);
    let user = format!("dedup-{}", report.started_at.timestamp_millis());
    report.say(format!(
        "  {total} simultaneous purchases by one user ({user}), per-user limit {}",
        if limit_on { "on" } else { "off" }
    ));
    let stock = shop.stock_remaining().await?;

    // Every request waits at the barrier, so they leave together.
    let barrier = Arc::new(Barrier::new(usize::try_from(total).unwrap_or(usize::MAX)));
    let requests = (0..total).map(|_| {
        let (shop, barrier, user) = (shop.clone(), barrier.clone(), user.clone());
        tokio::spawn(async move {
            barrier.wait().await;
            shop.purchase(&user, false).await
        })
    });
    let mut statuses = Statuses::default();
    let mut latencies = Latencies::default();
    for answer in futures::future::join_all(requests)
        .await
        .into_iter()
        .flatten()
    {
        statuses.add(answer.status);
        latencies.record(answer.took);
    }
    report.say(format!("  answers: {}", statuses.line()));
    report.say(format!("  latency: {}", latencies.line()));
    report.check("201 answers", 1, statuses.get(201));
    if limit_on {
        report.check(
            "409 + 429 answers",
            total - 1,
            statuses.get(409) + statuses.get(429),
        );
    } else {
        report.check("409 answers", total - 1, statuses.get(409));
    }
    report.check("5xx or unanswered", 0, statuses.failures());
    report.check("stock taken", 1, stock - shop.stock_remaining().await?);

    report.figure("requests", total);
    report.figure("userLimit", limit_on);
    report.figure("statuses", statuses.to_json());
    report.figure("latency", latencies.summary());
    Ok(report)
}
