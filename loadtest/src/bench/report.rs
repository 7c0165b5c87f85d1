//! The benchmark's results: `docs/bench/latest.md` (what the README shows)
//! and a JSON copy under `loadtest/results/`.

use std::fmt::Write as _;

use anyhow::Context;
use serde_json::json;

use super::{watchers::WatchersSample, BenchSettings, Sample, ENDPOINTS};
use crate::orders::ConfirmToRow;

/// One worker draining the no-worker rows' backlog.
pub struct Drain {
    pub per_second: f64,
    /// The worker's CPU time over the rows it wrote.
    pub worker_us_per_order: f64,
    /// Every `postgres` process's CPU time over those rows.
    pub postgres_us_per_order: f64,
}

pub struct BenchReport {
    pub settings: BenchSettings,
    pub load_at_start: String,
    /// The median round of each of [`ENDPOINTS`].
    pub medians: Vec<Sample>,
    pub bought: u64,
    pub bought_live: u64,
    pub drained: Drain,
    pub redis_command_us: f64,
    pub redis_cpu_us: f64,
    /// Purchases confirmed with no worker over the script calls they took
    /// (purchase batches and job pushes).
    pub purchases_per_script_call: f64,
    pub confirm_to_row: ConfirmToRow,
    pub api_rss_mb: (f64, f64),
    pub watchers: WatchersSample,
}

/// How each row is named in the table.
fn label(endpoint: &str) -> &'static str {
    match endpoint {
        "plaintext" => "`GET /` (baseline)",
        "status" => "`GET /api/sale/status`",
        "purchase" => "`POST /api/purchases`, no worker",
        "purchase-lone" => "`POST /api/purchases`, no worker, a lone buyer (one connection, one request at a time)",
        "purchase-live" => "`POST /api/purchases`, worker persisting live",
        "purchase-hs256" => "`POST /api/purchases`, `BUYER_AUTH=jwt` HS256, a new token per buyer",
        "purchase-es256" => "`POST /api/purchases`, `BUYER_AUTH=jwt` ES256, a new token per buyer",
        "status-info" => "`GET /api/sale/status`, `RUST_LOG=info` (the default), a JSON line per request",
        "purchase-info" => "`POST /api/purchases`, no worker, `RUST_LOG=info` (the default), a JSON line per request",
        "bare-root" => "`bare-actix` (actix-web alone, none of our code): `GET /`",
        "bare-sold-out" => "`bare-actix`: `POST /api/purchases`, the body read by actix-web's `Json`, answered 410",
        _ => "`POST /api/purchases`, sold out",
    }
}

impl BenchReport {
    fn sample(&self, endpoint: &str) -> &Sample {
        let i = ENDPOINTS.iter().position(|e| *e == endpoint).unwrap_or(0);
        &self.medians[i]
    }

    /// Rate of `endpoint` over `GET /`'s.
    pub fn ratio(&self, endpoint: &str) -> f64 {
        self.sample(endpoint).wrk.per_second / self.sample("plaintext").wrk.per_second
    }

    pub fn markdown(&self) -> String {
        let mut out = String::new();
        self.write_header(&mut out);
        self.write_rows(&mut out);
        self.write_figures(&mut out);
        self.write_watchers(&mut out);
        out
    }

    fn write_header(&self, out: &mut String) {
        let s = &self.settings;
        crate::report::kept_file_header(out, "make bench", "loadtest/bench.sh -> loadtest bench");
        let _ = writeln!(out, "- code: {}", git_describe());
        let _ = writeln!(
            out,
            "- machine: {} cores, {}, load average at the start {} (the cores are shared with wrk, Redis and PostgreSQL)",
            std::thread::available_parallelism().map_or(0, |n| n.get()),
            kernel(),
            self.load_at_start
        );
        let _ = writeln!(
            out,
            "- method: {} interleaved rounds of {} s per row, wrk -t2 -c{}; each row is its median round; release build, `RUST_LOG=warn` unless the row says otherwise, limits off\n",
            s.rounds, s.seconds, s.connections
        );
    }

    fn write_rows(&self, out: &mut String) {
        let _ = writeln!(out, "| endpoint | req/s | x `GET /` | p50 ms | p99 ms | api CPU us/req | wrk CPU us/req | answers not 2xx |");
        let _ = writeln!(
            out,
            "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
        );
        for endpoint in ENDPOINTS {
            let m = self.sample(endpoint);
            let _ = writeln!(
                out,
                "| {} | {:.0} | {:.2} | {:.2} | {:.2} | {:.1} | {:.1} | {} |",
                label(endpoint),
                m.wrk.per_second,
                self.ratio(endpoint),
                m.wrk.p50_ms,
                m.wrk.p99_ms,
                m.api_us(),
                m.wrk.wrk_us(),
                m.wrk.non_2xx + m.wrk.socket_errors
            );
        }
        let _ = writeln!(
            out,
            "\n(A sold-out sale answers 410 by design, and so does `bare-actix`'s POST: their rows count every answer there.)"
        );
    }

    fn write_figures(&self, out: &mut String) {
        let c = &self.confirm_to_row;
        let per_plain = self.sample("purchase").api_us() / self.sample("plaintext").api_us();
        let rows = [
            (
                "purchases confirmed, no worker / worker live",
                format!("{} / {}", self.bought, self.bought_live),
            ),
            (
                "Redis command time per purchase (INFO commandstats: the script calls, pushes included, each counted once with the commands it runs)",
                format!("{:.1} us", self.redis_command_us),
            ),
            (
                "Redis CPU per purchase (INFO cpu)",
                format!("{:.1} us", self.redis_cpu_us),
            ),
            (
                "purchases per script call (purchase batches and job pushes, no worker)",
                format!("{:.1}", self.purchases_per_script_call),
            ),
            (
                "api CPU per purchase / per `GET /`",
                format!("{per_plain:.2}x"),
            ),
            (
                "sold-out over `GET /`: the api / actix-web alone (`bare-actix`'s POST over its `GET /`)",
                format!(
                    "{:.2}x / {:.2}x",
                    self.ratio("sold-out"),
                    self.sample("bare-sold-out").wrk.per_second
                        / self.sample("bare-root").wrk.per_second
                ),
            ),
            (
                "default log level (`info`, JSON) over `warn`: purchases / status",
                format!(
                    "{:.2}x / {:.2}x",
                    self.sample("purchase-info").wrk.per_second
                        / self.sample("purchase").wrk.per_second,
                    self.sample("status-info").wrk.per_second
                        / self.sample("status").wrk.per_second
                ),
            ),
            (
                "confirm-to-row, worker live: p50 / p99 / max",
                format!("{:.0} / {:.0} / {:.0} ms", c.p50_ms, c.p99_ms, c.max_ms),
            ),
            (
                "orders persisted per second (one worker draining the no-worker backlog)",
                format!("{:.0}", self.drained.per_second),
            ),
            (
                "CPU per order drained: the worker / PostgreSQL",
                format!(
                    "{:.1} us / {:.1} us",
                    self.drained.worker_us_per_order, self.drained.postgres_us_per_order
                ),
            ),
            (
                "api memory after the purchase rounds (peak)",
                format!("{:.1} MB ({:.1} MB)", self.api_rss_mb.0, self.api_rss_mb.1),
            ),
        ];
        let _ = writeln!(out, "\n| figure | value |\n| --- | ---: |");
        for (figure, value) in rows {
            let _ = writeln!(out, "| {figure} | {value} |");
        }
    }

    fn write_watchers(&self, out: &mut String) {
        let w = &self.watchers;
        let _ = writeln!(
            out,
            "\n{} open storefronts on `GET /api/sale/events` of one api while buyers purchase at {:.1}/s, over {:.0} s:\n",
            w.watchers, w.purchases_per_second, w.seconds
        );
        let _ = writeln!(out, "| watchers figure | value |\n| --- | ---: |");
        let rows = [
            (
                "api CPU, share of one core",
                format!("{:.1}%", w.api_cpu_share * 100.0),
            ),
            (
                "api memory per open page",
                format!("{:.1} KB", w.kb_per_watcher),
            ),
            (
                "the same pages on `bare-actix` (actix-web with one stream, none of our code): memory per page",
                format!("{:.1} KB", w.floor_kb_per_watcher),
            ),
            (
                "status events per page per second",
                format!("{:.2}", w.events_per_watcher_second),
            ),
            (
                "bytes per page per second",
                format!("{:.0}", w.bytes_per_watcher_second),
            ),
        ];
        for (figure, value) in rows {
            let _ = writeln!(out, "| {figure} | {value} |");
        }
    }

    pub fn json(&self) -> serde_json::Value {
        let rows: serde_json::Map<String, serde_json::Value> = ENDPOINTS
            .iter()
            .map(|e| {
                let m = self.sample(e);
                let row = json!({
                    "requestsPerSecond": m.wrk.per_second,
                    "ratioToPlaintext": self.ratio(e),
                    "p50Ms": m.wrk.p50_ms,
                    "p99Ms": m.wrk.p99_ms,
                    "apiCpuMicrosPerRequest": m.api_us(),
                    "wrkCpuMicrosPerRequest": m.wrk.wrk_us(),
                    "notOk": m.wrk.non_2xx + m.wrk.socket_errors,
                });
                ((*e).to_owned(), row)
            })
            .collect();
        let c = &self.confirm_to_row;
        json!({
            "date": chrono::Utc::now().to_rfc3339(),
            "code": git_describe(),
            "loadAtStart": self.load_at_start,
            "seconds": self.settings.seconds,
            "rounds": self.settings.rounds,
            "connections": self.settings.connections,
            "rows": rows,
            "purchasesConfirmed": {"noWorker": self.bought, "workerLive": self.bought_live},
            "redisMicrosPerPurchase": {"commands": self.redis_command_us, "cpu": self.redis_cpu_us},
            "purchasesPerScriptCall": self.purchases_per_script_call,
            "confirmToRowMs": {"p50": c.p50_ms, "p99": c.p99_ms, "max": c.max_ms},
            "ordersPersistedPerSecond": self.drained.per_second,
            "drainCpuMicrosPerOrder": {
                "worker": self.drained.worker_us_per_order,
                "postgres": self.drained.postgres_us_per_order,
            },
            "apiRssMb": {"after": self.api_rss_mb.0, "peak": self.api_rss_mb.1},
            "watchers": {
                "pages": self.watchers.watchers,
                "seconds": self.watchers.seconds,
                "purchasesPerSecond": self.watchers.purchases_per_second,
                "apiCpuShareOfACore": self.watchers.api_cpu_share,
                "apiKbPerPage": self.watchers.kb_per_watcher,
                "bareActixKbPerPage": self.watchers.floor_kb_per_watcher,
                "eventsPerPageSecond": self.watchers.events_per_watcher_second,
                "bytesPerPageSecond": self.watchers.bytes_per_watcher_second,
            },
        })
    }

    /// Writes the markdown and the JSON copy, and prints the markdown.
    pub fn write(&self) -> anyhow::Result<()> {
        let markdown = self.markdown();
        println!("\n{markdown}");
        let md = &self.settings.markdown;
        if let Some(dir) = md.parent() {
            std::fs::create_dir_all(dir)?;
        }
        std::fs::write(md, &markdown).with_context(|| format!("writing {}", md.display()))?;
        let dir = &self.settings.results;
        std::fs::create_dir_all(dir)?;
        let json_path = dir.join(format!("bench-{}.json", self.settings.stack.run_id));
        std::fs::write(
            &json_path,
            serde_json::to_string_pretty(&self.json())? + "\n",
        )?;
        println!("written: {} and {}", md.display(), json_path.display());
        Ok(())
    }
}

/// The commit measured, marked when the tree had changes; `BENCH_CODE`
/// names it instead when the binaries are another build's.
fn git_describe() -> String {
    if let Ok(code) = std::env::var("BENCH_CODE") {
        return code;
    }
    let run = |args: &[&str]| {
        std::process::Command::new("git")
            .args(args)
            .output()
            .ok()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
            .unwrap_or_default()
    };
    let commit = run(&["rev-parse", "--short", "HEAD"]);
    // Changed code, not changed figures (the run rewrites docs/ itself).
    let dirty = !run(&[
        "status",
        "--porcelain",
        "--untracked-files=no",
        "--",
        "crates",
        "loadtest/src",
        // Patched copies of published crates, compiled in.
        "vendor",
        "Cargo.toml",
        "Cargo.lock",
    ])
    .is_empty();
    format!(
        "{commit}{}",
        if dirty {
            " (with uncommitted changes)"
        } else {
            ""
        }
    )
}

fn kernel() -> String {
    std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|k| format!("Linux {}", k.trim()))
        .unwrap_or_default()
}
