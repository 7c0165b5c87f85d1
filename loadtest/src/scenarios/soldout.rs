//! 20,000 purchases after the stock is gone: every one is a fast 410,
//! nothing more is sold, and the rows stay exactly the stock.

use std::time::Instant;

use crate::{closed, orders::Orders, report::Report, shop::Shop, Options};

pub async fn run(shop: &Shop, orders: &Orders, options: &Options) -> anyhow::Result<Report> {
    let mut report = Report::new("soldout");
    let (total, concurrency) = (
        options.requests.unwrap_or(20_000),
        options.concurrency.unwrap_or(64),
    );
    let sale = shop.sale_id().await?;
    let stock = shop.stock_remaining().await?;
    let run = report.started_at.timestamp_millis();

    // Sell what is left first, so the storm hits a sold-out sale.
    let selling =
        closed::purchases(shop, stock, 50, move |i| format!("soldout-first-{run}-{i}")).await;
    let sold_at = Instant::now();
    report.say(format!(
        "  sold the remaining {stock} first: {}",
        selling.statuses.line()
    ));
    report.check(
        "stock sold before the storm",
        stock,
        selling.statuses.get(201),
    );

    report.say(format!(
        "  {total} purchases by new users, {concurrency} at a time"
    ));
    let storm = closed::purchases(shop, total, concurrency, move |i| {
        format!("soldout-{run}-{i}")
    })
    .await;
    storm.describe(&mut report);
    report.check("410 answers", total, storm.statuses.get(410));
    report.check("stock left", 0, shop.stock_remaining().await?);

    let total_stock = shop.sale_status().await?["totalStock"]
        .as_u64()
        .unwrap_or(0);
    let drained = orders
        .wait_for(&sale, total_stock, sold_at, options.drain_limit())
        .await?;
    report.check(
        "order rows (the whole stock, no more)",
        total_stock,
        drained.rows,
    );

    report.figure("saleId", sale);
    report.figure("requests", total);
    report.figure("concurrency", concurrency);
    report.figure("rows", drained.rows);
    Ok(report)
}
