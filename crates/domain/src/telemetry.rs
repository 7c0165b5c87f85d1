//! The tracing subscriber both binaries install once at start.

use std::str::FromStr;

use std::io::Write;

use tracing_appender::non_blocking::{ErrorCounter, NonBlocking, NonBlockingBuilder, WorkerGuard};
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

/// Lines waiting for the writer thread at most; past it new lines are
/// dropped ([`LogGuard::dropped`] counts them) rather than making a request
/// wait for stdout.
const BUFFERED_LINES: usize = 100_000;

/// Keeps the log writer thread alive; dropping it flushes what is queued
/// and says on stderr how many lines were dropped, if any. Hold it until
/// the process ends.
#[must_use = "dropping the guard stops the log writer"]
pub struct LogGuard(Option<WorkerGuard>, ErrorCounter);

impl Drop for LogGuard {
    fn drop(&mut self) {
        drop(self.0.take());
        let dropped = self.1.dropped_lines();
        if dropped > 0 {
            eprintln!("{dropped} log lines dropped: the log writer fell behind stdout");
        }
    }
}

/// A writer that hands lines to a thread of its own (see [`init`]).
fn off_thread<W: Write + Send + 'static>(out: W) -> (NonBlocking, WorkerGuard) {
    NonBlockingBuilder::default()
        .buffered_lines_limit(BUFFERED_LINES)
        .lossy(true)
        .finish(out)
}

/// Installs the global subscriber; `RUST_LOG` filters, `default_filter`
/// otherwise. Lines are formatted on the thread that logs and written to
/// stdout by a thread of their own, a batch per write: a request never
/// waits for stdout (a pipe or a busy disk), which halved throughput at
/// `info` when every request wrote its line itself.
///
/// Does nothing if a subscriber is installed already (tests call it often).
pub fn init(format: LogFormat, default_filter: &str) -> LogGuard {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_filter));
    // The writer thread drains what is queued, then flushes: one write per
    // batch of lines, not one per line.
    let (writer, guard) = off_thread(std::io::BufWriter::with_capacity(
        1 << 16,
        std::io::stdout(),
    ));
    let dropped = writer.error_counter();
    let builder = fmt()
        .with_env_filter(filter)
        .with_target(true)
        .with_writer(writer);
    let installed = match format {
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .try_init(),
        LogFormat::Pretty => builder.compact().try_init(),
    };
    LogGuard(installed.ok().map(|()| guard), dropped)
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

    /// Writes only when the test opens the gate, like stdout into a full
    /// pipe nobody reads.
    struct Gate {
        open: std::sync::mpsc::Receiver<()>,
        lines: std::sync::Arc<std::sync::Mutex<Vec<u8>>>,
    }

    impl Write for Gate {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            let _ = self.open.recv();
            if let Ok(mut lines) = self.lines.lock() {
                lines.extend_from_slice(buf);
            }
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn logging_never_waits_for_a_stuck_stdout() {
        let (opener, open) = std::sync::mpsc::channel();
        let lines = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let (writer, guard) = off_thread(Gate {
            open,
            lines: lines.clone(),
        });
        let subscriber = fmt().with_writer(writer).finish();
        // A request thread logs while nothing can be written.
        let (done, logged) = std::sync::mpsc::channel();
        let request = std::thread::spawn(move || {
            tracing::subscriber::with_default(subscriber, || {
                for i in 0..10 {
                    tracing::info!(i, "request completed");
                }
            });
            let _ = done.send(());
        });
        let finished = logged.recv_timeout(std::time::Duration::from_secs(10));
        // Open the gate for every write, then flush what is queued.
        for _ in 0..100 {
            let _ = opener.send(());
        }
        drop(guard);
        let _ = request.join();
        assert!(finished.is_ok(), "the logging thread waited for the writer");
        let written = lines.lock().map(|l| l.clone()).unwrap_or_default();
        let text = String::from_utf8_lossy(&written);
        assert_eq!(text.matches("request completed").count(), 10, "{text}");
    }

    #[test]
    fn a_chain_shows_every_cause() {
        let error = Outer(std::io::Error::other("root"));
        assert_eq!(chain(&error), "outer: root");
    }
}
