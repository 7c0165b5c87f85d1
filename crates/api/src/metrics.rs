//! Prometheus metrics of the api, rendered at `GET /metrics`.
//!
//! Names and labels (all prefixed `flash_sale_`):
//! - `purchases_total{sale,outcome}`: confirmed, duplicate, sold_out,
//!   too_many_attempts, not_armed, not_active, invalid, unauthenticated
//!   (no valid token: `BUYER_AUTH=jwt`), forbidden (a body naming another
//!   buyer than the token), error
//! - `stock_remaining{sale}`: last stock the api saw
//! - `buyer_token_checks_total{result}` (`BUYER_AUTH=jwt`): signature checks
//!   (tokens seen before are not checked again); see `auth`
//! - `http_request_duration_seconds{method,route,status}`: histogram
//! - `redis_command_duration_seconds{command}`, `redis_errors_total{command}`
//! - `sse_clients`: live streams open; `sse_refused_total`: streams refused
//!   past `SSE_MAX_CLIENTS`
//! - `order_jobs_pushed_total`, `order_job_push_failures_total`: orders queued
//!   (or not); `order_batches_pushed_total`: jobs carrying them (orders per
//!   job = the first over this)
//! - `replica_acks_missing_total`: purchase batches answered 503 because
//!   fewer than `REDIS_MIN_REPLICA_ACKS` replicas had them in time
//! - `purchase_batches_total`: purchase-script calls (purchases decided per
//!   call = the script's outcomes in `purchases_total` over this)

use std::{cell::RefCell, collections::HashMap, sync::OnceLock, time::Duration};

use metrics::Histogram;

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

/// The process-wide recorder (installed once; every app in the process,
/// tests included, renders the same registry).
pub fn handle() -> PrometheusHandle {
    recorder().clone()
}

/// The installed recorder's handle, installing it on first use.
fn recorder() -> &'static PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE.get_or_init(|| {
        let handle = PrometheusBuilder::new()
            .set_buckets(domain::telemetry::LATENCY_BUCKETS)
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
}

/// Every way a purchase request ends, as `flash_sale_purchases_total` counts it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PurchaseResult {
    Confirmed,
    Duplicate,
    SoldOut,
    TooManyAttempts,
    NotArmed,
    NotActive,
    Invalid,
    Unauthenticated,
    Forbidden,
    Error,
}

impl PurchaseResult {
    pub const ALL: [Self; 10] = [
        Self::Confirmed,
        Self::Duplicate,
        Self::SoldOut,
        Self::TooManyAttempts,
        Self::NotArmed,
        Self::NotActive,
        Self::Invalid,
        Self::Unauthenticated,
        Self::Forbidden,
        Self::Error,
    ];

    /// The `outcome` label.
    pub fn label(self) -> &'static str {
        match self {
            Self::Confirmed => "confirmed",
            Self::Duplicate => "duplicate",
            Self::SoldOut => "sold_out",
            Self::TooManyAttempts => "too_many_attempts",
            Self::NotArmed => "not_armed",
            Self::NotActive => "not_active",
            Self::Invalid => "invalid",
            Self::Unauthenticated => "unauthenticated",
            Self::Forbidden => "forbidden",
            Self::Error => "error",
        }
    }
}

/// The sale's per-purchase metrics, registered once: a purchase increments
/// a handle instead of building labels and looking them up every time.
pub struct SaleMetrics {
    /// Indexed by `PurchaseResult as usize` (the order of [`PurchaseResult::ALL`]).
    purchases: [metrics::Counter; PurchaseResult::ALL.len()],
    stock: metrics::Gauge,
}

impl SaleMetrics {
    pub fn new(sale: &str) -> Self {
        Self {
            purchases: PurchaseResult::ALL.map(|result| {
                metrics::counter!("flash_sale_purchases_total", "sale" => sale.to_owned(), "outcome" => result.label())
            }),
            stock: metrics::gauge!("flash_sale_stock_remaining", "sale" => sale.to_owned()),
        }
    }

    pub fn purchase(&self, result: PurchaseResult) {
        self.purchases[result as usize].increment(1);
    }

    pub fn stock(&self, remaining: u64) {
        self.stock.set(remaining as f64);
    }
}

pub fn redis_call(command: &'static str, took: Duration, ok: bool) {
    metrics::histogram!("flash_sale_redis_command_duration_seconds", "command" => command)
        .record(took.as_secs_f64());
    if !ok {
        metrics::counter!("flash_sale_redis_errors_total", "command" => command).increment(1);
    }
}

/// The orders of one job, pushed or not.
pub fn jobs_pushed(orders: u64, ok: bool) {
    if ok {
        metrics::counter!("flash_sale_order_jobs_pushed_total").increment(orders);
    } else {
        metrics::counter!("flash_sale_order_job_push_failures_total").increment(orders);
    }
}

/// One job pushed (carrying one or more orders).
pub fn batch_pushed() {
    metrics::counter!("flash_sale_order_batches_pushed_total").increment(1);
}

/// A purchase batch refused for want of replica acknowledgements.
pub fn replica_acks_missing() {
    metrics::counter!("flash_sale_replica_acks_missing_total").increment(1);
}

/// One purchase-script call (deciding one or more purchases).
pub fn purchase_batch() {
    metrics::counter!("flash_sale_purchase_batches_total").increment(1);
}

/// Request histograms by route, then (method, status).
type ByRoute = HashMap<String, Vec<(&'static str, u16, Histogram)>>;

/// The method as labelled: one of HTTP's own, else `OTHER`. actix accepts
/// any token as a method; labelled as sent, each made-up one would be a
/// series of its own (and an entry in every thread's cache).
fn method_label(method: &str) -> &'static str {
    const KNOWN: [&str; 9] = [
        "GET", "POST", "HEAD", "PUT", "DELETE", "OPTIONS", "PATCH", "CONNECT", "TRACE",
    ];
    KNOWN
        .into_iter()
        .find(|known| *known == method)
        .unwrap_or("OTHER")
}

pub fn request(method: &str, route: &str, status: u16, took: Duration) {
    thread_local! {
        /// This thread's handles, by route, then method and status: looked
        /// up without allocating. `histogram!` built three label strings
        /// and looked the key up in the shared registry on every request,
        /// about 3.6k instructions of each (`make instructions`'s dumps).
        static HISTOGRAMS: RefCell<ByRoute> = RefCell::new(HashMap::new());
    }
    // A handle taken before the recorder is installed would record nothing.
    recorder();
    let method = method_label(method);
    HISTOGRAMS.with_borrow_mut(|by_route| {
        let handles = match by_route.get_mut(route) {
            Some(handles) => handles,
            None => by_route.entry(route.to_owned()).or_default(),
        };
        let found = handles
            .iter()
            .find(|(m, s, _)| *s == status && *m == method);
        let histogram = match found {
            Some((_, _, histogram)) => histogram,
            None => {
                let histogram = metrics::histogram!(
                    "flash_sale_http_request_duration_seconds",
                    "method" => method,
                    "route" => route.to_owned(),
                    "status" => status.to_string()
                );
                handles.push((method, status, histogram));
                &handles[handles.len() - 1].2
            }
        };
        histogram.record(took.as_secs_f64());
    });
}

/// Live streams opened (positive) or closed (negative).
pub fn sse_clients(delta: f64) {
    metrics::gauge!("flash_sale_sse_clients").increment(delta);
}

/// A live stream refused past `SSE_MAX_CLIENTS`.
pub fn sse_refused() {
    metrics::counter!("flash_sale_sse_refused_total").increment(1);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn count_line(rendered: &str, labels: &str) -> Option<String> {
        let series = format!("flash_sale_http_request_duration_seconds_count{{{labels}}} ");
        rendered
            .lines()
            .find_map(|line| line.strip_prefix(&series).map(str::to_owned))
    }

    #[test]
    fn requests_are_counted_per_method_route_and_status_from_every_thread() {
        let route = "/test/requests-are-counted";
        let took = Duration::from_millis(3);
        request("GET", route, 200, took);
        request("GET", route, 200, took);
        request("GET", route, 404, took);
        request("POST", route, 200, took);
        for i in 0..100 {
            request(&format!("MADE-UP-{i}"), route, 200, took);
        }
        std::thread::spawn(move || request("GET", route, 200, took))
            .join()
            .expect("the other thread records");
        let rendered = handle().render();
        let labels = |method: &str, status: u16| {
            format!(r#"method="{method}",route="{route}",status="{status}""#)
        };
        assert_eq!(
            count_line(&rendered, &labels("GET", 200)).as_deref(),
            Some("3")
        );
        assert_eq!(
            count_line(&rendered, &labels("GET", 404)).as_deref(),
            Some("1")
        );
        assert_eq!(
            count_line(&rendered, &labels("POST", 200)).as_deref(),
            Some("1")
        );
        assert_eq!(
            count_line(&rendered, &labels("OTHER", 200)).as_deref(),
            Some("100")
        );
        assert!(
            !rendered.contains("MADE-UP"),
            "made-up methods are one series"
        );
    }
}
