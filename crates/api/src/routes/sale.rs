use domain::Reading;

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
        // Boxed: the script call's future is kilobytes, and inline it made
        // every poll's handler future that big, to be moved onto the heap
        // per request (callgrind: a third of a status answer's instructions
        // were that copy), though nearly every answer is a kept reading.
        None => (Box::pin(read_stock(&paths, changes)).await?, true),
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

/// A fresh reading of the stock, kept for this thread's next answers.
async fn read_stock(paths: &ThreadPaths, changes: u64) -> Result<Reading, ApiError> {
    let taken = Instant::now();
    let reading = paths
        .inventory()
        .reading()
        .await
        .inspect_err(|e| tracing::error!(error = ?e, "reading stock failed"))?;
    paths.recent.keep(reading, taken, changes);
    Ok(reading)
}
