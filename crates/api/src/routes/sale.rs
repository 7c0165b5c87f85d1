use actix_web::{get, web, HttpResponse};
use chrono::Utc;
use domain::{time::iso_millis, SalePhase};
use serde::Serialize;
use utoipa::ToSchema;

use crate::{
    error::{ApiError, ErrorBody},
    state::AppState,
};

/// Where the sale stands relative to its window.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Phase {
    Upcoming,
    Active,
    Ended,
}

impl From<SalePhase> for Phase {
    fn from(phase: SalePhase) -> Self {
        match phase {
            SalePhase::Upcoming => Self::Upcoming,
            SalePhase::Active => Self::Active,
            SalePhase::Ended => Self::Ended,
        }
    }
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SaleStatus {
    status: Phase,
    /// ISO-8601 UTC with milliseconds.
    #[schema(example = "2026-03-01T10:00:00.000Z")]
    starts_at: String,
    #[schema(example = "2026-03-01T11:00:00.000Z")]
    ends_at: String,
    stock_remaining: u64,
    total_stock: u64,
}

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
    let sale = &state.sale;
    let stock_remaining = u64::try_from(stock).unwrap_or(0).min(sale.total_stock);
    crate::metrics::stock(sale.id.as_str(), stock_remaining);
    Ok(HttpResponse::Ok().json(SaleStatus {
        status: sale.window.phase_at(Utc::now()).into(),
        starts_at: iso_millis(sale.window.starts_at),
        ends_at: iso_millis(sale.window.ends_at),
        stock_remaining,
        total_stock: sale.total_stock,
    }))
}
