use actix_web::{get, web, HttpResponse};
use domain::{time::iso_millis, UserId};
use serde::Serialize;
use utoipa::ToSchema;

use crate::{
    error::{ApiError, ErrorBody},
    state::AppState,
};

/// Whether a user bought, and their order if so.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PurchaseStatus {
    purchased: bool,
    #[schema(example = "user-42")]
    user_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    order_id: Option<String>,
    /// ISO-8601 UTC with milliseconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    purchased_at: Option<String>,
}

/// Whether a user has purchased: from the Redis ledger, so it is right
/// before the order row is persisted.
#[utoipa::path(
    tag = "purchases",
    params(("user_id" = String, Path, description = "The user id, percent-encoded (`team%2Falice`, `jos%C3%A9`)")),
    responses(
        (status = 200, body = PurchaseStatus),
        (status = 400, description = "Invalid user id", body = ErrorBody),
        (status = 429, description = "Too many requests from this address", body = ErrorBody),
        (status = 503, description = "Redis unreachable, or the sale partly lost and being rebuilt (retry); for an ended sale whose keys expired, PostgreSQL unreachable", body = ErrorBody),
    )
)]
#[get("/{user_id}")]
pub async fn status(
    state: web::Data<AppState>,
    user: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let user = UserId::parse(&user).map_err(|e| ApiError::Validation(vec![e.to_string()]))?;
    let mut entry = state
        .inventory
        .ledger_entry(&user)
        .await
        .inspect_err(|e| tracing::error!(error = ?e, "reading the ledger failed"))?;
    if entry.is_none() && crate::clock::now() > state.sale.window.ends_at {
        // An ended sale's ledger expires after a retention; its orders stay.
        entry = crate::db::order_of(&state.db, &state.sale.id, &user)
            .await
            .map_err(ApiError::Database)?;
    } else if entry.is_none() && state.inventory.reading().await?.stock.is_none() {
        // A ledger Redis partly lost cannot say "not purchased": 503 until
        // the sale is rebuilt from the orders that stand.
        state.healer.heal();
        return Err(ApiError::NotArmed);
    }
    Ok(HttpResponse::Ok().json(PurchaseStatus {
        purchased: entry.is_some(),
        user_id: user.to_string(),
        order_id: entry.map(|e| e.order_id.to_string()),
        purchased_at: entry.map(|e| iso_millis(e.purchased_at)),
    }))
}
