use actix_web::{get, web, HttpResponse};
use serde::Serialize;
use utoipa::ToSchema;

use crate::state::AppState;

/// What this server is and which sale it sells.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ServerInfo {
    #[schema(example = "flash-sale-api")]
    name: &'static str,
    #[schema(example = "0.1.0")]
    version: &'static str,
    #[schema(example = "default")]
    sale_id: String,
}

/// Server info.
#[utoipa::path(tag = "server", responses((status = 200, body = ServerInfo)))]
#[get("/")]
pub async fn info(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok().json(ServerInfo {
        name: "flash-sale-api",
        version: env!("CARGO_PKG_VERSION"),
        sale_id: state.sale.id.to_string(),
    })
}
