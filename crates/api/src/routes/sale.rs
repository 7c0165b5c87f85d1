use crate::{
    error::{ApiError, ErrorBody},
    state::{AppState, ThreadPaths},
    status::{clamped, SaleStatus},
};
use std::time::Instant;

use actix_web::{get, http::header::ContentType, web, HttpResponse};

/// Phase, window and stock of the sale. Never throttled.
///
/// The stock is at most 50 ms old: a replica's own sales show at once,
/// other replicas' within 50 ms.
#[utoipa::path(
    tag = "sale",
    responses(
        (status = 200, body = SaleStatus),
        (status = 503, description = "Redis unreachable or the sale not armed", body = ErrorBody),
    )
)]
#[get("/api/sale/status")]
pub async fn status(
    state: web::Data<AppState>,
    paths: web::Data<ThreadPaths>,
) -> Result<HttpResponse, ApiError> {
    let sale = state.armed()?;
    let changes = state.stock_changes.current();
    let (reading, taken_now) = match paths.recent.fresh(changes) {
        Some(reading) => (reading, false),
        None => {
            let taken = Instant::now();
            let reading = paths
                .inventory()
                .reading()
                .await
                .inspect_err(|e| tracing::error!(error = ?e, "reading stock failed"))?;
            paths.recent.keep(reading, taken, changes);
            (reading, true)
        }
    };
    let stock = match reading.stock {
        Some(stock) => stock,
        // An ended sale's keys expire after a retention (PostgreSQL keeps
        // its orders): nothing is left to sell, so nothing is re-armed.
        None if reading.now > sale.window.ends_at => 0,
        None => {
            state.healer.heal();
            return Err(ApiError::NotArmed);
        }
    };
    let stock = clamped(sale, stock);
    if taken_now {
        // A reading kept from an earlier request was reported then.
        state.metrics.stock(stock);
        state.feed.observe_reading(stock, reading.now);
    }
    // The phase on Redis's clock: the one the purchase script judges by.
    let phase = sale.window.phase_at(reading.now).into();
    Ok(HttpResponse::Ok()
        .content_type(ContentType::json())
        .body(paths.status_bodies.body(sale, phase, stock)))
}
