//! Prometheus metrics of the api, rendered at `GET /metrics`.
//!
//! Names and labels (all prefixed `flash_sale_`):
//! - `purchases_total{sale,outcome}`: confirmed, duplicate, sold_out,
//!   too_many_attempts, not_armed, not_active, invalid, error
//! - `stock_remaining{sale}`: last stock the api saw
//! - `http_request_duration_seconds{method,route,status}`: histogram
//! - `redis_command_duration_seconds{command}`, `redis_errors_total{command}`
//! - `order_jobs_pushed_total`, `order_job_push_failures_total`: orders queued
//!   (or not); `order_batches_pushed_total`: jobs carrying them (orders per
//!   job = the first over this)

use std::{sync::OnceLock, time::Duration};

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

/// Histogram buckets in seconds: 0.25 ms to 5 s.
pub const BUCKETS: &[f64] = &[
    0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
];

/// The process-wide recorder (installed once; every app in the process,
/// tests included, renders the same registry).
pub fn handle() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let handle = PrometheusBuilder::new()
                .set_buckets(BUCKETS)
                .expect("static buckets are valid")
                .install_recorder()
                .expect("the metrics recorder is installed once per process");
            let upkeep = handle.clone();
            std::thread::spawn(move || loop {
                std::thread::sleep(Duration::from_secs(5));
                upkeep.run_upkeep();
            });
            handle
        })
        .clone()
}

pub fn purchase(sale: &str, outcome: &'static str) {
    metrics::counter!("flash_sale_purchases_total", "sale" => sale.to_owned(), "outcome" => outcome)
        .increment(1);
}

pub fn stock(sale: &str, remaining: u64) {
    metrics::gauge!("flash_sale_stock_remaining", "sale" => sale.to_owned()).set(remaining as f64);
}

pub fn redis_call(command: &'static str, took: Duration, ok: bool) {
    metrics::histogram!("flash_sale_redis_command_duration_seconds", "command" => command)
        .record(took.as_secs_f64());
    if !ok {
        metrics::counter!("flash_sale_redis_errors_total", "command" => command).increment(1);
    }
}

pub fn job_pushed(ok: bool) {
    if ok {
        metrics::counter!("flash_sale_order_jobs_pushed_total").increment(1);
    } else {
        metrics::counter!("flash_sale_order_job_push_failures_total").increment(1);
    }
}

/// One job pushed (carrying one or more orders).
pub fn batch_pushed() {
    metrics::counter!("flash_sale_order_batches_pushed_total").increment(1);
}

pub fn request(method: &str, route: &str, status: u16, took: Duration) {
    metrics::histogram!(
        "flash_sale_http_request_duration_seconds",
        "method" => method.to_owned(),
        "route" => route.to_owned(),
        "status" => status.to_string()
    )
    .record(took.as_secs_f64());
}
