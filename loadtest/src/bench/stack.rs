//! The processes a benchmark measures: api replicas and order workers of
//! the release build, each sale and queue new, stopped when dropped.

use std::{
    path::PathBuf,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::{bail, Context};

/// Where the binaries are and which Redis and PostgreSQL they use.
#[derive(Debug, Clone)]
pub struct Stack {
    pub bin_dir: PathBuf,
    pub redis_url: String,
    pub database_url: String,
    pub logs: PathBuf,
    /// Unique per run: sale ids and queues carry it.
    pub run_id: String,
}

/// A running process of the stack; SIGTERM, then SIGKILL, when dropped.
pub struct Service {
    pub name: String,
    child: Child,
}

/// An api selling its own sale.
pub struct Api {
    pub service: Service,
    pub port: u16,
    pub sale: String,
    pub queue: String,
}

impl Stack {
    /// Common settings: quiet logs, no IP limit (the load comes from one
    /// address), no per-user limit, a sale open for an hour.
    fn env(&self) -> Vec<(String, String)> {
        let now = chrono::Utc::now();
        let at = |t: chrono::DateTime<chrono::Utc>| t.format("%Y-%m-%dT%H:%M:%SZ").to_string();
        [
            ("RUST_LOG", "warn".to_owned()),
            ("LOG_FORMAT", "json".to_owned()),
            ("IP_RATE_LIMIT_PER_SECOND", "0".to_owned()),
            ("IP_RATE_LIMIT_PER_10_SECONDS", "0".to_owned()),
            ("USER_MAX_ATTEMPTS", "0".to_owned()),
            ("SALE_START_TIME", at(now - chrono::Duration::minutes(1))),
            ("SALE_END_TIME", at(now + chrono::Duration::hours(1))),
            ("METRICS_PORT", "0".to_owned()),
            ("REDIS_URL", self.redis_url.clone()),
            ("DATABASE_URL", self.database_url.clone()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect()
    }

    fn spawn(&self, bin: &str, name: &str, vars: &[(String, String)]) -> anyhow::Result<Service> {
        let program = self.bin_dir.join(bin);
        std::fs::create_dir_all(&self.logs)?;
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.logs.join(format!("{name}-{}.log", self.run_id)))?;
        let child = Command::new(&program)
            .envs(self.env())
            .envs(vars.iter().map(|(k, v)| (k, v)))
            .stdout(log.try_clone()?)
            .stderr(log)
            .stdin(Stdio::null())
            .spawn()
            .with_context(|| format!("starting {} (make build-loadtest)", program.display()))?;
        Ok(Service {
            name: name.to_owned(),
            child,
        })
    }

    /// An api on `port` selling a new sale of `stock`, with `vars` on top.
    pub async fn api(
        &self,
        name: &str,
        port: u16,
        stock: u64,
        vars: &[(&str, &str)],
    ) -> anyhow::Result<Api> {
        let sale = format!("bench-{name}-{}", self.run_id);
        let queue = format!("bench:{}:{name}:orders", self.run_id);
        let mut all = vec![
            ("SALE_ID".to_owned(), sale.clone()),
            ("ORDER_QUEUE".to_owned(), queue.clone()),
            ("PORT".to_owned(), port.to_string()),
            ("HOST".to_owned(), "127.0.0.1".to_owned()),
            ("STOCK_QUANTITY".to_owned(), stock.to_string()),
        ];
        all.extend(vars.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())));
        let service = self.spawn("api", &format!("api-{name}"), &all)?;
        let api = Api {
            service,
            port,
            sale,
            queue,
        };
        api.wait_healthy().await?;
        Ok(api)
    }

    /// `bare-actix` on `port`: actix-web with nothing of ours, the floor
    /// under the api's `GET /`, sold-out answer and memory per open page.
    pub async fn bare_actix(&self, port: u16) -> anyhow::Result<Api> {
        let vars = [
            ("PORT".to_owned(), port.to_string()),
            ("HOST".to_owned(), "127.0.0.1".to_owned()),
        ];
        let api = Api {
            service: self.spawn("bare-actix", "bare-actix", &vars)?,
            port,
            sale: String::new(),
            queue: String::new(),
        };
        api.wait_healthy().await?;
        Ok(api)
    }

    /// An order worker on `api`'s queue.
    pub fn worker(&self, api: &Api) -> anyhow::Result<Service> {
        let name = format!("worker-{}", api.sale);
        let vars = [
            ("ORDER_QUEUE".to_owned(), api.queue.clone()),
            (
                "WORKER_NAME".to_owned(),
                format!("{name}-{}", std::process::id()),
            ),
            ("RECONCILE_SALES".to_owned(), api.sale.clone()),
        ];
        self.spawn("order-worker", &name, &vars)
    }
}

impl Api {
    pub fn base(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn pid(&self) -> u32 {
        self.service.child.id()
    }

    async fn wait_healthy(&self) -> anyhow::Result<()> {
        let started = Instant::now();
        let url = format!("{}/api/health", self.base());
        while started.elapsed() < Duration::from_secs(15) {
            if reqwest::get(&url)
                .await
                .is_ok_and(|r| r.status().is_success())
            {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        bail!(
            "{} did not become healthy on :{}",
            self.service.name,
            self.port
        )
    }
}

impl Service {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGTERM, then up to 10 s for a graceful exit, then SIGKILL.
    pub fn stop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            self.stop();
        }
    }
}
