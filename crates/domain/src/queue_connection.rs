//! The order queue's connection: one Redis, or the primary Redis Sentinel
//! names, followed across failovers.
//!
//! apalis-redis takes any `ConnectionLike`. Over a sentinel URL (fred's
//! syntax, `redis-sentinel://host:port/db?sentinelServiceName=NAME&node=host:port`)
//! the connection asks the sentinels for the primary, and asks again when
//! a call fails in a way a failover explains: the connection dropped or was
//! refused, timed out, or the server turned out a replica (`READONLY`) or
//! refuses writes without its replicas (`NOREPLICAS`). The failed call is
//! sent once more to the primary named then. (A job push or fetch that did
//! land before the failure lands twice at worst: orders insert once, and a
//! fetched job whose reply was lost goes back to the queue when its
//! worker's heartbeat lapses.)

use std::sync::{Arc, RwLock};

use redis::{
    aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig},
    sentinel::{SentinelClient, SentinelNodeConnectionInfo, SentinelServerType},
    Client, Cmd, ErrorKind, Pipeline, RedisError, RedisFuture, Value,
};

/// A connection to the order queue's Redis.
#[derive(Clone)]
pub enum QueueConnection {
    /// One Redis (reconnecting by itself).
    Direct(ConnectionManager),
    /// The primary the sentinels name.
    Sentinel(Arc<Following>),
}

/// The sentinels and the connection to the primary they named last.
pub struct Following {
    sentinel: tokio::sync::Mutex<SentinelClient>,
    current: RwLock<Option<ConnectionManager>>,
    config: ConnectionManagerConfig,
}

impl QueueConnection {
    pub(crate) fn direct(
        client: Client,
        config: ConnectionManagerConfig,
    ) -> Result<Self, RedisError> {
        ConnectionManager::new_lazy_with_config(client, config).map(Self::Direct)
    }

    /// Over `url`'s sentinels; nothing is connected before the first call.
    pub(crate) fn sentinel(url: &str, config: ConnectionManagerConfig) -> Result<Self, RedisError> {
        let parsed = SentinelUrl::parse(url).map_err(|why| {
            RedisError::from((ErrorKind::InvalidClientConfig, "bad sentinel URL", why))
        })?;
        // The primary's database and credentials, decoded as redis-rs
        // decodes any URL.
        let node = redis::IntoConnectionInfo::into_connection_info(parsed.node.as_str())?;
        let node = SentinelNodeConnectionInfo::default()
            .set_redis_connection_info(node.redis_settings().clone());
        let client = SentinelClient::build(
            parsed.sentinels,
            parsed.service,
            Some(node),
            SentinelServerType::Master,
        )?;
        Ok(Self::Sentinel(Arc::new(Following {
            sentinel: tokio::sync::Mutex::new(client),
            current: RwLock::new(None),
            config,
        })))
    }
}

impl Following {
    /// The connection to the primary named last (asking if none yet).
    async fn connection(&self) -> Result<ConnectionManager, RedisError> {
        let current = self.current.read().ok().and_then(|c| c.clone());
        match current {
            Some(connection) => Ok(connection),
            None => self.ask_again().await,
        }
    }

    /// Asks the sentinels for the primary and connects to it.
    async fn ask_again(&self) -> Result<ConnectionManager, RedisError> {
        let client = self.sentinel.lock().await.async_get_client().await?;
        let connection = ConnectionManager::new_lazy_with_config(client, self.config.clone())?;
        if let Ok(mut current) = self.current.write() {
            *current = Some(connection.clone());
        }
        Ok(connection)
    }
}

/// Whether `error` is what a failover looks like from a client.
fn failed_over(error: &RedisError) -> bool {
    error.is_io_error()
        || error.is_connection_refusal()
        || error.is_connection_dropped()
        || error.is_timeout()
        || matches!(error.code(), Some("READONLY" | "NOREPLICAS" | "MASTERDOWN"))
}

impl ConnectionLike for QueueConnection {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Self::Direct(connection) => connection.req_packed_command(cmd),
            Self::Sentinel(following) => Box::pin(async move {
                let mut connection = following.connection().await?;
                match connection.req_packed_command(cmd).await {
                    Err(error) if failed_over(&error) => {
                        following.ask_again().await?.req_packed_command(cmd).await
                    }
                    answer => answer,
                }
            }),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        cmd: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Self::Direct(connection) => connection.req_packed_commands(cmd, offset, count),
            Self::Sentinel(following) => Box::pin(async move {
                let mut connection = following.connection().await?;
                match connection.req_packed_commands(cmd, offset, count).await {
                    Err(error) if failed_over(&error) => {
                        following
                            .ask_again()
                            .await?
                            .req_packed_commands(cmd, offset, count)
                            .await
                    }
                    answer => answer,
                }
            }),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Self::Direct(connection) => connection.get_db(),
            Self::Sentinel(_) => 0,
        }
    }
}

/// fred's sentinel URL, as far as the queue needs it. Credentials before
/// the first host are used for the sentinels and for the primary, as fred
/// does (it is built without `sentinel-auth`); the path is the database.
#[derive(Debug, PartialEq, Eq)]
struct SentinelUrl {
    /// `redis://[credentials@]host:port` of each sentinel.
    sentinels: Vec<String>,
    service: String,
    /// `redis://[credentials@]sentinel/db`: the primary's database and
    /// credentials (its address comes from the sentinels).
    node: String,
}

impl SentinelUrl {
    fn parse(url: &str) -> Result<Self, String> {
        let rest = url
            .strip_prefix("redis-sentinel://")
            .ok_or("the order queue takes redis-sentinel:// (no TLS) for a sentinel URL")?;
        let (address, query) = rest.split_once('?').ok_or("no sentinelServiceName")?;
        let (authority, db) = address.split_once('/').unwrap_or((address, "0"));
        let (credentials, first) = match authority.rsplit_once('@') {
            Some((credentials, host)) => (format!("{credentials}@"), host),
            None => (String::new(), authority),
        };
        let db = if db.is_empty() { "0" } else { db };
        // fred's default port for the first host is a sentinel's.
        let first = if first
            .rsplit_once(':')
            .is_some_and(|(_, port)| port.parse::<u16>().is_ok())
        {
            first.to_owned()
        } else {
            format!("{first}:26379")
        };
        let mut sentinels = vec![format!("redis://{credentials}{first}")];
        let mut service = None;
        for pair in query.split('&') {
            match pair.split_once('=') {
                Some(("sentinelServiceName", name)) => service = Some(name.to_owned()),
                Some(("node", node)) => sentinels.push(format!("redis://{credentials}{node}")),
                Some(("sentinelUsername" | "sentinelPassword", _)) => {
                    return Err("sentinelUsername / sentinelPassword: the sentinels take the URL's own credentials (fred is built without sentinel-auth)".into());
                }
                _ => {}
            }
        }
        Ok(Self {
            sentinels,
            service: service.ok_or("no sentinelServiceName")?,
            node: format!("redis://{credentials}{first}/{db}"),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sentinel_url_names_every_sentinel_and_the_service() {
        let url = "redis-sentinel://10.0.0.1:26379/0?sentinelServiceName=flash&node=10.0.0.2:26380&node=10.0.0.3:26381";
        assert_eq!(
            SentinelUrl::parse(url),
            Ok(SentinelUrl {
                sentinels: vec![
                    "redis://10.0.0.1:26379".into(),
                    "redis://10.0.0.2:26380".into(),
                    "redis://10.0.0.3:26381".into(),
                ],
                service: "flash".into(),
                node: "redis://10.0.0.1:26379/0".into(),
            })
        );
        assert!(SentinelUrl::parse("redis-sentinel://10.0.0.1:26379/0").is_err());
        assert!(SentinelUrl::parse("rediss-sentinel://h:1/0?sentinelServiceName=a").is_err());
    }

    #[test]
    fn credentials_go_to_every_sentinel_and_to_the_primary() {
        let url = "redis-sentinel://:p%40ss@10.0.0.1:26379/2?sentinelServiceName=flash&node=10.0.0.2:26380";
        let parsed = SentinelUrl::parse(url).expect("parses");
        assert_eq!(
            parsed.sentinels,
            [
                "redis://:p%40ss@10.0.0.1:26379",
                "redis://:p%40ss@10.0.0.2:26380"
            ]
        );
        let node = redis::IntoConnectionInfo::into_connection_info(parsed.node.as_str())
            .expect("a redis URL");
        assert_eq!(node.redis_settings().password(), Some("p@ss"));
        assert_eq!(node.redis_settings().db(), 2);
        assert!(SentinelUrl::parse(&format!("{url}&sentinelPassword=x")).is_err());
        let bare =
            SentinelUrl::parse("redis-sentinel://s1?sentinelServiceName=flash&node=s2:26380")
                .expect("parses");
        assert_eq!(bare.sentinels, ["redis://s1:26379", "redis://s2:26380"]);
        assert_eq!(bare.node, "redis://s1:26379/0");
    }
}
