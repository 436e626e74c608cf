//! Periodic removal of expired refresh tokens: sleep until the manager's next cleanup
//! deadline, remove what expired, re-arm.

use std::time::Duration;

use latch_auth::AuthManager;
use tokio::sync::watch;

/// Longest single sleep: the deadline is re-read at least this often, so a clock that
/// jumps or a token whose expiry changed is noticed.
const MAX_SLEEP: Duration = Duration::from_secs(3600);
/// Shortest time between two cleanups.
const MIN_INTERVAL: Duration = Duration::from_secs(1);
/// Wait after a failed cleanup.
const RETRY_AFTER: Duration = Duration::from_secs(60);

/// How long to sleep before the cleanup due at `due`, seen at `now`.
fn delay(due: chrono::DateTime<chrono::Utc>, now: chrono::DateTime<chrono::Utc>) -> Duration {
    (due - now)
        .to_std()
        .unwrap_or(Duration::ZERO)
        .clamp(MIN_INTERVAL, MAX_SLEEP)
}

/// Runs until `stop` turns true.
pub(crate) async fn run(manager: AuthManager, mut stop: watch::Receiver<bool>) {
    loop {
        let due = manager.next_cleanup_at();
        let wait = delay(due, manager.now());
        tokio::select! {
            biased;
            _ = stop.wait_for(|stopped| *stopped) => return,
            () = tokio::time::sleep(wait) => {}
        }
        if manager.now() < due {
            // Woke for the cap, not the deadline: re-read it.
            continue;
        }
        match manager.cleanup_expired_tokens().await {
            Ok(0) => {}
            Ok(removed) => tracing::info!(removed, "expired refresh tokens removed"),
            Err(e) => {
                tracing::warn!(%e, "removing expired refresh tokens failed; retrying in a minute");
                tokio::select! {
                    biased;
                    _ = stop.wait_for(|stopped| *stopped) => return,
                    () = tokio::time::sleep(RETRY_AFTER) => {}
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use chrono::{TimeDelta, TimeZone, Utc};

    use super::*;

    #[test]
    fn delay_is_clamped() {
        let now = Utc.with_ymd_and_hms(2024, 1, 1, 0, 0, 0).unwrap();
        assert_eq!(delay(now - TimeDelta::days(1), now), MIN_INTERVAL);
        assert_eq!(
            delay(now + TimeDelta::seconds(30), now),
            Duration::from_secs(30)
        );
        assert_eq!(delay(now + TimeDelta::days(90), now), MAX_SLEEP);
    }
}
