//! The OpenAPI 3.1 document: served at `/api/openapi.json`, browsable at
//! `/api/docs/` (Swagger UI, vendored into the binary: works offline).

use utoipa::OpenApi;

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
    components(schemas(crate::error::ErrorBody, crate::error::ErrorMessage))
)]
pub struct ApiDoc;
