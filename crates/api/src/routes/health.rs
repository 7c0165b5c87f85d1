use std::time::{Duration, Instant};

use actix_web::{get, web, HttpResponse};
use chrono::Utc;
use diesel::sql_query;
use diesel_async::RunQueryDsl;
use domain::time::iso_millis;
use serde::Serialize;
use utoipa::ToSchema;

use crate::state::AppState;

/// A health probe never waits longer than this for one dependency.
const PROBE_TIMEOUT: Duration = Duration::from_secs(1);

/// One dependency's probe.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Probe {
    #[schema(pattern = "^(up|down)$", example = "up")]
    status: &'static str,
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
    /// `ok`; `degraded` when PostgreSQL is down (sales go on); `down` when Redis is.
    #[schema(pattern = "^(ok|degraded|down)$", example = "ok")]
    status: &'static str,
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
        (status = 503, description = "Redis down", body = Health),
    )
)]
#[get("/api/health")]
pub async fn check(state: web::Data<AppState>) -> HttpResponse {
    let (redis, database) = futures::join!(redis_probe(&state), database_probe(&state));
    let (status, mut response) = match (redis.status, database.status) {
        ("up", "up") => ("ok", HttpResponse::Ok()),
        ("up", _) => ("degraded", HttpResponse::Ok()),
        _ => ("down", HttpResponse::ServiceUnavailable()),
    };
    response.json(Health {
        status,
        timestamp: iso_millis(Utc::now()),
        services: Services { redis, database },
    })
}

async fn redis_probe(state: &AppState) -> Probe {
    let started = Instant::now();
    let result = tokio::time::timeout(PROBE_TIMEOUT, state.inventory.ping()).await;
    probe(started, matches!(result, Ok(Ok(_))))
}

async fn database_probe(state: &AppState) -> Probe {
    let started = Instant::now();
    let result = tokio::time::timeout(PROBE_TIMEOUT, async {
        let mut conn = state.db.get().await.ok()?;
        sql_query("SELECT 1").execute(&mut conn).await.ok()
    })
    .await;
    probe(started, matches!(result, Ok(Some(_))))
}

fn probe(started: Instant, up: bool) -> Probe {
    let latency_ms = (started.elapsed().as_secs_f64() * 100_000.0).round() / 100.0;
    Probe {
        status: if up { "up" } else { "down" },
        latency_ms,
        error: (!up).then_some("unreachable"),
    }
}
