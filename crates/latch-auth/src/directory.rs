//! The providers' read-only view of the store.

use latch_models::{Credentials, Group, User};
use latch_provider::Directory;
use latch_store::Store;

/// [`Directory`] over the store: what providers may read, nothing they could change.
#[derive(Debug, Clone)]
pub(crate) struct StoreDirectory {
    pub(crate) store: Store,
}

impl Directory for StoreDirectory {
    fn users(&self) -> Vec<User> {
        self.store.users()
    }

    fn user(&self, id: &str) -> Option<User> {
        self.store.user(id)
    }

    fn groups(&self) -> Vec<Group> {
        self.store.groups()
    }

    fn credentials_of_provider(
        &self,
        provider_type: &str,
        provider_id: Option<&str>,
    ) -> Vec<Credentials> {
        self.store.read(|d| {
            d.credentials()
                .filter(|c| {
                    c.auth_provider_type == provider_type
                        && c.auth_provider_id.as_deref() == provider_id
                })
                .cloned()
                .collect()
        })
    }

    fn credential_by_username(
        &self,
        provider_type: &str,
        provider_id: Option<&str>,
        normalized: &str,
    ) -> Option<Credentials> {
        self.store.read(|d| {
            d.credential_by_username(provider_type, provider_id, normalized)
                .cloned()
        })
    }
}
