//! How both services learn they should stop.

/// Resolves on SIGTERM (orchestrators) or Ctrl-C, whichever comes first;
/// on Ctrl-C alone where SIGTERM cannot be listened for.
pub async fn stop_requested() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = ctrl_c => {}
                _ = term.recv() => {}
            }
            return;
        }
    }
    let _ = ctrl_c.await;
}
