//! `bare-sse`: the floor under the api's memory per open storefront. An
//! actix-web server with nothing but one event stream (a short `status`
//! event a second) and a health check, configured as the api's server is
//! (same workers, no half-closed connections). `make bench` opens as many
//! streams on it as on the api: what this costs per stream is what
//! actix-web's HTTP/1 connection costs before any code of ours runs.
//!
//! `PORT` (required) and `HOST` (127.0.0.1).

use std::{convert::Infallible, time::Duration};

use actix_web::{get, web::Bytes, App, HttpResponse, HttpServer, Responder};
use anyhow::Context;

const EVENT: &[u8] = b"event: status\ndata: {\"stockRemaining\":1}\n\n";

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
    HttpServer::new(|| App::new().service(health).service(events))
        .h1_allow_half_closed(false)
        .bind((host.as_str(), port))
        .with_context(|| format!("binding {host}:{port}"))?
        .run()
        .await
        .context("running the server")
}
