//! The OpenAPI 3.1 document: served at `/api/openapi.json`, browsable at
//! `/api/docs/` (Swagger UI, vendored into the binary: works offline).
//!
//! Routes add themselves as they are registered (`routes::configure`);
//! `/metrics` is listed here as well, because with `METRICS_PORT` set it is
//! served on that port and not registered on the public one.

use utoipa::{
    openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme},
    Modify, OpenApi,
};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Flash Sale API",
        description = "One product, limited stock, a sale window. The HTTP contract of the NestJS flash-sale-system, kept verbatim.",
    ),
    tags(
        (name = "sale", description = "The sale's window and stock"),
        (name = "purchases", description = "Buying, and checking a purchase"),
        (name = "server", description = "Health, metrics and server info"),
    ),
    paths(crate::routes::metrics::render),
    components(schemas(crate::error::ErrorBody, crate::error::ErrorMessage)),
    modifiers(&BearerScheme)
)]
pub struct ApiDoc;

/// The `bearer` scheme the purchase routes name: required with
/// `BUYER_AUTH=jwt`, not sent in `none` mode (hence each route's empty
/// alternative).
struct BearerScheme;

impl Modify for BearerScheme {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .description(Some(
                        "BUYER_AUTH=jwt: a token from the shop's identity provider; its sub is the buyer",
                    ))
                    .build(),
            ),
        );
    }
}
