//! `BUYER_AUTH=jwt`: real tokens signed by keys the tests generate, a real
//! identity provider (`dev-idp`) serving its JWKS, and every refusal.

use std::{net::TcpListener, sync::Arc, time::Duration};

use base64::Engine;
use dev_idp::{buyer_claims, Idp, SigningKey};
use reqwest::{RequestBuilder, Response};
use serde_json::{json, Value};

use crate::helpers::{redis_get, spawn_app_with, TestApp, TestConfig};

const ISSUER: &str = "https://shop.example";
const AUDIENCE: &str = "flash-sale";
const SECRET: &str = "a-test-secret-of-at-least-32-bytes!";

fn jwt_config(stock: u64) -> TestConfig {
    TestConfig::active(stock)
        .set("BUYER_AUTH", "jwt")
        .set("JWT_ISSUER", ISSUER)
        .set("JWT_AUDIENCE", AUDIENCE)
}

fn claims(sub: &str) -> Value {
    buyer_claims(ISSUER, AUDIENCE, sub, 600)
}

fn with_claim(mut claims: Value, name: &str, value: Value) -> Value {
    claims[name] = value;
    claims
}

fn without_claim(mut claims: Value, name: &str) -> Value {
    claims.as_object_mut().expect("object").remove(name);
    claims
}

fn b64(raw: &str) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw)
}

/// An identity provider on a free port, serving until the test ends.
fn start_idp() -> (Arc<Idp>, String) {
    let idp = Idp::new(ISSUER, AUDIENCE, 600).expect("idp");
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!(
        "http://127.0.0.1:{}/.well-known/jwks.json",
        listener.local_addr().expect("addr").port()
    );
    tokio::spawn(dev_idp::serve(idp.clone(), listener).expect("serve"));
    (idp, url)
}

trait Bearer {
    fn bearer(self, token: &str) -> Self;
}

impl Bearer for RequestBuilder {
    fn bearer(self, token: &str) -> Self {
        self.header("authorization", format!("Bearer {token}"))
    }
}

impl TestApp {
    async fn buy_as(&self, token: &str, body: Value) -> Response {
        self.client
            .post(format!("{}/api/purchases", self.address))
            .bearer(token)
            .json(&body)
            .send()
            .await
            .expect("request sent")
    }

    async fn look_up_as(&self, token: &str, path: &str) -> Response {
        self.client
            .get(format!("{}/api/purchases/{path}", self.address))
            .bearer(token)
            .send()
            .await
            .expect("request sent")
    }
}

async fn refusal(response: Response) -> (u16, Option<String>, String) {
    let status = response.status().as_u16();
    let challenge = response
        .headers()
        .get("www-authenticate")
        .map(|v| v.to_str().expect("ascii").to_owned());
    let body: Value = response.json().await.expect("json");
    assert_eq!(body["statusCode"], status, "the seed's error shape");
    (
        status,
        challenge,
        body["message"].as_str().unwrap_or("").to_owned(),
    )
}

fn checks(result: &str) -> u64 {
    let rendered = api::metrics::handle().render();
    let wanted = format!("flash_sale_buyer_token_checks_total{{result=\"{result}\"}} ");
    rendered
        .lines()
        .find_map(|l| l.strip_prefix(&wanted))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or(0)
}

/// Every way a request can fail to name its buyer, and what it is told.
/// None of them changes the sale or uses one of alice's attempts: with one
/// attempt allowed, her good token buys afterwards.
#[tokio::test]
async fn every_refusal_is_explained_and_changes_nothing() {
    let app = spawn_app_with(
        jwt_config(5)
            .set("JWT_SECRET", SECRET)
            .set("USER_MAX_ATTEMPTS", 1)
            .set("USER_ATTEMPT_WINDOW_SECONDS", 3600),
    )
    .await;
    let key = SigningKey::hs256(SECRET).expect("key");
    let other = SigningKey::hs256("another-secret-of-at-least-32-bytes").expect("key");
    let sign = |claims: Value| key.sign(&claims).expect("token");
    let now = dev_idp::keys::now();
    let realm = Some(r#"Bearer realm="flash-sale""#.to_owned());
    let invalid = Some(r#"Bearer error="invalid_token""#.to_owned());

    let no_token = app.purchase("alice").await;
    assert_eq!(
        refusal(no_token).await,
        (
            401,
            realm.clone(),
            "Sign in to continue: send Authorization: Bearer <token>.".into()
        )
    );
    // The token is checked before the body is read: no token is a 401
    // whatever the body is.
    for (content_type, body) in [("text/plain", "alice"), ("application/json", "{not json")] {
        let answer = app.post_purchase_raw(content_type, body).await;
        assert_eq!(
            refusal(answer).await,
            (
                401,
                realm.clone(),
                "Sign in to continue: send Authorization: Bearer <token>.".into()
            ),
            "{content_type}"
        );
    }
    let basic = app
        .client
        .post(format!("{}/api/purchases", app.address))
        .header("authorization", "Basic YWxpY2U6c2VjcmV0")
        .json(&json!({"userId": "alice"}))
        .send()
        .await
        .expect("sent");
    assert_eq!(refusal(basic).await.0, 401);

    let unsigned = format!(
        "{}.{}.",
        b64(r#"{"alg":"none","typ":"JWT"}"#),
        b64(&claims("alice").to_string())
    );
    let cases: Vec<(&str, String, &str)> = vec![
        (
            "garbage",
            "not.a.token".into(),
            "The access token is malformed.",
        ),
        (
            "alg none",
            unsigned,
            "Unsigned access tokens (alg none) are not accepted.",
        ),
        (
            "another key",
            other.sign(&claims("alice")).expect("token"),
            "The access token's signature is invalid.",
        ),
        (
            "expired past the leeway",
            sign(with_claim(claims("alice"), "exp", json!(now - 120))),
            "The access token has expired.",
        ),
        (
            "not valid yet",
            sign(with_claim(claims("alice"), "nbf", json!(now + 300))),
            "The access token is not valid yet.",
        ),
        (
            "wrong issuer",
            sign(with_claim(
                claims("alice"),
                "iss",
                json!("https://evil.example"),
            )),
            "The access token was issued by another issuer.",
        ),
        (
            "wrong audience",
            sign(with_claim(claims("alice"), "aud", json!("another-api"))),
            "The access token is meant for another audience.",
        ),
        (
            "no exp",
            sign(without_claim(claims("alice"), "exp")),
            "The access token has no exp claim.",
        ),
        (
            "no iss",
            sign(without_claim(claims("alice"), "iss")),
            "The access token has no iss claim.",
        ),
        (
            "no aud",
            sign(without_claim(claims("alice"), "aud")),
            "The access token has no aud claim.",
        ),
        (
            "no sub",
            sign(without_claim(claims("alice"), "sub")),
            "The access token has no sub claim.",
        ),
        (
            "a subject no user id can be",
            sign(claims("   ")),
            "The access token's subject is not a valid user id: userId should not be empty.",
        ),
    ];
    for (case, token, message) in cases {
        let answer = refusal(app.buy_as(&token, json!({})).await).await;
        assert_eq!(answer, (401, invalid.clone(), message.to_owned()), "{case}");
        for path in ["me", "alice"] {
            let lookup = refusal(app.look_up_as(&token, path).await).await;
            assert_eq!(
                lookup,
                (401, invalid.clone(), message.to_owned()),
                "{case}: lookups are refused the same way"
            );
        }
    }
    for path in ["/api/purchases/me", "/api/purchases/alice"] {
        assert_eq!(
            refusal(app.get(path).await).await,
            (
                401,
                realm.clone(),
                "Sign in to continue: send Authorization: Bearer <token>.".into()
            ),
            "{path} without a token"
        );
    }

    let alice = sign(claims("alice"));
    let not_her = app.buy_as(&alice, json!({"userId": "bob"})).await;
    assert_eq!(
        refusal(not_her).await,
        (
            403,
            None,
            "userId does not match the signed-in buyer.".into()
        )
    );
    let keys = app.keys();
    assert_eq!(
        redis_get(&keys.stock()).await.as_deref(),
        Some("5"),
        "nothing sold"
    );

    let bought = app.buy_as(&alice, json!({"userId": "alice"})).await;
    assert_eq!(bought.status(), 201, "no attempt of alice's was used up");
    // A leeway of 30 s: a token 10 s past its exp still counts.
    let late = sign(with_claim(claims("carol"), "exp", json!(now - 10)));
    assert_eq!(app.buy_as(&late, json!({})).await.status(), 201);
}

/// The storefront's path: tokens from the identity provider's JWKS, the
/// body without a userId, `me`, and nobody else's order.
#[tokio::test]
async fn a_signed_in_buyer_buys_and_sees_only_their_own_order() {
    let (idp, jwks) = start_idp();
    let app = spawn_app_with(jwt_config(5).set("JWT_JWKS_URL", &jwks)).await;
    let alice = idp.sign_in("alice").expect("token");
    let bob = idp.sign_in("bob").expect("token");

    let bought = app.buy_as(&alice, json!({})).await;
    assert_eq!(bought.status(), 201);
    let order: Value = bought.json().await.expect("json");

    let mine: Value = app
        .look_up_as(&alice, "me")
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(mine["purchased"], true);
    assert_eq!(mine["userId"], "alice");
    assert_eq!(mine["orderId"], order["orderId"]);
    let by_id = app.look_up_as(&alice, "alice").await;
    assert_eq!(by_id.status(), 200);

    let snooping = app.look_up_as(&bob, "alice").await;
    assert_eq!(
        refusal(snooping).await,
        (403, None, "You can only see your own purchase.".into())
    );
    let his: Value = app.look_up_as(&bob, "me").await.json().await.expect("json");
    assert_eq!(his["purchased"], false);
    assert_eq!(his["userId"], "bob");
    assert!(his.get("orderId").is_none());

    let in_her_name = app.buy_as(&bob, json!({"userId": "alice"})).await;
    assert_eq!(in_her_name.status(), 403);
    let again = app.buy_as(&alice, json!({})).await;
    assert_eq!(again.status(), 409);
    let conflict: Value = again.json().await.expect("json");
    assert_eq!(conflict["orderId"], order["orderId"], "her own order only");

    let config: Value = app.get("/api/config").await.json().await.expect("json");
    assert_eq!(config["buyerAuth"], "jwt");
}

/// A PEM public key verifies its own algorithm only: an HS256 token whose
/// secret is that public key (algorithm confusion) is refused.
#[tokio::test]
async fn a_public_key_file_verifies_its_own_algorithm_only() {
    for key in [
        SigningKey::es256("pem-es").expect("key"),
        SigningKey::ed25519("pem-ed").expect("key"),
        SigningKey::rs256("pem-rs").expect("key"),
    ] {
        let file = std::env::temp_dir().join(format!("fs-test-{}.pem", uuid::Uuid::new_v4()));
        std::fs::write(&file, key.public_pem()).expect("write pem");
        let app = spawn_app_with(jwt_config(5).set("JWT_PUBLIC_KEY_FILE", file.display())).await;
        let good = key.sign(&claims("dana")).expect("token");
        assert_eq!(
            app.buy_as(&good, json!({})).await.status(),
            201,
            "{:?}",
            key.algorithm
        );

        let confused = SigningKey::hs256(key.public_pem())
            .expect("key")
            .sign(&claims("eve"))
            .expect("token");
        let answer = refusal(app.buy_as(&confused, json!({})).await).await;
        assert_eq!(
            answer,
            (
                401,
                Some(r#"Bearer error="invalid_token""#.to_owned()),
                "The access token is signed with an algorithm its key does not allow.".into()
            ),
            "{:?}",
            key.algorithm
        );
        std::fs::remove_file(file).ok();
    }
}

/// Keys rotate: a token naming a new key refetches the JWKS once. A key
/// still unknown after that fetch is refused (401); within 30 s of a fetch
/// a new key costs no fetch and gets 503 with the wait in `Retry-After` (it
/// may be a rotation newer than the copy): a flood of made-up key ids can
/// neither turn the api against its provider nor make good tokens "bad".
#[tokio::test]
async fn a_new_key_refetches_the_set_at_most_once_per_30_seconds() {
    let (idp, jwks) = start_idp();
    let app = spawn_app_with(jwt_config(10).set("JWT_JWKS_URL", &jwks)).await;
    assert_eq!(idp.jwks_served(), 1, "fetched at start");
    let first_key = idp.sign_in("u1").expect("token");
    assert_eq!(app.buy_as(&first_key, json!({})).await.status(), 201);
    assert_eq!(idp.jwks_served(), 1, "a known key needs no fetch");

    idp.rotate(true).expect("rotate");
    let second_key = idp.sign_in("u2").expect("token");
    assert_eq!(app.buy_as(&second_key, json!({})).await.status(), 201);
    assert_eq!(idp.jwks_served(), 2, "an unknown kid refetched the set");

    let forged = SigningKey::es256("made-up")
        .expect("key")
        .sign(&claims("mallory"))
        .expect("token");
    idp.rotate(true).expect("rotate");
    for _ in 0..5 {
        let answer = app.buy_as(&forged, json!({})).await;
        assert_eq!(answer.status(), 503, "no fetch yet: no verdict");
        let wait: u64 = answer.headers()["retry-after"]
            .to_str()
            .expect("ascii")
            .parse()
            .expect("seconds");
        assert!((1..=30).contains(&wait), "{wait}");
    }
    let third_key = idp.sign_in("u3").expect("token");
    assert_eq!(app.buy_as(&third_key, json!({})).await.status(), 503);
    assert_eq!(idp.jwks_served(), 2, "no second fetch within 30 s");
}

/// Right after a fetch that could not find it, a key is unknown: 401.
#[tokio::test]
async fn a_key_the_fresh_set_does_not_have_is_refused() {
    let (idp, jwks) = start_idp();
    let app = spawn_app_with(jwt_config(10).set("JWT_JWKS_URL", &jwks)).await;
    let forged = SigningKey::es256("made-up")
        .expect("key")
        .sign(&claims("mallory"))
        .expect("token");
    assert_eq!(
        refusal(app.buy_as(&forged, json!({})).await).await,
        (
            401,
            Some(r#"Bearer error="invalid_token""#.to_owned()),
            "The access token is signed with an unknown key.".into()
        )
    );
    assert_eq!(idp.jwks_served(), 2, "fetched for it once");
}

/// While the provider is down, the last good keys still verify; a key the
/// api could not fetch is a 503 (the token may be good), and it verifies
/// once the provider is back.
#[tokio::test]
async fn the_last_good_keys_stay_while_the_provider_is_down() {
    let (idp, jwks) = start_idp();
    let app = spawn_app_with(
        jwt_config(10)
            .set("JWT_JWKS_URL", &jwks)
            .set("JWT_JWKS_MIN_REFRESH_SECONDS", 1),
    )
    .await;
    let known = idp.signing_key().expect("key");
    idp.rotate(true).expect("rotate");
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    idp.set_down(true);

    let unknown = idp.sign_in("new-key-buyer").expect("token");
    let response = app.buy_as(&unknown, json!({})).await;
    assert_eq!(
        response.status(),
        503,
        "the fetch failed: no verdict on the token"
    );
    assert_eq!(
        response.headers().get("retry-after").map(|v| v.as_bytes()),
        Some(&b"1"[..])
    );
    let old = known.sign(&claims("old-key-buyer")).expect("token");
    assert_eq!(
        app.buy_as(&old, json!({})).await.status(),
        201,
        "last good keys kept"
    );

    idp.set_down(false);
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    assert_eq!(app.buy_as(&unknown, json!({})).await.status(), 201);
}

/// Started while the provider is down, the api answers 503 (the token may
/// be good), then verifies within a second of the provider's return.
#[tokio::test]
async fn an_api_started_before_its_identity_provider_serves_once_it_is_up() {
    let (idp, jwks) = start_idp();
    idp.set_down(true);
    let app = spawn_app_with(jwt_config(5).set("JWT_JWKS_URL", &jwks)).await;
    let token = idp.sign_in("early").expect("token");
    let response = app.buy_as(&token, json!({})).await;
    assert_eq!(response.status(), 503);
    assert_eq!(
        response.headers().get("retry-after").map(|v| v.as_bytes()),
        Some(&b"1"[..])
    );
    idp.set_down(false);
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    assert_eq!(app.buy_as(&token, json!({})).await.status(), 201);
}

/// A buyer's retries and polls are checked once: the token is remembered.
#[tokio::test]
async fn a_token_is_checked_once_however_often_it_is_used() {
    let app = spawn_app_with(jwt_config(5).set("JWT_SECRET", SECRET)).await;
    let token = SigningKey::hs256(SECRET)
        .expect("key")
        .sign(&claims("frank"))
        .expect("token");
    let before = checks("verified");
    assert_eq!(app.buy_as(&token, json!({})).await.status(), 201);
    for _ in 0..5 {
        assert_eq!(app.look_up_as(&token, "me").await.status(), 200);
        assert_eq!(app.buy_as(&token, json!({})).await.status(), 409);
    }
    assert_eq!(checks("verified") - before, 1);
}

/// `none` mode is the seed's contract: no token needed, `me` is a user id.
#[tokio::test]
async fn open_mode_keeps_the_seeds_contract() {
    let app = spawn_app_with(TestConfig::active(5)).await;
    let config: Value = app.get("/api/config").await.json().await.expect("json");
    assert_eq!(config, json!({"buyerAuth": "none"}));
    assert_eq!(app.purchase("me").await.status(), 201);
    let me: Value = app.purchase_status("me").await.json().await.expect("json");
    assert_eq!(
        (me["userId"].as_str(), me["purchased"].as_bool()),
        (Some("me"), Some(true))
    );
}
