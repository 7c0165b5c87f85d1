//! Prometheus metrics of the worker, served on `METRICS_PORT` (`/metrics`).
//!
//! Names and labels (all prefixed `flash_sale_`):
//! - `orders_persisted_total{source}`: job | reconciler
//! - `job_attempts_total`, `job_failures_total`: jobs (each carries a batch
//!   of orders); `jobs_total{result}`: orders, persisted | duplicate | conflict
//! - `db_query_duration_seconds{query}`: histogram
//! - `queue_depth{state}`: jobs in Redis, waiting (scheduled | active) or
//!   kept until swept (done | dead)
//! - `reconciler_passes_total{result}`; `reconciler_repaired_total`: ledger
//!   entries persisted as rows; `ledger_restored_total`: rows put back into
//!   a ledger Redis lost them from

use std::{net::SocketAddr, time::Duration};

use metrics_exporter_prometheus::PrometheusBuilder;

/// Installs the recorder and its HTTP listener; port 0 turns both off.
/// A process that already has a recorder (tests embedding the api and the
/// worker) keeps it and the worker's metrics go there.
pub fn serve(port: u16) {
    if port == 0 {
        return;
    }
    let installed = PrometheusBuilder::new()
        .set_buckets(domain::telemetry::LATENCY_BUCKETS)
        .map(|b| b.with_http_listener(SocketAddr::from(([0, 0, 0, 0], port))))
        .and_then(|b| b.install());
    match installed {
        Ok(()) => tracing::info!(port, "metrics served at /metrics"),
        Err(error) => tracing::warn!(%error, "metrics listener not started"),
    }
}

pub fn job_attempt() {
    metrics::counter!("flash_sale_job_attempts_total").increment(1);
}

pub fn job_done_n(result: &'static str, count: usize) {
    metrics::counter!("flash_sale_jobs_total", "result" => result).increment(count as u64);
}

pub fn job_failed() {
    metrics::counter!("flash_sale_job_failures_total").increment(1);
}

pub fn persisted(source: &'static str, count: usize) {
    metrics::counter!("flash_sale_orders_persisted_total", "source" => source)
        .increment(count as u64);
}

/// One batch insert, by `way`: `new` (a plain INSERT), `skipping` (ON
/// CONFLICT DO NOTHING at once) or `retried-skipping` (a plain INSERT that
/// met a row already there, then ON CONFLICT DO NOTHING).
pub fn insert(way: &'static str) {
    metrics::counter!("flash_sale_batch_inserts_total", "way" => way).increment(1);
}

pub fn db_query(query: &'static str, took: Duration) {
    metrics::histogram!("flash_sale_db_query_duration_seconds", "query" => query)
        .record(took.as_secs_f64());
}

pub fn queue_depth(depth: crate::keeper::Depth) {
    for (state, jobs) in [
        ("scheduled", depth.scheduled),
        ("active", depth.active),
        ("done", depth.done),
        ("dead", depth.dead),
    ] {
        metrics::gauge!("flash_sale_queue_depth", "state" => state).set(jobs as f64);
    }
}

pub fn reconciler_pass(pass: Option<&crate::reconcile::Pass>) {
    let result = if pass.is_some() { "ok" } else { "error" };
    metrics::counter!("flash_sale_reconciler_passes_total", "result" => result).increment(1);
    let repaired = pass.map_or(0, |p| p.repaired);
    metrics::counter!("flash_sale_reconciler_repaired_total").increment(repaired as u64);
}

pub fn ledger_restored(count: usize) {
    metrics::counter!("flash_sale_ledger_restored_total").increment(count as u64);
}
