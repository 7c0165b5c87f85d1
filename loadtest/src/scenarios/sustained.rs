//! The seed's mix (70% status reads, 30% purchases) at a constant arrival
//! rate. Open model: request i is due at start + i/rate whether or not
//! earlier ones were answered, and its latency is counted from when it was
//! due, not from when it was sent, so a stall is charged to every request
//! that queued behind it (corrected for coordinated omission). The service
//! time (from the actual send) is reported beside it.

use std::time::{Duration, Instant};

use tokio::sync::mpsc;

use crate::{
    orders::Orders,
    report::Report,
    shop::Shop,
    stats::{Latencies, Statuses},
    Options,
};

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Status,
    Purchase,
}

struct Done {
    kind: Kind,
    status: u16,
    latency: Duration,
    service: Duration,
}

/// Every tenth request in `purchase_tenths` positions of ten is a purchase.
fn kind_of(i: u64, purchase_tenths: u64) -> Kind {
    if i % 10 < purchase_tenths {
        Kind::Purchase
    } else {
        Kind::Status
    }
}

/// What the schedule thread reports when every request was sent.
struct Sent {
    /// How long sending took, the most a request was sent late, the start.
    took: Duration,
    late: Duration,
    started: Instant,
}

/// The answers, by kind.
#[derive(Default)]
struct Tally {
    all: Latencies,
    service: Latencies,
    status_latency: Latencies,
    purchase_latency: Latencies,
    status_answers: Statuses,
    purchase_answers: Statuses,
}

impl Tally {
    fn add(&mut self, done: Done) {
        self.all.record(done.latency);
        self.service.record(done.service);
        match done.kind {
            Kind::Status => {
                self.status_latency.record(done.latency);
                self.status_answers.add(done.status);
            }
            Kind::Purchase => {
                self.purchase_latency.record(done.latency);
                self.purchase_answers.add(done.status);
            }
        }
    }
}

pub async fn run(shop: &Shop, orders: &Orders, options: &Options) -> anyhow::Result<Report> {
    let mut report = Report::new("sustained");
    let rate = options.rate.unwrap_or(500);
    let seconds = options.duration_secs.unwrap_or(60);
    let total = rate * seconds;
    report.say(format!(
        "  {rate} requests/s for {seconds} s ({total} requests: 70% GET /api/sale/status, 30% POST /api/purchases)"
    ));
    let (tx, mut rx) = mpsc::unbounded_channel::<Done>();
    let schedule = send_on_schedule(shop, rate, total, report.started_at.timestamp_millis(), tx);
    let sent = tokio::task::spawn_blocking(move || schedule.join())
        .await?
        .map_err(|_| anyhow::anyhow!("the schedule thread panicked"))?;
    let mut tally = Tally::default();
    while let Some(done) = rx.recv().await {
        tally.add(done);
    }
    let finished = sent.started.elapsed();
    summarize(&mut report, &tally, &sent, finished, rate, seconds);
    confirm_to_row(
        &mut report,
        shop,
        orders,
        options,
        tally.purchase_answers.get(201),
    )
    .await?;
    Ok(report)
}

/// Sends request i at start + i/rate from a thread of its own with std's
/// sleep (tens of µs late at most): tokio's timer wheel has 1 ms ticks,
/// which would add up to a millisecond of the generator's own lateness to
/// every sample. Each answer goes to `tx`.
fn send_on_schedule(
    shop: &Shop,
    rate: u64,
    total: u64,
    run: i64,
    tx: mpsc::UnboundedSender<Done>,
) -> std::thread::JoinHandle<Sent> {
    let runtime = tokio::runtime::Handle::current();
    let shop = shop.clone();
    std::thread::spawn(move || {
        let interval = Duration::from_secs_f64(1.0 / rate as f64);
        let started = Instant::now();
        let mut late = Duration::ZERO;
        for i in 0..total {
            let due = started + interval.mul_f64(i as f64);
            if let Some(wait) = due.checked_duration_since(Instant::now()) {
                std::thread::sleep(wait);
            }
            late = late.max(due.elapsed());
            let (shop, tx) = (shop.clone(), tx.clone());
            runtime.spawn(async move {
                let kind = kind_of(i, PURCHASE_TENTHS);
                let answer = match kind {
                    Kind::Purchase => shop.purchase(&format!("steady-{run}-{i}"), false).await,
                    Kind::Status => shop.status().await,
                };
                let _ = tx.send(Done {
                    kind,
                    status: answer.status,
                    latency: due.elapsed(),
                    service: answer.took,
                });
            });
        }
        Sent {
            took: started.elapsed(),
            late,
            started,
        }
    })
}

/// Purchases in every ten requests.
const PURCHASE_TENTHS: u64 = 3;

fn summarize(
    report: &mut Report,
    tally: &Tally,
    sent: &Sent,
    finished: Duration,
    rate: u64,
    seconds: u64,
) {
    let total = rate * seconds;
    let purchases = tally.purchase_answers.total();
    let errors = (tally.status_answers.total() - tally.status_answers.get(200))
        + (purchases - tally.purchase_answers.get(201));
    let error_rate = errors as f64 / total.max(1) as f64;
    let achieved = total as f64 / sent.took.as_secs_f64().max(1e-9);
    report.say(format!(
        "  sent at {achieved:.1} req/s (the generator fell behind its schedule by at most {:.2} ms); all answered after {:.1} s",
        sent.late.as_secs_f64() * 1000.0,
        finished.as_secs_f64()
    ));
    report.say(format!("  latency (from due time): {}", tally.all.line()));
    report.say(format!(
        "  service time (from send): {}",
        tally.service.line()
    ));
    report.say(format!(
        "  status reads: {} | {}",
        tally.status_answers.line(),
        tally.status_latency.line()
    ));
    report.say(format!(
        "  purchases:    {} | {}",
        tally.purchase_answers.line(),
        tally.purchase_latency.line()
    ));
    report.say(format!(
        "  error rate: {:.4}% ({errors} of {total})",
        error_rate * 100.0
    ));
    report.check("errors (status not 200, purchase not 201)", 0, errors);
    report.check("answers", total, tally.all.count());
    report.figure("rate", rate);
    report.figure("seconds", seconds);
    report.figure("requests", total);
    report.figure("achievedRate", achieved);
    report.figure("scheduleLagMaxMs", sent.late.as_secs_f64() * 1000.0);
    report.figure("latency", tally.all.summary());
    report.figure("serviceTime", tally.service.summary());
    report.figure("statusLatency", tally.status_latency.summary());
    report.figure("purchaseLatency", tally.purchase_latency.summary());
    report.figure("statusAnswers", tally.status_answers.to_json());
    report.figure("purchaseAnswers", tally.purchase_answers.to_json());
    report.figure("errorRate", error_rate);
}

/// From confirmation to row, with the worker persisting as it goes.
async fn confirm_to_row(
    report: &mut Report,
    shop: &Shop,
    orders: &Orders,
    options: &Options,
    confirmed: u64,
) -> anyhow::Result<()> {
    let sale = shop.sale_id().await?;
    let rows = orders
        .wait_for(&sale, confirmed, Instant::now(), options.drain_limit())
        .await?;
    report.check("rows (one per 201)", confirmed, rows.rows);
    let waits = orders.confirm_to_row(&sale).await?;
    report.say(format!(
        "  confirm-to-row: p50 {:.0} ms, p99 {:.0} ms, max {:.0} ms",
        waits.p50_ms, waits.p99_ms, waits.max_ms
    ));
    report.figure(
        "confirmToRowMs",
        serde_json::json!({"p50": waits.p50_ms, "p99": waits.p99_ms, "max": waits.max_ms}),
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn three_in_ten_requests_are_purchases() {
        let purchases = (0..1000)
            .filter(|i| kind_of(*i, 3) == Kind::Purchase)
            .count();
        assert_eq!(purchases, 300);
    }
}
