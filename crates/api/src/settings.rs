//! The api's settings, read once at start and passed down by value.
//!
//! Besides the shared variables of `domain::config` (Redis, PostgreSQL,
//! `ORDER_QUEUE`, `LOG_FORMAT`, `RUST_LOG`), defaults in brackets:
//! - `PORT` (`3000`), `HOST` (`0.0.0.0`)
//! - `SALE_ID` (`default`): a new sale is a new id; keys are `{sale:<id>}:*`
//! - `SALE_START_TIME` (`2026-03-01T10:00:00Z`), `SALE_END_TIME`
//!   (`2026-03-01T11:00:00Z`): RFC 3339; the window is inclusive
//! - `STOCK_QUANTITY` (`100`): at least 1
//! - `IP_RATE_LIMIT_PER_SECOND` (`10`), `IP_RATE_LIMIT_PER_10_SECONDS` (`50`):
//!   per client address on `/api/purchases*`; 0 turns a limit off
//! - `USER_MAX_ATTEMPTS` (`3`) per `USER_ATTEMPT_WINDOW_SECONDS` (`3600`):
//!   purchase attempts per user, counted in Redis; 0 turns it off
//! - `TRUSTED_PROXIES` (none): comma-separated addresses or CIDRs whose
//!   `X-Forwarded-For` is believed
//! - `CORS_ORIGINS` (`http://localhost:5173,http://localhost:3000`): origins
//!   allowed to call from a browser; `*` allows any
//! - `REDIS_POOL_SIZE` (`4`): pipelined Redis connections of this process
//! - `REDIS_MIN_REPLICA_ACKS` (`0`), `REDIS_REPLICA_ACK_TIMEOUT_MS` (`100`):
//!   a 201 only once the purchase reached that many replicas (`WAIT` after
//!   each batch's script), else 503; 0 answers on the primary's word
//! - `SSE_MAX_CLIENTS` (`10000`): open `GET /api/sale/events` streams this
//!   process serves at once; past it the stream answers 503 and the page
//!   polls `/api/sale/status` instead. Each stream holds a connection and a
//!   file descriptor, so size it to the process's memory and `ulimit -n`;
//!   0 turns the cap off
//! - `METRICS_PORT` (`0`): when set, `/metrics` is served on this port (bound
//!   to `HOST`) and not on `PORT`, so Prometheus can reach it while the
//!   public port does not show it; 0 serves it on `PORT`. The worker reads
//!   the same name (default 9091): on one host, give each process its own
//! - `ORDER_JOB_FORM` (`compact`): the form of the jobs pushed; `objects`
//!   while processes of a version before the compact form still run (see
//!   `domain::PersistOrders`)
//! - `BUYER_AUTH` (`none`) and `JWT_*`: who the buyer is; see
//!   [`crate::auth::settings`]

use chrono::{DateTime, Utc};
use domain::{
    config::{self, ConfigError, DatabaseConfig, Env, RedisConfig},
    job::JobForm,
    telemetry::LogFormat,
    SaleId, SaleWindow,
};
use ipnet::IpNet;

use crate::auth::settings::AuthSettings;

#[derive(Debug, Clone)]
pub struct Settings {
    pub host: String,
    pub port: u16,
    pub sale: SaleSettings,
    pub redis: RedisConfig,
    /// Where the order queue lives (`REDIS_QUEUE_URL`, else `redis`).
    pub queue_redis: RedisConfig,
    pub redis_pool_size: usize,
    /// Replicas a purchase must reach before its 201.
    pub replica_acks: ReplicaAcks,
    pub database: DatabaseConfig,
    pub queue: String,
    /// The form of the jobs it pushes (`ORDER_JOB_FORM`).
    pub job_form: JobForm,
    pub limits: LimitSettings,
    pub cors_origins: Vec<String>,
    pub log_format: LogFormat,
    /// Open live streams allowed at once (`None` = no cap).
    pub sse_max_clients: Option<usize>,
    /// Where `/metrics` is served apart from the public port (`None` = on it).
    pub metrics_port: Option<u16>,
    /// How the buyer is known (`BUYER_AUTH` and `JWT_*`, see `auth::settings`).
    pub auth: AuthSettings,
}

/// How many replicas must have a batch's writes before its buyers are
/// answered, and how long to wait for them (`REDIS_MIN_REPLICA_ACKS`,
/// `REDIS_REPLICA_ACK_TIMEOUT_MS`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReplicaAcks {
    /// 0: answer on the primary's word (no `WAIT`).
    pub min: u32,
    pub timeout: std::time::Duration,
}

impl ReplicaAcks {
    /// The `WAIT` runs in the same pipeline as the script, under one
    /// command timeout (`REDIS_COMMAND_TIMEOUT_MS`): its own timeout must
    /// be shorter, or a late replica would show as a Redis timeout instead
    /// of missing acknowledgements.
    fn from_env(env: &Env, command_timeout: std::time::Duration) -> Result<Self, ConfigError> {
        let min = env.parse("REDIS_MIN_REPLICA_ACKS", 0)?;
        let timeout_ms: u64 = env.positive("REDIS_REPLICA_ACK_TIMEOUT_MS", 100)?;
        if u128::from(timeout_ms) >= command_timeout.as_millis() {
            return Err(ConfigError::new(
                "REDIS_REPLICA_ACK_TIMEOUT_MS",
                &timeout_ms.to_string(),
                format!(
                    "must be below REDIS_COMMAND_TIMEOUT_MS ({} ms), which bounds the script and its WAIT together",
                    command_timeout.as_millis()
                ),
            ));
        }
        Ok(Self {
            min,
            timeout: std::time::Duration::from_millis(timeout_ms),
        })
    }
}

/// The sale this api sells, as configured; Redis's copy wins once armed.
#[derive(Debug, Clone)]
pub struct SaleSettings {
    pub id: SaleId,
    pub window: SaleWindow,
    pub stock: u64,
}

#[derive(Debug, Clone)]
pub struct LimitSettings {
    pub ip_per_second: u32,
    pub ip_per_10_seconds: u32,
    pub user_max_attempts: u32,
    pub user_window_seconds: u64,
    pub trusted_proxies: Vec<IpNet>,
}

impl Settings {
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        let redis_pool_size: usize = env.positive("REDIS_POOL_SIZE", 4)?;
        let redis = RedisConfig::from_env(env)?;
        let port = env.parse("PORT", 3000)?;
        Ok(Self {
            host: env.string("HOST", "0.0.0.0"),
            port,
            sale: SaleSettings::from_env(env)?,
            queue_redis: RedisConfig::queue_from_env(env, &redis)?,
            replica_acks: ReplicaAcks::from_env(env, redis.command_timeout)?,
            redis,
            redis_pool_size,
            database: DatabaseConfig::from_env(env)?,
            queue: config::order_queue(env),
            job_form: env.parse("ORDER_JOB_FORM", JobForm::Compact)?,
            limits: LimitSettings::from_env(env)?,
            cors_origins: list(&env.string(
                "CORS_ORIGINS",
                "http://localhost:5173,http://localhost:3000",
            )),
            log_format: env.parse("LOG_FORMAT", LogFormat::Pretty)?,
            sse_max_clients: Some(env.parse("SSE_MAX_CLIENTS", 10_000)?).filter(|&n| n > 0),
            metrics_port: metrics_port(env, port)?,
            auth: AuthSettings::from_env(env)?,
        })
    }
}

fn metrics_port(env: &Env, port: u16) -> Result<Option<u16>, ConfigError> {
    let metrics_port: u16 = env.parse("METRICS_PORT", 0)?;
    if metrics_port != 0 && metrics_port == port {
        return Err(ConfigError::new(
            "METRICS_PORT",
            &metrics_port.to_string(),
            "must differ from PORT (0 serves /metrics on PORT)",
        ));
    }
    Ok(Some(metrics_port).filter(|&p| p > 0))
}

impl SaleSettings {
    fn from_env(env: &Env) -> Result<Self, ConfigError> {
        let id_raw = env.string("SALE_ID", "default");
        let id = SaleId::parse(&id_raw).map_err(|e| ConfigError::new("SALE_ID", &id_raw, e))?;
        let starts_at = instant(env, "SALE_START_TIME", "2026-03-01T10:00:00Z")?;
        let ends_at = instant(env, "SALE_END_TIME", "2026-03-01T11:00:00Z")?;
        if ends_at <= starts_at {
            return Err(ConfigError::new(
                "SALE_END_TIME",
                &ends_at.to_rfc3339(),
                "must be after SALE_START_TIME",
            ));
        }
        let stock: u64 = env.positive("STOCK_QUANTITY", 100)?;
        Ok(Self {
            id,
            window: SaleWindow { starts_at, ends_at },
            stock,
        })
    }
}

impl LimitSettings {
    fn from_env(env: &Env) -> Result<Self, ConfigError> {
        let trusted_proxies = list(&env.string("TRUSTED_PROXIES", ""))
            .iter()
            .map(|raw| parse_net(raw).map_err(|e| ConfigError::new("TRUSTED_PROXIES", raw, e)))
            .collect::<Result<_, _>>()?;
        Ok(Self {
            ip_per_second: env.parse("IP_RATE_LIMIT_PER_SECOND", 10)?,
            ip_per_10_seconds: env.parse("IP_RATE_LIMIT_PER_10_SECONDS", 50)?,
            user_max_attempts: env.parse("USER_MAX_ATTEMPTS", 3)?,
            // 0 would make `EXPIRE key 0` delete the counter: no limit at all.
            user_window_seconds: env.positive("USER_ATTEMPT_WINDOW_SECONDS", 3600)?,
            trusted_proxies,
        })
    }
}

fn instant(env: &Env, name: &str, default: &str) -> Result<DateTime<Utc>, ConfigError> {
    let raw = env.string(name, default);
    DateTime::parse_from_rfc3339(&raw)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| ConfigError::new(name, &raw, format!("{e}; expected RFC 3339 like {default}")))
}

fn parse_net(raw: &str) -> Result<IpNet, String> {
    raw.parse::<IpNet>()
        .or_else(|_| raw.parse::<std::net::IpAddr>().map(IpNet::from))
        .map_err(|_| "expected an IP address or CIDR such as 10.0.0.0/8".to_owned())
}

fn list(raw: &str) -> Vec<String> {
    raw.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_the_seeds() {
        let settings = Settings::from_env(&Env::default()).expect("defaults are valid");
        assert_eq!(settings.port, 3000);
        assert_eq!(settings.sale.stock, 100);
        assert_eq!(settings.sale.id.as_str(), "default");
        assert_eq!(settings.limits.ip_per_second, 10);
        assert_eq!(settings.limits.ip_per_10_seconds, 50);
        assert_eq!(settings.limits.user_max_attempts, 3);
        assert_eq!(settings.limits.user_window_seconds, 3600);
        assert_eq!(settings.database.pool_max, 20);
        assert_eq!(settings.sse_max_clients, Some(10_000));
        assert_eq!(settings.metrics_port, None);
    }

    #[test]
    fn zero_turns_the_stream_cap_off_and_keeps_metrics_on_the_public_port() {
        let env = Env::from_pairs([("SSE_MAX_CLIENTS", "0"), ("METRICS_PORT", "0")]);
        let settings = Settings::from_env(&env).expect("valid");
        assert_eq!(settings.sse_max_clients, None);
        assert_eq!(settings.metrics_port, None);
    }

    #[test]
    fn bad_values_name_their_variable() {
        for (name, value) in [
            ("SALE_START_TIME", "tomorrow"),
            ("STOCK_QUANTITY", "-1"),
            ("STOCK_QUANTITY", "0"),
            ("SALE_ID", "a:b"),
            ("TRUSTED_PROXIES", "10.0.0.0/99"),
            ("USER_MAX_ATTEMPTS", "three"),
            ("USER_ATTEMPT_WINDOW_SECONDS", "0"),
            ("PORT", "70000"),
            ("LOG_FORMAT", "xml"),
            ("ORDER_JOB_FORM", "json"),
            ("SSE_MAX_CLIENTS", "-1"),
            ("METRICS_PORT", "3000"),
            ("METRICS_PORT", "70000"),
            ("REDIS_MIN_REPLICA_ACKS", "-1"),
            ("REDIS_REPLICA_ACK_TIMEOUT_MS", "0"),
            // Not below the command timeout (1 s by default).
            ("REDIS_REPLICA_ACK_TIMEOUT_MS", "1000"),
        ] {
            let err = Settings::from_env(&Env::from_pairs([(name, value)])).expect_err(name);
            assert_eq!(err.name, name);
        }
    }

    #[test]
    fn end_before_start_is_refused() {
        let env = Env::from_pairs([
            ("SALE_START_TIME", "2026-03-01T11:00:00Z"),
            ("SALE_END_TIME", "2026-03-01T10:00:00Z"),
        ]);
        assert_eq!(
            Settings::from_env(&env).map_err(|e| e.name).err(),
            Some("SALE_END_TIME".into())
        );
    }

    #[test]
    fn trusted_proxies_take_addresses_and_networks() {
        let env = Env::from_pairs([("TRUSTED_PROXIES", "127.0.0.1, 10.0.0.0/8,::1")]);
        let limits = Settings::from_env(&env).expect("valid").limits;
        assert_eq!(limits.trusted_proxies.len(), 3);
    }
}
