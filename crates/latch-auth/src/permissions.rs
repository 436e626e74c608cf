//! Permission checks through the policy engine, for a user or an access token.

use std::sync::Arc;

use latch_models::permissions::{EntityLookup, PermissionKey, Permissions, permissions_for};

use crate::error::AuthError;
use crate::manager::AuthManager;

/// The entity/device registry the policy engine consults for `device_ids` and
/// `area_ids` policies. latch keeps none of its own; a service that has one supplies it.
pub type SharedLookup = Arc<dyn EntityLookup + Send + Sync>;

impl AuthManager {
    /// The compiled permissions of a user (the owner is allowed everything; everyone else
    /// gets the merge of their groups' policies).
    ///
    /// # Errors
    /// [`AuthError::UserNotFound`].
    pub fn permissions_of(
        &self,
        user_id: &str,
        lookup: SharedLookup,
    ) -> Result<Permissions<SharedLookup>, AuthError> {
        self.inner.store.read(|d| {
            let user = d.user(user_id).ok_or(AuthError::UserNotFound)?;
            let groups: Vec<_> = user
                .group_ids
                .iter()
                .filter_map(|g| d.group(g.as_str()))
                .collect();
            Ok(permissions_for(user, &groups, lookup))
        })
    }

    /// May `user_id` do `key` on `entity_id`?
    ///
    /// # Errors
    /// [`AuthError::UserNotFound`]; [`AuthError::Limit`] for an entity id longer than
    /// 255 bytes (Home Assistant's own limit).
    pub fn check_permission(
        &self,
        user_id: &str,
        entity_id: &str,
        key: PermissionKey,
        lookup: SharedLookup,
    ) -> Result<bool, AuthError> {
        latch_models::limits::check_len(
            "entity id",
            entity_id,
            latch_models::limits::MAX_ENTITY_ID_BYTES,
        )?;
        Ok(self
            .permissions_of(user_id, lookup)?
            .check_entity(entity_id, key))
    }

    /// May the holder of `access_token` do `key` on `entity_id`?
    ///
    /// # Errors
    /// [`AuthError::InvalidAccessToken`] when the token does not validate.
    pub fn check_permission_by_token(
        &self,
        access_token: &str,
        entity_id: &str,
        key: PermissionKey,
        lookup: SharedLookup,
    ) -> Result<bool, AuthError> {
        let v = self
            .validate_access_token(access_token)
            .ok_or(AuthError::InvalidAccessToken)?;
        self.check_permission(v.user_id.as_str(), entity_id, key, lookup)
    }
}
