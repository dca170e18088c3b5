//! The only place that handles signals: SIGINT (Ctrl-C) and SIGTERM ask a process to stop.
//! It owns waiting for them; it must not decide what stopping means (callers do, with a token).

use tokio_util::sync::CancellationToken;

/// Resolves when SIGINT (Ctrl-C) or SIGTERM arrives; an error when signals cannot be watched
/// at all (SIGTERM unwatchable falls back to Ctrl-C alone). Needs a tokio runtime with signals.
pub async fn signalled() -> std::io::Result<()> {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    r = ctrl_c => r,
                    _ = term.recv() => Ok(()),
                }
            }
            Err(_) => ctrl_c.await,
        }
    }
    #[cfg(not(unix))]
    {
        ctrl_c.await
    }
}

/// A token cancelled on SIGTERM or Ctrl-C (SIGINT), logging `shutdown requested`.
pub fn shutdown_on_signals() -> CancellationToken {
    let token = CancellationToken::new();
    let t = token.clone();
    tokio::spawn(async move {
        let _ = signalled().await;
        tracing::info!("shutdown requested");
        t.cancel();
    });
    token
}
