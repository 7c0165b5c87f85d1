//! Every error the api answers, mapped to its status in one place.
//!
//! Bodies are `{statusCode, message, error, timestamp, path}` as the seed's
//! exception filter wrote them. `ResponseError` cannot see the request, so it
//! leaves an [`ErrorPayload`] in the response's extensions and the
//! [`error_bodies`] middleware writes the body with the request's path. The
//! cause of a 5xx goes to the log, never to the client.

use std::{borrow::Cow, io::Write};

use actix_web::{
    body::{BoxBody, EitherBody, MessageBody},
    dev::{ServiceRequest, ServiceResponse},
    http::{header, StatusCode},
    middleware::Next,
    HttpResponse, HttpResponseBuilder, ResponseError,
};
use domain::{
    time::{iso_millis, push_iso_millis},
    LedgerEntry,
};
use serde::Serialize;
use utoipa::ToSchema;

use crate::{
    auth::{AuthError, TokenProblem},
    inventory::InventoryError,
};

/// `Content-Type: application/json`, as a header pair that costs no parse
/// or copy (`ContentType::json()` formats its `Mime` every time).
pub const JSON: (header::HeaderName, header::HeaderValue) = (
    header::CONTENT_TYPE,
    header::HeaderValue::from_static("application/json"),
);

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
    #[error("database unavailable")]
    Database(#[source] anyhow::Error),
    #[error("route not found")]
    NotFound,
    /// A bug (a task that panicked): the cause is in the log.
    #[error("internal error")]
    Internal,
    #[error("too many open live streams")]
    TooManyStreams,
    /// `BUYER_AUTH=jwt` and no bearer token.
    #[error("sign-in required")]
    SignInRequired,
    #[error("invalid token: {0:?}")]
    InvalidToken(TokenProblem),
    /// The identity provider's keys cannot be fetched (now).
    #[error("signing keys unavailable")]
    KeysUnavailable { retry_after_seconds: u64 },
    /// The body names another buyer than the token.
    #[error("userId is not the signed-in buyer")]
    NotTheBuyer,
    /// A lookup of another buyer's purchase.
    #[error("not the caller's purchase")]
    NotYourPurchase,
}

impl From<AuthError> for ApiError {
    fn from(error: AuthError) -> Self {
        match error {
            AuthError::Missing => Self::SignInRequired,
            AuthError::Invalid(problem) => Self::InvalidToken(problem),
            AuthError::KeysUnavailable {
                retry_after_seconds,
            } => Self::KeysUnavailable {
                retry_after_seconds,
            },
        }
    }
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
            Self::NotArmed
            | Self::Inventory(_)
            | Self::Database(_)
            | Self::TooManyStreams
            | Self::KeysUnavailable { .. } => StatusCode::SERVICE_UNAVAILABLE,
            Self::SignInRequired | Self::InvalidToken(_) => StatusCode::UNAUTHORIZED,
            Self::NotTheBuyer | Self::NotYourPurchase => StatusCode::FORBIDDEN,
            Self::NotFound => StatusCode::NOT_FOUND,
            Self::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let (response, payload) = self.parts();
        payload.respond(response)
    }
}

impl ApiError {
    /// The answer to a request for `path`, body written at once: for the
    /// refusals a handler gives by the thousand (410, 409), which need not
    /// go through [`error_bodies`].
    pub fn answer(&self, path: &str) -> HttpResponse {
        let (mut response, payload) = self.parts();
        let body = payload.json(self.status_code(), path);
        response.insert_header(JSON).body(body)
    }

    /// The response so far (status and headers) and the body's parts.
    fn parts(&self) -> (HttpResponseBuilder, ErrorPayload) {
        let mut payload = ErrorPayload::new(self.message());
        if let Self::AlreadyPurchased(entry) = self {
            payload.order_id = Some(entry.order_id.to_string());
            payload.purchased_at = Some(iso_millis(entry.purchased_at));
        }
        let mut response = HttpResponse::build(self.status_code());
        match self {
            Self::NotArmed | Self::Inventory(_) | Self::Database(_) => {
                response.insert_header((header::RETRY_AFTER, "1"));
            }
            Self::KeysUnavailable {
                retry_after_seconds,
            } => {
                response.insert_header((header::RETRY_AFTER, retry_after_seconds.to_string()));
            }
            // RFC 6750 section 3: no credentials, or credentials that failed.
            Self::SignInRequired => {
                response.insert_header((header::WWW_AUTHENTICATE, r#"Bearer realm="flash-sale""#));
            }
            Self::InvalidToken(_) => {
                response
                    .insert_header((header::WWW_AUTHENTICATE, r#"Bearer error="invalid_token""#));
            }
            _ => {}
        }
        if let Self::TooManyStreams = self {
            // Later, or on another replica: the page polls meanwhile.
            response.insert_header((header::RETRY_AFTER, "5"));
        }
        (response, payload)
    }
}

impl ApiError {
    fn message(&self) -> ErrorMessage {
        let text = |s: &'static str| ErrorMessage::Text(Cow::Borrowed(s));
        match self {
            Self::Validation(problems) => ErrorMessage::Problems(problems.clone()),
            Self::MalformedJson => text("Request body is not valid JSON."),
            Self::PayloadTooLarge { limit } => {
                ErrorMessage::Text(format!("Request body is larger than {limit} bytes.").into())
            }
            Self::UnsupportedMediaType => text("Content-Type must be application/json."),
            Self::SaleNotStarted => text("The sale has not started yet. Please wait."),
            Self::SaleEnded => text("The sale has ended."),
            Self::AlreadyPurchased(_) => text("You have already purchased this item."),
            Self::SoldOut => text("Sorry, the item is sold out."),
            Self::TooManyAttempts { max } => ErrorMessage::Text(
                format!("Too many purchase attempts. Maximum {max} attempts allowed.").into(),
            ),
            Self::NotArmed
            | Self::Inventory(_)
            | Self::Database(_)
            | Self::KeysUnavailable { .. } => {
                text("Service temporarily unavailable. Please try again shortly.")
            }
            Self::SignInRequired => {
                text("Sign in to continue: send Authorization: Bearer <token>.")
            }
            Self::InvalidToken(problem) => ErrorMessage::Text(problem.to_string().into()),
            Self::NotTheBuyer => text("userId does not match the signed-in buyer."),
            Self::NotYourPurchase => text("You can only see your own purchase."),
            Self::NotFound => text("Not Found"),
            Self::Internal => text("Internal server error."),
            Self::TooManyStreams => {
                text("Too many open live streams on this server; poll /api/sale/status instead.")
            }
        }
    }
}

/// Every error answer: the seed's exception-filter shape.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ErrorBody {
    #[schema(example = 410)]
    pub status_code: u16,
    pub message: ErrorMessage,
    /// The HTTP reason phrase.
    #[schema(example = "Gone")]
    pub error: String,
    #[schema(example = "2026-03-01T10:00:00.000Z")]
    pub timestamp: String,
    #[schema(example = "/api/purchases")]
    pub path: String,
    /// 409 only: the order the user already has.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub order_id: Option<String>,
    /// 409 only: when that order was placed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub purchased_at: Option<String>,
    /// 429 from the address limit: when a request is allowed again.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retry_after_ms: Option<u64>,
}

/// One message, or the list of every validation problem (400).
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
#[serde(untagged)]
pub enum ErrorMessage {
    #[schema(example = "Sorry, the item is sold out.")]
    /// Borrowed when the message is fixed: no copy per answer.
    Text(Cow<'static, str>),
    #[schema(example = json!(["property hack should not exist", "userId should not be empty"]))]
    Problems(Vec<String>),
}

/// The parts of an error body known before the request is; see the module doc.
#[derive(Debug, Clone)]
pub struct ErrorPayload {
    message: ErrorMessage,
    pub order_id: Option<String>,
    pub purchased_at: Option<String>,
    pub retry_after_ms: Option<u64>,
}

impl ErrorPayload {
    pub fn new(message: ErrorMessage) -> Self {
        Self {
            message,
            order_id: None,
            purchased_at: None,
            retry_after_ms: None,
        }
    }

    /// Finishes `response` with this payload pending for [`error_bodies`].
    pub fn respond(self, mut response: HttpResponseBuilder) -> HttpResponse {
        response.insert_header(JSON).extensions_mut().insert(self);
        response.finish()
    }

    /// The body as JSON: the bytes `serde_json` writes for
    /// [`ErrorBody`] (a test holds them equal), without building one: a
    /// sold-out sale answers this by the ten thousand a second.
    fn json(&self, status: StatusCode, path: &str) -> Vec<u8> {
        // Writes into a Vec cannot fail.
        let mut out = Vec::with_capacity(160 + path.len());
        out.extend_from_slice(b"{\"statusCode\":");
        out.extend_from_slice(status.as_str().as_bytes());
        out.extend_from_slice(b",\"message\":");
        match &self.message {
            ErrorMessage::Text(text) => json_str(&mut out, text),
            ErrorMessage::Problems(problems) => {
                out.push(b'[');
                for (i, problem) in problems.iter().enumerate() {
                    if i > 0 {
                        out.push(b',');
                    }
                    json_str(&mut out, problem);
                }
                out.push(b']');
            }
        }
        out.extend_from_slice(b",\"error\":");
        json_str(&mut out, status.canonical_reason().unwrap_or("Error"));
        out.extend_from_slice(b",\"timestamp\":\"");
        push_iso_millis(&mut out, crate::clock::now());
        out.extend_from_slice(b"\",\"path\":");
        json_str(&mut out, path);
        if let Some(order_id) = &self.order_id {
            out.extend_from_slice(b",\"orderId\":");
            json_str(&mut out, order_id);
        }
        if let Some(purchased_at) = &self.purchased_at {
            out.extend_from_slice(b",\"purchasedAt\":");
            json_str(&mut out, purchased_at);
        }
        if let Some(ms) = self.retry_after_ms {
            let _ = write!(out, ",\"retryAfterMs\":{ms}");
        }
        out.push(b'}');
        out
    }

    #[cfg(test)]
    fn body(self, status: StatusCode, path: &str) -> ErrorBody {
        ErrorBody {
            status_code: status.as_u16(),
            message: self.message,
            error: status.canonical_reason().unwrap_or("Error").to_owned(),
            // This replica's clock: a debug build's FLASH_SALE_CLOCK_SKEW_MS
            // shows here, so a test can see the skew is in effect.
            timestamp: iso_millis(crate::clock::now()),
            path: path.to_owned(),
            order_id: self.order_id,
            purchased_at: self.purchased_at,
            retry_after_ms: self.retry_after_ms,
        }
    }
}

/// Middleware writing the JSON body of every response that carries an
/// [`ErrorPayload`], with the path of the request it answers.
pub async fn error_bodies(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<EitherBody<BoxBody>>, actix_web::Error> {
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
            let path = request_target(response.request().uri()).into_owned();
            let status = response.status();
            let body = payload.json(status, &path);
            response
                .map_body(|_, _| BoxBody::new(body))
                .map_into_right_body()
        }
    })
}

/// The request target as sent, which every error body names as `path` (the
/// seed's `request.url`): the path and query, borrowed, for the usual
/// origin form; formatted whole (scheme and host too) for an absolute-form
/// target.
pub fn request_target(uri: &actix_web::http::Uri) -> Cow<'_, str> {
    match uri.path_and_query() {
        Some(target) if uri.scheme().is_none() && uri.authority().is_none() => {
            Cow::Borrowed(target.as_str())
        }
        _ => Cow::Owned(uri.to_string()),
    }
}

/// `text` as a JSON string, escaped as `serde_json` escapes it.
fn json_str(out: &mut Vec<u8>, text: &str) {
    // Writes into a Vec cannot fail.
    let _ = serde_json::to_writer(out, text);
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
            assert_eq!(
                error.message(),
                ErrorMessage::Text(message.to_owned().into())
            );
        }
    }

    /// `text` with its `"timestamp":"..."` value blanked (24 characters).
    fn without_timestamp(text: &str) -> String {
        let key = "\"timestamp\":\"";
        let at = text.find(key).expect("a timestamp") + key.len();
        format!("{}{}", &text[..at], &text[at + 24..])
    }

    #[test]
    fn the_written_body_is_what_serde_writes() {
        let mut conflict = ErrorPayload::new(ErrorMessage::Text("Sorry, \"sold\" \u{1}é".into()));
        conflict.order_id = Some("01a2-x".into());
        conflict.purchased_at = Some("2026-03-01T10:00:00.000Z".into());
        let mut limited = ErrorPayload::new(ErrorMessage::Problems(vec![
            "property h\\ack should not exist".into(),
            "userId should not be empty".into(),
        ]));
        limited.retry_after_ms = Some(250);
        let empty = ErrorPayload::new(ErrorMessage::Problems(vec![]));
        for (payload, status) in [
            (conflict, StatusCode::CONFLICT),
            (limited, StatusCode::TOO_MANY_REQUESTS),
            (empty, StatusCode::BAD_REQUEST),
        ] {
            let path = "/api/purchases/te\"am%2F\u{7f}ü?x=1";
            let written = String::from_utf8(payload.json(status, path)).expect("UTF-8");
            let serde = serde_json::to_string(&payload.body(status, path)).expect("serializes");
            assert_eq!(without_timestamp(&written), without_timestamp(&serde));
        }
    }

    #[test]
    fn error_body_has_the_seed_fields_and_the_reason_phrase() {
        let body = ErrorPayload::new(ErrorMessage::Text("x".into()))
            .body(StatusCode::GONE, "/api/purchases");
        let json = serde_json::to_value(&body).expect("serializes");
        assert_eq!(json["statusCode"], 410);
        assert_eq!(json["error"], "Gone");
        assert_eq!(json["path"], "/api/purchases");
        assert!(json["timestamp"].as_str().is_some_and(|t| t.ends_with('Z')));
        assert!(json.get("orderId").is_none());
    }
}
