//! 1,000 purchases from 200 concurrent shoppers on stock 100: exactly the
//! stock is sold, everyone else hears 410, and every 201 becomes a row.

use std::{collections::HashSet, time::Instant};

use crate::{closed, orders::Orders, report::Report, shop::Shop, Options};

pub async fn run(shop: &Shop, orders: &Orders, options: &Options) -> anyhow::Result<Report> {
    let mut report = Report::new("burst");
    let (total, concurrency) = (
        options.requests.unwrap_or(1000),
        options.concurrency.unwrap_or(200),
    );
    let sale = shop.sale_id().await?;
    let stock = shop.stock_remaining().await?;
    let run = report.started_at.timestamp_millis();
    report.say(format!(
        "  {total} purchases by {total} users, {concurrency} at a time, on stock {stock} (sale {sale})"
    ));

    let burst = closed::purchases(shop, total, concurrency, move |i| {
        format!("burst-{run}-{i}")
    })
    .await;
    let ended = Instant::now();
    let sold = stock.min(total);
    burst.describe(&mut report);
    report.check("201 answers", sold, burst.statuses.get(201));
    report.check("410 answers", total - sold, burst.statuses.get(410));
    report.check("5xx or unanswered", 0, burst.statuses.failures());
    report.check("stock left", stock - sold, shop.stock_remaining().await?);

    let drained = orders
        .wait_for(&sale, sold, ended, options.drain_limit())
        .await?;
    let rows = orders.ids(&sale).await?;
    let answered: HashSet<String> = burst.order_ids.iter().cloned().collect();
    report.say(format!(
        "  persisted: {} rows, the last {:.0} ms after the burst ended",
        drained.rows,
        drained.after.as_secs_f64() * 1000.0
    ));
    report.check("order rows", sold, drained.rows);
    report.check("rows equal the confirmed order ids", true, rows == answered);

    report.figure("saleId", sale);
    report.figure("requests", total);
    report.figure("concurrency", concurrency);
    report.figure("stock", stock);
    report.figure("rows", drained.rows);
    report.figure("lastRowAfterBurstMs", drained.after.as_secs_f64() * 1000.0);
    Ok(report)
}
