//! Load scenarios against a running api (see `loadtest/run.sh`, which
//! starts one per scenario with the right sale and limits):
//!
//! ```text
//! loadtest <burst|dedup|sustained|soldout> [--url URL] [--database-url URL]
//!          [--requests N] [--concurrency N] [--rate N] [--duration SECONDS]
//!          [--user-limit on|off] [--results DIR] [--summary FILE.md]
//! loadtest bench --bin-dir DIR --redis-url URL --database-url URL
//! loadtest keys SALE USER
//! ```
//!
//! Each scenario prints a summary and writes `<results>/<scenario>-<time>.json`;
//! a failed correctness check makes the exit status 1. `bench` (see
//! [`bench`]) starts its own apis and workers from `--bin-dir` and writes
//! `docs/bench/latest.md`.

mod bench;
mod chaos;
mod closed;
mod orders;
mod report;
mod scenarios;
mod shop;
mod stats;

use std::{path::PathBuf, time::Duration};

use anyhow::{bail, Context};

const USAGE: &str = "usage: loadtest <burst|dedup|sustained|soldout> [--url URL] [--database-url URL] \
[--requests N] [--concurrency N] [--rate N] [--duration SECONDS] [--user-limit on|off] [--results DIR] \
[--summary FILE.md]";

/// Command-line options; unset ones take the scenario's defaults.
#[derive(Debug, Default)]
pub struct Options {
    pub url: String,
    pub database_url: String,
    pub requests: Option<u64>,
    pub concurrency: Option<u64>,
    pub rate: Option<u64>,
    pub duration_secs: Option<u64>,
    pub user_limit: bool,
    pub results: PathBuf,
    /// Where to write the summary as markdown, and its title.
    pub summary: Option<(PathBuf, String)>,
}

impl Options {
    /// How long rows may take to reach PostgreSQL after the load.
    pub fn drain_limit(&self) -> Duration {
        Duration::from_secs(120)
    }
}

fn parse(args: &[String]) -> anyhow::Result<(String, Options)> {
    let mut options = Options {
        url: std::env::var("LOADTEST_URL").unwrap_or_else(|_| "http://127.0.0.1:3000".into()),
        database_url: std::env::var("DATABASE_URL")
            .unwrap_or_else(|_| domain::config::DEFAULT_DATABASE_URL.into()),
        results: PathBuf::from("loadtest/results"),
        ..Options::default()
    };
    let mut scenario = None;
    let mut rest = args.iter();
    while let Some(arg) = rest.next() {
        let mut value = |name: &str| {
            rest.next()
                .cloned()
                .with_context(|| format!("{name} needs a value\n{USAGE}"))
        };
        let number = |name: &str, raw: String| {
            raw.parse::<u64>()
                .ok()
                .filter(|n| *n > 0)
                .with_context(|| format!("{name} must be a positive integer, got {raw:?}"))
        };
        match arg.as_str() {
            "--url" => options.url = value(arg)?,
            "--database-url" => options.database_url = value(arg)?,
            "--requests" => options.requests = Some(number(arg, value(arg)?)?),
            "--concurrency" => options.concurrency = Some(number(arg, value(arg)?)?),
            "--rate" => options.rate = Some(number(arg, value(arg)?)?),
            "--duration" => options.duration_secs = Some(number(arg, value(arg)?)?),
            "--user-limit" => {
                options.user_limit = match value(arg)?.as_str() {
                    "on" => true,
                    "off" => false,
                    other => bail!("--user-limit takes on or off, got {other:?}"),
                }
            }
            "--results" => options.results = PathBuf::from(value(arg)?),
            "--summary" => {
                let path = PathBuf::from(value(arg)?);
                let title = path
                    .file_stem()
                    .map(|s| s.to_string_lossy().into_owned())
                    .unwrap_or_default();
                options.summary = Some((path, title));
            }
            "-h" | "--help" => bail!("{USAGE}"),
            name if scenario.is_none() && !name.starts_with('-') => {
                scenario = Some(name.to_owned())
            }
            other => bail!("unexpected argument {other:?}\n{USAGE}"),
        }
    }
    let scenario = scenario.with_context(|| format!("which scenario?\n{USAGE}"))?;
    Ok((scenario, options))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let (_program, args) = args.split_first().context(USAGE)?;
    match args.first().map(String::as_str) {
        Some("bench") => return run_bench(&args[1..]).await,
        Some("chaos-load") => return run_chaos_load(&args[1..]).await,
        Some("chaos-check") => return run_chaos_check(&args[1..]).await,
        Some("keys") => return print_keys(&args[1..]),
        Some("job-json") => return print_job(&args[1..]),
        _ => {}
    }
    let (scenario, options) = parse(args)?;
    let shop = shop::Shop::new(&options.url)?;
    shop.sale_status()
        .await
        .with_context(|| format!("no api answering at {}", shop.base()))?;
    let report = match scenario.as_str() {
        "burst" => {
            let orders = orders::Orders::connect(&options.database_url).await?;
            scenarios::burst::run(&shop, &orders, &options).await?
        }
        "dedup" => scenarios::dedup::run(&shop, &options).await?,
        "sustained" => {
            let orders = orders::Orders::connect(&options.database_url).await?;
            scenarios::sustained::run(&shop, &orders, &options).await?
        }
        "soldout" => {
            let orders = orders::Orders::connect(&options.database_url).await?;
            scenarios::soldout::run(&shop, &orders, &options).await?
        }
        other => bail!("unknown scenario {other:?}\n{USAGE}"),
    };
    report.print();
    let path = report.write(&options.results)?;
    println!("  written: {}", path.display());
    if let Some((summary, title)) = &options.summary {
        report.write_summary(summary, title)?;
    }
    if !report.passed() {
        std::process::exit(1);
    }
    Ok(())
}

/// `loadtest job-json compact|objects ORDERS`: a job of ORDERS new orders
/// of one sale as the api pushes it (`compact`) or as it pushed it before
/// (`objects`), for `loadtest/job-push.sh`. User ids are shaped like the
/// bench's (`loadtest/purchase.lua`).
fn print_job(args: &[String]) -> anyhow::Result<()> {
    let usage = "usage: loadtest job-json compact|objects ORDERS";
    let [form, count] = args else { bail!(usage) };
    let count: usize = count.parse().context(usage)?;
    let sale = domain::SaleId::parse("load-purchase-20261206-111850").context("sale id")?;
    let at = chrono::DateTime::from_timestamp_millis(chrono::Utc::now().timestamp_millis())
        .context("now")?;
    let orders: Vec<domain::PersistOrder> = (1..=count)
        .map(|i| {
            Ok(domain::PersistOrder {
                order_id: domain::OrderId::new(),
                sale_id: sale.clone(),
                user_id: domain::UserId::parse(&format!("w1796555931-1-{}", 2 * i))?,
                purchased_at: at,
            })
        })
        .collect::<anyhow::Result<_>>()?;
    let json = match form.as_str() {
        "compact" => serde_json::to_string(&domain::PersistOrders { orders })?,
        "objects" => serde_json::to_string(&serde_json::json!({ "orders": orders }))?,
        _ => bail!(usage),
    };
    println!("{json}");
    Ok(())
}

/// `loadtest keys SALE USER`: the sale's meta, stock, ledger and USER's
/// attempts key, on one line, as `domain::SaleKeys` lays them out (for
/// scripts that talk to Redis directly).
fn print_keys(args: &[String]) -> anyhow::Result<()> {
    let [sale, user] = args else {
        bail!("usage: loadtest keys SALE USER");
    };
    let sale = domain::SaleId::parse(sale).context("SALE")?;
    let user = domain::UserId::parse(user).context("USER")?;
    let keys = domain::SaleKeys::new(&sale);
    println!(
        "{} {} {} {}",
        keys.meta(),
        keys.stock(),
        keys.buyers(),
        keys.attempts(&user)
    );
    Ok(())
}

/// `--name value` pairs of a subcommand; a missing one is named.
struct Flags(std::collections::HashMap<String, String>);

impl Flags {
    fn parse(command: &str, args: &[String]) -> anyhow::Result<Self> {
        let mut flags = std::collections::HashMap::new();
        let mut rest = args.iter();
        while let Some(flag) = rest.next() {
            let value = rest
                .next()
                .with_context(|| format!("loadtest {command}: {flag} needs a value"))?;
            flags.insert(flag.clone(), value.clone());
        }
        Ok(Self(flags))
    }

    fn get(&self, name: &str) -> anyhow::Result<String> {
        self.0
            .get(name)
            .cloned()
            .with_context(|| format!("{name} is required"))
    }

    fn number(&self, name: &str) -> anyhow::Result<u64> {
        let raw = self.get(name)?;
        raw.parse()
            .ok()
            .filter(|n| *n > 0)
            .with_context(|| format!("{name} must be a positive integer, got {raw:?}"))
    }
}

/// `loadtest chaos-load --url URL --rate N --duration SECONDS --answers FILE`.
async fn run_chaos_load(args: &[String]) -> anyhow::Result<()> {
    let flags = Flags::parse("chaos-load", args)?;
    let shop = shop::Shop::new(&flags.get("--url")?)?;
    let answers = PathBuf::from(flags.get("--answers")?);
    chaos::load(
        &shop,
        flags.number("--rate")?,
        flags.number("--duration")?,
        &answers,
    )
    .await
}

/// `loadtest chaos-check`: see `deploy/local/chaos.sh` for the flags.
async fn run_chaos_check(args: &[String]) -> anyhow::Result<()> {
    let flags = Flags::parse("chaos-check", args)?;
    let options = chaos::CheckOptions {
        answers: PathBuf::from(flags.get("--answers")?),
        sale: flags.get("--sale")?,
        stock: flags.number("--stock")?,
        redis_url: flags.get("--redis-url")?,
        database_url: flags.get("--database-url")?,
        faults: PathBuf::from(flags.get("--faults")?),
        report: PathBuf::from(flags.get("--report")?),
        settings: flags.get("--settings")?,
    };
    let report = chaos::check(&options).await?;
    report.print();
    println!("  written: {}", options.report.display());
    if !report.passed() {
        std::process::exit(1);
    }
    Ok(())
}

/// `loadtest bench`: the paths from flags, the knobs from `BENCH_*`.
async fn run_bench(args: &[String]) -> anyhow::Result<()> {
    let flags = Flags::parse("bench", args)?;
    let flag = |name: &str| flags.get(name);
    let root = std::env::current_dir().context("the working directory")?;
    let (purchase_script, markdown, results) = bench::default_paths(&root);
    let settings = bench::BenchSettings {
        stack: bench::Stack {
            bin_dir: PathBuf::from(flag("--bin-dir")?),
            redis_url: flag("--redis-url")?,
            database_url: flag("--database-url")?,
            logs: results.join("logs"),
            run_id: chrono::Utc::now().format("%Y%m%d-%H%M%S").to_string(),
        },
        seconds: bench::env_or("BENCH_SECONDS", 5)?,
        rounds: bench::env_or("BENCH_ROUNDS", 3)?,
        connections: bench::env_or("BENCH_CONNECTIONS", 64)?,
        port: bench::env_or("BENCH_PORT", 3310)?,
        watchers: bench::env_or("BENCH_WATCHERS", 10_000)?,
        watch_purchases: bench::env_or("BENCH_WATCH_PURCHASES", 20)?,
        watch_seconds: bench::env_or("BENCH_WATCH_SECONDS", 20)?,
        purchase_script,
        markdown: bench::env_or("BENCH_REPORT", markdown)?,
        results,
    };
    bench::run(settings).await.map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(raw: &str) -> Vec<String> {
        raw.split_whitespace().map(str::to_owned).collect()
    }

    #[test]
    fn options_parse_and_bad_ones_are_named() {
        let (scenario, options) = parse(&args(
            "burst --requests 1000 --concurrency 200 --user-limit on",
        ))
        .expect("valid");
        assert_eq!(scenario, "burst");
        assert_eq!(options.requests, Some(1000));
        assert_eq!(options.concurrency, Some(200));
        assert!(options.user_limit);
        let error = parse(&args("burst --requests zero")).expect_err("invalid");
        assert!(error.to_string().contains("--requests"));
        assert!(parse(&args("--rate 5")).is_err(), "a scenario is required");
    }
}
