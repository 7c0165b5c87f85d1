//! The tracing subscriber both binaries install once at start.

use std::str::FromStr;

use tracing_subscriber::{fmt, EnvFilter};

/// Latency histogram buckets in seconds, 0.25 ms to 5 s, of every
/// `*_duration_seconds` metric of both services.
pub const LATENCY_BUCKETS: &[f64] = &[
    0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
];

/// `LOG_FORMAT`: JSON lines for production, human-readable locally.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogFormat {
    Json,
    #[default]
    Pretty,
}

impl FromStr for LogFormat {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "json" => Ok(Self::Json),
            "pretty" | "text" => Ok(Self::Pretty),
            other => Err(format!("expected json or pretty, got {other}")),
        }
    }
}

/// Installs the global subscriber; `RUST_LOG` filters, `default_filter` otherwise.
///
/// Does nothing if a subscriber is installed already (tests call it often).
pub fn init(format: LogFormat, default_filter: &str) {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_filter));
    let builder = fmt().with_env_filter(filter).with_target(true);
    let _ = match format {
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .try_init(),
        LogFormat::Pretty => builder.compact().try_init(),
    };
}

/// An error and its causes as one line (`outer: inner: root`), for a log
/// field: `Display` alone shows only the outer message.
pub fn chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut line = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        line.push_str(": ");
        line.push_str(&cause.to_string());
        source = cause.source();
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("outer")]
    struct Outer(#[source] std::io::Error);

    #[test]
    fn a_chain_shows_every_cause() {
        let error = Outer(std::io::Error::other("root"));
        assert_eq!(chain(&error), "outer: root");
    }
}
