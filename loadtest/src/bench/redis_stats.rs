//! What Redis spent: command time (INFO commandstats) and CPU (INFO cpu).

use anyhow::Context;
use redis::aio::MultiplexedConnection;

pub struct RedisStats {
    conn: MultiplexedConnection,
}

/// A reading of Redis's counters.
#[derive(Debug, Clone, Copy, Default)]
pub struct Counters {
    /// Microseconds spent in script calls (see [`script_usec`]).
    pub command_us: f64,
    /// Script calls: the purchase batches and the job pushes.
    pub script_calls: f64,
    /// CPU seconds, user + system.
    pub cpu: f64,
}

impl Counters {
    pub fn since(self, earlier: Counters) -> Counters {
        Counters {
            command_us: self.command_us - earlier.command_us,
            script_calls: self.script_calls - earlier.script_calls,
            cpu: self.cpu - earlier.cpu,
        }
    }
}

impl RedisStats {
    pub async fn connect(url: &str) -> anyhow::Result<Self> {
        let client = redis::Client::open(url).context("the Redis URL")?;
        let conn = client
            .get_multiplexed_async_connection()
            .await
            .context("connecting to Redis")?;
        Ok(Self { conn })
    }

    pub async fn counters(&mut self) -> anyhow::Result<Counters> {
        let commands: String = redis::cmd("INFO")
            .arg("commandstats")
            .query_async(&mut self.conn)
            .await?;
        let cpu: String = redis::cmd("INFO")
            .arg("cpu")
            .query_async(&mut self.conn)
            .await?;
        Ok(Counters {
            command_us: script_usec(&commands),
            script_calls: script_stat(&commands, "calls="),
            cpu: cpu_seconds(&cpu),
        })
    }

    /// Entries in a sale's ledger: its confirmed purchases.
    pub async fn buyers(&mut self, sale: &str) -> anyhow::Result<u64> {
        let sale = domain::SaleId::parse(sale).context("a sale id")?;
        let n: u64 = redis::cmd("HLEN")
            .arg(domain::SaleKeys::new(&sale).buyers())
            .query_async(&mut self.conn)
            .await?;
        Ok(n)
    }
}

/// Commands that run a script; their time includes every command the
/// script runs.
const SCRIPT_CALLS: [&str; 6] = [
    "eval",
    "evalsha",
    "eval_ro",
    "evalsha_ro",
    "fcall",
    "fcall_ro",
];

/// The sum of `usec=` over the script calls of INFO commandstats: with
/// `REDIS_MIN_REPLICA_ACKS=0`, as the bench runs, the api's purchase path
/// sends nothing else (the purchase batches and the job pushes are both
/// scripts; with acks on, a `WAIT` per batch would go uncounted). Redis also counts each command a script
/// runs under its own name (`cmdstat_hset`), and that time is already
/// inside the script call's: summing every line counted it twice.
fn script_usec(info: &str) -> f64 {
    script_stat(info, "usec=")
}

/// The sum of one stat (`usec=`, `calls=`) over the script calls.
fn script_stat(info: &str, stat: &str) -> f64 {
    info.lines()
        .filter_map(|l| l.strip_prefix("cmdstat_"))
        .filter_map(|l| l.split_once(':'))
        .filter(|(name, _)| SCRIPT_CALLS.contains(name))
        .filter_map(|(_, stats)| stats.split(',').find_map(|field| field.strip_prefix(stat)))
        .filter_map(|n| n.parse::<f64>().ok())
        .sum()
}

/// used_cpu_user + used_cpu_sys of INFO cpu.
fn cpu_seconds(info: &str) -> f64 {
    info.lines()
        .filter_map(|l| {
            l.strip_prefix("used_cpu_user:")
                .or_else(|| l.strip_prefix("used_cpu_sys:"))
        })
        .filter_map(|v| v.trim().parse::<f64>().ok())
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn info_sections_sum_what_is_asked() {
        // As Redis 7.0 wrote it after one EVAL that ran 20,000 HSETs: the
        // HSETs' time is inside the EVAL's.
        let commands = "# Commandstats\r\ncmdstat_eval:calls=1,usec=29332,usec_per_call=29332.00,rejected_calls=0,failed_calls=0\r\ncmdstat_hset:calls=20000,usec=12461,usec_per_call=0.62,rejected_calls=0,failed_calls=0\r\ncmdstat_evalsha:calls=10,usec=200,usec_per_call=20.00\r\ncmdstat_config|resetstat:calls=1,usec=149,usec_per_call=149.00\r\n";
        assert_eq!(script_usec(commands), 29532.0);
        assert_eq!(script_stat(commands, "calls="), 11.0);
        let cpu =
            "# CPU\r\nused_cpu_sys:1.50\r\nused_cpu_user:2.25\r\nused_cpu_sys_children:9.0\r\n";
        assert_eq!(cpu_seconds(cpu), 3.75);
    }
}
