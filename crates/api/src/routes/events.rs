use actix_web::{
    get,
    http::header::{CacheControl, CacheDirective, ContentEncoding},
    web, HttpResponse,
};

use crate::{
    error::{ApiError, ErrorBody},
    state::AppState,
};

/// Live sale status: a `text/event-stream` of `status` events, each a
/// `SaleStatus` JSON, sent at once and then whenever it changes (the stock
/// at most once a second, a phase change at once). Browsers reconnect by
/// themselves (retry 3 s); a comment after 15 s without an event keeps
/// proxies from closing an idle stream. A server holding as many streams as it
/// allows answers 503: poll `/api/sale/status` instead.
#[utoipa::path(
    tag = "sale",
    responses(
        (status = 200, description = "`status` events carrying SaleStatus JSON", content_type = "text/event-stream", body = String),
        (
            status = 503,
            description = "This server has as many open streams as it allows; poll /api/sale/status meanwhile",
            body = ErrorBody,
            headers(("Retry-After" = u32, description = "Seconds before trying the stream again")),
        ),
    )
)]
#[get("/api/sale/events")]
pub async fn events(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let stream = state
        .feed
        .events(state.shutdown.clone())
        .ok_or(ApiError::TooManyStreams)?;
    Ok(HttpResponse::Ok()
        .content_type("text/event-stream")
        // Each event is written as it comes: no compression to buffer it.
        .insert_header(ContentEncoding::Identity)
        .insert_header(CacheControl(vec![CacheDirective::NoCache]))
        .streaming(stream))
}
