use actix_web::{post, web, HttpRequest, HttpResponse};
use domain::{OrderId, UserId};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::{
    body,
    error::{request_target, ApiError, ErrorBody, JSON},
    metrics::PurchaseResult,
    purchase::{self, Outcome},
    startup::JSON_LIMIT,
    state::{AppState, ThreadPaths},
    validation::{self, BodyError},
};

/// The purchase request: exactly one property. With `BUYER_AUTH=jwt` it
/// is optional (the token names the buyer) and, when given, must be the
/// token's subject.
///
/// Documents the body; the handler reads its bytes (see [`body`]) so that
/// validation can list every problem in the seed's words, hence never
/// constructed.
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
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let body = body::read_json(&req, payload, JSON_LIMIT).await?;
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
/// A body that is not JSON is not counted: `web::Json` refused it before
/// the handler ran, and the metrics' meaning stays.
fn buyer(state: &AppState, req: &HttpRequest, body: &[u8]) -> Result<UserId, ApiError> {
    validation::purchase_json(body, super::buyer_of(req).as_ref()).map_err(|e| match e {
        BodyError::Malformed => ApiError::MalformedJson,
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

/// The 201 of a confirmed purchase: the bytes `serde_json` writes for a
/// [`PurchaseConfirmed`] (a test compares them), written directly, since
/// every one of them is known but the order id's 36.
fn confirmed(order_id: OrderId) -> HttpResponse {
    const HEAD: &str = r#"{"success":true,"message":"Purchase confirmed!","orderId":""#;
    let mut id = [0; 36];
    let mut body = String::with_capacity(HEAD.len() + id.len() + 2);
    body.push_str(HEAD);
    body.push_str(order_id.encode(&mut id));
    body.push_str(r#""}"#);
    HttpResponse::Created().insert_header(JSON).body(body)
}

/// The HTTP answer of an outcome; a refusal's body is written here, the
/// request at hand (see [`ApiError::answer`]).
fn answer(outcome: Outcome, max_attempts: u32, req: &HttpRequest) -> HttpResponse {
    let refused = match outcome {
        Outcome::Confirmed { order_id, .. } => return confirmed(order_id),
        Outcome::Duplicate(entry) => ApiError::AlreadyPurchased(entry),
        Outcome::SoldOut => ApiError::SoldOut,
        Outcome::TooManyAttempts => ApiError::TooManyAttempts { max: max_attempts },
        Outcome::NotStarted => ApiError::SaleNotStarted,
        Outcome::Ended => ApiError::SaleEnded,
        Outcome::NotArmed => ApiError::NotArmed,
    };
    refused.answer(&request_target(req.uri()))
}

#[cfg(test)]
mod tests {
    use actix_web::body::MessageBody;

    use super::*;

    #[test]
    fn a_confirmed_purchase_is_answered_with_what_serde_writes() {
        let order_id = OrderId::new();
        let ours = confirmed(order_id);
        let serde = HttpResponse::Created().json(PurchaseConfirmed {
            success: true,
            message: "Purchase confirmed!",
            order_id,
        });

        assert_eq!(ours.status(), serde.status());
        let headers = |response: &HttpResponse| -> Vec<(String, Vec<u8>)> {
            let mut all: Vec<_> = response
                .headers()
                .iter()
                .map(|(name, value)| (name.to_string(), value.as_bytes().to_vec()))
                .collect();
            all.sort();
            all
        };
        assert_eq!(headers(&ours), headers(&serde));
        let (ours, serde) = (
            ours.into_body().try_into_bytes().ok(),
            serde.into_body().try_into_bytes().ok(),
        );
        assert!(ours.is_some());
        assert_eq!(ours, serde);
    }
}
