//! The in-memory state: every user, group, credential, token, provider entry and TOTP
//! record, in file order, with the indexes the hot paths need.

use std::borrow::Borrow;
use std::collections::hash_map::Entry;
use std::collections::{HashMap, HashSet};
use std::fmt;
use std::hash::Hash;
use std::slice;
use std::sync::Arc;

use chrono::{DateTime, Datelike, Utc};
use latch_models::{
    CredentialId, Credentials, Group, GroupId, RefreshToken, RefreshTokenId, Secret, User, UserId,
    normalize_username, system_group, system_groups, truncate_to_micros,
};
use sha2::{Digest, Sha256};

use crate::change::{Change, HaUser, TotpState};
use crate::error::{ChangeError, StoreError};
use crate::file::StoreFile;
use crate::format;
use crate::index::{CredentialIndex, UsernameIndex};

/// SHA-256 of a refresh token string: the key of the by-value index, so looking a token
/// up never compares secret bytes in variable time (the final check is constant-time).
pub(crate) type TokenDigest = [u8; 32];

pub(crate) fn token_digest(token: &str) -> TokenDigest {
    Sha256::digest(token.as_bytes()).into()
}

/// A map that keeps insertion order: replacing a value keeps its position, removing
/// shifts the rest (Python dict semantics, which Home Assistant's files follow).
#[derive(Clone, Debug)]
pub(crate) struct OrderedMap<K, V> {
    entries: Vec<(K, V)>,
    index: HashMap<K, usize>,
}

impl<K: Clone + Eq + Hash + Borrow<str>, V> OrderedMap<K, V> {
    pub(crate) fn new() -> Self {
        Self {
            entries: Vec::new(),
            index: HashMap::new(),
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    pub(crate) fn reserve(&mut self, n: usize) {
        self.entries.reserve(n);
        self.index.reserve(n);
    }

    pub(crate) fn get(&self, k: &str) -> Option<&V> {
        self.index.get(k).map(|&i| &self.entries[i].1)
    }

    pub(crate) fn get_mut(&mut self, k: &str) -> Option<&mut V> {
        let i = *self.index.get(k)?;
        Some(&mut self.entries[i].1)
    }

    pub(crate) fn position(&self, k: &str) -> Option<usize> {
        self.index.get(k).copied()
    }

    pub(crate) fn contains(&self, k: &str) -> bool {
        self.index.contains_key(k)
    }

    /// Replaces in place, or appends.
    pub(crate) fn insert(&mut self, k: K, v: V) -> Option<V> {
        if let Some(&i) = self.index.get(k.borrow()) {
            Some(std::mem::replace(&mut self.entries[i].1, v))
        } else {
            self.index.insert(k.clone(), self.entries.len());
            self.entries.push((k, v));
            None
        }
    }

    pub(crate) fn remove(&mut self, k: &str) -> Option<V> {
        let i = self.index.remove(k)?;
        let (_, v) = self.entries.remove(i);
        for (key, _) in &self.entries[i..] {
            if let Some(pos) = self.index.get_mut(key.borrow()) {
                *pos -= 1;
            }
        }
        Some(v)
    }

    pub(crate) fn iter(&self) -> slice::Iter<'_, (K, V)> {
        self.entries.iter()
    }
}

impl<K: PartialEq, V: PartialEq> PartialEq for OrderedMap<K, V> {
    fn eq(&self, other: &Self) -> bool {
        self.entries == other.entries
    }
}

/// A user with the ids of its credentials and tokens in file order.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct UserSlot {
    pub(crate) user: Arc<User>,
    pub(crate) credentials: Vec<CredentialId>,
    pub(crate) tokens: Vec<RefreshTokenId>,
}

/// Ids of the tokens whose value hashes to one digest (more than one only if two tokens
/// share a value, which Home Assistant's tests do).
#[derive(Clone, Debug)]
enum TokenRefs {
    One(RefreshTokenId),
    Many(Vec<RefreshTokenId>),
}

/// Everything the store holds, in memory.
///
/// Users, groups, provider entries and TOTP records keep file order; credentials and
/// refresh tokens keep per-user order, and are written grouped by user as Home
/// Assistant writes them. Lookups by id and by token value are hash-map lookups.
#[derive(Clone)]
pub struct AuthData {
    pub(crate) users: OrderedMap<UserId, UserSlot>,
    pub(crate) groups: OrderedMap<GroupId, Group>,
    pub(crate) credentials: HashMap<CredentialId, Arc<Credentials>>,
    pub(crate) tokens: HashMap<RefreshTokenId, Arc<RefreshToken>>,
    by_value: HashMap<TokenDigest, TokenRefs>,
    ha_users: Vec<HaUser>,
    /// `ha_users` positions by normalised username.
    ha_index: UsernameIndex,
    /// Bumped by every change to `ha_users`.
    ha_generation: u64,
    /// Credentials by provider and normalised `data.username`.
    credential_index: CredentialIndex,
    pub(crate) totp: OrderedMap<UserId, Secret>,
    pub(crate) totp_state: OrderedMap<UserId, TotpState>,
}

impl Default for AuthData {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for AuthData {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthData")
            .field("users", &self.users.len())
            .field("groups", &self.groups.len())
            .field("credentials", &self.credentials.len())
            .field("refresh_tokens", &self.tokens.len())
            .field("ha_users", &self.ha_users.len())
            .field("totp", &self.totp.len())
            .field("totp_state", &self.totp_state.len())
            .finish()
    }
}

impl PartialEq for AuthData {
    fn eq(&self, other: &Self) -> bool {
        self.users == other.users
            && self.groups == other.groups
            && self.credentials == other.credentials
            && self.tokens == other.tokens
            && self.ha_users == other.ha_users
            && self.totp == other.totp
            && self.totp_state == other.totp_state
    }
}

/// What compaction writes for one file, captured under a short read lock (the big parts
/// are shared `Arc`s, so capturing is cheap and encoding happens without the lock).
pub(crate) enum FileSnapshot {
    Auth {
        users: Vec<Arc<User>>,
        groups: Vec<Group>,
        credentials: Vec<Arc<Credentials>>,
        tokens: Vec<Arc<RefreshToken>>,
    },
    HaProvider(Vec<HaUser>),
    Totp(Vec<(UserId, Secret)>),
    LatchTotp(Vec<(UserId, TotpState)>),
}

impl AuthData {
    /// An empty store as Home Assistant starts one: no users, and the three system
    /// groups in the order admin, users, read-only.
    #[must_use]
    pub fn new() -> Self {
        let mut groups = OrderedMap::new();
        for g in system_groups() {
            groups.insert(g.id.clone(), g);
        }
        Self::with_groups(groups)
    }

    pub(crate) fn with_groups(groups: OrderedMap<GroupId, Group>) -> Self {
        Self {
            users: OrderedMap::new(),
            groups,
            credentials: HashMap::new(),
            tokens: HashMap::new(),
            by_value: HashMap::new(),
            ha_users: Vec::new(),
            ha_index: UsernameIndex::default(),
            ha_generation: 0,
            credential_index: CredentialIndex::default(),
            totp: OrderedMap::new(),
            totp_state: OrderedMap::new(),
        }
    }

    /// Reserves room for a load of known size.
    pub(crate) fn reserve(&mut self, users: usize, credentials: usize, tokens: usize) {
        self.users.reserve(users);
        self.credentials.reserve(credentials);
        self.tokens.reserve(tokens);
        self.by_value.reserve(tokens);
    }

    // ----- queries -----

    /// Users in file order.
    pub fn users(&self) -> impl Iterator<Item = &User> + '_ {
        self.users.iter().map(|(_, s)| &*s.user)
    }

    /// Number of users.
    #[must_use]
    pub fn user_count(&self) -> usize {
        self.users.len()
    }

    /// The user with this id.
    #[must_use]
    pub fn user(&self, id: &str) -> Option<&User> {
        self.users.get(id).map(|s| &*s.user)
    }

    /// Groups in file order.
    pub fn groups(&self) -> impl Iterator<Item = &Group> + '_ {
        self.groups.iter().map(|(_, g)| g)
    }

    /// The group with this id.
    #[must_use]
    pub fn group(&self, id: &str) -> Option<&Group> {
        self.groups.get(id)
    }

    /// All credentials in file order (grouped by user, in user order).
    pub fn credentials(&self) -> impl Iterator<Item = &Credentials> + '_ {
        self.users.iter().flat_map(|(_, s)| {
            s.credentials
                .iter()
                .filter_map(|id| self.credentials.get(id).map(|c| &**c))
        })
    }

    /// The credential with this id.
    #[must_use]
    pub fn credential(&self, id: &str) -> Option<&Credentials> {
        self.credentials.get(id).map(|c| &**c)
    }

    /// A user's credentials in order (empty for an unknown user).
    pub fn credentials_of<'a>(&'a self, user_id: &str) -> impl Iterator<Item = &'a Credentials> {
        self.users
            .get(user_id)
            .map(|s| s.credentials.as_slice())
            .unwrap_or_default()
            .iter()
            .filter_map(|id| self.credentials.get(id).map(|c| &**c))
    }

    /// All refresh tokens in file order (grouped by user, in user order).
    pub fn refresh_tokens(&self) -> impl Iterator<Item = &RefreshToken> + '_ {
        self.users.iter().flat_map(|(_, s)| {
            s.tokens
                .iter()
                .filter_map(|id| self.tokens.get(id).map(|t| &**t))
        })
    }

    /// Number of refresh tokens.
    #[must_use]
    pub fn refresh_token_count(&self) -> usize {
        self.tokens.len()
    }

    /// The refresh token with this id.
    #[must_use]
    pub fn refresh_token(&self, id: &str) -> Option<&RefreshToken> {
        self.tokens.get(id).map(|t| &**t)
    }

    /// The refresh token whose value is `token`: a hash lookup, then a constant-time
    /// comparison of the whole string.
    #[must_use]
    pub fn refresh_token_by_value(&self, token: &str) -> Option<&RefreshToken> {
        self.token_by_digest(&token_digest(token), token)
    }

    pub(crate) fn token_by_digest(
        &self,
        digest: &TokenDigest,
        token: &str,
    ) -> Option<&RefreshToken> {
        let ids: &[RefreshTokenId] = match self.by_value.get(digest)? {
            TokenRefs::One(id) => slice::from_ref(id),
            TokenRefs::Many(ids) => ids,
        };
        ids.iter()
            .filter_map(|id| self.tokens.get(id))
            .find(|t| t.token.ct_eq_str(token))
            .map(|t| &**t)
    }

    /// A user's refresh tokens in order (empty for an unknown user).
    pub fn refresh_tokens_of<'a>(
        &'a self,
        user_id: &str,
    ) -> impl Iterator<Item = &'a RefreshToken> {
        self.users
            .get(user_id)
            .map(|s| s.tokens.as_slice())
            .unwrap_or_default()
            .iter()
            .filter_map(|id| self.tokens.get(id).map(|t| &**t))
    }

    /// A refresh token with its user.
    #[must_use]
    pub fn refresh_token_with_user(&self, id: &str) -> Option<(&RefreshToken, &User)> {
        let t = self.tokens.get(id)?;
        let u = self.users.get(t.user_id.as_str())?;
        Some((t, &u.user))
    }

    /// The `homeassistant` provider entries in file order.
    #[must_use]
    pub fn ha_users(&self) -> &[HaUser] {
        &self.ha_users
    }

    /// The first provider entry with exactly this username.
    #[must_use]
    pub fn ha_user(&self, username: &str) -> Option<&HaUser> {
        self.ha_position(username).map(|i| &self.ha_users[i])
    }

    /// The provider entries whose username normalises to `normalized` (which must be
    /// normalised already, with [`latch_models::normalize_username`]), in file order:
    /// an index lookup, no stored name is folded.
    pub fn ha_users_by_normalized<'a>(
        &'a self,
        normalized: &str,
    ) -> impl DoubleEndedIterator<Item = &'a HaUser> + 'a {
        self.ha_index
            .positions(normalized)
            .iter()
            .filter_map(|&i| self.ha_users.get(i))
    }

    /// A number that changes whenever the provider entries change (any put, removal or
    /// rename), for caches derived from them.
    #[must_use]
    pub fn ha_generation(&self) -> u64 {
        self.ha_generation
    }

    /// The first credential (in file order) of the provider `(provider_type,
    /// provider_id)` whose `data.username` normalises to `normalized` (already
    /// normalised): Home Assistant's scan for an existing credential, as an index lookup.
    #[must_use]
    pub fn credential_by_username(
        &self,
        provider_type: &str,
        provider_id: Option<&str>,
        normalized: &str,
    ) -> Option<&Credentials> {
        self.credential_index
            .get(provider_type, provider_id, normalized)
            .iter()
            .filter_map(|id| {
                let c = self.credentials.get(id)?;
                let owner = c.user_id.as_ref()?;
                let user_pos = self.users.position(owner.as_str())?;
                let slot = self.users.get(owner.as_str())?;
                let cred_pos = slot.credentials.iter().position(|x| x == id)?;
                Some(((user_pos, cred_pos), &**c))
            })
            .min_by_key(|(order, _)| *order)
            .map(|(_, c)| c)
    }

    /// Every credential of the provider `(provider_type, provider_id)` whose
    /// `data.username` normalises to `normalized` (already normalised), in no particular
    /// order: an index lookup.
    pub fn credentials_by_username<'a>(
        &'a self,
        provider_type: &str,
        provider_id: Option<&str>,
        normalized: &str,
    ) -> impl Iterator<Item = &'a Credentials> + 'a {
        self.credential_index
            .get(provider_type, provider_id, normalized)
            .iter()
            .filter_map(|id| self.credentials.get(id).map(|c| &**c))
    }

    /// Position of the first entry with exactly this username (one fold, then the
    /// index).
    fn ha_position(&self, username: &str) -> Option<usize> {
        self.ha_index
            .positions(&normalize_username(username))
            .iter()
            .copied()
            .find(|&i| self.ha_users.get(i).is_some_and(|h| h.username == username))
    }

    /// Replaces the provider entries (a load).
    pub(crate) fn set_ha_users(&mut self, entries: Vec<HaUser>) {
        self.ha_index = UsernameIndex::build(&entries);
        self.ha_users = entries;
        self.ha_generation += 1;
    }

    fn remove_ha_at(&mut self, i: usize) -> HaUser {
        let gone = self.ha_users.remove(i);
        self.ha_index.remove(&normalize_username(&gone.username), i);
        self.ha_index.shift_after_removal(i);
        gone
    }

    /// A user's TOTP secret.
    #[must_use]
    pub fn totp_secret(&self, user_id: &str) -> Option<&Secret> {
        self.totp.get(user_id)
    }

    /// Users with a TOTP secret, with it, in file order (Home Assistant keeps secrets of
    /// removed users, so some ids may name no user).
    pub fn totp_users(&self) -> impl Iterator<Item = (&UserId, &Secret)> + '_ {
        self.totp.iter().map(|(k, v)| (k, v))
    }

    /// latch's TOTP state of a user.
    #[must_use]
    pub fn totp_state(&self, user_id: &str) -> Option<&TotpState> {
        self.totp_state.get(user_id)
    }

    /// All TOTP states in file order.
    pub fn totp_states(&self) -> impl Iterator<Item = (&UserId, &TotpState)> + '_ {
        self.totp_state.iter().map(|(k, v)| (k, v))
    }

    /// Encodes one file exactly as it would be written: Home Assistant's envelope,
    /// orjson's `OPT_INDENT_2` layout, no trailing newline.
    ///
    /// # Errors
    /// [`StoreError::Encode`] if a value cannot be encoded (not expected for valid data).
    pub fn encode(&self, file: StoreFile) -> Result<Vec<u8>, StoreError> {
        format::encode(&self.capture(file))
    }

    /// Builds the data from Home Assistant's four files as [`AuthData::encode`] writes
    /// them (in [`StoreFile::ALL`] order; `None` for a missing file), with the rules and
    /// migrations of [`Store::open`](crate::Store::open). `label` names the source in
    /// errors.
    ///
    /// # Errors
    /// As [`Store::open`](crate::Store::open) for a bad file.
    pub fn decode_files(
        label: &std::path::Path,
        files: &[Option<zeroize::Zeroizing<Vec<u8>>>; 4],
    ) -> Result<Self, StoreError> {
        crate::load::load_files(label, files).map(|loaded| loaded.data)
    }

    /// The changes that build this data on an empty store, in order (custom groups,
    /// users, credentials, refresh tokens, provider entries, TOTP secrets and states).
    #[must_use]
    pub fn to_changes(&self) -> Vec<Change> {
        let system: Vec<GroupId> = system_groups().into_iter().map(|g| g.id).collect();
        let mut out = Vec::new();
        out.extend(
            self.groups()
                .filter(|g| !system.contains(&g.id))
                .cloned()
                .map(Change::PutGroup),
        );
        out.extend(self.users().cloned().map(Change::PutUser));
        out.extend(self.credentials().cloned().map(Change::PutCredential));
        out.extend(self.refresh_tokens().cloned().map(Change::PutRefreshToken));
        out.extend(self.ha_users.iter().map(|h| Change::PutHaUser {
            username: h.username.clone(),
            password: h.password.clone(),
        }));
        out.extend(self.totp.iter().map(|(u, s)| Change::PutTotpSecret {
            user_id: u.clone(),
            secret: s.clone(),
        }));
        out.extend(self.totp_state.iter().map(|(u, t)| Change::PutTotpState {
            user_id: u.clone(),
            last_step: t.last_step,
            recovery_codes: t.recovery_codes.clone(),
        }));
        out
    }

    pub(crate) fn capture(&self, file: StoreFile) -> FileSnapshot {
        match file {
            StoreFile::Auth => FileSnapshot::Auth {
                users: self
                    .users
                    .iter()
                    .map(|(_, s)| Arc::clone(&s.user))
                    .collect(),
                groups: self.groups.iter().map(|(_, g)| g.clone()).collect(),
                credentials: self
                    .users
                    .iter()
                    .flat_map(|(_, s)| s.credentials.iter())
                    .filter_map(|id| self.credentials.get(id).cloned())
                    .collect(),
                tokens: self
                    .users
                    .iter()
                    .flat_map(|(_, s)| s.tokens.iter())
                    .filter_map(|id| self.tokens.get(id).cloned())
                    .collect(),
            },
            StoreFile::HaProvider => FileSnapshot::HaProvider(self.ha_users.clone()),
            StoreFile::Totp => FileSnapshot::Totp(self.totp.iter().cloned().collect()),
            StoreFile::LatchTotp => {
                FileSnapshot::LatchTotp(self.totp_state.iter().cloned().collect())
            }
        }
    }

    // ----- validation -----

    /// Checks a batch against this state, change by change (each sees the effect of the
    /// ones before it), without changing anything.
    ///
    /// # Errors
    /// The first offending change, with its position.
    pub fn check(&self, changes: &[Change]) -> Result<(), (usize, ChangeError)> {
        let mut o = Overlay::new(self);
        for (i, c) in changes.iter().enumerate() {
            o.check(c).map_err(|e| (i, e))?;
        }
        Ok(())
    }

    // ----- application -----

    /// Applies one change as an idempotent redo: no validation, and a change that names
    /// something absent is a no-op. [`Store::commit`](crate::Store::commit) validates
    /// with [`AuthData::check`] first; journal replay applies leniently.
    /// Returns the file the change belongs to.
    pub fn apply(&mut self, change: Change) -> StoreFile {
        match change {
            Change::PutUser(u) => {
                self.put_user(u);
                StoreFile::Auth
            }
            Change::RemoveUser(id) => {
                self.remove_user(id.as_str());
                StoreFile::Auth
            }
            Change::PutGroup(g) => {
                self.groups.insert(g.id.clone(), g);
                StoreFile::Auth
            }
            Change::RemoveGroup(id) => {
                self.groups.remove(id.as_str());
                StoreFile::Auth
            }
            Change::PutCredential(c) => {
                self.put_credential(c);
                StoreFile::Auth
            }
            Change::RemoveCredential(id) => {
                self.remove_credential(id.as_str());
                StoreFile::Auth
            }
            Change::PutRefreshToken(t) => {
                self.put_token(t);
                StoreFile::Auth
            }
            Change::RemoveRefreshToken(id) => {
                self.remove_token(id.as_str());
                StoreFile::Auth
            }
            Change::TokenUsage {
                id,
                last_used_at,
                last_used_ip,
                expire_at,
            } => {
                self.set_usage(id.as_str(), last_used_at, last_used_ip, expire_at);
                StoreFile::Auth
            }
            Change::SetTokenExpiry { id, expire_at } => {
                if let Some(t) = self.tokens.get_mut(id.as_str()) {
                    Arc::make_mut(t).expire_at = expire_at;
                }
                StoreFile::Auth
            }
            Change::PutHaUser { username, password } => {
                self.ha_generation += 1;
                if let Some(i) = self.ha_position(&username) {
                    self.ha_users[i].password = password;
                } else {
                    self.ha_index
                        .insert(normalize_username(&username), self.ha_users.len());
                    self.ha_users.push(HaUser { username, password });
                }
                StoreFile::HaProvider
            }
            Change::RemoveHaUser { username } => {
                self.ha_generation += 1;
                if let Some(i) = self.ha_position(&username) {
                    self.remove_ha_at(i);
                }
                StoreFile::HaProvider
            }
            Change::RenameHaUser { old, new } => {
                self.ha_generation += 1;
                if old != new {
                    let old_pos = self.ha_position(&old);
                    if self.ha_position(&new).is_some() {
                        // Replayed over a state where `new` exists already: `old`, if
                        // present, hands its password over and goes.
                        if let Some(i) = old_pos {
                            let gone = self.remove_ha_at(i);
                            if let Some(j) = self.ha_position(&new) {
                                self.ha_users[j].password = gone.password;
                            }
                        }
                    } else if let Some(i) = old_pos {
                        self.ha_index.remove(&normalize_username(&old), i);
                        self.ha_index.insert(normalize_username(&new), i);
                        self.ha_users[i].username = new;
                    }
                }
                StoreFile::HaProvider
            }
            Change::PutTotpSecret { user_id, secret } => {
                self.totp.insert(user_id, secret);
                StoreFile::Totp
            }
            Change::RemoveTotpSecret { user_id } => {
                self.totp.remove(user_id.as_str());
                StoreFile::Totp
            }
            Change::PutTotpState {
                user_id,
                last_step,
                recovery_codes,
            } => {
                self.totp_state.insert(
                    user_id,
                    TotpState {
                        last_step,
                        recovery_codes,
                    },
                );
                StoreFile::LatchTotp
            }
            Change::RemoveTotpState { user_id } => {
                self.totp_state.remove(user_id.as_str());
                StoreFile::LatchTotp
            }
            // Lockouts live in each host's throttle, not in the data.
            Change::Lockout { .. } | Change::ClearLockout { .. } => StoreFile::Auth,
        }
    }

    pub(crate) fn put_user(&mut self, u: User) {
        if let Some(slot) = self.users.get_mut(u.id.as_str()) {
            slot.user = Arc::new(u);
        } else {
            self.users.insert(
                u.id.clone(),
                UserSlot {
                    user: Arc::new(u),
                    credentials: Vec::new(),
                    tokens: Vec::new(),
                },
            );
        }
    }

    fn remove_user(&mut self, id: &str) {
        let Some(slot) = self.users.remove(id) else {
            return;
        };
        for c in &slot.credentials {
            if let Some(gone) = self.credentials.remove(c) {
                self.credential_index.remove(&gone);
            }
        }
        for t in &slot.tokens {
            if let Some(tok) = self.tokens.remove(t) {
                self.unindex(&tok);
            }
        }
    }

    pub(crate) fn put_credential(&mut self, mut c: Credentials) {
        c.is_new = false;
        let Some(owner) = c.user_id.clone() else {
            return;
        };
        if !self.users.contains(owner.as_str()) {
            return;
        }
        let old_owner = self
            .credentials
            .get(c.id.as_str())
            .map(|old| old.user_id.clone());
        match old_owner {
            Some(old) if old.as_ref() == Some(&owner) => {}
            Some(old) => {
                if let Some(slot) = old.and_then(|o| self.users.get_mut(o.as_str())) {
                    slot.credentials.retain(|x| *x != c.id);
                }
                self.push_credential_id(&owner, &c.id);
            }
            None => self.push_credential_id(&owner, &c.id),
        }
        if let Some(old) = self.credentials.get(c.id.as_str()).cloned() {
            self.credential_index.remove(&old);
        }
        self.credential_index.insert(&c);
        self.credentials.insert(c.id.clone(), Arc::new(c));
    }

    fn push_credential_id(&mut self, owner: &UserId, id: &CredentialId) {
        if let Some(slot) = self.users.get_mut(owner.as_str()) {
            slot.credentials.push(id.clone());
        }
    }

    fn remove_credential(&mut self, id: &str) {
        let Some(c) = self.credentials.remove(id) else {
            return;
        };
        self.credential_index.remove(&c);
        let Some(slot) = c
            .user_id
            .as_ref()
            .and_then(|o| self.users.get_mut(o.as_str()))
        else {
            return;
        };
        slot.credentials.retain(|x| x.as_str() != id);
        for tid in &slot.tokens {
            if let Some(t) = self
                .tokens
                .get_mut(tid)
                .filter(|t| t.credential_id.as_ref().is_some_and(|x| x.as_str() == id))
            {
                Arc::make_mut(t).credential_id = None;
            }
        }
    }

    pub(crate) fn put_token(&mut self, mut t: RefreshToken) {
        if !self.users.contains(t.user_id.as_str()) {
            return;
        }
        t.created_at = truncate_to_micros(t.created_at);
        t.last_used_at = t.last_used_at.map(truncate_to_micros);
        let old = self.tokens.remove(t.id.as_str());
        match &old {
            Some(old) => {
                self.unindex(old);
                if old.user_id != t.user_id {
                    if let Some(slot) = self.users.get_mut(old.user_id.as_str()) {
                        slot.tokens.retain(|x| *x != t.id);
                    }
                    if let Some(slot) = self.users.get_mut(t.user_id.as_str()) {
                        slot.tokens.push(t.id.clone());
                    }
                }
            }
            None => {
                if let Some(slot) = self.users.get_mut(t.user_id.as_str()) {
                    slot.tokens.push(t.id.clone());
                }
            }
        }
        self.index(&t);
        self.tokens.insert(t.id.clone(), Arc::new(t));
    }

    fn remove_token(&mut self, id: &str) {
        let Some(t) = self.tokens.remove(id) else {
            return;
        };
        self.unindex(&t);
        if let Some(slot) = self.users.get_mut(t.user_id.as_str()) {
            slot.tokens.retain(|x| x.as_str() != id);
        }
    }

    /// Sets the usage fields of a token; false if there is no such token.
    pub(crate) fn set_usage(
        &mut self,
        id: &str,
        last_used_at: DateTime<Utc>,
        last_used_ip: Option<String>,
        expire_at: Option<f64>,
    ) -> bool {
        let Some(t) = self.tokens.get_mut(id) else {
            return false;
        };
        let t = Arc::make_mut(t);
        t.last_used_at = Some(truncate_to_micros(last_used_at));
        t.last_used_ip = last_used_ip;
        t.expire_at = expire_at;
        true
    }

    fn index(&mut self, t: &RefreshToken) {
        match self.by_value.entry(token_digest(t.token.expose())) {
            Entry::Vacant(e) => {
                e.insert(TokenRefs::One(t.id.clone()));
            }
            Entry::Occupied(mut e) => {
                let refs = e.get_mut();
                match refs {
                    TokenRefs::One(first) => {
                        *refs = TokenRefs::Many(vec![first.clone(), t.id.clone()]);
                    }
                    TokenRefs::Many(ids) => ids.push(t.id.clone()),
                }
            }
        }
    }

    fn unindex(&mut self, t: &RefreshToken) {
        let Entry::Occupied(mut e) = self.by_value.entry(token_digest(t.token.expose())) else {
            return;
        };
        let remove = match e.get_mut() {
            TokenRefs::One(id) => *id == t.id,
            TokenRefs::Many(ids) => {
                ids.retain(|x| *x != t.id);
                ids.is_empty()
            }
        };
        if remove {
            e.remove();
        }
    }
}

/// The effect of the earlier changes of a batch, seen by the later ones.
struct Overlay<'a> {
    data: &'a AuthData,
    /// `Some(groups)`: put in this batch; `None`: removed.
    users: HashMap<UserId, Option<Vec<GroupId>>>,
    /// Users removed at some point of the batch: their stored credentials and tokens
    /// went with them.
    removed_users: HashSet<UserId>,
    groups: HashMap<GroupId, bool>,
    credentials: HashMap<CredentialId, Option<UserId>>,
    tokens: HashMap<RefreshTokenId, Option<UserId>>,
    ha: HashMap<String, bool>,
}

impl<'a> Overlay<'a> {
    fn new(data: &'a AuthData) -> Self {
        Self {
            data,
            users: HashMap::new(),
            removed_users: HashSet::new(),
            groups: HashMap::new(),
            credentials: HashMap::new(),
            tokens: HashMap::new(),
            ha: HashMap::new(),
        }
    }

    fn user_exists(&self, id: &str) -> bool {
        match self.users.get(id) {
            Some(o) => o.is_some(),
            None => self.data.users.contains(id),
        }
    }

    fn group_exists(&self, id: &str) -> bool {
        match self.groups.get(id) {
            Some(&b) => b,
            None => self.data.groups.contains(id),
        }
    }

    fn stored_owner(&self, owner: Option<&UserId>) -> Option<UserId> {
        let owner = owner?;
        (!self.removed_users.contains(owner.as_str())).then(|| owner.clone())
    }

    fn credential_owner(&self, id: &str) -> Option<UserId> {
        match self.credentials.get(id) {
            Some(o) => o.clone(),
            None => self.stored_owner(
                self.data
                    .credentials
                    .get(id)
                    .and_then(|c| c.user_id.as_ref()),
            ),
        }
    }

    fn token_owner(&self, id: &str) -> Option<UserId> {
        match self.tokens.get(id) {
            Some(o) => o.clone(),
            None => self.stored_owner(self.data.tokens.get(id).map(|t| &t.user_id)),
        }
    }

    fn ha_exists(&self, username: &str) -> bool {
        match self.ha.get(username) {
            Some(&b) => b,
            None => self.data.ha_user(username).is_some(),
        }
    }

    fn need_user(&self, id: &UserId) -> Result<(), ChangeError> {
        if self.user_exists(id.as_str()) {
            Ok(())
        } else {
            Err(ChangeError::UnknownUser(id.clone()))
        }
    }

    fn need_token(&self, id: &RefreshTokenId) -> Result<(), ChangeError> {
        if self.token_owner(id.as_str()).is_some() {
            Ok(())
        } else {
            Err(ChangeError::UnknownRefreshToken(id.clone()))
        }
    }

    fn check(&mut self, change: &Change) -> Result<(), ChangeError> {
        match change {
            Change::PutUser(u) => {
                if let Some(g) = u.group_ids.iter().find(|g| !self.group_exists(g.as_str())) {
                    return Err(ChangeError::UnknownGroup(g.clone()));
                }
                self.users.insert(u.id.clone(), Some(u.group_ids.clone()));
            }
            Change::RemoveUser(id) => {
                self.users.insert(id.clone(), None);
                self.removed_users.insert(id.clone());
                for owner in self
                    .credentials
                    .values_mut()
                    .chain(self.tokens.values_mut())
                {
                    if owner.as_ref() == Some(id) {
                        *owner = None;
                    }
                }
            }
            Change::PutGroup(g) => {
                if system_group(g.id.as_str()).is_some() {
                    return Err(ChangeError::SystemGroup(g.id.clone()));
                }
                if g.system_generated {
                    return Err(ChangeError::InvalidValue(format!(
                        "custom group {} is flagged system_generated",
                        g.id
                    )));
                }
                self.groups.insert(g.id.clone(), true);
            }
            Change::RemoveGroup(id) => {
                if system_group(id.as_str()).is_some() {
                    return Err(ChangeError::SystemGroup(id.clone()));
                }
                if let Some(user) = self.member_of(id) {
                    return Err(ChangeError::GroupInUse {
                        group: id.clone(),
                        user,
                    });
                }
                self.groups.insert(id.clone(), false);
            }
            Change::PutCredential(c) => {
                let Some(user) = &c.user_id else {
                    return Err(ChangeError::UnlinkedCredential(c.id.clone()));
                };
                self.need_user(user)?;
                if self
                    .credential_owner(c.id.as_str())
                    .is_some_and(|o| o != *user)
                {
                    return Err(ChangeError::CredentialOfOtherUser {
                        credential: c.id.clone(),
                        user: user.clone(),
                    });
                }
                self.credentials.insert(c.id.clone(), Some(user.clone()));
            }
            Change::RemoveCredential(id) => {
                self.credentials.insert(id.clone(), None);
            }
            Change::PutRefreshToken(t) => {
                self.need_user(&t.user_id)?;
                if self
                    .token_owner(t.id.as_str())
                    .is_some_and(|o| o != t.user_id)
                {
                    return Err(ChangeError::TokenOfOtherUser {
                        token: t.id.clone(),
                        user: t.user_id.clone(),
                    });
                }
                if let Some(c) = &t.credential_id {
                    match self.credential_owner(c.as_str()) {
                        None => return Err(ChangeError::UnknownCredential(c.clone())),
                        Some(o) if o != t.user_id => {
                            return Err(ChangeError::CredentialOfOtherUser {
                                credential: c.clone(),
                                user: t.user_id.clone(),
                            });
                        }
                        Some(_) => {}
                    }
                }
                finite("access_token_expiration", Some(t.access_token_expiration))?;
                finite("expire_at", t.expire_at)?;
                storable_time("created_at", Some(&t.created_at))?;
                storable_time("last_used_at", t.last_used_at.as_ref())?;
                self.tokens.insert(t.id.clone(), Some(t.user_id.clone()));
            }
            Change::RemoveRefreshToken(id) => {
                self.tokens.insert(id.clone(), None);
            }
            Change::TokenUsage {
                id,
                last_used_at,
                expire_at,
                ..
            } => {
                self.need_token(id)?;
                finite("expire_at", *expire_at)?;
                storable_time("last_used_at", Some(last_used_at))?;
            }
            Change::SetTokenExpiry { id, expire_at } => {
                self.need_token(id)?;
                finite("expire_at", *expire_at)?;
            }
            Change::PutHaUser { username, .. } => {
                self.ha.insert(username.clone(), true);
            }
            Change::RemoveHaUser { username } => {
                self.ha.insert(username.clone(), false);
            }
            Change::RenameHaUser { old, new } => {
                if !self.ha_exists(old) {
                    return Err(ChangeError::UnknownHaUser(old.clone()));
                }
                if old != new {
                    if self.ha_exists(new) {
                        return Err(ChangeError::HaUserExists(new.clone()));
                    }
                    self.ha.insert(old.clone(), false);
                    self.ha.insert(new.clone(), true);
                }
            }
            Change::PutTotpSecret { user_id, .. } | Change::PutTotpState { user_id, .. } => {
                self.need_user(user_id)?;
            }
            Change::RemoveTotpSecret { .. }
            | Change::RemoveTotpState { .. }
            | Change::ClearLockout { .. } => {}
            Change::Lockout { key, until } => {
                if key.is_empty() || key.len() > 1024 {
                    return Err(ChangeError::InvalidValue(
                        "a lockout key must be 1 to 1024 bytes".into(),
                    ));
                }
                storable_time("until", Some(until))?;
            }
        }
        Ok(())
    }

    /// A user that is (after the changes so far) a member of `group`.
    fn member_of(&self, group: &GroupId) -> Option<UserId> {
        let in_batch = self.users.iter().find_map(|(id, groups)| {
            groups
                .as_ref()
                .is_some_and(|g| g.contains(group))
                .then(|| id.clone())
        });
        in_batch.or_else(|| {
            self.data
                .users()
                .find(|u| !self.users.contains_key(u.id.as_str()) && u.group_ids.contains(group))
                .map(|u| u.id.clone())
        })
    }
}

pub(crate) fn finite(field: &str, v: Option<f64>) -> Result<(), ChangeError> {
    match v {
        Some(x) if !x.is_finite() => Err(ChangeError::InvalidValue(format!(
            "{field} must be a finite number"
        ))),
        _ => Ok(()),
    }
}

pub(crate) fn storable_time(field: &str, t: Option<&DateTime<Utc>>) -> Result<(), ChangeError> {
    match t {
        Some(t) if !(1..=9999).contains(&t.year()) => Err(ChangeError::InvalidValue(format!(
            "{field} must be in the years 1 to 9999"
        ))),
        _ => Ok(()),
    }
}
