//! The order rows in PostgreSQL: what "nothing lost" is checked against.

use std::{
    collections::HashSet,
    time::{Duration, Instant},
};

use anyhow::Context;
use domain::config::redacted;
use tokio_postgres::NoTls;

pub struct Orders {
    client: tokio_postgres::Client,
}

/// From a purchase's confirmation (its time in Redis) to its row being
/// written (`persisted_at`), over a sale's rows.
#[derive(Debug, Clone, Copy, Default)]
pub struct ConfirmToRow {
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

/// How the rows arrived: how many, and when the last one did.
pub struct Drained {
    pub rows: u64,
    pub after: Duration,
}

impl Orders {
    pub async fn connect(url: &str) -> anyhow::Result<Self> {
        let (client, connection) = tokio_postgres::connect(url, NoTls)
            .await
            .with_context(|| format!("connecting to PostgreSQL at {}", redacted(url)))?;
        tokio::spawn(async move {
            if let Err(error) = connection.await {
                eprintln!("PostgreSQL connection ended: {error}");
            }
        });
        Ok(Self { client })
    }

    pub async fn count(&self, sale: &str) -> anyhow::Result<u64> {
        let row = self
            .client
            .query_one("SELECT count(*) FROM orders WHERE sale_id = $1", &[&sale])
            .await
            .context("counting orders")?;
        Ok(u64::try_from(row.get::<_, i64>(0)).unwrap_or(0))
    }

    /// Every row of a sale: (order id, user id).
    pub async fn rows(&self, sale: &str) -> anyhow::Result<Vec<(String, String)>> {
        let rows = self
            .client
            .query(
                "SELECT id::text, user_id FROM orders WHERE sale_id = $1",
                &[&sale],
            )
            .await
            .context("reading orders")?;
        Ok(rows.iter().map(|row| (row.get(0), row.get(1))).collect())
    }

    pub async fn ids(&self, sale: &str) -> anyhow::Result<HashSet<String>> {
        let rows = self
            .client
            .query("SELECT id::text FROM orders WHERE sale_id = $1", &[&sale])
            .await
            .context("reading order ids")?;
        Ok(rows.iter().map(|row| row.get::<_, String>(0)).collect())
    }

    pub async fn confirm_to_row(&self, sale: &str) -> anyhow::Result<ConfirmToRow> {
        let row = self
            .client
            .query_one(
                "SELECT coalesce(percentile_cont(0.5) WITHIN GROUP (ORDER BY ms), 0)::float8, \
                        coalesce(percentile_cont(0.99) WITHIN GROUP (ORDER BY ms), 0)::float8, \
                        coalesce(max(ms), 0)::float8 \
                 FROM (SELECT extract(epoch FROM persisted_at - created_at) * 1000 AS ms \
                       FROM orders WHERE sale_id = $1) AS waits",
                &[&sale],
            )
            .await
            .context("reading confirm-to-row times")?;
        Ok(ConfirmToRow {
            p50_ms: row.get(0),
            p99_ms: row.get(1),
            max_ms: row.get(2),
        })
    }

    /// Polls until `expected` rows exist or `limit` passes, timing from `since`.
    pub async fn wait_for(
        &self,
        sale: &str,
        expected: u64,
        since: Instant,
        limit: Duration,
    ) -> anyhow::Result<Drained> {
        loop {
            let asked = Instant::now();
            let rows = self.count(sale).await?;
            if rows >= expected || since.elapsed() > limit {
                return Ok(Drained {
                    rows,
                    after: since.elapsed(),
                });
            }
            // Counting a sale of 100,000s of rows takes PostgreSQL tens of
            // ms: polled every 20 ms, the count took a core from the writes
            // it was timing. At most a tenth of the time counting.
            let pause = (asked.elapsed() * 9).max(Duration::from_millis(20));
            tokio::time::sleep(pause).await;
        }
    }

    /// The process id of this client's PostgreSQL backend: its CPU is the
    /// counting's, not the writes'.
    pub async fn backend_pid(&self) -> anyhow::Result<u32> {
        let row = self
            .client
            .query_one("SELECT pg_backend_pid()", &[])
            .await
            .context("asking for the backend's pid")?;
        Ok(u32::try_from(row.get::<_, i32>(0)).unwrap_or(0))
    }
}
