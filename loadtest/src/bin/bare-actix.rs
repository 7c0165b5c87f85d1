//! `bare-actix`: the floor under the api's figures. An actix-web server with
//! none of our code (no middleware, actix-web's default JSON limit) and the
//! api's HTTP/1 settings (its workers, no half-closed connections), serving
//! what `make bench` compares:
//!
//! - `GET /`: a small JSON object, as the api's own baseline row;
//! - `POST /api/purchases`: the body read as JSON through actix-web's
//!   `Json` extractor, then a 410 with a small JSON body: what a sold-out
//!   answer cannot do without;
//! - `GET /api/sale/events`: an event stream, a short `status` event a
//!   second: the memory an open storefront costs before any code of ours;
//! - `GET /api/health`.
//!
//! `PORT` (required) and `HOST` (127.0.0.1).

use std::{convert::Infallible, time::Duration};

use actix_web::{get, post, web, web::Bytes, App, HttpResponse, HttpServer, Responder};
use anyhow::Context;
use serde_json::{json, Value};

const EVENT: &[u8] = b"event: status\ndata: {\"stockRemaining\":1}\n\n";

#[get("/")]
async fn root() -> impl Responder {
    HttpResponse::Ok().json(json!({"name": "bare-actix", "version": "0", "saleId": "bare"}))
}

#[post("/api/purchases")]
async fn sold_out(body: web::Json<Value>) -> impl Responder {
    if !body.get("userId").is_some_and(Value::is_string) {
        return HttpResponse::BadRequest().json(json!({"statusCode": 400}));
    }
    HttpResponse::Gone().json(json!({"statusCode": 410, "message": "Sold out", "error": "Gone"}))
}

#[get("/api/health")]
async fn health() -> impl Responder {
    HttpResponse::Ok().finish()
}

#[get("/api/sale/events")]
async fn events() -> impl Responder {
    let ticks = futures::stream::unfold(
        tokio::time::interval(Duration::from_secs(1)),
        |mut interval| async move {
            interval.tick().await;
            Some((Ok::<_, Infallible>(Bytes::from_static(EVENT)), interval))
        },
    );
    HttpResponse::Ok()
        .content_type("text/event-stream")
        .streaming(ticks)
}

#[actix_web::main]
async fn main() -> anyhow::Result<()> {
    let port: u16 = std::env::var("PORT")
        .context("PORT is required")?
        .parse()
        .context("PORT must be a port number")?;
    let host = std::env::var("HOST").unwrap_or_else(|_| "127.0.0.1".to_owned());
    HttpServer::new(|| {
        App::new()
            .service(root)
            .service(sold_out)
            .service(health)
            .service(events)
    })
    .h1_allow_half_closed(false)
    .bind((host.as_str(), port))
    .with_context(|| format!("binding {host}:{port}"))?
    .run()
    .await
    .context("running the server")
}
