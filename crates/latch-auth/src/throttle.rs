//! Brute-force throttling, beyond Home Assistant: failed logins are counted per username
//! and per source address inside a sliding window; past a threshold each further attempt
//! waits a growing delay, and past a second threshold attempts are refused until the
//! lockout expires. Lockouts always expire; sources in the allow-list are never throttled.
//!
//! Pure logic on an injected `now`; the manager does the waiting.
//!
//! Memory is bounded: at most [`ThrottleConfig::max_tracked`] keys (the least recently
//! failed are forgotten first), a username key holds at most 255 bytes of the name
//! (whatever was typed; see [`ThrottleKey::username`]), and an entry keeps at most the
//! failure times that can still change a decision (`max(lockout_after, delay_after +
//! 31)`), so each tracked key costs well under a kilobyte.

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::net::IpAddr;
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use ipnet::IpNet;
use latch_models::limits::{self, MAX_ECHO_BYTES};
use serde::{Deserialize, Serialize};

/// Throttling settings. The defaults suit a household: five free mistakes, then
/// 1 s, 2 s, 4 s, 8 s… (capped at 10 s) before each attempt, and after ten failures in
/// 15 minutes a 15-minute lockout.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ThrottleConfig {
    /// Turns throttling on or off.
    pub enabled: bool,
    /// Failures older than this are forgotten (seconds).
    pub window_secs: u64,
    /// Failures allowed inside the window before attempts are delayed.
    pub delay_after: u32,
    /// First delay (milliseconds); it doubles with every further failure.
    pub base_delay_ms: u64,
    /// Longest delay (milliseconds).
    pub max_delay_ms: u64,
    /// Failures inside the window that lock the username or source out (at most
    /// 1,024 count: a larger value locks out at 1,024).
    pub lockout_after: u32,
    /// How long a lockout lasts (seconds).
    pub lockout_secs: u64,
    /// Sources never throttled (CIDRs), e.g. the household LAN.
    pub allow: Vec<IpNet>,
    /// At most this many usernames and sources are tracked; the least recently failed
    /// are forgotten first, so a flood of random names cannot exhaust memory.
    pub max_tracked: usize,
}

impl Default for ThrottleConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            window_secs: 15 * 60,
            delay_after: 5,
            base_delay_ms: 1_000,
            max_delay_ms: 10_000,
            lockout_after: 10,
            lockout_secs: 15 * 60,
            allow: Vec::new(),
            max_tracked: 100_000,
        }
    }
}

/// An entry keeps at most this many failure times, whatever the configuration.
const MAX_FAILURES_KEPT: u32 = 1_024;

/// What is being throttled.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum ThrottleKey {
    /// A username as typed, trimmed, lower-cased and [sanitised](limits::sanitize): at
    /// most 255 bytes, no control characters.
    Username(String),
    /// A source address.
    Source(IpAddr),
}

impl ThrottleKey {
    /// A username key; the name is trimmed and lower-cased so case games do not help,
    /// control characters become U+FFFD and a name longer than 255 bytes is cut (ending
    /// in `…`), so a flood of huge names cannot fill the table. Idempotent: the key of a
    /// key's name is the key itself, so a key shown to an operator can be typed back.
    /// The work is bounded whatever the length of `name`.
    #[must_use]
    pub fn username(name: &str) -> Self {
        Self::Username(username_key(name))
    }

    /// Parses `username:NAME` or `source:ADDR` (the form [`fmt::Display`] writes, and the
    /// one `latch lockouts` shows and takes).
    #[must_use]
    pub fn parse(s: &str) -> Option<Self> {
        if let Some(name) = s.strip_prefix("username:") {
            Some(Self::username(name))
        } else if let Some(addr) = s.strip_prefix("source:") {
            addr.parse().ok().map(Self::Source)
        } else {
            None
        }
    }
}

/// The name inside [`ThrottleKey::username`]; passing it back to the throttle names the
/// same key.
pub(crate) fn username_key(name: &str) -> String {
    let name = limits::prefix(name.trim(), MAX_ECHO_BYTES * 4);
    limits::sanitize(&name.to_lowercase())
}

impl fmt::Display for ThrottleKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Username(u) => write!(f, "username:{u}"),
            Self::Source(ip) => write!(f, "source:{ip}"),
        }
    }
}

/// The decision for one attempt.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Go ahead.
    Allow,
    /// Go ahead after waiting this long.
    Delay(Duration),
    /// Refused until this time.
    Refuse {
        /// When the lockout ends.
        until: DateTime<Utc>,
        /// Which key is locked.
        key: ThrottleKey,
    },
}

/// A tracked key, as listed to an operator.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Lockout {
    /// The username or source.
    pub key: ThrottleKey,
    /// Failures inside the window.
    pub failures: u32,
    /// Set while locked out.
    pub locked_until: Option<DateTime<Utc>>,
}

#[derive(Debug, Default)]
struct Entry {
    failures: VecDeque<DateTime<Utc>>,
    locked_until: Option<DateTime<Utc>>,
    last_failure: Option<DateTime<Utc>>,
}

/// The throttle's state. Not synchronised: the manager keeps it behind a mutex.
#[derive(Debug)]
pub struct Throttle {
    config: ThrottleConfig,
    entries: HashMap<ThrottleKey, Entry>,
}

impl Throttle {
    /// A throttle with no history.
    #[must_use]
    pub fn new(config: ThrottleConfig) -> Self {
        Self {
            config,
            entries: HashMap::new(),
        }
    }

    /// The settings.
    #[must_use]
    pub fn config(&self) -> &ThrottleConfig {
        &self.config
    }

    fn window(&self) -> TimeDelta {
        seconds(self.config.window_secs)
    }

    fn exempt(&self, source: Option<IpAddr>) -> bool {
        !self.config.enabled
            || source.is_some_and(|ip| {
                let ip = canonical(ip);
                self.config.allow.iter().any(|n| n.contains(&ip))
            })
    }

    fn keys(username: Option<&str>, source: Option<IpAddr>) -> Vec<ThrottleKey> {
        let mut keys = Vec::with_capacity(2);
        if let Some(u) = username.filter(|u| !u.trim().is_empty()) {
            keys.push(ThrottleKey::username(u));
        }
        if let Some(ip) = source {
            keys.push(ThrottleKey::Source(canonical(ip)));
        }
        keys
    }

    /// Decides whether an attempt for `username` from `source` may proceed now.
    #[must_use]
    pub fn check(
        &mut self,
        username: Option<&str>,
        source: Option<IpAddr>,
        now: DateTime<Utc>,
    ) -> Verdict {
        if self.exempt(source) {
            return Verdict::Allow;
        }
        let window = self.window();
        let mut worst = Verdict::Allow;
        for key in Self::keys(username, source) {
            let Some(entry) = self.entries.get_mut(&key) else {
                continue;
            };
            prune(entry, now, window);
            if let Some(until) = entry.locked_until {
                if until > now {
                    return Verdict::Refuse { until, key };
                }
                entry.locked_until = None;
            }
            let n = u32::try_from(entry.failures.len()).unwrap_or(u32::MAX);
            if n >= self.config.delay_after {
                let d = self.delay_for(n);
                if let Verdict::Delay(cur) = worst {
                    worst = Verdict::Delay(cur.max(d));
                } else {
                    worst = Verdict::Delay(d);
                }
            }
        }
        worst
    }

    /// The most failure times an entry needs: past this many, neither the delay (capped
    /// after 30 doublings) nor the lockout decision changes.
    fn failures_kept(&self) -> usize {
        let needed = self
            .lockout_after()
            .max(self.config.delay_after.saturating_add(31))
            .clamp(1, MAX_FAILURES_KEPT);
        usize::try_from(needed).unwrap_or(1)
    }

    /// `lockout_after`, at most [`MAX_FAILURES_KEPT`].
    fn lockout_after(&self) -> u32 {
        self.config.lockout_after.min(MAX_FAILURES_KEPT)
    }

    fn delay_for(&self, failures: u32) -> Duration {
        let steps = failures.saturating_sub(self.config.delay_after).min(30);
        let ms = self
            .config
            .base_delay_ms
            .saturating_mul(1u64 << steps)
            .min(self.config.max_delay_ms);
        Duration::from_millis(ms)
    }

    /// Records a failed attempt. Returns the keys this failure locked out, with the end
    /// of their lockout.
    pub fn record_failure(
        &mut self,
        username: Option<&str>,
        source: Option<IpAddr>,
        now: DateTime<Utc>,
    ) -> Vec<(ThrottleKey, DateTime<Utc>)> {
        if self.exempt(source) {
            return Vec::new();
        }
        let window = self.window();
        let lockout = seconds(self.config.lockout_secs);
        let mut locked = Vec::new();
        let kept = self.failures_kept();
        let lockout_after = self.lockout_after();
        for key in Self::keys(username, source) {
            if !self.entries.contains_key(&key) {
                self.make_room(now);
            }
            let entry = self.entries.entry(key.clone()).or_default();
            prune(entry, now, window);
            entry.failures.push_back(now);
            while entry.failures.len() > kept {
                entry.failures.pop_front();
            }
            entry.last_failure = Some(now);
            let n = u32::try_from(entry.failures.len()).unwrap_or(u32::MAX);
            if n >= lockout_after && entry.locked_until.is_none_or(|u| u <= now) {
                let until = now
                    .checked_add_signed(lockout)
                    .unwrap_or(DateTime::<Utc>::MAX_UTC);
                entry.locked_until = Some(until);
                // A lockout starts a fresh count once it expires.
                entry.failures.clear();
                locked.push((key, until));
            }
        }
        locked
    }

    /// Locks `key` out until `until`, as another host decided (a shared store carries
    /// lockouts between hosts; failures are counted on each host). A lockout already
    /// running here that ends later is kept. Returns false if nothing changed.
    pub fn impose(&mut self, key: ThrottleKey, until: DateTime<Utc>, now: DateTime<Utc>) -> bool {
        let key = match key {
            ThrottleKey::Username(name) => ThrottleKey::username(&name),
            ThrottleKey::Source(ip) => ThrottleKey::Source(canonical(ip)),
        };
        if until <= now {
            return false;
        }
        if !self.entries.contains_key(&key) {
            self.make_room(now);
        }
        let entry = self.entries.entry(key).or_default();
        if entry.locked_until.is_some_and(|u| u >= until) {
            return false;
        }
        entry.locked_until = Some(until);
        entry.failures.clear();
        entry.last_failure = Some(now);
        true
    }

    /// Records a successful login: the username's history is forgotten (the source's is
    /// not, so one good account cannot launder a source's failures).
    pub fn record_success(&mut self, username: Option<&str>) {
        if let Some(u) = username {
            self.entries.remove(&ThrottleKey::username(u));
        }
    }

    /// Every key with failures in the window or an active lockout.
    #[must_use]
    pub fn list(&mut self, now: DateTime<Utc>) -> Vec<Lockout> {
        let window = self.window();
        self.entries.retain(|_, e| {
            prune(e, now, window);
            !e.failures.is_empty() || e.locked_until.is_some_and(|u| u > now)
        });
        let mut out: Vec<Lockout> = self
            .entries
            .iter()
            .map(|(k, e)| Lockout {
                key: k.clone(),
                failures: u32::try_from(e.failures.len()).unwrap_or(u32::MAX),
                locked_until: e.locked_until.filter(|u| *u > now),
            })
            .collect();
        out.sort_by(|a, b| a.key.cmp(&b.key));
        out
    }

    /// Forgets a key's failures and lockout. Returns false if it was not tracked. The key
    /// is normalised as the throttle's own are (a username trimmed and lower-cased, an
    /// IPv4-mapped IPv6 source as its IPv4 address), so each spelling clears the one entry.
    pub fn clear(&mut self, key: &ThrottleKey) -> bool {
        let key = match key {
            ThrottleKey::Username(name) => ThrottleKey::username(name),
            ThrottleKey::Source(ip) => ThrottleKey::Source(canonical(*ip)),
        };
        self.entries.remove(&key).is_some()
    }

    fn make_room(&mut self, now: DateTime<Utc>) {
        if self.entries.len() < self.config.max_tracked.max(1) {
            return;
        }
        let window = self.window();
        self.entries.retain(|_, e| {
            prune(e, now, window);
            !e.failures.is_empty() || e.locked_until.is_some_and(|u| u > now)
        });
        while self.entries.len() >= self.config.max_tracked.max(1) {
            let oldest = self
                .entries
                .iter()
                .filter(|(_, e)| e.locked_until.is_none_or(|u| u <= now))
                .min_by_key(|(_, e)| e.last_failure)
                .or_else(|| self.entries.iter().min_by_key(|(_, e)| e.last_failure))
                .map(|(k, _)| k.clone());
            match oldest {
                Some(k) => {
                    self.entries.remove(&k);
                }
                None => break,
            }
        }
    }
}

/// `secs` as a duration, saturating where chrono's range ends (a configuration bounds
/// it far below that; this keeps any value from panicking).
fn seconds(secs: u64) -> TimeDelta {
    i64::try_from(secs)
        .ok()
        .and_then(TimeDelta::try_seconds)
        .unwrap_or(TimeDelta::MAX)
}

fn prune(entry: &mut Entry, now: DateTime<Utc>, window: TimeDelta) {
    // A window reaching before chrono's earliest time keeps every failure.
    let Some(horizon) = now.checked_sub_signed(window) else {
        return;
    };
    while entry.failures.front().is_some_and(|t| *t <= horizon) {
        entry.failures.pop_front();
    }
}

/// IPv4-mapped IPv6 addresses count as their IPv4 address.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        IpAddr::V4(_) => ip,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t0() -> DateTime<Utc> {
        DateTime::from_timestamp(1_700_000_000, 0).unwrap()
    }

    fn ip(s: &str) -> Option<IpAddr> {
        Some(s.parse().unwrap())
    }

    #[test]
    fn huge_windows_and_lockouts_saturate_instead_of_panicking() {
        for secs in [u64::MAX, i64::MAX as u64, i64::MAX as u64 / 1000 + 1] {
            let mut th = Throttle::new(ThrottleConfig {
                window_secs: secs,
                lockout_secs: secs,
                lockout_after: 2,
                ..ThrottleConfig::default()
            });
            fail_n(&mut th, 2, "bob", "10.0.0.1", t0());
            assert!(matches!(
                th.check(Some("bob"), ip("10.0.0.1"), t0()),
                Verdict::Refuse { .. }
            ));
            assert_eq!(th.list(t0()).len(), 2);
        }
    }

    fn fail_n(th: &mut Throttle, n: u32, user: &str, src: &str, now: DateTime<Utc>) {
        for _ in 0..n {
            th.record_failure(Some(user), ip(src), now);
        }
    }

    #[test]
    fn first_failures_are_free_then_delays_grow() {
        let mut th = Throttle::new(ThrottleConfig::default());
        let now = t0();
        fail_n(&mut th, 4, "bob", "10.0.0.1", now);
        assert_eq!(th.check(Some("bob"), ip("10.0.0.1"), now), Verdict::Allow);
        th.record_failure(Some("bob"), ip("10.0.0.1"), now);
        assert_eq!(
            th.check(Some("bob"), ip("10.0.0.1"), now),
            Verdict::Delay(Duration::from_secs(1))
        );
        th.record_failure(Some("bob"), ip("10.0.0.1"), now);
        assert_eq!(
            th.check(Some("bob"), ip("10.0.0.1"), now),
            Verdict::Delay(Duration::from_secs(2))
        );
        fail_n(&mut th, 2, "bob", "10.0.0.1", now);
        assert_eq!(
            th.check(Some("bob"), ip("10.0.0.1"), now),
            Verdict::Delay(Duration::from_secs(8))
        );
        th.record_failure(Some("bob"), ip("10.0.0.1"), now);
        assert_eq!(
            th.check(Some("bob"), ip("10.0.0.1"), now),
            Verdict::Delay(Duration::from_secs(10)),
            "capped at max_delay"
        );
    }

    #[test]
    fn an_imposed_lockout_refuses_until_it_ends_and_a_later_one_wins() {
        let mut t = Throttle::new(ThrottleConfig::default());
        let now = t0();
        let until = now + TimeDelta::minutes(15);
        assert!(t.impose(ThrottleKey::username("  Bob "), until, now));
        assert!(matches!(
            t.check(Some("bob"), None, now),
            Verdict::Refuse { until: u, .. } if u == until
        ));
        // An earlier end changes nothing; an end already past is ignored.
        assert!(!t.impose(
            ThrottleKey::username("bob"),
            now + TimeDelta::minutes(1),
            now
        ));
        assert!(!t.impose(ThrottleKey::username("eve"), now, now));
        assert_eq!(t.check(Some("eve"), None, now), Verdict::Allow);
        let v4: IpAddr = "10.0.0.1".parse().unwrap();
        let mapped: IpAddr = "::ffff:10.0.0.1".parse().unwrap();
        assert!(t.impose(ThrottleKey::Source(mapped), until, now));
        assert!(matches!(
            t.check(None, Some(v4), now),
            Verdict::Refuse { .. }
        ));
        assert_eq!(t.check(Some("bob"), None, until), Verdict::Allow);
    }

    #[test]
    fn lockout_refuses_then_expires() {
        let mut th = Throttle::new(ThrottleConfig::default());
        let now = t0();
        fail_n(&mut th, 9, "bob", "10.0.0.1", now);
        let locked = th.record_failure(Some("bob"), ip("10.0.0.1"), now);
        assert_eq!(locked.len(), 2, "both the username and the source lock");
        let until = now + TimeDelta::minutes(15);
        assert!(matches!(
            th.check(Some("bob"), ip("10.0.0.9"), now),
            Verdict::Refuse { until: u, key: ThrottleKey::Username(_) } if u == until
        ));
        assert!(matches!(
            th.check(Some("alice"), ip("10.0.0.1"), now),
            Verdict::Refuse {
                key: ThrottleKey::Source(_),
                ..
            }
        ));
        let later = until + TimeDelta::seconds(1);
        assert_eq!(th.check(Some("bob"), ip("10.0.0.1"), later), Verdict::Allow);
    }

    #[test]
    fn failures_outside_the_window_are_forgotten() {
        let mut th = Throttle::new(ThrottleConfig::default());
        let now = t0();
        fail_n(&mut th, 7, "bob", "10.0.0.1", now);
        let later = now + TimeDelta::minutes(15);
        assert_eq!(th.check(Some("bob"), ip("10.0.0.1"), later), Verdict::Allow);
        assert!(th.list(later).is_empty());
    }

    #[test]
    fn allow_listed_sources_are_exempt() {
        let cfg = ThrottleConfig {
            allow: vec!["192.168.0.0/16".parse().unwrap()],
            ..ThrottleConfig::default()
        };
        let mut th = Throttle::new(cfg);
        let now = t0();
        fail_n(&mut th, 50, "bob", "192.168.1.2", now);
        assert_eq!(
            th.check(Some("bob"), ip("192.168.1.2"), now),
            Verdict::Allow
        );
        assert_eq!(
            th.check(Some("bob"), ip("::ffff:192.168.1.2"), now),
            Verdict::Allow,
            "a mapped address is its IPv4 address"
        );
        assert!(th.list(now).is_empty());
    }

    #[test]
    fn clear_takes_every_spelling_of_a_key() {
        let config = ThrottleConfig {
            lockout_after: 1,
            ..ThrottleConfig::default()
        };
        let mut th = Throttle::new(config);
        let now = t0();
        th.record_failure(Some("Bob"), ip("10.0.0.7"), now);
        assert!(matches!(
            th.check(None, ip("10.0.0.7"), now),
            Verdict::Refuse { .. }
        ));
        // The mapped form of the address, as a client may report it, is the same source.
        assert!(th.clear(&ThrottleKey::Source("::ffff:10.0.0.7".parse().unwrap())));
        assert_eq!(th.check(None, ip("10.0.0.7"), now), Verdict::Allow);
        assert!(th.clear(&ThrottleKey::Username(" BOB".into())));
        assert!(th.list(now).is_empty());
    }

    #[test]
    fn usernames_are_case_and_space_insensitive() {
        let mut th = Throttle::new(ThrottleConfig::default());
        let now = t0();
        for (i, name) in ["Bob", " bob", "BOB ", "bob"]
            .iter()
            .cycle()
            .take(10)
            .enumerate()
        {
            let src = format!("10.0.1.{i}");
            th.record_failure(Some(name), ip(&src), now);
        }
        assert!(matches!(
            th.check(Some("bOb"), ip("10.9.9.9"), now),
            Verdict::Refuse { .. }
        ));
    }

    #[test]
    fn success_clears_the_username_only() {
        let mut th = Throttle::new(ThrottleConfig::default());
        let now = t0();
        fail_n(&mut th, 6, "bob", "10.0.0.1", now);
        th.record_success(Some("bob"));
        assert!(matches!(
            th.check(Some("bob"), ip("10.0.0.1"), now),
            Verdict::Delay(_)
        ));
        assert_eq!(th.check(Some("bob"), ip("10.0.0.2"), now), Verdict::Allow);
    }

    #[test]
    fn list_and_clear() {
        let mut th = Throttle::new(ThrottleConfig::default());
        let now = t0();
        fail_n(&mut th, 10, "bob", "10.0.0.1", now);
        let list = th.list(now);
        assert_eq!(list.len(), 2);
        assert!(list.iter().all(|l| l.locked_until.is_some()));
        let key = ThrottleKey::parse("username:BOB").unwrap();
        assert!(th.clear(&key));
        assert!(!th.clear(&key));
        assert_eq!(th.check(Some("bob"), ip("10.0.0.2"), now), Verdict::Allow);
        assert_eq!(
            ThrottleKey::parse("source:10.0.0.1").unwrap().to_string(),
            "source:10.0.0.1"
        );
        assert!(ThrottleKey::parse("nonsense").is_none());
    }

    #[test]
    fn memory_is_bounded() {
        let cfg = ThrottleConfig {
            max_tracked: 100,
            ..ThrottleConfig::default()
        };
        let mut th = Throttle::new(cfg);
        let now = t0();
        for i in 0..1_000 {
            th.record_failure(Some(&format!("user{i}")), None, now);
        }
        assert!(th.list(now).len() <= 100);
    }

    /// 1,000 failures with 100 KB usernames: the table keeps at most `max_tracked` keys
    /// of at most 255 bytes each, and no entry more failure times than it needs.
    #[test]
    fn huge_usernames_are_cut_and_the_table_stays_small() {
        let cfg = ThrottleConfig {
            max_tracked: 500,
            ..ThrottleConfig::default()
        };
        let mut th = Throttle::new(cfg);
        let now = t0();
        for i in 0..1_000 {
            let name = format!("{i:04}{}", "\u{1b}x".repeat(50_000));
            th.record_failure(Some(&name), None, now);
        }
        let list = th.list(now);
        assert!(list.len() <= 500);
        let bytes: usize = list
            .iter()
            .map(|l| match &l.key {
                ThrottleKey::Username(u) => {
                    assert!(u.len() <= 255, "{}", u.len());
                    assert!(!u.contains('\u{1b}'));
                    u.len()
                }
                ThrottleKey::Source(_) => 0,
            })
            .sum();
        assert!(bytes <= 500 * 255);
        // One name failing forever keeps only the failures that still matter.
        for _ in 0..10_000 {
            th.record_failure(Some("loop"), None, now);
        }
        let entry = &th.entries[&ThrottleKey::username("loop")];
        assert_eq!(entry.failures.len(), 5 + 31);
    }

    #[test]
    fn username_keys_are_idempotent_and_cut() {
        let key = ThrottleKey::username("  Bob\u{1b}[2J  ");
        assert_eq!(key, ThrottleKey::Username("bob\u{fffd}[2j".into()));
        let ThrottleKey::Username(name) = &key else {
            unreachable!()
        };
        assert_eq!(ThrottleKey::username(name), key);
        let long = ThrottleKey::username(&"N".repeat(10_000));
        let ThrottleKey::Username(name) = &long else {
            unreachable!()
        };
        assert_eq!(name.len(), 255);
        assert!(name.ends_with('…'));
        assert_eq!(ThrottleKey::username(name), long);
        // The form an operator sees parses back to the same key.
        assert_eq!(ThrottleKey::parse(&long.to_string()), Some(long));
    }

    #[test]
    fn disabled_throttle_allows_everything() {
        let mut th = Throttle::new(ThrottleConfig {
            enabled: false,
            ..ThrottleConfig::default()
        });
        let now = t0();
        fail_n(&mut th, 100, "bob", "10.0.0.1", now);
        assert_eq!(th.check(Some("bob"), ip("10.0.0.1"), now), Verdict::Allow);
    }
}
