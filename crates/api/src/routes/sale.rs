use actix_web::{web, HttpResponse};
use chrono::Utc;
use domain::{time::iso_millis, SalePhase};
use serde::Serialize;

use crate::{error::ApiError, state::AppState};

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct SaleStatus {
    status: SalePhase,
    starts_at: String,
    ends_at: String,
    stock_remaining: u64,
    total_stock: u64,
}

/// `GET /api/sale/status`: phase, window and stock. Never throttled.
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
    let sale = &state.sale;
    let stock_remaining = u64::try_from(stock).unwrap_or(0).min(sale.total_stock);
    crate::metrics::stock(sale.id.as_str(), stock_remaining);
    Ok(HttpResponse::Ok().json(SaleStatus {
        status: sale.window.phase_at(Utc::now()),
        starts_at: iso_millis(sale.window.starts_at),
        ends_at: iso_millis(sale.window.ends_at),
        stock_remaining,
        total_stock: sale.total_stock,
    }))
}
