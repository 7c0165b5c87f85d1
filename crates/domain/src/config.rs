//! Reading settings from the environment, shared by both binaries.
//!
//! Each binary builds its own typed `Settings` from an [`Env`] once at start;
//! nothing reads the environment after that. A value that does not parse
//! stops start-up with a [`ConfigError`] naming the variable.
//!
//! Shared variables (defaults in brackets):
//! - `REDIS_URL` (unset): `redis://...` URL, or `redis-cluster://host:port?node=host:port&...`
//!   for a Redis Cluster; overrides the three below
//! - `REDIS_HOST` (`localhost`), `REDIS_PORT` (`6379`), `REDIS_PASSWORD` (unset)
//! - `REDIS_COMMAND_TIMEOUT_MS` (`1000`): every Redis call fails after this
//! - `REDIS_QUEUE_URL` (the main Redis): where the order queue lives; a standalone
//!   Redis, required when `REDIS_URL` is a cluster (apalis-redis cannot use one)
//! - `DATABASE_URL` (`postgresql://flash_sale_user:flash_sale_password@localhost:5432/flash_sale_db`)
//! - `DATABASE_POOL_MAX` (`20`), `DATABASE_POOL_MIN` (`5`),
//!   `DATABASE_IDLE_TIMEOUT_SECONDS` (`30`), `DATABASE_CONNECT_TIMEOUT_SECONDS` (`5`)
//! - `ORDER_QUEUE` (`flash-sale:orders`): the apalis queue of order jobs
//! - `LOG_FORMAT` (`pretty`; `json` in production), `RUST_LOG` (`info`)

use std::{collections::HashMap, fmt::Display, str::FromStr, time::Duration};

use crate::job::DEFAULT_ORDER_QUEUE;

/// The seed's database address, kept so its `.env` files work unchanged.
pub const DEFAULT_DATABASE_URL: &str =
    "postgresql://flash_sale_user:flash_sale_password@localhost:5432/flash_sale_db";

/// A variable with a value we cannot use.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid value {value:?} for {name}: {reason}")]
pub struct ConfigError {
    pub name: String,
    pub value: String,
    pub reason: String,
}

impl ConfigError {
    pub fn new(name: &str, value: &str, reason: impl Display) -> Self {
        Self {
            name: name.to_owned(),
            value: value.to_owned(),
            reason: reason.to_string(),
        }
    }
}

/// A snapshot of environment variables; empty values count as unset.
#[derive(Clone, Default)]
pub struct Env {
    vars: HashMap<String, String>,
}

/// Names only: values hold secrets (`JWT_SECRET`, passwords in URLs).
impl std::fmt::Debug for Env {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut names: Vec<&String> = self.vars.keys().collect();
        names.sort();
        f.debug_struct("Env").field("names", &names).finish()
    }
}

impl Env {
    /// The process environment (after `.env` was loaded by the binary).
    pub fn from_process() -> Self {
        Self {
            vars: std::env::vars().collect(),
        }
    }

    /// A given set of variables: for tests and tools.
    pub fn from_pairs<K: Into<String>, V: Into<String>>(
        pairs: impl IntoIterator<Item = (K, V)>,
    ) -> Self {
        Self {
            vars: pairs
                .into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
        }
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.vars
            .get(name)
            .map(|v| v.trim())
            .filter(|v| !v.is_empty())
    }

    pub fn string(&self, name: &str, default: &str) -> String {
        self.get(name).unwrap_or(default).to_owned()
    }

    /// Parses a variable, or gives `default` when it is unset.
    pub fn parse<T>(&self, name: &str, default: T) -> Result<T, ConfigError>
    where
        T: FromStr,
        T::Err: Display,
    {
        match self.get(name) {
            None => Ok(default),
            Some(raw) => raw.parse().map_err(|e| ConfigError::new(name, raw, e)),
        }
    }

    /// Parses a number that must be at least 1, or gives `default`.
    pub fn positive<T>(&self, name: &str, default: T) -> Result<T, ConfigError>
    where
        T: FromStr + PartialEq + Default + Display,
        T::Err: Display,
    {
        let value = self.parse(name, default)?;
        if value == T::default() {
            return Err(ConfigError::new(
                name,
                &value.to_string(),
                "must be at least 1",
            ));
        }
        Ok(value)
    }
}

/// How to reach Redis.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedisConfig {
    pub url: String,
    pub command_timeout: Duration,
}

/// URL schemes of a single Redis server.
const STANDALONE_SCHEMES: [&str; 1] = ["redis://"];
/// URL schemes of a Redis Cluster (fred's syntax: seed nodes as `?node=`).
const CLUSTER_SCHEMES: [&str; 1] = ["redis-cluster://"];
/// URL schemes of a primary found through Redis Sentinel (fred's syntax:
/// `?sentinelServiceName=NAME&node=host:port`); the client asks the
/// sentinels for the primary again after a failover.
const SENTINEL_SCHEMES: [&str; 1] = ["redis-sentinel://"];
/// TLS schemes: the clients are built without TLS, and fred would connect
/// in plain text to a `rediss` URL with only a warning; refused instead.
const TLS_SCHEMES: [&str; 3] = ["rediss://", "rediss-cluster://", "rediss-sentinel://"];

/// Why `url` (the value of `name`) cannot be used, beyond its scheme.
fn unsupported(name: &str, url: &str) -> Result<(), ConfigError> {
    if has_scheme(url, &TLS_SCHEMES) {
        return Err(ConfigError::new(
            name,
            url,
            "TLS (rediss) is not built into this release; use redis://, redis-cluster:// or redis-sentinel:// on a trusted network",
        ));
    }
    if has_scheme(url, &SENTINEL_SCHEMES)
        && (url.contains("sentinelUsername=") || url.contains("sentinelPassword="))
    {
        return Err(ConfigError::new(
            name,
            url,
            "separate sentinel credentials are not supported: the credentials before the first host are used for the sentinels and the servers alike",
        ));
    }
    Ok(())
}

fn has_scheme(url: &str, schemes: &[&str]) -> bool {
    schemes.iter().any(|scheme| url.starts_with(scheme))
}

impl RedisConfig {
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        let url = match env.get("REDIS_URL") {
            Some(url) => {
                unsupported("REDIS_URL", url)?;
                if !has_scheme(url, &STANDALONE_SCHEMES)
                    && !has_scheme(url, &CLUSTER_SCHEMES)
                    && !has_scheme(url, &SENTINEL_SCHEMES)
                {
                    return Err(ConfigError::new(
                        "REDIS_URL",
                        url,
                        "must start with redis://, redis-cluster:// or redis-sentinel://",
                    ));
                }
                url.to_owned()
            }
            None => {
                let host = env.string("REDIS_HOST", "localhost");
                let port: u16 = env.parse("REDIS_PORT", 6379)?;
                match env.get("REDIS_PASSWORD") {
                    Some(password) => format!("redis://:{password}@{host}:{port}"),
                    None => format!("redis://{host}:{port}"),
                }
            }
        };
        let timeout_ms: u64 = env.positive("REDIS_COMMAND_TIMEOUT_MS", 1000)?;
        Ok(Self {
            url,
            command_timeout: Duration::from_millis(timeout_ms),
        })
    }

    /// Whether this names a Redis Cluster rather than one server.
    pub fn is_cluster(&self) -> bool {
        has_scheme(&self.url, &CLUSTER_SCHEMES)
    }

    /// A primary found through Redis Sentinel.
    pub fn is_sentinel(&self) -> bool {
        has_scheme(&self.url, &SENTINEL_SCHEMES)
    }

    /// The Redis of the order queue: `REDIS_QUEUE_URL`, else the main one.
    ///
    /// apalis-redis needs a standalone Redis; with a Redis Cluster for the
    /// inventory, the queue lives on its own instance.
    pub fn queue_from_env(env: &Env, main: &RedisConfig) -> Result<Self, ConfigError> {
        match env.get("REDIS_QUEUE_URL") {
            None if main.is_cluster() => Err(ConfigError::new(
                "REDIS_QUEUE_URL",
                "",
                "is required when REDIS_URL is a cluster: the order queue needs a standalone Redis (redis:// or redis-sentinel://)",
            )),
            None => Ok(main.clone()),
            Some(url) => {
                unsupported("REDIS_QUEUE_URL", url)?;
                if !has_scheme(url, &STANDALONE_SCHEMES) && !has_scheme(url, &SENTINEL_SCHEMES) {
                    return Err(ConfigError::new(
                        "REDIS_QUEUE_URL",
                        url,
                        "must start with redis:// or redis-sentinel:// (the order queue needs a standalone Redis, or one behind Sentinel)",
                    ));
                }
                Ok(Self {
                    url: url.to_owned(),
                    command_timeout: main.command_timeout,
                })
            }
        }
    }
}

/// How to reach PostgreSQL, with the seed's pool settings as defaults.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DatabaseConfig {
    pub url: String,
    pub pool_max: u32,
    pub pool_min: u32,
    pub idle_timeout: Duration,
    pub connect_timeout: Duration,
}

impl DatabaseConfig {
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        let url = env.string("DATABASE_URL", DEFAULT_DATABASE_URL);
        if !url.starts_with("postgres://") && !url.starts_with("postgresql://") {
            return Err(ConfigError::new(
                "DATABASE_URL",
                &url,
                "must start with postgres:// or postgresql://",
            ));
        }
        let pool_max: u32 = env.positive("DATABASE_POOL_MAX", 20)?;
        let pool_min: u32 = env.parse("DATABASE_POOL_MIN", 5)?;
        if pool_min > pool_max {
            return Err(ConfigError::new(
                "DATABASE_POOL_MIN",
                &pool_min.to_string(),
                "must not exceed DATABASE_POOL_MAX",
            ));
        }
        Ok(Self {
            url,
            pool_max,
            pool_min,
            idle_timeout: Duration::from_secs(env.parse("DATABASE_IDLE_TIMEOUT_SECONDS", 30)?),
            connect_timeout: Duration::from_secs(env.parse("DATABASE_CONNECT_TIMEOUT_SECONDS", 5)?),
        })
    }
}

/// `url` with its credentials masked, for logs and error messages:
/// `redis://:secret@host:6379` becomes `redis://***@host:6379`.
pub fn redacted(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            format!("{}://***{}", &url[..scheme], &url[at..])
        }
        _ => url.to_owned(),
    }
}

/// Name of the order queue (`ORDER_QUEUE`).
pub fn order_queue(env: &Env) -> String {
    env.string("ORDER_QUEUE", DEFAULT_ORDER_QUEUE)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redis_url_is_built_from_the_seed_variables() {
        let env = Env::from_pairs([("REDIS_HOST", "cache"), ("REDIS_PORT", "6380")]);
        let redis = RedisConfig::from_env(&env).expect("valid");
        assert_eq!(redis.url, "redis://cache:6380");
        assert_eq!(redis.command_timeout, Duration::from_secs(1));
    }

    #[test]
    fn redis_url_overrides_host_and_port() {
        let env = Env::from_pairs([("REDIS_URL", "redis://x:1/2"), ("REDIS_HOST", "cache")]);
        assert_eq!(
            RedisConfig::from_env(&env).map(|r| r.url),
            Ok("redis://x:1/2".into())
        );
    }

    #[test]
    fn a_bad_value_names_its_variable() {
        let env = Env::from_pairs([("REDIS_PORT", "sixty")]);
        let err = RedisConfig::from_env(&env).expect_err("must fail");
        assert_eq!(err.name, "REDIS_PORT");
        assert!(err.to_string().contains("REDIS_PORT"));
        let env = Env::from_pairs([("DATABASE_POOL_MIN", "30")]);
        assert_eq!(
            DatabaseConfig::from_env(&env).map_err(|e| e.name),
            Err("DATABASE_POOL_MIN".into())
        );
    }

    #[test]
    fn empty_values_count_as_unset() {
        let env = Env::from_pairs([("REDIS_PASSWORD", ""), ("REDIS_PORT", " ")]);
        assert_eq!(
            RedisConfig::from_env(&env).map(|r| r.url),
            Ok("redis://localhost:6379".into())
        );
    }

    #[test]
    fn a_cluster_url_needs_a_standalone_queue() {
        let cluster = "redis-cluster://10.0.0.1:7000?node=10.0.0.2:7000&node=10.0.0.3:7000";
        let env = Env::from_pairs([("REDIS_URL", cluster)]);
        let main = RedisConfig::from_env(&env).expect("a cluster url is accepted");
        assert!(main.is_cluster());
        let err = RedisConfig::queue_from_env(&env, &main).expect_err("queue must be named");
        assert_eq!(err.name, "REDIS_QUEUE_URL");

        let env = Env::from_pairs([("REDIS_URL", cluster), ("REDIS_QUEUE_URL", cluster)]);
        let err = RedisConfig::queue_from_env(&env, &main).expect_err("not on a cluster");
        assert_eq!(err.name, "REDIS_QUEUE_URL");

        let env = Env::from_pairs([
            ("REDIS_URL", cluster),
            ("REDIS_QUEUE_URL", "redis://q:6379"),
        ]);
        let queue = RedisConfig::queue_from_env(&env, &main).expect("standalone queue");
        assert_eq!(queue.url, "redis://q:6379");
        assert!(!queue.is_cluster());
    }

    #[test]
    fn tls_urls_and_separate_sentinel_credentials_are_refused_not_ignored() {
        for (url, why) in [
            ("rediss://h:6379", "TLS"),
            ("rediss-cluster://h:6379?node=g:6379", "TLS"),
            ("rediss-sentinel://h:26379/0?sentinelServiceName=a", "TLS"),
            (
                "redis-sentinel://h:26379/0?sentinelServiceName=a&sentinelPassword=x",
                "sentinel credentials",
            ),
        ] {
            let env = Env::from_pairs([("REDIS_URL", url)]);
            let refused = RedisConfig::from_env(&env).expect_err(url);
            assert_eq!(refused.name, "REDIS_URL");
            assert!(refused.reason.contains(why), "{url}: {}", refused.reason);
            let main = RedisConfig::from_env(&Env::default()).expect("defaults");
            let env = Env::from_pairs([("REDIS_QUEUE_URL", url)]);
            let refused = RedisConfig::queue_from_env(&env, &main).expect_err(url);
            assert_eq!(refused.name, "REDIS_QUEUE_URL");
            assert!(refused.reason.contains(why), "{url}: {}", refused.reason);
        }
    }

    #[test]
    fn a_sentinel_url_serves_the_inventory_and_the_queue() {
        let sentinel =
            "redis-sentinel://10.0.0.1:26379/0?sentinelServiceName=shop&node=10.0.0.2:26379";
        let env = Env::from_pairs([("REDIS_URL", sentinel)]);
        let main = RedisConfig::from_env(&env).expect("a sentinel url is accepted");
        assert!(main.is_sentinel() && !main.is_cluster());
        let queue = RedisConfig::queue_from_env(&env, &main).expect("the queue follows it too");
        assert_eq!(queue.url, sentinel);

        let env = Env::from_pairs([
            ("REDIS_URL", sentinel),
            ("REDIS_QUEUE_URL", "redis://q:6379"),
        ]);
        let queue = RedisConfig::queue_from_env(&env, &main).expect("standalone queue");
        assert_eq!(queue.url, "redis://q:6379");
    }

    #[test]
    fn credentials_never_reach_a_message() {
        assert_eq!(
            redacted("postgresql://user:secret@db:5432/shop"),
            "postgresql://***@db:5432/shop"
        );
        assert_eq!(redacted("redis://cache:6379"), "redis://cache:6379");
    }

    #[test]
    fn an_unknown_scheme_is_refused() {
        let env = Env::from_pairs([("REDIS_URL", "http://cache:6379")]);
        let err = RedisConfig::from_env(&env).expect_err("must fail");
        assert_eq!(err.name, "REDIS_URL");
    }
}
