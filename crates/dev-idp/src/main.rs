//! `dev-idp`: the development identity provider (see the library docs).
//!
//! Variables: `DEV_IDP_HOST` (`127.0.0.1`), `DEV_IDP_PORT` (`4000`),
//! `DEV_IDP_ISSUER` (`http://localhost:<port>`), `DEV_IDP_AUDIENCE`
//! (`flash-sale`), `DEV_IDP_TOKEN_SECONDS` (`3600`).

use std::net::TcpListener;

use anyhow::Context;
use domain::config::Env;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    dotenvy::dotenv().ok();
    let env = Env::from_process();
    let host = env.string("DEV_IDP_HOST", "127.0.0.1");
    let port: u16 = env.parse("DEV_IDP_PORT", 4000)?;
    let issuer = env.string("DEV_IDP_ISSUER", &format!("http://localhost:{port}"));
    let audience = env.string("DEV_IDP_AUDIENCE", "flash-sale");
    let lifetime: i64 = env.positive("DEV_IDP_TOKEN_SECONDS", 3600)?;
    let idp = dev_idp::Idp::new(&issuer, &audience, lifetime)?;
    let listener = TcpListener::bind((host.as_str(), port))
        .with_context(|| format!("binding {host}:{port}"))?;
    eprintln!(
        "dev-idp on http://{host}:{port} (issuer {issuer}, audience {audience}); development only: anyone can sign in as anyone"
    );
    let server = dev_idp::serve(idp, listener)?;
    let handle = server.handle();
    tokio::spawn(async move {
        domain::signals::stop_requested().await;
        handle.stop(true).await;
    });
    server.await.context("serving")
}
