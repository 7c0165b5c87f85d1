//! One wrk run: its figures, and the CPU wrk itself spent (it shares the
//! cores with the api and Redis, so every ratio has to account for it).

use std::{path::Path, process::Stdio, time::Duration};

use anyhow::{bail, Context};

use super::procfs;

/// What one wrk run measured.
#[derive(Debug, Clone, Default)]
pub struct Run {
    pub requests: u64,
    pub per_second: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    /// Answers that were not 2xx/3xx.
    pub non_2xx: u64,
    pub socket_errors: u64,
    /// CPU seconds wrk used.
    pub wrk_cpu: f64,
}

impl Run {
    /// wrk's CPU time per request, in µs.
    pub fn wrk_us(&self) -> f64 {
        per_request_us(self.wrk_cpu, self.requests)
    }
}

/// CPU seconds per request, in µs (0 without requests).
pub fn per_request_us(cpu_seconds: f64, requests: u64) -> f64 {
    if requests == 0 {
        0.0
    } else {
        cpu_seconds * 1e6 / requests as f64
    }
}

/// Runs `wrk -t2 -c<connections> -d<seconds>s --latency [-s script] url
/// [-- script_args]` (one thread for one connection).
pub async fn run(
    url: &str,
    duration: Duration,
    connections: u32,
    script: Option<&Path>,
    script_args: &[String],
) -> anyhow::Result<Run> {
    let mut command = tokio::process::Command::new("wrk");
    command
        .arg(if connections < 2 { "-t1" } else { "-t2" })
        .arg(format!("-c{connections}"))
        .arg(format!("-d{}s", duration.as_secs()))
        .arg("--latency");
    if let Some(script) = script {
        command.arg("-s").arg(script);
    }
    command
        .arg(url)
        .args(if script_args.is_empty() {
            &[][..]
        } else {
            &["--"][..]
        })
        .args(script_args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let before = procfs::children_cpu()?;
    let output = command
        .output()
        .await
        .context("running wrk (apt-get install wrk)")?;
    let wrk_cpu = procfs::children_cpu()? - before;
    if !output.status.success() {
        bail!("wrk failed: {}", String::from_utf8_lossy(&output.stderr));
    }
    let mut run = parse(&String::from_utf8_lossy(&output.stdout))?;
    run.wrk_cpu = wrk_cpu;
    Ok(run)
}

/// wrk's text output to figures.
pub fn parse(text: &str) -> anyhow::Result<Run> {
    let mut run = Run::default();
    for line in text.lines().map(str::trim) {
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            ["50%", value] => run.p50_ms = millis(value)?,
            ["99%", value] => run.p99_ms = millis(value)?,
            [requests, "requests", "in", ..] => run.requests = requests.parse()?,
            ["Requests/sec:", value] => run.per_second = value.parse()?,
            ["Non-2xx", "or", "3xx", "responses:", n] => run.non_2xx = n.parse()?,
            ["Socket", "errors:", rest @ ..] => {
                run.socket_errors = rest
                    .iter()
                    .filter_map(|w| w.trim_end_matches(',').parse::<u64>().ok())
                    .sum()
            }
            _ => {}
        }
    }
    if run.requests == 0 {
        bail!("wrk gave no figures:\n{text}");
    }
    Ok(run)
}

/// `1.23ms`, `456.00us`, `1.20s` to milliseconds.
fn millis(value: &str) -> anyhow::Result<f64> {
    let (number, factor) = if let Some(n) = value.strip_suffix("us") {
        (n, 0.001)
    } else if let Some(n) = value.strip_suffix("ms") {
        (n, 1.0)
    } else if let Some(n) = value.strip_suffix('s') {
        (n, 1000.0)
    } else {
        bail!("unexpected wrk latency {value:?}")
    };
    Ok(number.parse::<f64>()? * factor)
}

#[cfg(test)]
mod tests {
    use super::*;

    const OUTPUT: &str = "Running 5s test @ http://127.0.0.1:3310/
  2 threads and 64 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     2.10ms    1.01ms  20.00ms   80.00%
  Latency Distribution
     50%  812.00us
     75%    2.50ms
     90%    3.10ms
     99%    1.20s
  123456 requests in 5.00s, 12.34MB read
  Socket errors: connect 0, read 2, write 0, timeout 1
  Non-2xx or 3xx responses: 17
Requests/sec:  24691.20
Transfer/sec:      2.47MB
";

    #[test]
    fn wrk_output_gives_rate_latencies_and_errors() {
        let run = parse(OUTPUT).expect("parses");
        assert_eq!(run.requests, 123_456);
        assert!((run.per_second - 24_691.2).abs() < 1e-6);
        assert!((run.p50_ms - 0.812).abs() < 1e-9);
        assert!((run.p99_ms - 1200.0).abs() < 1e-9);
        assert_eq!(run.non_2xx, 17);
        assert_eq!(run.socket_errors, 3);
    }

    #[test]
    fn output_without_figures_is_an_error() {
        assert!(parse("unable to connect to 127.0.0.1:1").is_err());
    }
}
