//! Indexes by normalised username, so a login looks a username up instead of folding
//! every stored one.
//!
//! The normalisation is Home Assistant's (`strip().casefold()`,
//! [`latch_models::normalize_username`]); the store only keys by it. Both indexes are
//! kept in step by [`AuthData`](crate::AuthData)'s mutations, under the store's write
//! lock, so they are never stale.

use std::collections::HashMap;

use latch_models::{CredentialId, Credentials, normalize_username};

use crate::change::HaUser;

/// Positions in the provider's entry list by normalised username, each list ascending
/// (file order). Several entries may share a normalised name in a file written before
/// Home Assistant 2025 normalised usernames.
#[derive(Clone, Debug, Default)]
pub(crate) struct UsernameIndex {
    by_name: HashMap<String, Vec<usize>>,
}

impl UsernameIndex {
    pub(crate) fn build(entries: &[HaUser]) -> Self {
        let mut index = Self::default();
        for (i, h) in entries.iter().enumerate() {
            index.insert(normalize_username(&h.username), i);
        }
        index
    }

    /// The positions of the entries whose normalised name is `normalized`, ascending.
    pub(crate) fn positions(&self, normalized: &str) -> &[usize] {
        self.by_name.get(normalized).map_or(&[], Vec::as_slice)
    }

    pub(crate) fn insert(&mut self, normalized: String, pos: usize) {
        let list = self.by_name.entry(normalized).or_default();
        let at = list.partition_point(|p| *p < pos);
        list.insert(at, pos);
    }

    pub(crate) fn remove(&mut self, normalized: &str, pos: usize) {
        if let Some(list) = self.by_name.get_mut(normalized) {
            list.retain(|p| *p != pos);
            if list.is_empty() {
                self.by_name.remove(normalized);
            }
        }
    }

    /// The entry at `pos` left the list: every later position moves down by one.
    pub(crate) fn shift_after_removal(&mut self, pos: usize) {
        for list in self.by_name.values_mut() {
            for p in list.iter_mut().filter(|p| **p > pos) {
                *p -= 1;
            }
        }
    }
}

/// `(provider type, provider id, normalised data.username)`.
type CredentialKey = (String, Option<String>, String);

/// Credential ids by provider and normalised `data.username`, for the credentials that
/// have one (the `homeassistant` provider's, and any other provider that keys its
/// credentials by a username).
#[derive(Clone, Debug, Default)]
pub(crate) struct CredentialIndex {
    by_key: HashMap<CredentialKey, Vec<CredentialId>>,
}

fn key_of(c: &Credentials) -> Option<CredentialKey> {
    let username = c.data_str("username")?;
    Some((
        c.auth_provider_type.clone(),
        c.auth_provider_id.clone(),
        normalize_username(username),
    ))
}

impl CredentialIndex {
    pub(crate) fn insert(&mut self, c: &Credentials) {
        if let Some(key) = key_of(c) {
            let list = self.by_key.entry(key).or_default();
            if !list.contains(&c.id) {
                list.push(c.id.clone());
            }
        }
    }

    pub(crate) fn remove(&mut self, c: &Credentials) {
        let Some(key) = key_of(c) else {
            return;
        };
        if let Some(list) = self.by_key.get_mut(&key) {
            list.retain(|id| *id != c.id);
            if list.is_empty() {
                self.by_key.remove(&key);
            }
        }
    }

    /// The ids of the credentials of this provider whose normalised username is
    /// `normalized`, in no particular order.
    pub(crate) fn get(
        &self,
        provider_type: &str,
        provider_id: Option<&str>,
        normalized: &str,
    ) -> &[CredentialId] {
        let key = (
            provider_type.to_owned(),
            provider_id.map(str::to_owned),
            normalized.to_owned(),
        );
        self.by_key.get(&key).map_or(&[], Vec::as_slice)
    }
}
