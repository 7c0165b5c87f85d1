use actix_web::{get, HttpResponse};

/// Prometheus metrics (text exposition format). Served on `METRICS_PORT`
/// instead of the public port when that is set.
#[utoipa::path(
    tag = "server",
    responses((status = 200, description = "Prometheus text format", content_type = "text/plain", body = String))
)]
#[get("/metrics")]
pub async fn render() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4")
        .body(crate::metrics::handle().render())
}
