//! Listings that can outgrow one frame, read a page at a time, and the direct lookups
//! that spare a client from listing everything to find one user.
//!
//! Pages are in a stable order (users and tokens by id, lockouts by their key's text)
//! and each starts after the cursor given; the whole selection is made from memory
//! under one short read of the store. The unpaged listings (`ListUsers`, `ListTokens`,
//! `ListLockouts`) still answer while they fit a frame, and answer `answer_too_large`
//! instead of failing the frame once they do not.

use std::net::IpAddr;
use std::sync::Arc;

use latch_auth::AuthManager;
use latch_auth::throttle::Verdict;
use latch_protocol::{
    ApiError, ErrorCode, LockoutInfo, MAX_FRAME_LEN, Page, Response, ThrottleState, Timestamp,
    clamp_limit,
};
use latch_provider_homeassistant::normalize_username;
use parking_lot::Mutex;

use crate::convert;
use crate::events::lockout_key;
use crate::handler::Answer;

/// Bytes a response frame adds around its response: frame and result tags, the request
/// id (a varint of up to 10 bytes), with room to spare.
const FRAME_OVERHEAD: usize = 32;

/// The `limit` smallest keys above `after`, sorted, and whether more remain.
fn smallest_after<'a>(
    keys: impl Iterator<Item = &'a str>,
    after: Option<&str>,
    limit: usize,
) -> (Vec<String>, bool) {
    let mut picked: Vec<&str> = keys.filter(|k| after.is_none_or(|a| *k > a)).collect();
    let more = picked.len() > limit;
    if more {
        picked.select_nth_unstable(limit);
        picked.truncate(limit);
    }
    picked.sort_unstable();
    (picked.into_iter().map(str::to_owned).collect(), more)
}

/// Every user id in order, as of a store version, so that the pages after the first
/// one of a listing are a binary search instead of a scan of every user.
///
/// A listing's first page (no cursor) sorts the ids afresh; a later page uses them
/// while no commit has landed since (the store's commit count is the version), and
/// otherwise selects its page from the live users. Users removed since are left out
/// either way.
#[derive(Debug, Default)]
pub(crate) struct UserIndex {
    sorted: Mutex<Option<(u64, Arc<Vec<String>>)>>,
}

impl UserIndex {
    /// The page's ids and whether more remain, from the index when it is current.
    fn page(&self, m: &AuthManager, after: Option<&str>, limit: usize) -> (Vec<String>, bool) {
        // Read before the data: a commit landing after this makes the index stale.
        let version = m.store().stats().commits;
        let current = match after {
            None => {
                let mut ids: Vec<String> = m
                    .store()
                    .read(|d| d.users().map(|u| u.id.as_str().to_owned()).collect());
                ids.sort_unstable();
                let ids = Arc::new(ids);
                *self.sorted.lock() = Some((version, Arc::clone(&ids)));
                Some(ids)
            }
            Some(_) => self
                .sorted
                .lock()
                .as_ref()
                .filter(|(v, _)| *v == version)
                .map(|(_, ids)| Arc::clone(ids)),
        };
        let Some(ids) = current else {
            return m
                .store()
                .read(|d| smallest_after(d.users().map(|u| u.id.as_str()), after, limit));
        };
        let start = after.map_or(0, |a| ids.partition_point(|id| id.as_str() <= a));
        let end = start.saturating_add(limit).min(ids.len());
        (ids[start..end].to_vec(), end < ids.len())
    }
}

/// `ListUsersPage`.
pub(crate) fn users_page(
    m: &AuthManager,
    index: &UserIndex,
    after: Option<&str>,
    limit: u32,
) -> Answer {
    let limit = clamp_limit(limit);
    let (ids, more) = index.page(m, after, limit);
    // A user removed since the selection is left out; the cursor still moves on.
    let users = ids
        .iter()
        .filter_map(|id| m.user(id))
        .map(|u| convert::user_info(m, &u));
    let mut page = Page::fill(users, u32::MAX, more, |u| u.id.clone());
    if page.next.is_none() && more {
        page.next = ids.last().cloned();
    }
    Ok(Response::UserPage(page))
}

/// The password provider's id, to pick its credentials only.
fn password_provider_id(m: &AuthManager) -> Option<Option<String>> {
    m.providers()
        .iter()
        .find(|p| p.provider_type() == "homeassistant")
        .map(|p| p.id().map(str::to_owned))
}

fn user_not_found(what: impl std::fmt::Display) -> ApiError {
    ApiError::new(ErrorCode::UserNotFound, format!("no user {what}"))
}

/// `GetUserByUsername`: the first credential in store order whose username matches, as
/// Home Assistant finds the credential of a login.
pub(crate) fn user_by_username(m: &AuthManager, username: &str) -> Answer {
    let wanted = normalize_username(username);
    let not_found = || user_not_found(format_args!("has the username {username:?}"));
    if wanted.is_empty() {
        return Err(not_found());
    }
    let Some(provider_id) = password_provider_id(m) else {
        return Err(not_found());
    };
    let user_id = m.store().read(|d| {
        d.credential_by_username("homeassistant", provider_id.as_deref(), &wanted)
            .and_then(|c| c.user_id.clone())
    });
    let user = user_id
        .and_then(|id| m.user(id.as_str()))
        .ok_or_else(not_found)?;
    Ok(Response::User(convert::user_info(m, &user)))
}

/// `FindUsersByName`: users whose display name is exactly `name`, by id.
pub(crate) fn users_by_name(m: &AuthManager, name: &str, limit: u32) -> Answer {
    let (ids, _) = m.store().read(|d| {
        smallest_after(
            d.users()
                .filter(|u| u.name.as_deref() == Some(name))
                .map(|u| u.id.as_str()),
            None,
            clamp_limit(limit),
        )
    });
    Ok(Response::Users(
        ids.iter()
            .filter_map(|id| m.user(id))
            .map(|u| convert::user_info(m, &u))
            .collect(),
    ))
}

/// `ListTokensPage`.
pub(crate) fn tokens_page(
    m: &AuthManager,
    user_id: &str,
    after: Option<&str>,
    limit: u32,
) -> Answer {
    let limit = clamp_limit(limit);
    let selected = m.store().read(|d| {
        d.user(user_id)?;
        Some(smallest_after(
            d.refresh_tokens_of(user_id).map(|t| t.id.as_str()),
            after,
            limit,
        ))
    });
    let Some((ids, more)) = selected else {
        return Err(user_not_found(format_args!("has the id {user_id:?}")));
    };
    let tokens = ids
        .iter()
        .filter_map(|id| m.refresh_token(id))
        .map(|t| convert::token_info(m, &t));
    let mut page = Page::fill(tokens, u32::MAX, more, |t| t.id.clone());
    if page.next.is_none() && more {
        page.next = ids.last().cloned();
    }
    Ok(Response::TokenPage(page))
}

/// `ListLockoutsPage`: ordered by the key's text, which is also the cursor.
pub(crate) fn lockouts_page(m: &AuthManager, after: Option<&str>, limit: u32) -> Answer {
    let limit = clamp_limit(limit);
    let mut all: Vec<(String, LockoutInfo)> = m
        .lockouts()
        .iter()
        .map(convert::lockout_info)
        .map(|l| (l.key.to_string(), l))
        .filter(|(key, _)| after.is_none_or(|a| key.as_str() > a))
        .collect();
    all.sort_unstable_by(|a, b| a.0.cmp(&b.0));
    let more = all.len() > limit;
    all.truncate(limit);
    let page = Page::fill(all.into_iter().map(|(_, l)| l), u32::MAX, more, |l| {
        l.key.to_string()
    });
    Ok(Response::LockoutPage(page))
}

/// `LoginThrottle`: the throttle's verdict for an attempt now, without counting it.
pub(crate) fn login_throttle(
    m: &AuthManager,
    username: Option<&str>,
    ip_address: Option<IpAddr>,
) -> Answer {
    let state = match m.login_verdict(username, ip_address) {
        Verdict::Allow => ThrottleState {
            delay_ms: 0,
            locked_out: None,
        },
        Verdict::Delay(d) => ThrottleState {
            delay_ms: u64::try_from(d.as_millis()).unwrap_or(u64::MAX),
            locked_out: None,
        },
        Verdict::Refuse { until, key } => ThrottleState {
            delay_ms: 0,
            locked_out: Some((lockout_key(&key), Timestamp::from(until))),
        },
    };
    Ok(Response::Throttle(state))
}

/// An unpaged listing's answer if it fits a frame; else `answer_too_large`, naming the
/// paged request to use instead.
pub(crate) fn fit(response: Response, count: usize, what: &str, paged: &str) -> Answer {
    let len = response.encoded_len();
    if len.saturating_add(FRAME_OVERHEAD) <= MAX_FRAME_LEN {
        return Ok(response);
    }
    Err(ApiError::new(
        ErrorCode::AnswerTooLarge,
        format!(
            "{count} {what} do not fit in one answer ({len} bytes, the frame limit is \
             {MAX_FRAME_LEN}): ask for them a page at a time with {paged} (latch-client \
             pages for you)"
        ),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn smallest_after_picks_sorts_and_says_if_more_remain() {
        let keys = ["d", "a", "e", "b", "c"];
        let (page, more) = smallest_after(keys.into_iter(), None, 2);
        assert_eq!(page, ["a", "b"]);
        assert!(more);
        let (page, more) = smallest_after(keys.into_iter(), Some("b"), 2);
        assert_eq!(page, ["c", "d"]);
        assert!(more);
        let (page, more) = smallest_after(keys.into_iter(), Some("c"), 5);
        assert_eq!(page, ["d", "e"]);
        assert!(!more);
        let (page, more) = smallest_after(keys.into_iter(), Some("e"), 5);
        assert!(page.is_empty() && !more);
    }
}
