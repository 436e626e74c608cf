//! Process signals and the systemd notification protocol.

/// Installs the SIGTERM and SIGINT handlers NOW and returns a future that resolves at
/// the first of them (Ctrl-C elsewhere). Call it before starting the daemon: a handler
/// registered only when the future is first polled would leave a window after
/// `READY=1` in which a SIGTERM kills latchd with the default action, skipping the
/// graceful stop. Must be called inside a Tokio runtime.
pub fn shutdown_signal() -> impl Future<Output = ()> + Send {
    #[cfg(unix)]
    let handlers = {
        use tokio::signal::unix::{SignalKind, signal};
        match (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        ) {
            (Ok(term), Ok(int)) => Some((term, int)),
            (Err(e), _) | (_, Err(e)) => {
                tracing::error!(%e, "cannot listen for SIGTERM/SIGINT; stopping on Ctrl-C only");
                None
            }
        }
    };
    async move {
        #[cfg(unix)]
        if let Some((mut term, mut int)) = handlers {
            tokio::select! {
                _ = term.recv() => tracing::info!("SIGTERM received"),
                _ = int.recv() => tracing::info!("SIGINT received"),
            }
            return;
        }
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::error!(%e, "cannot listen for Ctrl-C either; stopping now");
        }
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
