use actix_web::{web, HttpResponse};
use chrono::Utc;
use domain::{OrderId, PersistOrder, PurchaseOutcome, UserId};
use serde_json::{json, Value};

use crate::{error::ApiError, state::AppState, validation};

/// `POST /api/purchases {userId}`: validate, check the window, run the
/// purchase script, queue the order, answer 201.
#[tracing::instrument(name = "purchase", skip_all, fields(order.id))]
pub async fn create(
    state: web::Data<AppState>,
    body: web::Json<Value>,
) -> Result<HttpResponse, ApiError> {
    let user = validation::purchase_body(&body).map_err(ApiError::Validation)?;
    state.sale.ensure_active(Utc::now())?;

    let order_id = OrderId::new();
    let outcome = state
        .inventory
        .purchase(&user, order_id, state.attempt_limit)
        .await
        .inspect_err(|e| tracing::error!(error = ?e, "purchase script failed"))?;
    match outcome {
        PurchaseOutcome::Confirmed { purchased_at } => {
            crate::failpoint::crash_if("after-purchase-script");
            tracing::Span::current().record("order.id", tracing::field::display(order_id));
            queue_order(&state, order_id, user, purchased_at).await;
            Ok(HttpResponse::Created().json(json!({
                "success": true,
                "message": "Purchase confirmed!",
                "orderId": order_id.to_string(),
            })))
        }
        PurchaseOutcome::Duplicate(entry) => Err(ApiError::AlreadyPurchased(entry)),
        PurchaseOutcome::SoldOut => Err(ApiError::SoldOut),
        PurchaseOutcome::TooManyAttempts => Err(ApiError::TooManyAttempts {
            max: state.attempt_limit.max_attempts,
        }),
        PurchaseOutcome::NotArmed => {
            tracing::error!(sale.id = %state.sale.id, "sale keys missing in redis; re-arming");
            state.into_inner().heal();
            Err(ApiError::NotArmed)
        }
    }
}

/// Pushes the persist job. The purchase is already confirmed in the Redis
/// ledger, so a failed push does not fail the purchase: the worker's
/// reconciler persists ledger entries that never reached PostgreSQL.
async fn queue_order(
    state: &AppState,
    order_id: OrderId,
    user_id: UserId,
    purchased_at: chrono::DateTime<Utc>,
) {
    let job = PersistOrder {
        order_id,
        sale_id: state.sale.id.clone(),
        user_id,
        purchased_at,
    };
    if let Err(error) = state.queue.push(job).await {
        tracing::error!(%error, "order job not queued; the reconciler will persist it");
    }
}
