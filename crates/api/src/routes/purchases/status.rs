use actix_web::{web, HttpResponse};
use domain::{time::iso_millis, UserId};
use serde_json::json;

use crate::{error::ApiError, state::AppState};

/// `GET /api/purchases/{userId}`: from the Redis ledger, so it is right
/// before the order row is persisted.
pub async fn status(
    state: web::Data<AppState>,
    user: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let user = UserId::parse(&user).map_err(|e| ApiError::Validation(vec![e.to_string()]))?;
    let entry = state
        .inventory
        .ledger_entry(&user)
        .await
        .inspect_err(|e| tracing::error!(error = ?e, "reading the ledger failed"))?;
    let body = match entry {
        Some(entry) => json!({
            "purchased": true,
            "userId": user.as_str(),
            "orderId": entry.order_id.to_string(),
            "purchasedAt": iso_millis(entry.purchased_at),
        }),
        None => json!({ "purchased": false, "userId": user.as_str() }),
    };
    Ok(HttpResponse::Ok().json(body))
}
