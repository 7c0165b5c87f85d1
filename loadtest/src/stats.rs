//! Status counts and latency histograms of one scenario.

use std::{collections::BTreeMap, time::Duration};

use hdrhistogram::Histogram;
use serde_json::{json, Value};

/// Latencies in microseconds, 1 µs to 60 s, 3 significant figures.
pub struct Latencies(Histogram<u64>);

impl Default for Latencies {
    fn default() -> Self {
        Self(Histogram::new_with_bounds(1, 60_000_000, 3).expect("valid histogram bounds"))
    }
}

impl Latencies {
    pub fn record(&mut self, took: Duration) {
        let micros = u64::try_from(took.as_micros()).unwrap_or(u64::MAX);
        self.0.saturating_record(micros.max(1));
    }

    pub fn add(&mut self, other: &Latencies) {
        // Same bounds on both sides: adding cannot fail.
        let _ = self.0.add(&other.0);
    }

    pub fn count(&self) -> u64 {
        self.0.len()
    }

    fn ms_at(&self, quantile: f64) -> f64 {
        self.0.value_at_quantile(quantile) as f64 / 1000.0
    }

    /// p50/p95/p99/max in milliseconds.
    pub fn summary(&self) -> Value {
        json!({
            "count": self.count(),
            "p50_ms": self.ms_at(0.50),
            "p95_ms": self.ms_at(0.95),
            "p99_ms": self.ms_at(0.99),
            "max_ms": self.0.max() as f64 / 1000.0,
        })
    }

    pub fn line(&self) -> String {
        format!(
            "p50 {:.2} ms, p95 {:.2} ms, p99 {:.2} ms, max {:.2} ms ({} samples)",
            self.ms_at(0.50),
            self.ms_at(0.95),
            self.ms_at(0.99),
            self.0.max() as f64 / 1000.0,
            self.count()
        )
    }
}

/// Answers by HTTP status; `0` stands for no answer (connection error, timeout).
#[derive(Default, Clone)]
pub struct Statuses(pub BTreeMap<u16, u64>);

impl Statuses {
    pub fn add(&mut self, status: u16) {
        *self.0.entry(status).or_default() += 1;
    }

    pub fn merge(&mut self, other: &Statuses) {
        for (status, n) in &other.0 {
            *self.0.entry(*status).or_default() += n;
        }
    }

    pub fn get(&self, status: u16) -> u64 {
        self.0.get(&status).copied().unwrap_or(0)
    }

    pub fn total(&self) -> u64 {
        self.0.values().sum()
    }

    /// 5xx answers plus requests that got no answer at all.
    pub fn failures(&self) -> u64 {
        self.0
            .iter()
            .filter(|(status, _)| **status == 0 || **status >= 500)
            .map(|(_, n)| n)
            .sum()
    }

    pub fn to_json(&self) -> Value {
        Value::Object(
            self.0
                .iter()
                .map(|(status, n)| (status.to_string(), json!(n)))
                .collect(),
        )
    }

    pub fn line(&self) -> String {
        self.0
            .iter()
            .map(|(status, n)| match status {
                0 => format!("{n} x no answer"),
                _ => format!("{n} x {status}"),
            })
            .collect::<Vec<_>>()
            .join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_count_5xx_and_missing_answers_only() {
        let mut statuses = Statuses::default();
        for status in [201, 410, 410, 429, 503, 0] {
            statuses.add(status);
        }
        assert_eq!(statuses.total(), 6);
        assert_eq!(statuses.failures(), 2);
        assert_eq!(
            statuses.line(),
            "1 x no answer, 1 x 201, 2 x 410, 1 x 429, 1 x 503"
        );
    }

    #[test]
    fn quantiles_come_out_in_milliseconds() {
        let mut latencies = Latencies::default();
        for ms in 1..=100 {
            latencies.record(Duration::from_millis(ms));
        }
        let summary = latencies.summary();
        assert_eq!(summary["count"], 100);
        assert!((summary["p50_ms"].as_f64().unwrap_or(0.0) - 50.0).abs() < 0.1);
        assert!((summary["p99_ms"].as_f64().unwrap_or(0.0) - 99.0).abs() < 0.1);
    }
}
