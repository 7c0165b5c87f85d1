//! `/api/purchases*`: buying and looking a purchase up.

pub mod create;
pub mod status;

use actix_web::{
    body::{EitherBody, MessageBody},
    dev::{ServiceRequest, ServiceResponse},
    http::Method,
    middleware::Next,
    web, HttpMessage, HttpRequest, ResponseError,
};
use domain::UserId;

use crate::{error::ApiError, metrics::PurchaseResult, state::AppState};

/// The buyer a request's verified token names (`BUYER_AUTH=jwt`), put on
/// the request by [`signed_in`].
#[derive(Clone)]
struct SignedIn(UserId);

/// The signed-in buyer of `req`; `None` in `none` mode.
pub fn buyer_of(req: &HttpRequest) -> Option<UserId> {
    req.extensions().get::<SignedIn>().map(|s| s.0.clone())
}

/// Middleware of the purchase routes: with `BUYER_AUTH=jwt` the token is
/// verified before anything reads the body, so a request without a good one
/// is a 401 whatever else is wrong with it, and is refused before it can
/// change anything or use an attempt.
pub async fn signed_in(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, actix_web::Error> {
    // Fails closed: without the state there is no telling whether a token
    // is needed, and handlers must never fall back to the body's user.
    let Some(state) = req.app_data::<web::Data<AppState>>().cloned() else {
        tracing::error!("purchase route without the app state; refusing");
        let response = ApiError::Internal.error_response();
        return Ok(req.into_response(response).map_into_right_body());
    };
    match state.auth.signed_in(req.request()).await {
        Ok(Some(buyer)) => {
            req.extensions_mut().insert(SignedIn(buyer));
        }
        Ok(None) => {}
        Err(refused) => {
            if req.method() == Method::POST {
                state.metrics.purchase(PurchaseResult::Unauthenticated);
            }
            let response = ApiError::from(refused).error_response();
            return Ok(req.into_response(response).map_into_right_body());
        }
    }
    next.call(req)
        .await
        .map(ServiceResponse::map_into_left_body)
}

#[cfg(test)]
mod tests {
    use actix_web::{middleware::from_fn, test, App, HttpResponse};

    use super::*;

    #[actix_web::test]
    async fn without_the_app_state_the_purchase_routes_refuse() {
        let app = test::init_service(
            App::new().service(
                web::scope("/api/purchases")
                    .wrap(from_fn(signed_in))
                    .route("/me", web::get().to(HttpResponse::Ok)),
            ),
        )
        .await;
        let request = test::TestRequest::get()
            .uri("/api/purchases/me")
            .to_request();
        let response = test::call_service(&app, request).await;
        assert_eq!(response.status().as_u16(), 500);
    }
}
