//! `api`: the HTTP service. Settings from the environment (and `.env`).

use anyhow::Context;
use api::{Application, Settings};
use domain::{config::Env, telemetry};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let _ = dotenvy::dotenv();
    let settings = Settings::from_env(&Env::from_process()).context("reading settings")?;
    // Held to the end: dropping it flushes the lines still queued.
    let _log = telemetry::init(settings.log_format, "info");
    let app = Application::build(settings).await?;
    // SIGTERM / Ctrl-C: live streams end, in-flight requests finish (up to
    // 30 s), then it returns.
    app.run_until_stopped()
        .await
        .context("running the HTTP server")
}
