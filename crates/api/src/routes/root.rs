use actix_web::{web, HttpResponse};
use serde_json::json;

use crate::state::AppState;

/// `GET /`: what this server is and which sale it sells.
pub async fn info(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok().json(json!({
        "name": "flash-sale-api",
        "version": env!("CARGO_PKG_VERSION"),
        "saleId": state.sale.id.as_str(),
    }))
}
