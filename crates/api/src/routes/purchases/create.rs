use actix_web::{post, web, HttpRequest, HttpResponse};
use domain::{OrderId, UserId};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use crate::{
    error::{ApiError, ErrorBody},
    metrics::PurchaseResult,
    purchase::{self, Outcome},
    state::{AppState, ThreadPaths},
    validation::{self, BodyError},
};

/// The purchase request: exactly one property. With `BUYER_AUTH=jwt` it
/// is optional (the token names the buyer) and, when given, must be the
/// token's subject.
///
/// Documents the body; the handler reads it as raw JSON so that validation
/// can list every problem in the seed's words, hence never constructed.
#[allow(dead_code)]
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PurchaseRequest {
    /// 1 to 255 characters, not blank, no control characters: any script,
    /// any identity provider's subject.
    #[schema(
        example = "user-42",
        min_length = 1,
        max_length = 255,
        pattern = "^[^\\u0000-\\u001F\\u007F-\\u009F]*[^\\s\\u0000-\\u001F\\u007F-\\u009F][^\\u0000-\\u001F\\u007F-\\u009F]*$"
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
    // Serialized straight from the id (no `to_string` per purchase).
    #[schema(value_type = String, example = "01a215e1-2992-704a-9c83-ad9ec0ec2c3b")]
    order_id: OrderId,
}

/// Attempt a purchase: validate, check the window, run the purchase script,
/// queue the order, answer 201.
#[utoipa::path(
    tag = "purchases",
    request_body = PurchaseRequest,
    responses(
        (status = 201, description = "Purchase confirmed", body = PurchaseConfirmed),
        (status = 400, description = "Invalid body (message lists every problem) or sale not active", body = ErrorBody),
        (status = 401, description = "`BUYER_AUTH=jwt`: no bearer token (`WWW-Authenticate: Bearer realm`), or one that does not verify (`error=\"invalid_token\"`; the message says why)", body = ErrorBody),
        (status = 403, description = "`BUYER_AUTH=jwt`: userId names another buyer than the token", body = ErrorBody),
        (status = 409, description = "Already purchased; the body has the existing orderId and purchasedAt", body = ErrorBody),
        (status = 410, description = "Sold out", body = ErrorBody),
        (status = 413, description = "Body larger than 4 KiB", body = ErrorBody),
        (status = 415, description = "Content-Type is not application/json", body = ErrorBody),
        (status = 429, description = "Too many attempts of this user, or too many requests from this address", body = ErrorBody),
        (status = 503, description = "Redis unreachable, the sale not armed, or (`jwt`) the identity provider's keys unavailable; retry", body = ErrorBody),
    ),
    security((), ("bearer" = []))
)]
#[post("")]
#[tracing::instrument(name = "purchase", level = "debug", skip_all, fields(order.id))]
pub async fn create(
    state: web::Data<AppState>,
    paths: web::Data<ThreadPaths>,
    req: HttpRequest,
    body: web::Json<Value>,
) -> Result<HttpResponse, ApiError> {
    let user = buyer(&state, &req, &body)?;
    let outcome = match purchase::known(&state, &user) {
        // A sold-out sale's refusals, by the thousand a second.
        Some(outcome) => outcome,
        None => purchase::decide(&state, &paths, user)
            .await
            .inspect_err(|e| {
                state.metrics.purchase(PurchaseResult::Error);
                tracing::error!(error = ?e, "purchase script failed");
            })?,
    };
    state.metrics.purchase(outcome.counted_as());
    Ok(answer(outcome, state.attempt_limit.max_attempts, &req))
}

/// Who buys: the signed-in buyer (`BUYER_AUTH=jwt`, verified by the
/// routes' middleware) or the body's user. Refusals here change nothing and
/// use no attempt: the script has not run.
fn buyer(state: &AppState, req: &HttpRequest, body: &Value) -> Result<UserId, ApiError> {
    validation::purchase_body(body, super::buyer_of(req).as_ref()).map_err(|e| match e {
        BodyError::Problems(problems) => {
            state.metrics.purchase(PurchaseResult::Invalid);
            ApiError::Validation(problems)
        }
        BodyError::NotTheBuyer => {
            state.metrics.purchase(PurchaseResult::Forbidden);
            ApiError::NotTheBuyer
        }
    })
}

/// The HTTP answer of an outcome; a refusal's body is written here, the
/// request at hand (see [`ApiError::answer`]).
fn answer(outcome: Outcome, max_attempts: u32, req: &HttpRequest) -> HttpResponse {
    let refused = match outcome {
        Outcome::Confirmed { order_id, .. } => {
            return HttpResponse::Created().json(PurchaseConfirmed {
                success: true,
                message: "Purchase confirmed!",
                order_id,
            })
        }
        Outcome::Duplicate(entry) => ApiError::AlreadyPurchased(entry),
        Outcome::SoldOut => ApiError::SoldOut,
        Outcome::TooManyAttempts => ApiError::TooManyAttempts { max: max_attempts },
        Outcome::NotStarted => ApiError::SaleNotStarted,
        Outcome::Ended => ApiError::SaleEnded,
        Outcome::NotArmed => ApiError::NotArmed,
    };
    refused.answer(&req.uri().to_string())
}
