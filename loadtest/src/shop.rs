//! The api as a shopper sees it, over real HTTP.

use std::time::{Duration, Instant};

use anyhow::Context;
use serde_json::{json, Value};

#[derive(Clone)]
pub struct Shop {
    base: String,
    client: reqwest::Client,
}

/// One answer: its status (0 = none), how long it took, the body when asked.
pub struct Answer {
    pub status: u16,
    pub took: Duration,
    pub body: Option<Value>,
}

impl Shop {
    pub fn new(base: &str) -> anyhow::Result<Self> {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .pool_max_idle_per_host(4096)
            .tcp_nodelay(true)
            .build()
            .context("building the HTTP client")?;
        Ok(Self {
            base: base.trim_end_matches('/').to_owned(),
            client,
        })
    }

    pub fn base(&self) -> &str {
        &self.base
    }

    /// `POST /api/purchases`; the body is read only if `keep_body`.
    pub async fn purchase(&self, user: &str, keep_body: bool) -> Answer {
        let request = self
            .client
            .post(format!("{}/api/purchases", self.base))
            .json(&json!({ "userId": user }));
        self.answer(request, keep_body).await
    }

    /// `GET /api/sale/status`.
    pub async fn status(&self) -> Answer {
        let request = self.client.get(format!("{}/api/sale/status", self.base));
        self.answer(request, false).await
    }

    async fn answer(&self, request: reqwest::RequestBuilder, keep_body: bool) -> Answer {
        let started = Instant::now();
        let response = match request.send().await {
            Ok(response) => response,
            Err(_) => {
                return Answer {
                    status: 0,
                    took: started.elapsed(),
                    body: None,
                }
            }
        };
        let status = response.status().as_u16();
        // The whole body is read either way: the request is done when it is.
        let bytes = response.bytes().await.unwrap_or_default();
        let took = started.elapsed();
        let body = if keep_body {
            serde_json::from_slice(&bytes).ok()
        } else {
            None
        };
        Answer { status, took, body }
    }

    /// The sale's status document (`stockRemaining`, `totalStock`, ...).
    pub async fn sale_status(&self) -> anyhow::Result<Value> {
        self.get_json("/api/sale/status").await
    }

    /// The id of the sale this api sells (from `GET /`).
    pub async fn sale_id(&self) -> anyhow::Result<String> {
        let info = self.get_json("/").await?;
        info["saleId"]
            .as_str()
            .map(str::to_owned)
            .context("GET / has no saleId")
    }

    async fn get_json(&self, path: &str) -> anyhow::Result<Value> {
        let url = format!("{}{path}", self.base);
        self.client
            .get(&url)
            .send()
            .await
            .with_context(|| format!("GET {url}"))?
            .error_for_status()
            .with_context(|| format!("GET {url}"))?
            .json()
            .await
            .with_context(|| format!("GET {url}: not JSON"))
    }

    pub async fn stock_remaining(&self) -> anyhow::Result<u64> {
        self.sale_status().await?["stockRemaining"]
            .as_u64()
            .context("sale status has no stockRemaining")
    }
}
