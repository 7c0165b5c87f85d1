//! A development identity provider: it publishes a JWKS and signs ES256
//! buyer tokens for any name, so `make run AUTH=jwt` and the tests have a
//! real issuer on a fresh machine. Anyone can sign in as anyone: it stands
//! in for the shop's login and never ships in the api's image.
//!
//! - `GET /.well-known/jwks.json`: the public keys
//! - `POST /sign-in` `{"name": "alice"}`: `{"token", "sub", "expiresAt"}`
//! - `GET /`: issuer, audience and where the keys are

pub mod keys;

use std::{
    net::TcpListener,
    sync::{
        atomic::{AtomicBool, AtomicU64, Ordering},
        Arc, RwLock,
    },
};

use actix_web::{dev::Server, get, post, web, App, HttpResponse, HttpServer};
use anyhow::Context;
use serde::Deserialize;
use serde_json::json;

pub use keys::{buyer_claims, jwks, SigningKey};

/// The provider's state: its keys (the last one signs), and switches the
/// tests use to rotate keys and take the JWKS endpoint down.
pub struct Idp {
    pub issuer: String,
    pub audience: String,
    pub lifetime_seconds: i64,
    keys: RwLock<Vec<SigningKey>>,
    rotations: AtomicU64,
    down: AtomicBool,
    jwks_served: AtomicU64,
}

impl Idp {
    /// A provider with one fresh ES256 key.
    pub fn new(issuer: &str, audience: &str, lifetime_seconds: i64) -> anyhow::Result<Arc<Self>> {
        Ok(Arc::new(Self {
            issuer: issuer.to_owned(),
            audience: audience.to_owned(),
            lifetime_seconds,
            keys: RwLock::new(vec![SigningKey::es256("dev-key-1")?]),
            rotations: AtomicU64::new(1),
            down: AtomicBool::new(false),
            jwks_served: AtomicU64::new(0),
        }))
    }

    /// The key that signs now.
    pub fn signing_key(&self) -> anyhow::Result<SigningKey> {
        let keys = self
            .keys
            .read()
            .map_err(|_| anyhow::anyhow!("keys poisoned"))?;
        keys.last().cloned().context("no signing key")
    }

    /// A token for `name`.
    pub fn sign_in(&self, name: &str) -> anyhow::Result<String> {
        let claims = buyer_claims(&self.issuer, &self.audience, name, self.lifetime_seconds);
        self.signing_key()?.sign(&claims)
    }

    /// A new key signs from now on; with `keep_old` the JWKS still
    /// publishes the previous ones (tokens they signed stay good).
    pub fn rotate(&self, keep_old: bool) -> anyhow::Result<()> {
        let n = self.rotations.fetch_add(1, Ordering::SeqCst) + 1;
        let key = SigningKey::es256(&format!("dev-key-{n}"))?;
        let mut keys = self
            .keys
            .write()
            .map_err(|_| anyhow::anyhow!("keys poisoned"))?;
        if !keep_old {
            keys.clear();
        }
        keys.push(key);
        Ok(())
    }

    /// While down, the JWKS endpoint answers 503.
    pub fn set_down(&self, down: bool) {
        self.down.store(down, Ordering::SeqCst);
    }

    /// JWKS documents served so far.
    pub fn jwks_served(&self) -> u64 {
        self.jwks_served.load(Ordering::SeqCst)
    }

    fn jwks(&self) -> anyhow::Result<serde_json::Value> {
        let keys = self
            .keys
            .read()
            .map_err(|_| anyhow::anyhow!("keys poisoned"))?;
        jwks(keys.iter())
    }
}

/// Serves `idp` on `listener` (any origin may call it: it is for demos).
pub fn serve(idp: Arc<Idp>, listener: TcpListener) -> anyhow::Result<Server> {
    let data = web::Data::from(idp);
    Ok(HttpServer::new(move || {
        App::new()
            .app_data(data.clone())
            .wrap(actix_cors::Cors::permissive())
            .service(info)
            .service(published_keys)
            .service(sign_in)
    })
    .workers(1)
    .listen(listener)
    .context("starting the identity provider")?
    .disable_signals()
    .run())
}

#[get("/")]
async fn info(idp: web::Data<Idp>) -> HttpResponse {
    HttpResponse::Ok().json(json!({
        "name": "flash-sale-dev-idp",
        "issuer": idp.issuer,
        "audience": idp.audience,
        "jwksPath": "/.well-known/jwks.json",
        "signInPath": "/sign-in",
        "warning": "development only: anyone can sign in as anyone",
    }))
}

#[get("/.well-known/jwks.json")]
async fn published_keys(idp: web::Data<Idp>) -> HttpResponse {
    if idp.down.load(Ordering::SeqCst) {
        return HttpResponse::ServiceUnavailable().json(json!({"error": "down for a test"}));
    }
    match idp.jwks() {
        Ok(set) => {
            idp.jwks_served.fetch_add(1, Ordering::SeqCst);
            HttpResponse::Ok().json(set)
        }
        Err(error) => HttpResponse::InternalServerError().json(json!({"error": error.to_string()})),
    }
}

#[derive(Deserialize)]
struct SignIn {
    name: String,
}

#[post("/sign-in")]
async fn sign_in(idp: web::Data<Idp>, body: web::Json<SignIn>) -> HttpResponse {
    // The api takes any subject it would take as a user id.
    if let Err(problem) = domain::UserId::parse(&body.name) {
        let message = problem.to_string().replacen("userId", "name", 1);
        return HttpResponse::BadRequest().json(json!({ "message": message }));
    }
    match idp.sign_in(&body.name) {
        Ok(token) => HttpResponse::Ok().json(json!({
            "token": token,
            "sub": body.name,
            "expiresAt": keys::now() + idp.lifetime_seconds,
        })),
        Err(error) => {
            HttpResponse::InternalServerError().json(json!({"message": error.to_string()}))
        }
    }
}
