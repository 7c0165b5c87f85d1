//! CPU time and memory of processes, from Linux's /proc.

use std::collections::HashMap;

use anyhow::Context;

/// Clock ticks per second of /proc's time fields (USER_HZ: 100 on Linux).
const TICKS_PER_SECOND: f64 = 100.0;

/// The fields of /proc/<pid>/stat after the command name (which may hold spaces).
fn stat_fields(pid: &str) -> anyhow::Result<Vec<String>> {
    let path = format!("/proc/{pid}/stat");
    let raw = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
    let after_name = raw
        .rsplit_once(')')
        .map(|(_, rest)| rest)
        .with_context(|| format!("unexpected {path}"))?;
    Ok(after_name.split_whitespace().map(str::to_owned).collect())
}

/// Field `n` of stat (1-based as in proc(5)); the name is field 2.
fn field(fields: &[String], n: usize) -> anyhow::Result<f64> {
    fields
        .get(n - 3)
        .and_then(|f| f.parse::<f64>().ok())
        .context("short /proc stat line")
}

/// CPU seconds (user + system) process `pid` has used.
pub fn cpu(pid: u32) -> anyhow::Result<f64> {
    let fields = stat_fields(&pid.to_string())?;
    Ok((field(&fields, 14)? + field(&fields, 15)?) / TICKS_PER_SECOND)
}

/// CPU seconds (user + system) of this process's finished, waited-for children.
pub fn children_cpu() -> anyhow::Result<f64> {
    let fields = stat_fields("self")?;
    Ok((field(&fields, 16)? + field(&fields, 17)?) / TICKS_PER_SECOND)
}

/// CPU seconds (user + system) each process named `name` has used, by
/// pid: all PostgreSQL's backends, say. Compare two with [`cpu_since`].
pub fn cpu_of_named(name: &str) -> anyhow::Result<HashMap<u32, f64>> {
    let mut by_pid = HashMap::new();
    for entry in std::fs::read_dir("/proc").context("listing /proc")? {
        let Ok(entry) = entry else { continue };
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|p| p.parse::<u32>().ok())
        else {
            continue;
        };
        let named = std::fs::read_to_string(format!("/proc/{pid}/comm"))
            .is_ok_and(|comm| comm.trim_end() == name);
        // A process gone since the listing is skipped.
        if let Some(fields) = named.then(|| stat_fields(&pid.to_string()).ok()).flatten() {
            by_pid.insert(
                pid,
                (field(&fields, 14)? + field(&fields, 15)?) / TICKS_PER_SECOND,
            );
        }
    }
    Ok(by_pid)
}

/// The CPU seconds the processes of `after` used since `before`: a process
/// new since counts whole, one gone since is missed (an undercount, never
/// the negative a difference of two sums gives when a process exits).
pub fn cpu_since(before: &HashMap<u32, f64>, after: &HashMap<u32, f64>) -> f64 {
    after
        .iter()
        .map(|(pid, cpu)| (cpu - before.get(pid).copied().unwrap_or(0.0)).max(0.0))
        .sum()
}

/// Resident memory of `pid` now and at its peak, in MB.
pub fn rss_mb(pid: u32) -> anyhow::Result<(f64, f64)> {
    let path = format!("/proc/{pid}/status");
    let status = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
    let kb = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    Ok((kb("VmRSS:") / 1024.0, kb("VmHWM:") / 1024.0))
}

/// The 1, 5 and 15 minute load averages.
pub fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_since_counts_each_process_once_and_never_a_gone_ones_life() {
        let before = HashMap::from([(1, 10.0), (2, 500.0)]);
        // 1 used 2 s more, 2 exited (its 500 s must not come off), 3 is new.
        let after = HashMap::from([(1, 12.0), (3, 0.5)]);
        assert!((cpu_since(&before, &after) - 2.5).abs() < 1e-9);
    }

    #[test]
    fn this_process_is_found_by_its_name() {
        let me = std::process::id();
        let comm = std::fs::read_to_string(format!("/proc/{me}/comm")).expect("comm");
        let found = cpu_of_named(comm.trim_end()).expect("listed");
        assert!(found.contains_key(&me));
    }
}
