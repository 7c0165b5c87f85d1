use std::time::Duration;

use actix_web::{get, web, Responder};
use actix_web_lab::sse::Sse;

use crate::{
    error::{ApiError, ErrorBody},
    state::AppState,
};

/// Live sale status: a `text/event-stream` of `status` events, each a
/// `SaleStatus` JSON, sent at once and then whenever it changes. Browsers
/// reconnect by themselves (retry 3 s); a comment every 15 s keeps proxies
/// from closing an idle stream. A server holding as many streams as it
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
pub async fn events(state: web::Data<AppState>) -> Result<impl Responder, ApiError> {
    let stream = state
        .feed
        .events(state.sale.clone(), state.shutdown.clone())
        .ok_or(ApiError::TooManyStreams)?;
    Ok(Sse::from_infallible_stream(stream)
        .with_keep_alive(Duration::from_secs(15))
        .with_retry_duration(Duration::from_secs(3)))
}
