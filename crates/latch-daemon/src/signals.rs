//! Process signals and the systemd notification protocol.

/// Resolves at the first SIGTERM or SIGINT (Ctrl-C elsewhere).
pub async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        ) {
            (Ok(mut term), Ok(mut int)) => {
                tokio::select! {
                    _ = term.recv() => tracing::info!("SIGTERM received"),
                    _ = int.recv() => tracing::info!("SIGINT received"),
                }
                return;
            }
            (Err(e), _) | (_, Err(e)) => {
                tracing::error!(%e, "cannot listen for SIGTERM/SIGINT; stopping on Ctrl-C only");
            }
        }
    }
    if let Err(e) = tokio::signal::ctrl_c().await {
        tracing::error!(%e, "cannot listen for Ctrl-C either; stopping now");
    }
}

/// Tells systemd the daemon is ready (`READY=1`), when it runs under a `Type=notify`
/// unit (`NOTIFY_SOCKET` is set); does nothing otherwise.
pub fn notify_ready() {
    #[cfg(unix)]
    notify(&[sd_notify::NotifyState::Ready]);
}

/// Tells systemd the daemon is stopping (`STOPPING=1`), when `NOTIFY_SOCKET` is set.
pub fn notify_stopping() {
    #[cfg(unix)]
    notify(&[sd_notify::NotifyState::Stopping]);
}

#[cfg(unix)]
fn notify(state: &[sd_notify::NotifyState<'_>]) {
    if let Err(e) = sd_notify::notify(state) {
        tracing::warn!(%e, "cannot notify systemd");
    }
}
