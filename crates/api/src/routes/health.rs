use std::time::{Duration, Instant};

use actix_web::{get, web, HttpResponse};
use chrono::Utc;
use diesel::sql_query;
use diesel_async::RunQueryDsl;
use domain::time::iso_millis;
use serde::Serialize;
use utoipa::ToSchema;

use crate::state::AppState;

/// The longest the Redis probe waits: past it Redis is down for purchases too.
const REDIS_PROBE_TIMEOUT: Duration = Duration::from_secs(1);

/// The longest the PostgreSQL probe waits. Short: balancers and readiness
/// probes call this endpoint with a budget of their own (haproxy's check
/// interval, Kubernetes' 1 s), and a slow answer while PostgreSQL is down
/// would take every replica out of rotation, though sales go on without it.
const DATABASE_PROBE_TIMEOUT: Duration = Duration::from_millis(250);

/// Whether a dependency answered its probe.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Up {
    Up,
    Down,
}

/// The api's health: sales need Redis, not PostgreSQL.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Overall {
    /// Both up.
    Ok,
    /// PostgreSQL down: sales go on, orders wait.
    Degraded,
    /// Redis down: purchases answer 503.
    Down,
}

/// One dependency's probe.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Probe {
    status: Up,
    latency_ms: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(example = "unreachable")]
    error: Option<&'static str>,
}

#[derive(Serialize, ToSchema)]
pub struct Services {
    redis: Probe,
    database: Probe,
}

#[derive(Serialize, ToSchema)]
pub struct Health {
    status: Overall,
    /// `armed`: this replica serves the sale; `arming`: it started before
    /// Redis or PostgreSQL could arm it, answers 503 and is not ready.
    #[schema(example = "armed")]
    sale: &'static str,
    #[schema(example = "2026-03-01T10:00:00.000Z")]
    timestamp: String,
    services: Services,
}

/// Health of Redis and PostgreSQL: 200 while Redis is up (PostgreSQL down
/// is "degraded": sales go on and orders wait), 503 when Redis is down.
#[utoipa::path(
    tag = "server",
    responses(
        (status = 200, description = "Redis up; status ok or degraded", body = Health),
        (status = 503, description = "Redis down, or the sale not armed yet (`sale: arming`)", body = Health),
    )
)]
#[get("/api/health")]
pub async fn check(state: web::Data<AppState>) -> HttpResponse {
    let (redis, database) = futures::join!(redis_probe(&state), database_probe(&state));
    let armed = state.sale.get().is_some();
    let (status, mut response) = match (redis.status, database.status) {
        (Up::Up, _) if !armed => (Overall::Down, HttpResponse::ServiceUnavailable()),
        (Up::Up, Up::Up) => (Overall::Ok, HttpResponse::Ok()),
        (Up::Up, Up::Down) => (Overall::Degraded, HttpResponse::Ok()),
        (Up::Down, _) => (Overall::Down, HttpResponse::ServiceUnavailable()),
    };
    response.json(Health {
        status,
        sale: if armed { "armed" } else { "arming" },
        timestamp: iso_millis(Utc::now()),
        services: Services { redis, database },
    })
}

async fn redis_probe(state: &AppState) -> Probe {
    let started = Instant::now();
    let result = tokio::time::timeout(REDIS_PROBE_TIMEOUT, state.inventory.ping()).await;
    probe(started, matches!(result, Ok(Ok(_))))
}

async fn database_probe(state: &AppState) -> Probe {
    let started = Instant::now();
    let result = tokio::time::timeout(DATABASE_PROBE_TIMEOUT, async {
        let mut conn = state.db.get().await.ok()?;
        sql_query("SELECT 1").execute(&mut conn).await.ok()
    })
    .await;
    probe(started, matches!(result, Ok(Some(_))))
}

fn probe(started: Instant, up: bool) -> Probe {
    let latency_ms = (started.elapsed().as_secs_f64() * 100_000.0).round() / 100.0;
    Probe {
        status: if up { Up::Up } else { Up::Down },
        latency_ms,
        error: (!up).then_some("unreachable"),
    }
}
