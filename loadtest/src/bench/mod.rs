//! `loadtest bench`: what each endpoint costs, measured beside the api's own
//! `GET /` in one run on this machine, so the ratios hold however busy the
//! shared machine is. `BENCH_ROUNDS` interleaved rounds of
//! `BENCH_SECONDS` per endpoint (wrk, 2 threads); each row is the round with
//! the median rate, so one noisy moment does not decide a ratio.
//!
//! Rows: `GET /`, `GET /api/sale/status`, purchases with no worker running
//! (the api and Redis alone), purchases with a worker persisting them live
//! (their confirm-to-row times from PostgreSQL), purchases behind sign-in
//! (`BUYER_AUTH=jwt`: a fresh HS256, then ES256, token per buyer, so every
//! request pays one signature check), and purchases of a sold-out sale.
//! Beside them: the orders persisted per second by one worker draining the
//! first purchase rows' backlog, Redis's command time and CPU per purchase,
//! the api's CPU per request and memory, and what `BENCH_WATCHERS` open
//! storefronts cost an api while buyers purchase (`watchers`).
//!
//! Writes `docs/bench/latest.md` (what the README shows) and a JSON copy
//! under `loadtest/results/`.

mod procfs;
mod redis_stats;
mod report;
mod stack;
mod tokens;
mod watchers;
mod wrk;

use std::{
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use anyhow::{bail, Context};

use crate::orders::{ConfirmToRow, Orders};
use redis_stats::{Counters, RedisStats};
pub use report::BenchReport;
use report::Drain;
pub use stack::Stack;

/// How a benchmark runs.
#[derive(Debug, Clone)]
pub struct BenchSettings {
    pub stack: Stack,
    pub seconds: u64,
    pub rounds: usize,
    pub connections: u32,
    /// The first of the ports the apis listen on.
    pub port: u16,
    /// Open storefronts on the live stream, the purchases a second made
    /// beside them, and for how long.
    pub watchers: usize,
    pub watch_purchases: u32,
    pub watch_seconds: u64,
    /// The wrk script posting a fresh user per request.
    pub purchase_script: PathBuf,
    pub markdown: PathBuf,
    pub results: PathBuf,
}

/// One endpoint's round: wrk's figures and the api's CPU over it.
#[derive(Debug, Clone)]
pub struct Sample {
    pub wrk: wrk::Run,
    pub api_cpu: f64,
}

impl Sample {
    pub fn api_us(&self) -> f64 {
        wrk::per_request_us(self.api_cpu, self.wrk.requests)
    }
}

/// The endpoints measured, in report order.
pub const ENDPOINTS: [&str; 12] = [
    "plaintext",
    "status",
    "purchase",
    "purchase-lone",
    "purchase-live",
    "purchase-hs256",
    "purchase-es256",
    "sold-out",
    "status-info",
    "purchase-info",
    "bare-root",
    "bare-sold-out",
];

/// One row of a round: where wrk sends, which api it measures, its script.
struct Row {
    url: String,
    pid: u32,
    script: Option<PathBuf>,
    script_args: Vec<String>,
    /// wrk's connections, when not the run's.
    connections: Option<u32>,
}

/// The apis a benchmark measures (and the live one's worker).
struct Apis {
    /// Purchases with no worker running; also `GET /` and status.
    bench: stack::Api,
    /// A lone buyer's purchases (a sale of its own, so the no-worker
    /// row's Redis figures count that row's purchases alone).
    lone: stack::Api,
    /// Purchases with a worker persisting them as they come.
    live: stack::Api,
    _live_worker: stack::Service,
    /// A sale whose one unit is sold.
    sold: stack::Api,
    /// `BUYER_AUTH=jwt` with an HS256 secret, and with an ES256 key.
    hs256: stack::Api,
    es256: stack::Api,
    tokens: tokens::Tokens,
    /// At the default log level (`RUST_LOG=info`, JSON): a line per request.
    info: stack::Api,
    /// `bare-actix`: actix-web alone, the floor under `GET /` and sold-out.
    bare: stack::Api,
}

impl Apis {
    async fn start(settings: &BenchSettings) -> anyhow::Result<Self> {
        let stack = &settings.stack;
        let port = settings.port;
        let bench = stack.api("purchase", port, 100_000_000, &[]).await?;
        let live = stack.api("live", port + 1, 100_000_000, &[]).await?;
        let lone = stack.api("lone", port + 7, 100_000_000, &[]).await?;
        let live_worker = stack.worker(&live)?;
        let sold = stack.api("sold-out", port + 2, 1, &[]).await?;
        buy_one(&sold.base()).await?;
        let script = settings
            .purchase_script
            .with_file_name("token-purchase.lua");
        let seconds = usize::try_from(settings.seconds).unwrap_or(usize::MAX);
        let tokens = tokens::Tokens::write(settings.rounds, seconds, script)?;
        let mut jwt = tokens.api_vars();
        jwt.push(("JWT_SECRET", tokens::SECRET));
        let hs256 = stack.api("hs256", port + 3, 100_000_000, &jwt).await?;
        let mut jwt = tokens.api_vars();
        let pem = tokens.es256_public_key.path().display().to_string();
        jwt.push(("JWT_PUBLIC_KEY_FILE", &pem));
        let es256 = stack.api("es256", port + 4, 100_000_000, &jwt).await?;
        let info = [("RUST_LOG", "info"), ("LOG_FORMAT", "json")];
        let info = stack.api("info", port + 5, 100_000_000, &info).await?;
        let bare = stack.bare_actix(port + 8).await?;
        Ok(Self {
            bench,
            lone,
            live,
            _live_worker: live_worker,
            sold,
            hs256,
            es256,
            tokens,
            info,
            bare,
        })
    }

    /// Each row of [`ENDPOINTS`], in order.
    fn rows(&self, purchase: &Path, late: &Path, round: usize) -> Vec<Row> {
        let row = |api: &stack::Api, path: &str, script: Option<&Path>, args: Vec<String>| Row {
            url: format!("{}{path}", api.base()),
            pid: api.pid(),
            script: script.map(Path::to_path_buf),
            script_args: args,
            connections: None,
        };
        // Each round starts at its own part of the token files: a token
        // is one buyer's first purchase, never a retry.
        let tokens = |file: &Path, per_round: usize| {
            vec![file.display().to_string(), (round * per_round).to_string()]
        };
        let script = Some(self.tokens.script.as_path());
        vec![
            row(&self.bench, "/", None, vec![]),
            row(&self.bench, "/api/sale/status", None, vec![]),
            row(&self.bench, "/api/purchases", Some(purchase), vec![]),
            // A lone buyer: one request at a time, what each one waits.
            Row {
                connections: Some(1),
                ..row(&self.lone, "/api/purchases", Some(purchase), vec![])
            },
            row(&self.live, "/api/purchases", Some(purchase), vec![]),
            row(
                &self.hs256,
                "/api/purchases",
                script,
                tokens(self.tokens.hs256.path(), self.tokens.per_round.0),
            ),
            row(
                &self.es256,
                "/api/purchases",
                script,
                tokens(self.tokens.es256.path(), self.tokens.per_round.1),
            ),
            row(&self.sold, "/api/purchases", Some(late), vec![]),
            row(&self.info, "/api/sale/status", None, vec![]),
            row(&self.info, "/api/purchases", Some(purchase), vec![]),
            row(&self.bare, "/", None, vec![]),
            row(&self.bare, "/api/purchases", Some(late), vec![]),
        ]
    }
}

/// Every round's samples, per row, and what Redis spent on the no-worker
/// purchase rows.
struct Rounds {
    samples: Vec<Vec<Sample>>,
    redis_per_purchase: Counters,
}

pub async fn run(settings: BenchSettings) -> anyhow::Result<BenchReport> {
    let load_at_start = procfs::load_average();
    let mut redis = RedisStats::connect(&settings.stack.redis_url).await?;
    let orders = Orders::connect(&settings.stack.database_url).await?;
    let apis = Apis::start(&settings).await?;

    let rounds = rounds(&settings, &apis, &mut redis).await?;
    let bought = redis.buyers(&apis.bench.sale).await?;
    let bought_live = redis.buyers(&apis.live.sale).await?;
    let api_rss_mb = procfs::rss_mb(apis.bench.pid())?;
    let watchers = {
        let no_cap = [("SSE_MAX_CLIENTS", "0")];
        let api = settings
            .stack
            .api("watch", settings.port + 6, 100_000_000, &no_cap)
            .await?;
        let duration = Duration::from_secs(settings.watch_seconds);
        let mut sample =
            watchers::measure(&api, settings.watchers, settings.watch_purchases, duration).await?;
        drop(api);
        let bare = settings.stack.bare_actix(settings.port + 9).await?;
        sample.floor_kb_per_watcher = watchers::floor_kb(&bare, settings.watchers).await?;
        sample
    };
    let confirm_to_row = live_rows(&orders, &apis.live, bought_live).await?;
    let drained = drain(&settings, &orders, &apis.bench, bought).await?;

    let report = BenchReport {
        settings: settings.clone(),
        load_at_start,
        medians: rounds.samples.iter().map(|s| median(s).clone()).collect(),
        bought,
        bought_live,
        drained,
        redis_command_us: rounds.redis_per_purchase.command_us / bought.max(1) as f64,
        redis_cpu_us: rounds.redis_per_purchase.cpu * 1e6 / bought.max(1) as f64,
        purchases_per_script_call: bought as f64 / rounds.redis_per_purchase.script_calls.max(1.0),
        confirm_to_row,
        api_rss_mb,
        watchers,
    };
    report.write()?;
    Ok(report)
}

/// `settings.rounds` rounds of every row, interleaved.
async fn rounds(
    settings: &BenchSettings,
    apis: &Apis,
    redis: &mut RedisStats,
) -> anyhow::Result<Rounds> {
    let late = write_late_shopper_script()?;
    let mut samples: Vec<Vec<Sample>> = vec![Vec::new(); ENDPOINTS.len()];
    let mut redis_per_purchase = Counters::default();
    let duration = Duration::from_secs(settings.seconds);
    println!(
        "[bench] {} interleaved rounds of {} s per endpoint, {} connections; medians reported",
        settings.rounds, settings.seconds, settings.connections
    );
    for round in 1..=settings.rounds {
        let rows = apis.rows(&settings.purchase_script, late.path(), round - 1);
        for (i, row) in rows.iter().enumerate() {
            let redis_before = redis.counters().await?;
            let connections = row.connections.unwrap_or(settings.connections);
            let sample = measure(row, duration, connections).await?;
            if ENDPOINTS[i] == "purchase" {
                let spent = redis.counters().await?.since(redis_before);
                redis_per_purchase.command_us += spent.command_us;
                redis_per_purchase.script_calls += spent.script_calls;
                redis_per_purchase.cpu += spent.cpu;
            }
            samples[i].push(sample);
        }
        let rates: Vec<String> = ENDPOINTS
            .iter()
            .zip(&samples)
            .map(|(name, s)| format!("{name} {:.0}", s[round - 1].wrk.per_second))
            .collect();
        println!("[bench] round {round}: {} req/s", rates.join(", "));
    }
    Ok(Rounds {
        samples,
        redis_per_purchase,
    })
}

/// Waits for the live sale's rows; their confirm-to-row times.
async fn live_rows(
    orders: &Orders,
    live: &stack::Api,
    bought: u64,
) -> anyhow::Result<ConfirmToRow> {
    println!("[bench] {bought} live orders: waiting for their rows");
    let limit = Duration::from_secs(300);
    let rows = orders
        .wait_for(&live.sale, bought, Instant::now(), limit)
        .await?;
    if rows.rows < bought {
        bail!("rows missing: {}/{bought} of the live sale", rows.rows);
    }
    orders.confirm_to_row(&live.sale).await
}

/// Starts one worker on the no-worker sale's backlog: its rows per second,
/// and what each row cost the worker and PostgreSQL (every `postgres`
/// process on the machine but the one counting the rows: nothing else is
/// using it meanwhile). The worker's reconciler is on (`RECONCILE_SALES`,
/// every 10 s): its passes over the sale are in both figures.
async fn drain(
    settings: &BenchSettings,
    orders: &Orders,
    bench: &stack::Api,
    bought: u64,
) -> anyhow::Result<Drain> {
    println!("[bench] {bought} orders queued with no worker; starting one to drain them");
    // Less the backend counting the rows (`wait_for`).
    let counting = orders.backend_pid().await?;
    let postgres_before = procfs::cpu_of_named("postgres")?;
    let started = Instant::now();
    let mut drainer = settings.stack.worker(bench)?;
    let limit = Duration::from_secs(600);
    let drained = orders.wait_for(&bench.sale, bought, started, limit).await?;
    let worker_cpu = procfs::cpu(drainer.pid())?;
    let mut postgres_after = procfs::cpu_of_named("postgres")?;
    postgres_after.remove(&counting);
    let postgres_cpu = procfs::cpu_since(&postgres_before, &postgres_after);
    drainer.stop();
    if drained.rows < bought {
        bail!("rows missing: {}/{bought} drained", drained.rows);
    }
    let rows = drained.rows as f64;
    Ok(Drain {
        per_second: rows / drained.after.as_secs_f64(),
        worker_us_per_order: worker_cpu * 1e6 / rows,
        postgres_us_per_order: postgres_cpu * 1e6 / rows,
    })
}

/// One wrk round of `row`, with the CPU its api spent on it.
async fn measure(row: &Row, duration: Duration, connections: u32) -> anyhow::Result<Sample> {
    let before = procfs::cpu(row.pid)?;
    let wrk = wrk::run(
        &row.url,
        duration,
        connections,
        row.script.as_deref(),
        &row.script_args,
    )
    .await?;
    let api_cpu = procfs::cpu(row.pid)? - before;
    Ok(Sample { wrk, api_cpu })
}

/// The sample with the median rate.
fn median(samples: &[Sample]) -> &Sample {
    let mut sorted: Vec<&Sample> = samples.iter().collect();
    sorted.sort_by(|a, b| a.wrk.per_second.total_cmp(&b.wrk.per_second));
    sorted[(sorted.len() - 1) / 2]
}

/// The sold-out sale's one unit goes to its first buyer.
async fn buy_one(base: &str) -> anyhow::Result<()> {
    let answer = reqwest::Client::new()
        .post(format!("{base}/api/purchases"))
        .json(&serde_json::json!({ "userId": "bench-first" }))
        .send()
        .await?;
    if answer.status() != 201 {
        bail!(
            "the sold-out sale's first purchase answered {}",
            answer.status()
        );
    }
    Ok(())
}

/// A wrk script sending one late shopper's body as it is: any user not
/// among the buyers costs the server the same lookup, and no per-request
/// Lua in wrk keeps its cost the same as for `GET /`.
fn write_late_shopper_script() -> anyhow::Result<tempfile_path::TempPath> {
    tempfile_path::TempPath::write(
        "late.lua",
        r#"wrk.method = "POST"
wrk.body = '{"userId":"late-shopper"}'
wrk.headers["Content-Type"] = "application/json"
"#,
    )
}

/// A file removed when dropped (no extra crate for one file).
pub(crate) mod tempfile_path {
    use std::path::{Path, PathBuf};

    pub struct TempPath(PathBuf);

    impl TempPath {
        pub fn write(name: &str, text: &str) -> anyhow::Result<Self> {
            let path = std::env::temp_dir().join(format!("{}-{name}", uuid_like()));
            std::fs::write(&path, text)?;
            Ok(Self(path))
        }

        pub fn path(&self) -> &Path {
            &self.0
        }
    }

    impl Drop for TempPath {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.0);
        }
    }

    fn uuid_like() -> String {
        format!(
            "bench-{}-{}",
            std::process::id(),
            chrono::Utc::now().timestamp_nanos_opt().unwrap_or(0)
        )
    }
}

/// The default paths, relative to the repository root.
pub fn default_paths(root: &Path) -> (PathBuf, PathBuf, PathBuf) {
    (
        root.join("loadtest/purchase.lua"),
        root.join("docs/bench/latest.md"),
        root.join("loadtest/results"),
    )
}

/// `with_context` for the settings the shell passes.
pub fn env_or<T: std::str::FromStr>(name: &str, default: T) -> anyhow::Result<T> {
    match std::env::var(name) {
        Ok(raw) if !raw.trim().is_empty() => raw
            .trim()
            .parse()
            .ok()
            .with_context(|| format!("{name}={raw:?} is not a valid value")),
        _ => Ok(default),
    }
}
