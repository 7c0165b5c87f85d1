//! The fred client of the inventory Redis (one server or a Redis Cluster),
//! built the same way in both binaries.
//!
//! Every key of a sale carries the hash tag `{sale:ID}`, so on a cluster a
//! sale lives in one slot and its scripts run unchanged on one primary.

use fred::{
    prelude::{Config, Error, ReconnectPolicy},
    types::Builder,
};

use crate::config::RedisConfig;

/// A builder with bounded command and connect times, one attempt per
/// command (a caller decides about retries) and reconnection forever with
/// backoff, so an outage turns into fast errors and heals by itself. The
/// first connection fails at once if Redis is down (see [`patient_builder`]).
pub fn builder(redis: &RedisConfig) -> Result<Builder, Error> {
    builder_with(redis, true)
}

/// [`builder`], whose client also keeps trying when Redis is down at its
/// first connection: a service that starts before Redis connects when
/// Redis comes up, like after an outage.
pub fn patient_builder(redis: &RedisConfig) -> Result<Builder, Error> {
    builder_with(redis, false)
}

fn builder_with(redis: &RedisConfig, fail_fast: bool) -> Result<Builder, Error> {
    let mut config = Config::from_url(&redis.url)?;
    config.fail_fast = fail_fast;
    let timeout = redis.command_timeout;
    let mut builder = Builder::from_config(config);
    builder
        .with_performance_config(|perf| perf.default_command_timeout = timeout)
        .with_connection_config(|conn| {
            conn.connection_timeout = timeout;
            conn.internal_command_timeout = timeout;
            // Also what keeps the api's pipelined script + WAIT on one
            // node: a retried or redirected half would run elsewhere.
            conn.max_command_attempts = 1;
        })
        // Retries at most every 500 ms: a Redis back from an outage is used
        // within half a second, at a few connection attempts a second per
        // connection meanwhile.
        .set_policy(ReconnectPolicy::new_exponential(0, 50, 500, 2));
    Ok(builder)
}
