use actix_web::HttpResponse;

/// `GET /metrics`: Prometheus text format.
pub async fn render() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4")
        .body(crate::metrics::handle().render())
}
