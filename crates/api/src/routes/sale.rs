use actix_web::{get, web, HttpResponse};
use chrono::Utc;

use crate::{
    error::{ApiError, ErrorBody},
    state::AppState,
    status::SaleStatus,
};

/// Phase, window and stock of the sale. Never throttled.
#[utoipa::path(
    tag = "sale",
    responses(
        (status = 200, body = SaleStatus),
        (status = 503, description = "Redis unreachable or the sale not armed", body = ErrorBody),
    )
)]
#[get("/api/sale/status")]
pub async fn status(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let stock = state
        .inventory
        .stock()
        .await
        .inspect_err(|e| tracing::error!(error = ?e, "reading stock failed"))?;
    let Some(stock) = stock else {
        state.into_inner().heal();
        return Err(ApiError::NotArmed);
    };
    let status = SaleStatus::at(&state.sale, stock, Utc::now());
    crate::metrics::stock(state.sale.id.as_str(), status.stock_remaining);
    state.feed.observe(status.stock_remaining);
    Ok(HttpResponse::Ok().json(status))
}
