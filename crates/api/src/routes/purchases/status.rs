use actix_web::{get, web, HttpRequest, HttpResponse};
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
/// before the order row is persisted. With `BUYER_AUTH=jwt`, only the
/// signed-in buyer's own id (else 403).
#[utoipa::path(
    tag = "purchases",
    params(("user_id" = String, Path, description = "The user id, percent-encoded (`team%2Falice`, `jos%C3%A9`)")),
    responses(
        (status = 200, body = PurchaseStatus),
        (status = 400, description = "Invalid user id", body = ErrorBody),
        (status = 401, description = "`BUYER_AUTH=jwt`: no bearer token, or one that does not verify", body = ErrorBody),
        (status = 403, description = "`BUYER_AUTH=jwt`: another buyer's id", body = ErrorBody),
        (status = 429, description = "Too many requests from this address", body = ErrorBody),
        (status = 503, description = "Redis unreachable, or the sale partly lost and being rebuilt (retry); for an ended sale whose keys expired, PostgreSQL unreachable", body = ErrorBody),
    ),
    security((), ("bearer" = []))
)]
#[get("/{user_id}")]
pub async fn status(
    state: web::Data<AppState>,
    req: HttpRequest,
    user: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let signed_in = super::buyer_of(&req);
    let user = UserId::parse(&user).map_err(|e| ApiError::Validation(vec![e.to_string()]))?;
    if signed_in.is_some_and(|buyer| buyer != user) {
        return Err(ApiError::NotYourPurchase);
    }
    answer(&state, user).await
}

/// The signed-in buyer's purchase (`BUYER_AUTH=jwt`). In `none` mode `me`
/// is a user id like any other, as it was in the seed.
#[utoipa::path(
    tag = "purchases",
    responses(
        (status = 200, body = PurchaseStatus),
        (status = 401, description = "`BUYER_AUTH=jwt`: no bearer token, or one that does not verify", body = ErrorBody),
        (status = 503, description = "As for `GET /api/purchases/{user_id}`", body = ErrorBody),
    ),
    security((), ("bearer" = []))
)]
#[get("/me")]
pub async fn mine(state: web::Data<AppState>, req: HttpRequest) -> Result<HttpResponse, ApiError> {
    let user = match super::buyer_of(&req) {
        Some(buyer) => buyer,
        None => UserId::parse("me").map_err(|e| ApiError::Validation(vec![e.to_string()]))?,
    };
    answer(&state, user).await
}

async fn answer(state: &AppState, user: UserId) -> Result<HttpResponse, ApiError> {
    let sale = state.armed()?;
    let mut entry = state
        .inventory
        .ledger_entry(&user)
        .await
        .inspect_err(|e| tracing::error!(error = ?e, "reading the ledger failed"))?;
    if entry.is_none() && crate::clock::now() > sale.window.ends_at {
        // An ended sale's ledger expires after a retention; its orders stay.
        entry = crate::db::order_of(&state.db, &sale.id, &user)
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
