//! The read-only view of users and credentials a provider gets from the manager.

use latch_models::{Credentials, Group, User, normalize_username};

/// What a provider may know about the manager's users: enough to offer a user list
/// (trusted networks) or find an existing credential, and nothing it could change.
pub trait Directory: Send + Sync {
    /// Every user, in store order.
    fn users(&self) -> Vec<User>;

    /// One user by id.
    fn user(&self, id: &str) -> Option<User>;

    /// Every group, in store order.
    fn groups(&self) -> Vec<Group>;

    /// The stored credentials of one provider instance (`provider_id` `None` is the
    /// default instance of its type).
    fn credentials_of_provider(
        &self,
        provider_type: &str,
        provider_id: Option<&str>,
    ) -> Vec<Credentials>;

    /// The first stored credential (in store order) of one provider instance whose
    /// `data.username` normalises ([`normalize_username`]) to `normalized`, which is
    /// normalised already. The default scans [`Directory::credentials_of_provider`]; a
    /// directory with an index (the manager's) answers without folding every name.
    fn credential_by_username(
        &self,
        provider_type: &str,
        provider_id: Option<&str>,
        normalized: &str,
    ) -> Option<Credentials> {
        self.credentials_of_provider(provider_type, provider_id)
            .into_iter()
            .find(|c| {
                c.data_str("username")
                    .is_some_and(|u| normalize_username(u) == normalized)
            })
    }
}
