use actix_web::{post, web, HttpResponse};
use domain::{OrderId, PersistOrder, PurchaseOutcome, UserId};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use crate::{
    error::{ApiError, ErrorBody},
    metrics,
    state::{AppState, ThreadPaths},
    validation,
};

/// The purchase request: exactly one property.
///
/// Documents the body; the handler reads it as raw JSON so that validation
/// can list every problem in the seed's words, hence never constructed.
#[allow(dead_code)]
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PurchaseRequest {
    /// 1 to 64 characters: ASCII letters, digits and `. _ - @ + :`.
    #[schema(
        example = "user-42",
        min_length = 1,
        max_length = 64,
        pattern = "^[A-Za-z0-9._@+:-]+$"
    )]
    pub user_id: String,
}

/// A confirmed purchase.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PurchaseConfirmed {
    success: bool,
    #[schema(example = "Purchase confirmed!")]
    message: &'static str,
    #[schema(example = "01a215e1-2992-704a-9c83-ad9ec0ec2c3b")]
    order_id: String,
}

fn outcome_label(outcome: &PurchaseOutcome) -> &'static str {
    match outcome {
        PurchaseOutcome::Confirmed { .. } => "confirmed",
        PurchaseOutcome::Duplicate(_) => "duplicate",
        PurchaseOutcome::SoldOut => "sold_out",
        PurchaseOutcome::TooManyAttempts => "too_many_attempts",
        PurchaseOutcome::NotArmed => "not_armed",
        PurchaseOutcome::NotStarted | PurchaseOutcome::Ended => "not_active",
    }
}

/// Attempt a purchase: validate, check the window, run the purchase script,
/// queue the order, answer 201.
#[utoipa::path(
    tag = "purchases",
    request_body = PurchaseRequest,
    responses(
        (status = 201, description = "Purchase confirmed", body = PurchaseConfirmed),
        (status = 400, description = "Invalid body (message lists every problem) or sale not active", body = ErrorBody),
        (status = 409, description = "Already purchased; the body has the existing orderId and purchasedAt", body = ErrorBody),
        (status = 410, description = "Sold out", body = ErrorBody),
        (status = 413, description = "Body larger than 4 KiB", body = ErrorBody),
        (status = 415, description = "Content-Type is not application/json", body = ErrorBody),
        (status = 429, description = "Too many attempts of this user, or too many requests from this address", body = ErrorBody),
        (status = 503, description = "Redis unreachable or the sale not armed; retry", body = ErrorBody),
    )
)]
#[post("")]
#[tracing::instrument(name = "purchase", skip_all, fields(order.id))]
pub async fn create(
    state: web::Data<AppState>,
    paths: web::Data<ThreadPaths>,
    body: web::Json<Value>,
) -> Result<HttpResponse, ApiError> {
    let user = validation::purchase_body(&body)
        .map_err(ApiError::Validation)
        .inspect_err(|_| state.metrics.purchase("invalid"))?;
    if let Some(buyers) = state.sold_out.buyers() {
        return sold_out_answer(&state, buyers, &user);
    }
    // The window is judged in the script, on Redis's clock: replicas whose
    // own clocks disagree still agree on whether the sale is open.

    let order_id = OrderId::new();
    let outcome = paths
        .inventory()
        .purchase(&user, order_id, state.attempt_limit, &state.sale.window)
        .await
        .inspect_err(|e| {
            state.metrics.purchase("error");
            tracing::error!(error = ?e, "purchase script failed");
        })?;
    state.metrics.purchase(outcome_label(&outcome));
    if matches!(
        outcome,
        PurchaseOutcome::Confirmed { .. } | PurchaseOutcome::SoldOut | PurchaseOutcome::NotArmed
    ) {
        state.stock_changes.seen();
    }
    match outcome {
        PurchaseOutcome::Confirmed {
            purchased_at,
            stock_left,
        } => {
            crate::failpoint::crash_if("after-purchase-script");
            state.metrics.stock(stock_left);
            state.feed.observe(stock_left);
            if stock_left == 0 {
                state.sold_out.seen(&state.inventory).await;
            }
            tracing::Span::current().record("order.id", tracing::field::display(order_id));
            queue_order(&state, &paths, order_id, user, purchased_at).await;
            Ok(HttpResponse::Created().json(PurchaseConfirmed {
                success: true,
                message: "Purchase confirmed!",
                order_id: order_id.to_string(),
            }))
        }
        PurchaseOutcome::Duplicate(entry) => Err(ApiError::AlreadyPurchased(entry)),
        PurchaseOutcome::SoldOut => {
            state.metrics.stock(0);
            state.feed.observe(0);
            state.sold_out.seen(&state.inventory).await;
            Err(ApiError::SoldOut)
        }
        PurchaseOutcome::TooManyAttempts => Err(ApiError::TooManyAttempts {
            max: state.attempt_limit.max_attempts,
        }),
        PurchaseOutcome::NotStarted => Err(ApiError::SaleNotStarted),
        PurchaseOutcome::Ended => Err(ApiError::SaleEnded),
        PurchaseOutcome::NotArmed => {
            tracing::error!(sale.id = %state.sale.id, "sale keys missing in redis; re-arming");
            state.into_inner().heal();
            Err(ApiError::NotArmed)
        }
    }
}

/// Queues the order (in a job with the other orders of the moment). The purchase is already confirmed in the Redis
/// ledger, so a failed push does not fail the purchase: the worker's
/// reconciler persists ledger entries that never reached PostgreSQL.
async fn queue_order(
    state: &AppState,
    paths: &ThreadPaths,
    order_id: OrderId,
    user_id: UserId,
    purchased_at: chrono::DateTime<chrono::Utc>,
) {
    let order = PersistOrder {
        order_id,
        sale_id: state.sale.id.clone(),
        user_id,
        purchased_at,
    };
    let pushed = paths.queue.push(order).await;
    metrics::job_pushed(pushed.is_ok());
    if let Err(error) = pushed {
        tracing::error!(%error, "order job not queued; the reconciler will persist it");
    }
}

/// The answer of a sold-out sale, from the frozen buyer set: no Redis call.
fn sold_out_answer(
    state: &AppState,
    buyers: &std::collections::HashMap<String, domain::LedgerEntry>,
    user: &UserId,
) -> Result<HttpResponse, ApiError> {
    if state.feed.redis_now() > state.sale.window.ends_at {
        state.metrics.purchase("not_active");
        return Err(ApiError::SaleEnded);
    }
    match crate::soldout::SoldOut::entry(buyers, user) {
        Some(entry) => {
            state.metrics.purchase("duplicate");
            Err(ApiError::AlreadyPurchased(entry))
        }
        None => {
            state.metrics.purchase("sold_out");
            Err(ApiError::SoldOut)
        }
    }
}
