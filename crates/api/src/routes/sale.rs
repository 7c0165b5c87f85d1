use crate::{
    error::{ApiError, ErrorBody},
    state::{AppState, ThreadPaths},
    status::SaleStatus,
};
use std::time::Instant;

use actix_web::{get, web, HttpResponse};

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
    let reading = match paths.recent.fresh(changes) {
        Some(reading) => reading,
        None => {
            let taken = Instant::now();
            let reading = paths
                .inventory()
                .reading()
                .await
                .inspect_err(|e| tracing::error!(error = ?e, "reading stock failed"))?;
            paths.recent.keep(reading, taken, changes);
            reading
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
    // The phase on Redis's clock: the one the purchase script judges by.
    let status = SaleStatus::at(sale, stock, reading.now);
    state.metrics.stock(status.stock_remaining);
    state
        .feed
        .observe_reading(status.stock_remaining, reading.now);
    Ok(HttpResponse::Ok().json(status))
}
