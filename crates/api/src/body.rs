//! Reading a purchase's JSON body: what `web::Json` checked, without its
//! per-request costs.
//!
//! A flash sale reads a 20-byte body tens of thousands of times a second,
//! most of them to answer "sold out". `web::Json<Value>` parsed the
//! `Content-Type` into a `Mime`, gathered every body into a fresh 8 KiB
//! buffer and built a `serde_json::Value` map: about 5,000 instructions of
//! the 45,000 a sold-out answer took (`make instructions`). Here the usual
//! `Content-Type` is compared as bytes (anything else is parsed as before),
//! a body that arrives in one piece is used where it lies, and
//! [`crate::validation::purchase_json`] reads the usual body with no map.
//! The answers are those `web::Json` gave under the api's `JsonConfig`
//! (415, 413, 400): the unit tests below hold this module to that rule,
//! and `tests/api/validation.rs` the api's answers over the wire (no
//! Content-Type, `+json`, a chunked body past the limit, one at it).

use actix_web::{
    error::PayloadError,
    http::header::{CONTENT_LENGTH, CONTENT_TYPE},
    web::{Bytes, BytesMut},
    HttpMessage, HttpRequest,
};
use futures::{Stream, StreamExt};

use crate::error::ApiError;

/// The body of a JSON request of at most `limit` bytes.
///
/// 415 without a JSON `Content-Type` (`application/json`, or any `*/json`
/// or `*/*+json`, as `web::Json`); 413 when `Content-Length` or the bytes
/// received pass `limit`; 400 (`MalformedJson`) when the body breaks off.
pub async fn read_json<S>(
    req: &HttpRequest,
    mut payload: S,
    limit: usize,
) -> Result<Bytes, ApiError>
where
    S: Stream<Item = Result<Bytes, PayloadError>> + Unpin,
{
    if !is_json(req) {
        return Err(ApiError::UnsupportedMediaType);
    }
    let declared = req
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|length| length > limit) {
        return Err(ApiError::PayloadTooLarge { limit });
    }
    // The usual body is one chunk: kept as it came, copied only when a
    // second one follows.
    let mut first: Option<Bytes> = None;
    let mut joined: Option<BytesMut> = None;
    let mut received = 0;
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|_| ApiError::MalformedJson)?;
        received += chunk.len();
        if received > limit {
            return Err(ApiError::PayloadTooLarge { limit });
        }
        match (&mut joined, first.take()) {
            (Some(all), _) => all.extend_from_slice(&chunk),
            (None, None) => first = Some(chunk),
            (None, Some(earlier)) => {
                let mut all = BytesMut::with_capacity(declared.unwrap_or(limit).min(limit));
                all.extend_from_slice(&earlier);
                all.extend_from_slice(&chunk);
                joined = Some(all);
            }
        }
    }
    Ok(match joined {
        Some(all) => all.freeze(),
        None => first.unwrap_or_default(),
    })
}

/// Whether the request says its body is JSON, by `web::Json`'s rule.
fn is_json(req: &HttpRequest) -> bool {
    let usual = req
        .headers()
        .get(CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"application/json"));
    usual
        || matches!(req.mime_type(), Ok(Some(mime))
            if mime.subtype() == actix_web::mime::JSON || mime.suffix() == Some(actix_web::mime::JSON))
}

#[cfg(test)]
mod tests {
    use actix_web::test::TestRequest;
    use futures::stream;

    use super::*;

    fn chunks(parts: &[&'static str]) -> impl Stream<Item = Result<Bytes, PayloadError>> + Unpin {
        stream::iter(
            parts
                .iter()
                .map(|part| Ok(Bytes::from_static(part.as_bytes())))
                .collect::<Vec<_>>(),
        )
    }

    fn request(content_type: Option<&str>) -> HttpRequest {
        let mut req = TestRequest::post();
        if let Some(content_type) = content_type {
            req = req.insert_header((CONTENT_TYPE, content_type));
        }
        req.to_http_request()
    }

    #[actix_web::test]
    async fn json_content_types_are_those_web_json_takes() {
        for taken in [
            "application/json",
            "Application/JSON",
            "application/json; charset=utf-8",
            "application/merge-patch+json",
            "text/json",
        ] {
            let body = read_json(&request(Some(taken)), chunks(&["{}"]), 64).await;
            assert_eq!(body.ok(), Some(Bytes::from_static(b"{}")), "{taken}");
        }
        for refused in [
            None,
            Some("text/plain"),
            Some("application/jsonx"),
            Some("json"),
        ] {
            let body = read_json(&request(refused), chunks(&["{}"]), 64).await;
            assert!(
                matches!(body, Err(ApiError::UnsupportedMediaType)),
                "{refused:?}"
            );
        }
    }

    #[actix_web::test]
    async fn a_body_in_pieces_is_joined_and_held_to_the_limit() {
        let req = request(Some("application/json"));
        let body = read_json(&req, chunks(&[r#"{"userId""#, r#":"a"#, r#"b"}"#]), 64).await;
        assert_eq!(body.ok(), Some(Bytes::from_static(br#"{"userId":"ab"}"#)));

        // No Content-Length (chunked): the bytes received are counted.
        let body = read_json(&req, chunks(&["[1,", "2,3", "]"]), 6).await;
        assert!(matches!(body, Err(ApiError::PayloadTooLarge { limit: 6 })));
        let body = read_json(&req, chunks(&["[1,", "2]"]), 5).await;
        assert_eq!(body.ok(), Some(Bytes::from_static(b"[1,2]")));
    }

    #[actix_web::test]
    async fn a_declared_length_past_the_limit_is_refused_before_reading() {
        let req = TestRequest::post()
            .insert_header((CONTENT_TYPE, "application/json"))
            .insert_header((CONTENT_LENGTH, "65"))
            .to_http_request();
        let never = stream::pending::<Result<Bytes, PayloadError>>();
        let body = read_json(&req, never, 64).await;
        assert!(matches!(body, Err(ApiError::PayloadTooLarge { limit: 64 })));
    }

    #[actix_web::test]
    async fn a_body_that_breaks_off_is_malformed() {
        let req = request(Some("application/json"));
        let broken = stream::iter(vec![
            Ok(Bytes::from_static(b"{")),
            Err(PayloadError::Incomplete(None)),
        ]);
        let body = read_json(&req, broken, 64).await;
        assert!(matches!(body, Err(ApiError::MalformedJson)));
    }
}
