//! Every error the api answers, mapped to its status in one place.
//!
//! Bodies are `{statusCode, message, error, timestamp, path}` as the seed's
//! exception filter wrote them. `ResponseError` cannot see the request, so it
//! leaves an [`ErrorPayload`] in the response's extensions and the
//! [`error_bodies`] middleware writes the body with the request's path. The
//! cause of a 5xx goes to the log, never to the client.

use actix_web::{
    body::{BoxBody, EitherBody, MessageBody},
    dev::{ServiceRequest, ServiceResponse},
    http::{header, StatusCode},
    middleware::Next,
    HttpResponse, HttpResponseBuilder, ResponseError,
};
use chrono::Utc;
use domain::{time::iso_millis, LedgerEntry};
use serde_json::{json, Map, Value};

use crate::inventory::InventoryError;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("validation failed: {0:?}")]
    Validation(Vec<String>),
    #[error("malformed JSON body")]
    MalformedJson,
    #[error("request body too large")]
    PayloadTooLarge { limit: usize },
    #[error("unsupported content type")]
    UnsupportedMediaType,
    #[error("sale not started")]
    SaleNotStarted,
    #[error("sale ended")]
    SaleEnded,
    #[error("already purchased")]
    AlreadyPurchased(LedgerEntry),
    #[error("sold out")]
    SoldOut,
    #[error("too many purchase attempts")]
    TooManyAttempts { max: u32 },
    #[error("sale not armed in redis")]
    NotArmed,
    #[error("inventory unavailable")]
    Inventory(#[from] InventoryError),
    #[error("route not found")]
    NotFound,
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            Self::Validation(_) | Self::MalformedJson | Self::SaleNotStarted | Self::SaleEnded => {
                StatusCode::BAD_REQUEST
            }
            Self::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Self::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::AlreadyPurchased(_) => StatusCode::CONFLICT,
            Self::SoldOut => StatusCode::GONE,
            Self::TooManyAttempts { .. } => StatusCode::TOO_MANY_REQUESTS,
            Self::NotArmed | Self::Inventory(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::NotFound => StatusCode::NOT_FOUND,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let mut payload = ErrorPayload::new(self.message());
        if let Self::AlreadyPurchased(entry) = self {
            payload = payload
                .with("orderId", json!(entry.order_id.to_string()))
                .with("purchasedAt", json!(iso_millis(entry.purchased_at)));
        }
        let mut response = HttpResponse::build(self.status_code());
        if let Self::NotArmed | Self::Inventory(_) = self {
            response.insert_header((header::RETRY_AFTER, "1"));
        }
        payload.respond(response)
    }
}

impl ApiError {
    fn message(&self) -> Value {
        let text = |s: &str| Value::String(s.to_owned());
        match self {
            Self::Validation(problems) => json!(problems),
            Self::MalformedJson => text("Request body is not valid JSON."),
            Self::PayloadTooLarge { limit } => {
                Value::String(format!("Request body is larger than {limit} bytes."))
            }
            Self::UnsupportedMediaType => text("Content-Type must be application/json."),
            Self::SaleNotStarted => text("The sale has not started yet. Please wait."),
            Self::SaleEnded => text("The sale has ended."),
            Self::AlreadyPurchased(_) => text("You have already purchased this item."),
            Self::SoldOut => text("Sorry, the item is sold out."),
            Self::TooManyAttempts { max } => Value::String(format!(
                "Too many purchase attempts. Maximum {max} attempts allowed."
            )),
            Self::NotArmed | Self::Inventory(_) => {
                text("Service temporarily unavailable. Please try again shortly.")
            }
            Self::NotFound => text("Not Found"),
        }
    }
}

/// The parts of an error body known before the request is; see the module doc.
#[derive(Debug, Clone)]
pub struct ErrorPayload {
    message: Value,
    extra: Map<String, Value>,
}

impl ErrorPayload {
    pub fn new(message: Value) -> Self {
        Self {
            message,
            extra: Map::new(),
        }
    }

    pub fn with(mut self, key: &str, value: Value) -> Self {
        self.extra.insert(key.to_owned(), value);
        self
    }

    /// Finishes `response` with this payload pending for [`error_bodies`].
    pub fn respond(self, mut response: HttpResponseBuilder) -> HttpResponse {
        response
            .insert_header(header::ContentType::json())
            .extensions_mut()
            .insert(self);
        response.finish()
    }

    fn body(self, status: StatusCode, path: &str) -> Value {
        let mut body = Map::new();
        body.insert("statusCode".into(), json!(status.as_u16()));
        body.insert("message".into(), self.message);
        body.insert(
            "error".into(),
            json!(status.canonical_reason().unwrap_or("Error")),
        );
        body.insert("timestamp".into(), json!(iso_millis(Utc::now())));
        body.insert("path".into(), json!(path));
        body.extend(self.extra);
        Value::Object(body)
    }
}

/// Middleware writing the JSON body of every response that carries an
/// [`ErrorPayload`], with the path of the request it answers.
pub async fn error_bodies(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<EitherBody<BoxBody>>, actix_web::Error> {
    let path = req.uri().to_string();
    // Handlers' errors arrive here as responses; an `Err` only comes from a
    // middleware failing outright, and actix renders it after us.
    let mut response = next.call(req).await?.map_into_boxed_body();
    let pending = response
        .response_mut()
        .extensions_mut()
        .remove::<ErrorPayload>();
    Ok(match pending {
        None => response.map_into_left_body(),
        Some(payload) => {
            let status = response.status();
            let body = payload.body(status, &path).to_string();
            response
                .map_body(|_, _| BoxBody::new(body))
                .map_into_right_body()
        }
    })
}

/// The default service: unknown routes answer 404 in the same JSON shape.
pub async fn not_found() -> Result<HttpResponse, ApiError> {
    Err(ApiError::NotFound)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_and_messages_follow_the_seed() {
        let cases = [
            (ApiError::SoldOut, 410, "Sorry, the item is sold out."),
            (ApiError::SaleEnded, 400, "The sale has ended."),
            (
                ApiError::SaleNotStarted,
                400,
                "The sale has not started yet. Please wait.",
            ),
            (
                ApiError::TooManyAttempts { max: 3 },
                429,
                "Too many purchase attempts. Maximum 3 attempts allowed.",
            ),
        ];
        for (error, status, message) in cases {
            assert_eq!(error.status_code().as_u16(), status);
            assert_eq!(error.message(), json!(message));
        }
    }

    #[test]
    fn error_body_has_the_seed_fields_and_the_reason_phrase() {
        let body = ErrorPayload::new(json!("x")).body(StatusCode::GONE, "/api/purchases");
        assert_eq!(body["statusCode"], 410);
        assert_eq!(body["error"], "Gone");
        assert_eq!(body["path"], "/api/purchases");
        assert!(body["timestamp"].as_str().is_some_and(|t| t.ends_with('Z')));
    }
}
