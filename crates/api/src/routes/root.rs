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
        sale_id: state.sale_id.to_string(),
    })
}

/// What a client needs to know to talk to this api.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ClientConfig {
    /// `none`: the body's `userId` is the buyer; `jwt`: purchases and
    /// lookups need `Authorization: Bearer <token>`, whose `sub` is the buyer.
    #[schema(example = "none")]
    buyer_auth: &'static str,
    /// `jwt` mode: where a buyer signs in, if the operator said
    /// (`BUYER_SIGN_IN_URL`).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(example = "http://localhost:4000")]
    sign_in_url: Option<String>,
}

/// How clients must identify the buyer.
#[utoipa::path(tag = "server", responses((status = 200, body = ClientConfig)))]
#[get("/api/config")]
pub async fn config(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok().json(ClientConfig {
        buyer_auth: state.auth.mode(),
        sign_in_url: state.sign_in_url.clone(),
    })
}
