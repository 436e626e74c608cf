//! The forward-auth verify cache: a presented credential (a session cookie's refresh
//! token, or a bearer access token) → who it is, kept in memory so that a verify answer
//! on the hot path asks latchd nothing.
//!
//! Entries are keyed by the SHA-256 of the credential (the cache holds no secret) and
//! live until the access token behind them expires (a session's is then renewed from
//! its refresh token on the next request, server-side) or until latchd says something
//! changed: the cache follows latchd's event stream and drops a revoked refresh token's
//! entries, and every entry of a user who was updated (deactivated, regrouped, renamed)
//! or removed. After a reconnect or a lag (events may have been lost) it drops
//! everything. While the event stream is not live nothing is cached: each verify asks
//! latchd.
//!
//! A lookup that raced with an event (the event came while latchd was being asked) is
//! answered but not stored: a change is never hidden by an answer read before it.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use latch_client::{Client, ClientEvent};
use latch_protocol::{ErrorCode, Event, EventKind, GrantOutcome, TokenType};
use parking_lot::RwLock;
use sha2::{Digest as _, Sha256};

use crate::daemon::{Daemon, Failure};

/// Entries kept at most; past it, new lookups are answered but not stored.
pub(crate) const MAX_ENTRIES: usize = 100_000;

/// A bearer token whose expiry cannot be read is cached this long at most.
const BEARER_FALLBACK_TTL: Duration = Duration::from_secs(60);

/// Renew a session's access token this long before it expires.
const RENEW_MARGIN: Duration = Duration::from_secs(30);

/// Providers whose sign-ins never ask for a second factor (Home Assistant's
/// `support_mfa = False`).
const NO_MFA_PROVIDERS: [&str; 2] = ["trusted_networks", "legacy_api_password"];

/// How a credential came.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    /// The session cookie: a refresh token issued to latch-http's own client id.
    Session,
    /// `Authorization: Bearer`: an access token (long-lived ones included).
    Bearer,
}

/// Who a credential belongs to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Identity {
    pub(crate) user_id: String,
    /// The username, or the user id when the user has none.
    pub(crate) username: String,
    /// The display name.
    pub(crate) name: String,
    pub(crate) groups: Vec<String>,
    /// The sign-in behind the credential used a second factor.
    pub(crate) second_factor: bool,
    pub(crate) local_only: bool,
    pub(crate) refresh_token_id: String,
}

/// Why a credential gives no identity.
#[derive(Debug)]
pub(crate) enum Refused {
    /// Unknown, revoked, expired, or its user may not sign in from here.
    Invalid,
    /// latchd could not answer.
    Failed(Failure),
}

#[derive(Debug)]
struct Entry {
    identity: Arc<Identity>,
    expires: Instant,
}

#[derive(Debug, Default)]
struct Maps {
    entries: HashMap<[u8; 32], Entry>,
    by_token: HashMap<String, Vec<[u8; 32]>>,
    by_user: HashMap<String, Vec<[u8; 32]>>,
}

impl Maps {
    fn insert(&mut self, key: [u8; 32], entry: Entry) {
        let identity = Arc::clone(&entry.identity);
        if self.entries.insert(key, entry).is_none() {
            self.by_token
                .entry(identity.refresh_token_id.clone())
                .or_default()
                .push(key);
            self.by_user
                .entry(identity.user_id.clone())
                .or_default()
                .push(key);
        }
    }

    fn remove_keys(&mut self, keys: Vec<[u8; 32]>) {
        for key in keys {
            if let Some(entry) = self.entries.remove(&key) {
                let id = &entry.identity;
                if let Some(list) = self.by_token.get_mut(&id.refresh_token_id) {
                    list.retain(|k| *k != key);
                    if list.is_empty() {
                        self.by_token.remove(&id.refresh_token_id);
                    }
                }
                if let Some(list) = self.by_user.get_mut(&id.user_id) {
                    list.retain(|k| *k != key);
                    if list.is_empty() {
                        self.by_user.remove(&id.user_id);
                    }
                }
            }
        }
    }

    fn drop_token(&mut self, refresh_token_id: &str) {
        if let Some(keys) = self.by_token.remove(refresh_token_id) {
            self.remove_keys(keys);
        }
    }

    fn drop_user(&mut self, user_id: &str) {
        if let Some(keys) = self.by_user.remove(user_id) {
            self.remove_keys(keys);
        }
    }
}

/// The cache, shared by every request.
#[derive(Debug)]
pub(crate) struct VerifyCache {
    maps: RwLock<Maps>,
    /// Bumped by every event that drops something (and every clear).
    epoch: AtomicU64,
    /// The event stream is live: entries may be kept.
    live: AtomicBool,
    /// latch-http's own OAuth client id (the sessions' refresh tokens are issued to it).
    client_id: String,
}

/// The cache key of a credential.
pub(crate) fn key_of(credential: &str) -> [u8; 32] {
    Sha256::digest(credential.as_bytes()).into()
}

/// The `exp` claim of a JWT, read without checking it (latchd has checked the token;
/// this only bounds how long the answer is kept).
fn jwt_expiry(token: &str) -> Option<u64> {
    use base64::Engine as _;
    let payload = token.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .ok()?;
    let claims: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
    claims.get("exp")?.as_u64()
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl VerifyCache {
    pub(crate) fn new(client_id: String) -> Self {
        Self {
            maps: RwLock::new(Maps::default()),
            epoch: AtomicU64::new(0),
            live: AtomicBool::new(false),
            client_id,
        }
    }

    /// latch-http's own client id.
    pub(crate) fn client_id(&self) -> &str {
        &self.client_id
    }

    /// The number of entries.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.maps.read().entries.len()
    }

    /// The identity cached for `key`, if it is still good for a request from `ip`.
    fn cached(&self, key: &[u8; 32], ip: IpAddr, now: Instant) -> Option<Arc<Identity>> {
        let maps = self.maps.read();
        let entry = maps.entries.get(key)?;
        if entry.expires <= now {
            return None;
        }
        if entry.identity.local_only && !latch_models::is_local_address(ip) {
            // latchd would refuse it from here; let it say so.
            return None;
        }
        Some(Arc::clone(&entry.identity))
    }

    fn store(&self, key: [u8; 32], identity: &Arc<Identity>, expires: Instant, epoch: u64) {
        if !self.live.load(Ordering::Acquire) {
            return;
        }
        let mut maps = self.maps.write();
        // Checked under the write lock: an event that came during the lookup bumped it.
        if self.epoch.load(Ordering::Acquire) != epoch || maps.entries.len() >= MAX_ENTRIES {
            return;
        }
        maps.insert(
            key,
            Entry {
                identity: Arc::clone(identity),
                expires,
            },
        );
    }

    fn bump(&self) {
        self.epoch.fetch_add(1, Ordering::AcqRel);
    }

    /// Drops everything.
    pub(crate) fn clear(&self) {
        let mut maps = self.maps.write();
        self.bump();
        *maps = Maps::default();
    }

    /// Drops what an event makes stale.
    pub(crate) fn apply(&self, event: &Event) {
        let mut maps = self.maps.write();
        self.bump();
        match event {
            Event::RefreshTokenRevoked {
                refresh_token_id, ..
            } => maps.drop_token(refresh_token_id),
            Event::UserUpdated { user_id } | Event::UserRemoved { user_id } => {
                maps.drop_user(user_id);
            }
            _ => {}
        }
    }

    /// Drops the entry of one credential (a sign-out).
    pub(crate) fn forget(&self, credential: &str) {
        let mut maps = self.maps.write();
        self.bump();
        maps.remove_keys(vec![key_of(credential)]);
    }

    /// Who `credential` belongs to, from the cache or from latchd.
    pub(crate) async fn identify(
        &self,
        daemon: &Daemon,
        kind: Kind,
        credential: &str,
        ip: IpAddr,
    ) -> Result<Arc<Identity>, Refused> {
        let key = key_of(credential);
        let now = Instant::now();
        if let Some(identity) = self.cached(&key, ip, now) {
            return Ok(identity);
        }
        let epoch = self.epoch.load(Ordering::Acquire);
        let (identity, expires) = self.look_up(daemon, kind, credential, ip).await?;
        let identity = Arc::new(identity);
        self.store(key, &identity, expires, epoch);
        Ok(identity)
    }

    /// Asks latchd: for a session, a fresh access token from the refresh token; then
    /// the validation, the user, and the token's provider.
    async fn look_up(
        &self,
        daemon: &Daemon,
        kind: Kind,
        credential: &str,
        ip: IpAddr,
    ) -> Result<(Identity, Instant), Refused> {
        let client = daemon.client();
        let started = Instant::now();
        let (access, lifetime) = match kind {
            Kind::Session => {
                let outcome = daemon
                    .call(client.refresh_grant(credential, Some(&self.client_id), Some(ip)))
                    .await
                    .map_err(Refused::Failed)?;
                match outcome {
                    GrantOutcome::Refreshed(t) => (
                        t.access_token.into_inner(),
                        Duration::from_secs(t.expires_in).saturating_sub(RENEW_MARGIN),
                    ),
                    GrantOutcome::Refused(_) => return Err(Refused::Invalid),
                    GrantOutcome::Issued(_) => return Err(Refused::Failed(Failure::Broken)),
                }
            }
            Kind::Bearer => {
                let lifetime = jwt_expiry(credential).map_or(BEARER_FALLBACK_TTL, |exp| {
                    Duration::from_secs(exp.saturating_sub(unix_now()))
                });
                (credential.to_owned(), lifetime)
            }
        };
        let validated = match daemon
            .call(client.validate_token_from(&access, Some(ip)))
            .await
        {
            Ok(v) => v,
            Err(Failure::Api {
                code: ErrorCode::InvalidToken | ErrorCode::Forbidden,
                ..
            }) => return Err(Refused::Invalid),
            Err(e) => return Err(Refused::Failed(e)),
        };
        if !validated.user.is_active {
            return Err(Refused::Invalid);
        }
        let user = match daemon.call(client.get_user(&validated.user.id)).await {
            Ok(user) => user,
            Err(Failure::Api {
                code: ErrorCode::UserNotFound,
                ..
            }) => return Err(Refused::Invalid),
            Err(e) => return Err(Refused::Failed(e)),
        };
        let second_factor = validated.token_type == TokenType::Normal
            && !user.mfa_modules.is_empty()
            && self
                .provider_of(daemon, &user.id, &validated.refresh_token_id)
                .await?
                .is_some_and(|p| !NO_MFA_PROVIDERS.contains(&p.as_str()));
        let identity = Identity {
            username: user.username.clone().unwrap_or_else(|| user.id.clone()),
            name: user.display_name().to_owned(),
            groups: user.group_ids.clone(),
            local_only: user.local_only,
            user_id: user.id,
            second_factor,
            refresh_token_id: validated.refresh_token_id,
        };
        Ok((identity, started + lifetime))
    }

    /// The provider type a refresh token signed in with.
    async fn provider_of(
        &self,
        daemon: &Daemon,
        user_id: &str,
        refresh_token_id: &str,
    ) -> Result<Option<String>, Refused> {
        let tokens = daemon
            .call(daemon.client().list_tokens(user_id))
            .await
            .map_err(Refused::Failed)?;
        Ok(tokens
            .into_iter()
            .find(|t| t.id == refresh_token_id)
            .and_then(|t| t.auth_provider_type))
    }
}

/// The event kinds that make entries stale.
const KINDS: [EventKind; 3] = [
    EventKind::RefreshTokenRevoked,
    EventKind::UserUpdated,
    EventKind::UserRemoved,
];

/// Follows latchd's events for as long as the process runs: subscribes (again, after
/// a failure, every second), drops what each event makes stale, and drops everything
/// when events may have been lost.
pub(crate) async fn follow(cache: Arc<VerifyCache>, client: Client) {
    loop {
        match client.subscribe(KINDS).await {
            Ok(mut subscription) => {
                cache.clear();
                cache.live.store(true, Ordering::Release);
                tracing::debug!("following latchd's events for the verify cache");
                while let Some(event) = subscription.next_event().await {
                    match event {
                        ClientEvent::Event(event) => cache.apply(&event),
                        ClientEvent::Lagged { .. } | ClientEvent::Reconnected => cache.clear(),
                    }
                }
                cache.live.store(false, Ordering::Release);
                cache.clear();
                tracing::warn!(
                    "latchd's event stream ended: the verify cache is off until it is back"
                );
            }
            Err(e) => {
                cache.live.store(false, Ordering::Release);
                tracing::debug!(error = %e, "cannot follow latchd's events yet");
            }
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn identity(user: &str, token: &str) -> Arc<Identity> {
        Arc::new(Identity {
            user_id: user.into(),
            username: user.into(),
            name: user.into(),
            groups: vec![],
            second_factor: false,
            local_only: false,
            refresh_token_id: token.into(),
        })
    }

    fn live_cache() -> VerifyCache {
        let cache = VerifyCache::new("https://auth.example/".into());
        cache.live.store(true, Ordering::Release);
        cache
    }

    const IP: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(203, 0, 113, 9));

    #[test]
    fn events_drop_what_they_make_stale() {
        let cache = live_cache();
        let later = Instant::now() + Duration::from_secs(60);
        let epoch = cache.epoch.load(Ordering::Acquire);
        cache.store(key_of("a"), &identity("u1", "t1"), later, epoch);
        cache.store(key_of("b"), &identity("u1", "t2"), later, epoch);
        cache.store(key_of("c"), &identity("u2", "t3"), later, epoch);
        assert_eq!(cache.len(), 3);
        cache.apply(&Event::RefreshTokenRevoked {
            user_id: "u1".into(),
            refresh_token_id: "t1".into(),
        });
        assert!(cache.cached(&key_of("a"), IP, Instant::now()).is_none());
        assert!(cache.cached(&key_of("b"), IP, Instant::now()).is_some());
        cache.apply(&Event::UserUpdated {
            user_id: "u1".into(),
        });
        assert!(cache.cached(&key_of("b"), IP, Instant::now()).is_none());
        assert_eq!(cache.len(), 1);
        cache.apply(&Event::UserRemoved {
            user_id: "u2".into(),
        });
        assert_eq!(cache.len(), 0);
        assert!(cache.maps.read().by_user.is_empty());
        assert!(cache.maps.read().by_token.is_empty());
    }

    #[test]
    fn a_lookup_that_raced_an_event_is_not_stored() {
        let cache = live_cache();
        let later = Instant::now() + Duration::from_secs(60);
        let before = cache.epoch.load(Ordering::Acquire);
        cache.apply(&Event::UserUpdated {
            user_id: "someone".into(),
        });
        cache.store(key_of("a"), &identity("u1", "t1"), later, before);
        assert_eq!(cache.len(), 0);
    }

    #[test]
    fn nothing_is_kept_while_events_are_not_followed_and_expiry_counts() {
        let cache = VerifyCache::new("https://auth.example/".into());
        let now = Instant::now();
        cache.store(
            key_of("a"),
            &identity("u1", "t1"),
            now + Duration::from_secs(60),
            0,
        );
        assert_eq!(cache.len(), 0);
        let cache = live_cache();
        cache.store(
            key_of("a"),
            &identity("u1", "t1"),
            now + Duration::from_secs(1),
            0,
        );
        assert!(cache.cached(&key_of("a"), IP, now).is_some());
        assert!(
            cache
                .cached(&key_of("a"), IP, now + Duration::from_secs(2))
                .is_none()
        );
        cache.clear();
        assert_eq!(cache.len(), 0);
    }

    #[test]
    fn local_only_users_are_not_served_from_the_cache_to_remote_addresses() {
        let cache = live_cache();
        let mut local = (*identity("u1", "t1")).clone();
        local.local_only = true;
        cache.store(
            key_of("a"),
            &Arc::new(local),
            Instant::now() + Duration::from_secs(60),
            0,
        );
        assert!(cache.cached(&key_of("a"), IP, Instant::now()).is_none());
        let lan: IpAddr = "192.168.1.2".parse().unwrap();
        assert!(cache.cached(&key_of("a"), lan, Instant::now()).is_some());
    }

    #[test]
    fn a_jwt_expiry_is_read_and_garbage_is_not() {
        use base64::Engine as _;
        let b64 = |s: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s);
        let token = format!("{}.{}.sig", b64("{}"), b64(r#"{"exp":1700000000}"#));
        assert_eq!(jwt_expiry(&token), Some(1_700_000_000));
        assert_eq!(jwt_expiry("nope"), None);
        assert_eq!(jwt_expiry("a.!!!.b"), None);
    }
}
