use std::time::Duration;

use actix_web::{get, web, Responder};
use actix_web_lab::sse::Sse;

use crate::state::AppState;

/// Live sale status: a `text/event-stream` of `status` events, each a
/// `SaleStatus` JSON, sent at once and then whenever it changes. Browsers
/// reconnect by themselves (retry 3 s); a comment every 15 s keeps proxies
/// from closing an idle stream.
#[utoipa::path(
    tag = "sale",
    responses((status = 200, description = "`status` events carrying SaleStatus JSON", content_type = "text/event-stream", body = String))
)]
#[get("/api/sale/events")]
pub async fn events(state: web::Data<AppState>) -> impl Responder {
    Sse::from_infallible_stream(
        state
            .feed
            .events(state.sale.clone(), state.shutdown.clone()),
    )
    .with_keep_alive(Duration::from_secs(15))
    .with_retry_duration(Duration::from_secs(3))
}
