//! Usage logging, the sliding 90-day expiry of `normal` tokens, and the cleanup schedule
//! (reference §3.4 step 2 and §3.6).

use chrono::{DateTime, Utc};
use latch_models::{REFRESH_TOKEN_EXPIRATION, RefreshToken, RefreshTokenId, truncate_to_micros};

use crate::time::{from_unix_seconds, unix_seconds};

/// Logs a use of `token` (an access token was minted from it), as
/// `async_log_refresh_token_usage` does: `last_used_at = now`; `last_used_ip =
/// remote_ip`, overwritten with `None` when no address is given; and, when `expire_at`
/// is set (and non-zero: Home Assistant tests its truthiness), the sliding expiry
/// `expire_at = now + 90 days`.
pub fn record_use(token: &mut RefreshToken, now: DateTime<Utc>, remote_ip: Option<String>) {
    let now = truncate_to_micros(now);
    token.last_used_at = Some(now);
    token.last_used_ip = remote_ip;
    if token.expire_at.is_some_and(|at| at != 0.0) {
        token.expire_at = Some(unix_seconds(now) + REFRESH_TOKEN_EXPIRATION);
    }
}

/// `async_set_expiry`: `enable == false` clears `expire_at`; `enable == true` sets it to
/// `(last_used_at or now) + 90 days` if it is unset and leaves it alone otherwise. Works
/// on every token type.
///
/// Returns `true` when Home Assistant would schedule a save (always when disabling; when
/// enabling, only if `expire_at` was unset).
pub fn set_expiry(token: &mut RefreshToken, enable: bool, now: DateTime<Utc>) -> bool {
    if !enable {
        token.expire_at = None;
        return true;
    }
    if token.expire_at.is_some() {
        return false;
    }
    let base = token
        .last_used_at
        .unwrap_or_else(|| truncate_to_micros(now));
    token.expire_at = Some(unix_seconds(base) + REFRESH_TOKEN_EXPIRATION);
    true
}

/// True if `token` has an `expire_at` at or before `now`. Validation never looks at this:
/// an expired token keeps working until the cleanup run removes it.
#[must_use]
pub fn is_expired(token: &RefreshToken, now: DateTime<Utc>) -> bool {
    token.is_expired(now)
}

/// When the cleanup timer should next fire: `min(now + 90 days, smallest expire_at)`.
/// The result may lie in the past (a token already due); an `expire_at` too far in the
/// past to be a date counts as due now.
#[must_use]
pub fn next_cleanup_at<'a>(
    tokens: impl IntoIterator<Item = &'a RefreshToken>,
    now: DateTime<Utc>,
) -> DateTime<Utc> {
    let now = truncate_to_micros(now);
    let mut next = unix_seconds(now) + REFRESH_TOKEN_EXPIRATION;
    for at in tokens.into_iter().filter_map(|t| t.expire_at) {
        if at < next {
            next = at;
        }
    }
    from_unix_seconds(next).unwrap_or(now)
}

/// Ids of the tokens the cleanup run removes at `now`: those with `expire_at <= now`.
/// The caller removes them through its normal revocation path, so callbacks run.
#[must_use]
pub fn expired_token_ids<'a>(
    tokens: impl IntoIterator<Item = &'a RefreshToken>,
    now: DateTime<Utc>,
) -> Vec<RefreshTokenId> {
    tokens
        .into_iter()
        .filter(|t| t.is_expired(now))
        .map(|t| t.id.clone())
        .collect()
}
