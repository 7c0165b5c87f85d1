//! `spawn_app()`: the real api in-process on port 0, against real Redis and
//! PostgreSQL, with its own sale id, queue name and database per test.

use std::time::Duration;

use api::{Application, Settings};
use diesel::{sql_query, QueryableByName};
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use domain::{config::Env, SaleId, SaleKeys};
use fred::prelude::{Client as Redis, ClientLike, Config as RedisConfig, KeysInterface};
use reqwest::{Client, Response};
use serde_json::{json, Value};

pub use test_support::{admin_database_url, create_database, redis_url};

/// A unique sale id, so tests never share keys.
pub fn unique_sale_id() -> SaleId {
    let raw = format!("test-{}", uuid::Uuid::new_v4().simple());
    SaleId::parse(&raw).expect("valid sale id")
}

/// Variables of one test app; tests override what they exercise.
pub struct TestConfig {
    pub vars: Vec<(String, String)>,
}

impl TestConfig {
    /// An active sale of `stock`, limits off.
    pub fn active(stock: u64) -> Self {
        let sale = unique_sale_id();
        let vars = [
            ("SALE_ID", sale.to_string()),
            ("SALE_START_TIME", "2020-01-01T00:00:00Z".into()),
            ("SALE_END_TIME", "2099-01-01T00:00:00Z".into()),
            ("STOCK_QUANTITY", stock.to_string()),
            ("REDIS_URL", redis_url()),
            ("ORDER_QUEUE", format!("test:{sale}:orders")),
            // Arming a sale missing from Redis asks PostgreSQL for its orders.
            ("DATABASE_URL", admin_database_url()),
            ("DATABASE_CONNECT_TIMEOUT_SECONDS", "1".into()),
            ("IP_RATE_LIMIT_PER_SECOND", "0".into()),
            ("IP_RATE_LIMIT_PER_10_SECONDS", "0".into()),
            ("USER_MAX_ATTEMPTS", "0".into()),
            ("HOST", "127.0.0.1".into()),
            // Embedded workers serve no metrics unless a test asks.
            ("METRICS_PORT", "0".into()),
            ("PORT", "0".into()),
        ];
        Self {
            vars: vars.into_iter().map(|(k, v)| (k.to_owned(), v)).collect(),
        }
    }

    pub fn set(mut self, name: &str, value: impl ToString) -> Self {
        self.vars.retain(|(k, _)| k != name);
        self.vars.push((name.to_owned(), value.to_string()));
        self
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.vars
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn env(&self) -> Env {
        Env::from_pairs(self.vars.clone())
    }

    pub fn sale_id(&self) -> SaleId {
        SaleId::parse(self.get("SALE_ID").expect("SALE_ID set")).expect("valid sale id")
    }
}

pub struct TestApp {
    pub address: String,
    pub config: TestConfig,
    pub client: Client,
    stopper: api::Stopper,
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(TestConfig::active(10)).await
}

pub async fn spawn_app_with(config: TestConfig) -> TestApp {
    // TEST_LOG=<filter> shows the app's and worker's logs (quiet otherwise).
    if let Ok(filter) = std::env::var("TEST_LOG") {
        // Kept for the whole test process (the first call installs it).
        std::mem::forget(domain::telemetry::init(
            domain::telemetry::LogFormat::Pretty,
            &filter,
        ));
    }
    let settings = Settings::from_env(&config.env()).expect("valid test settings");
    let app = Application::build(settings).await.expect("build app");
    let address = format!("http://127.0.0.1:{}", app.port());
    let stopper = app.stopper();
    tokio::spawn(app.run_until_stopped());
    TestApp {
        address,
        config,
        client: Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .expect("http client"),
        stopper,
    }
}

impl TestApp {
    pub async fn purchase(&self, user_id: &str) -> Response {
        self.post_purchase_json(&json!({ "userId": user_id })).await
    }

    /// `user_id`'s purchase, retried every 100 ms for up to 10 s while it
    /// answers 503 (replica acknowledgements late on a busy machine, a
    /// failover under way), as a buyer would; the last answer.
    pub async fn purchase_until_not_503(&self, user_id: &str) -> Response {
        let mut answer = self.purchase(user_id).await;
        for _ in 0..100 {
            if answer.status() != 503 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
            answer = self.purchase(user_id).await;
        }
        answer
    }

    pub async fn post_purchase_json(&self, body: &Value) -> Response {
        self.client
            .post(format!("{}/api/purchases", self.address))
            .json(body)
            .send()
            .await
            .expect("request sent")
    }

    pub async fn post_purchase_raw(
        &self,
        content_type: &str,
        body: impl Into<reqwest::Body>,
    ) -> Response {
        self.client
            .post(format!("{}/api/purchases", self.address))
            .header("content-type", content_type)
            .body(body)
            .send()
            .await
            .expect("request sent")
    }

    /// The status of a purchase by `user_id`.
    pub async fn purchase_status_code(&self, user_id: String) -> u16 {
        self.purchase(&user_id).await.status().as_u16()
    }

    pub async fn purchase_status(&self, user_id: &str) -> Response {
        self.get(&format!("/api/purchases/{user_id}")).await
    }

    pub async fn sale_status(&self) -> Value {
        let response = self.get("/api/sale/status").await;
        assert_eq!(response.status(), 200);
        response.json().await.expect("json body")
    }

    pub async fn get(&self, path: &str) -> Response {
        self.client
            .get(format!("{}{path}", self.address))
            .send()
            .await
            .expect("request sent")
    }

    pub fn keys(&self) -> SaleKeys {
        SaleKeys::new(&self.config.sale_id())
    }

    /// Stops the server gracefully.
    pub async fn stop(&self) {
        self.stopper.stop().await;
    }
}

/// A direct Redis connection, to look at (or break) what the api wrote.
pub async fn redis() -> Redis {
    let client = Redis::new(
        RedisConfig::from_url(&redis_url()).expect("url"),
        None,
        None,
        None,
    );
    client.init().await.expect("connect to redis");
    client
}

/// Deletes every key of a sale: what Redis losing its data looks like.
pub async fn forget_sale(keys: &SaleKeys) {
    let _: i64 = redis()
        .await
        .del(vec![keys.stock(), keys.meta(), keys.buyers()])
        .await
        .expect("DEL");
}

/// Where nothing listens: PostgreSQL "down".
pub const DEAD_DATABASE_URL: &str = "postgres://nobody@127.0.0.1:1/none";

pub async fn redis_get(key: &str) -> Option<String> {
    redis().await.get(key).await.expect("GET")
}

/// Counts the 2xx/4xx statuses of a batch of responses.
pub fn count(statuses: &[u16], wanted: u16) -> usize {
    statuses.iter().filter(|s| **s == wanted).count()
}

#[derive(QueryableByName)]
pub struct OrderRow {
    #[diesel(sql_type = diesel::sql_types::Text)]
    pub id: String,
    #[diesel(sql_type = diesel::sql_types::Text)]
    pub user_id: String,
}

/// The orders of a sale, polled until `expected` rows are there or 15 s pass.
pub async fn wait_for_orders(database_url: &str, sale: &SaleId, expected: usize) -> Vec<OrderRow> {
    wait_for_orders_within(database_url, sale, expected, Duration::from_secs(15)).await
}

/// The orders of a sale, polled until `expected` rows are there or `timeout` passes.
pub async fn wait_for_orders_within(
    database_url: &str,
    sale: &SaleId,
    expected: usize,
    timeout: Duration,
) -> Vec<OrderRow> {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let Ok(mut conn) = AsyncPgConnection::establish(database_url).await else {
            if tokio::time::Instant::now() > deadline {
                return Vec::new();
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
            continue;
        };
        let rows: Vec<OrderRow> = sql_query(
            "SELECT id::text AS id, user_id FROM orders WHERE sale_id = $1 ORDER BY user_id",
        )
        .bind::<diesel::sql_types::Text, _>(sale.as_str())
        .load(&mut conn)
        .await
        .unwrap_or_default();
        if rows.len() >= expected || tokio::time::Instant::now() > deadline {
            return rows;
        }
        drop(conn);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Whether `table` exists in the database at `url`.
pub async fn table_exists(url: &str, table: &str) -> bool {
    #[derive(QueryableByName)]
    struct Found {
        #[diesel(sql_type = diesel::sql_types::Bool)]
        found: bool,
    }
    let Ok(mut conn) = AsyncPgConnection::establish(url).await else {
        return false;
    };
    sql_query("SELECT to_regclass($1) IS NOT NULL AS found")
        .bind::<diesel::sql_types::Text, _>(table)
        .get_result::<Found>(&mut conn)
        .await
        .is_ok_and(|f| f.found)
}

/// The value of the Prometheus sample `name` whose labels include all of `labels`.
pub fn sample(scrape: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    scrape
        .lines()
        .filter(|line| !line.starts_with('#'))
        .filter(|line| {
            line.strip_prefix(name)
                .is_some_and(|rest| rest.starts_with('{') || rest.starts_with(' '))
        })
        .find(|line| {
            labels
                .iter()
                .all(|(k, v)| line.contains(&format!("{k}=\"{v}\"")))
        })
        .and_then(|line| line.rsplit(' ').next())
        .and_then(|value| value.parse().ok())
}

/// A sale with a worker persisting its orders into a fresh database.
pub async fn sale_with_orders(
    stock: u64,
    buyers: &[&str],
) -> (TestConfig, String, Vec<Value>, order_worker::WorkerHandle) {
    let database = create_database().await;
    let config = TestConfig::active(stock).set("DATABASE_URL", &database);
    let worker = order_worker::spawn(crate::persistence::worker_settings(&config));
    let app = spawn_app_with(TestConfig {
        vars: config.vars.clone(),
    })
    .await;
    let mut bodies = Vec::new();
    for buyer in buyers {
        let response = app.purchase(buyer).await;
        assert_eq!(response.status(), 201);
        bodies.push(response.json().await.expect("json"));
    }
    let rows = wait_for_orders(&database, &config.sale_id(), buyers.len()).await;
    assert_eq!(rows.len(), buyers.len());
    app.stop().await;
    (config, database, bodies, worker)
}
