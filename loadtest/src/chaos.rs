//! `make chaos` (deploy/local/chaos.sh) drives these two commands:
//!
//! - `chaos-load`: purchases by new users at a constant rate through the
//!   balancer while the script lands faults; every answer is written, one
//!   JSON line each, so the check sees exactly what buyers were told.
//! - `chaos-check`: once the faults stopped, waits for the rows, then
//!   checks the invariants and writes the report (`docs/chaos/latest.md`).

use std::{
    collections::{HashMap, HashSet},
    fmt::Write as _,
    io::{BufRead, Write},
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use anyhow::Context;
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

use crate::{orders::Orders, report::Report, shop::Shop};

/// One purchase as its buyer saw it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Told {
    /// Seconds from the start of the load when it was due.
    pub at: f64,
    pub user: String,
    /// 0 when no answer came (connection refused or timed out).
    pub status: u16,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub order_id: Option<String>,
    pub took_ms: f64,
}

/// Purchases at `rate` per second for `seconds`, each by a new user, due
/// at fixed times whatever came back before (open model); writes every
/// answer to `answers`.
pub async fn load(shop: &Shop, rate: u64, seconds: u64, answers: &Path) -> anyhow::Result<()> {
    let total = rate * seconds;
    let run = chrono::Utc::now().timestamp();
    let (tx, mut rx) = mpsc::unbounded_channel::<Told>();
    let runtime = tokio::runtime::Handle::current();
    let schedule_shop = shop.clone();
    // std's sleep on a thread of its own: tokio's 1 ms timer ticks would
    // bunch the arrivals.
    let schedule = std::thread::spawn(move || {
        let interval = Duration::from_secs_f64(1.0 / rate as f64);
        let started = Instant::now();
        for i in 0..total {
            let due = started + interval.mul_f64(i as f64);
            if let Some(wait) = due.checked_duration_since(Instant::now()) {
                std::thread::sleep(wait);
            }
            let (shop, tx) = (schedule_shop.clone(), tx.clone());
            runtime.spawn(async move {
                let user = format!("chaos-{run}-{i}");
                let answer = shop.purchase(&user, true).await;
                let order_id = answer
                    .body
                    .as_ref()
                    .and_then(|b| b["orderId"].as_str())
                    .map(str::to_owned);
                let _ = tx.send(Told {
                    at: (due - started).as_secs_f64(),
                    user,
                    status: answer.status,
                    order_id,
                    took_ms: answer.took.as_secs_f64() * 1000.0,
                });
            });
        }
    });
    let mut file = std::io::BufWriter::new(
        std::fs::File::create(answers)
            .with_context(|| format!("creating {}", answers.display()))?,
    );
    let mut counts: HashMap<u16, u64> = HashMap::new();
    let mut last_print = Instant::now();
    while let Some(told) = rx.recv().await {
        *counts.entry(told.status).or_default() += 1;
        serde_json::to_writer(&mut file, &told)?;
        file.write_all(b"\n")?;
        if last_print.elapsed() >= Duration::from_secs(10) {
            last_print = Instant::now();
            println!("[chaos] {:.0} s: {}", told.at, status_line(&counts));
        }
    }
    file.flush()?;
    tokio::task::spawn_blocking(move || schedule.join())
        .await?
        .map_err(|_| anyhow::anyhow!("the schedule thread panicked"))?;
    println!("[chaos] load done: {}", status_line(&counts));
    Ok(())
}

fn status_line(counts: &HashMap<u16, u64>) -> String {
    let mut statuses: Vec<_> = counts.iter().collect();
    statuses.sort();
    statuses
        .iter()
        .map(|(s, n)| format!("{n} x {s}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// What `chaos-check` needs.
pub struct CheckOptions {
    pub answers: PathBuf,
    pub sale: String,
    pub stock: u64,
    pub redis_url: String,
    pub database_url: String,
    pub faults: PathBuf,
    pub report: PathBuf,
    pub settings: String,
}

/// What the check found, beside the report's pass/fail lines.
struct Found {
    told: Vec<Told>,
    rows: usize,
    stock: u64,
    /// Rows of purchases whose buyer was told 503 or nothing: they stood.
    untold: usize,
    availability: Availability,
    faults: HashMap<String, u64>,
}

/// Waits for the rows, checks the invariants, writes the report.
pub async fn check(options: &CheckOptions) -> anyhow::Result<Report> {
    let mut report = Report::new("chaos");
    let told = read_answers(&options.answers)?;
    let confirmed: Vec<&Told> = told.iter().filter(|t| t.status == 201).collect();
    let orders = Orders::connect(&options.database_url).await?;
    // Every unit out of the stock is a ledger entry, and every ledger entry
    // must become a row: by its job, or by the reconciler after its grace.
    let stock = redis_stock(&options.redis_url, &options.sale).await?;
    let sold = options
        .stock
        .saturating_sub(stock)
        .max(confirmed.len() as u64);
    let limit = Duration::from_secs(180);
    let drained = orders
        .wait_for(&options.sale, sold, Instant::now(), limit)
        .await?;
    // A few more seconds: a row beyond those would be a sale nobody made.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let rows = orders.rows(&options.sale).await?;

    let by_order: HashMap<&str, &str> = rows
        .iter()
        .map(|(id, user)| (id.as_str(), user.as_str()))
        .collect();
    let unpersisted = confirmed
        .iter()
        .filter(|t| t.order_id.as_deref().and_then(|id| by_order.get(id)) != Some(&t.user.as_str()))
        .count();
    let answered: HashSet<&str> = confirmed
        .iter()
        .filter_map(|t| t.order_id.as_deref())
        .collect();
    let untold = rows
        .iter()
        .filter(|(id, _)| !answered.contains(id.as_str()))
        .count();
    let server_errors = told
        .iter()
        .filter(|t| t.status >= 500 && t.status != 503)
        .count();
    report.check("201s without their row and buyer", 0, unpersisted);
    report.check("rows <= stock", true, rows.len() as u64 <= options.stock);
    report.check(
        "remaining stock + rows = total",
        options.stock,
        stock + rows.len() as u64,
    );
    report.check("5xx answers other than 503", 0, server_errors);

    let availability = Availability::of(&told);
    report.say(format!(
        "  {} purchases: {} x 201, {} rows ({untold} of them for answers that were 503 or lost: purchases that stood), all rows in after {:.1} s",
        told.len(),
        confirmed.len(),
        rows.len(),
        drained.after.as_secs_f64()
    ));
    report.say(format!(
        "  availability while stock lasted: {:.2}% decided (201/409/410), {:.2}% 503, {:.2}% no answer",
        availability.decided * 100.0,
        availability.unavailable * 100.0,
        availability.unanswered * 100.0
    ));
    report.figure("purchases", told.len());
    report.figure("confirmed", confirmed.len());
    report.figure("rows", rows.len());
    report.figure("remainingStock", stock);
    report.figure("stoodWithout201", untold);
    report.figure("decidedWhileStockLasted", availability.decided);
    let found = Found {
        rows: rows.len(),
        stock,
        untold,
        availability,
        faults: fault_counts(&options.faults),
        told,
    };
    write_markdown(options, &report, &found)?;
    Ok(report)
}

/// How many of each fault landed, from the script's log.
fn fault_counts(path: &Path) -> HashMap<String, u64> {
    let mut counts = HashMap::new();
    for line in std::fs::read_to_string(path).unwrap_or_default().lines() {
        if let Some(kind) = line.split_whitespace().nth(1) {
            *counts.entry(kind.to_owned()).or_default() += 1;
        }
    }
    counts
}

/// Shares of the purchases due before the stock ran out.
struct Availability {
    decided: f64,
    unavailable: f64,
    unanswered: f64,
    /// Seconds into the run when the last unit sold (the whole run if never).
    sold_out_at: f64,
}

impl Availability {
    fn of(told: &[Told]) -> Self {
        let mut by_time: Vec<&Told> = told.iter().collect();
        by_time.sort_by(|a, b| a.at.total_cmp(&b.at));
        // The first "sold out" ends it: some units went to purchases
        // whose buyers were told 503 (they stood), so the 201s alone never
        // add up to the stock.
        let sold_out_at = by_time
            .iter()
            .find(|t| t.status == 410)
            .map_or(f64::MAX, |t| t.at);
        let window: Vec<&&Told> = by_time.iter().filter(|t| t.at <= sold_out_at).collect();
        let n = window.len().max(1) as f64;
        let share =
            |f: &dyn Fn(u16) -> bool| window.iter().filter(|t| f(t.status)).count() as f64 / n;
        Self {
            decided: share(&|s| matches!(s, 201 | 409 | 410)),
            unavailable: share(&|s| s == 503),
            unanswered: share(&|s| s == 0),
            sold_out_at,
        }
    }
}

fn read_answers(path: &Path) -> anyhow::Result<Vec<Told>> {
    let file = std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    std::io::BufReader::new(file)
        .lines()
        .map(|line| Ok(serde_json::from_str(&line?)?))
        .collect()
}

async fn redis_stock(url: &str, sale: &str) -> anyhow::Result<u64> {
    let sale = domain::SaleId::parse(sale).context("a sale id")?;
    let client = redis::Client::open(url)?;
    let mut conn = client.get_multiplexed_async_connection().await?;
    let stock: Option<u64> = redis::cmd("GET")
        .arg(domain::SaleKeys::new(&sale).stock())
        .query_async(&mut conn)
        .await?;
    stock.context("the sale's stock is missing from Redis")
}

fn write_markdown(options: &CheckOptions, report: &Report, found: &Found) -> anyhow::Result<()> {
    let mut out = String::new();
    crate::report::kept_file_header(&mut out, "make chaos", "deploy/local/chaos.sh");
    let _ = writeln!(out, "- settings: {} (stock {}), 3 api replicas + 2 workers behind haproxy, Redis AOF `appendfsync always`", options.settings, options.stock);
    let verdict = if report.passed() {
        "all invariants hold"
    } else {
        "INVARIANT VIOLATED"
    };
    let _ = writeln!(out, "- result: **{verdict}**");
    let faults: Vec<(String, u64)> = sorted(found.faults.iter().map(|(k, n)| (k.clone(), *n)));
    counts_table(&mut out, "faults landed", &faults);
    let mut statuses: HashMap<String, u64> = HashMap::new();
    for t in &found.told {
        let name = if t.status == 0 {
            "no answer".to_owned()
        } else {
            t.status.to_string()
        };
        *statuses.entry(name).or_default() += 1;
    }
    counts_table(&mut out, "answers", &sorted(statuses));
    let a = &found.availability;
    let sold_out = if a.sold_out_at == f64::MAX {
        "not sold out".to_owned()
    } else {
        format!("sold out at {:.0} s", a.sold_out_at)
    };
    let _ = writeln!(out, "\n| invariant or figure | value |\n| --- | ---: |");
    for line in report.lines() {
        let _ = writeln!(out, "| {} |  |", line.trim().replace('|', "/"));
    }
    let _ = writeln!(
        out,
        "| rows in PostgreSQL / remaining stock | {} / {} |",
        found.rows, found.stock
    );
    let _ = writeln!(
        out,
        "| rows of purchases answered 503 or unanswered that stood | {} |",
        found.untold
    );
    let _ = writeln!(
        out,
        "| decided (201/409/410) while stock lasted ({sold_out}) | {:.2}% |",
        a.decided * 100.0
    );
    let _ = writeln!(
        out,
        "| 503 while stock lasted | {:.2}% |",
        a.unavailable * 100.0
    );
    let _ = writeln!(
        out,
        "| no answer while stock lasted | {:.2}% |",
        a.unanswered * 100.0
    );
    if let Some(dir) = options.report.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(&options.report, out)
        .with_context(|| format!("writing {}", options.report.display()))
}

fn sorted(counts: impl IntoIterator<Item = (String, u64)>) -> Vec<(String, u64)> {
    let mut counts: Vec<_> = counts.into_iter().collect();
    counts.sort();
    counts
}

/// A two-column table of counts.
fn counts_table(out: &mut String, what: &str, counts: &[(String, u64)]) {
    let _ = writeln!(out, "\n| {what} | count |\n| --- | ---: |");
    for (name, n) in counts {
        let _ = writeln!(out, "| {name} | {n} |");
    }
}
