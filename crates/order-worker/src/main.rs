//! `order-worker` persists orders; `order-worker migrate` applies migrations alone.

use anyhow::Context;
use domain::{config::Env, telemetry};
use order_worker::WorkerSettings;
use tokio_util::sync::CancellationToken;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let _ = dotenvy::dotenv();
    let settings = WorkerSettings::from_env(&Env::from_process()).context("reading settings")?;
    // Held to the end: dropping it flushes the lines still queued.
    let _log = telemetry::init(settings.log_format, "info");

    match std::env::args().nth(1).as_deref() {
        None | Some("run") => {
            let shutdown = CancellationToken::new();
            tokio::spawn(cancel_on_signal(shutdown.clone()));
            order_worker::run(settings, shutdown).await
        }
        Some("migrate") => order_worker::migrate(&settings).await,
        Some(other) => anyhow::bail!("unknown command {other:?}; expected `run` or `migrate`"),
    }
}

/// SIGTERM or Ctrl-C: stop taking jobs, let in-flight ones finish.
async fn cancel_on_signal(shutdown: CancellationToken) {
    domain::signals::stop_requested().await;
    tracing::info!("shutdown requested");
    shutdown.cancel();
}
