//! Users and the owner/admin/system/local-only rules.

use serde::{Deserialize, Serialize};

use crate::{GROUP_ID_ADMIN, GroupId, UserId};

/// A user. Credentials and refresh tokens are not embedded: the store indexes them by
/// user id, as Home Assistant's file does.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    /// uuid4 hex.
    pub id: UserId,
    /// Display name; may be null.
    pub name: Option<String>,
    /// The owner is allowed everything and can be neither deactivated nor removed.
    pub is_owner: bool,
    /// Inactive users cannot log in and their access tokens do not validate.
    pub is_active: bool,
    /// System users (integrations) only hold `system` refresh tokens.
    pub system_generated: bool,
    /// A local-only user may only authenticate from a local address.
    pub local_only: bool,
    /// Group memberships, in order.
    pub group_ids: Vec<GroupId>,
}

impl User {
    /// A user with Home Assistant's defaults: a fresh id, not owner, **not active**,
    /// not system-generated, not local-only, no groups.
    #[must_use]
    pub fn new(name: Option<String>) -> Self {
        Self {
            id: UserId::random(),
            name,
            is_owner: false,
            is_active: false,
            system_generated: false,
            local_only: false,
            group_ids: Vec::new(),
        }
    }

    /// `is_owner OR (is_active AND member of system-admin)`.
    #[must_use]
    pub fn is_admin(&self) -> bool {
        self.is_owner || (self.is_active && self.in_group(GROUP_ID_ADMIN))
    }

    /// True if the user belongs to group `id`.
    #[must_use]
    pub fn in_group(&self, id: &str) -> bool {
        self.group_ids.iter().any(|g| g.as_str() == id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_match_home_assistant() {
        let u = User::new(None);
        assert!(!u.is_owner && !u.is_active && !u.system_generated && !u.local_only);
        assert!(u.group_ids.is_empty());
        assert!(!u.is_admin());
    }

    #[test]
    fn admin_rule() {
        let mut u = User::new(Some("a".into()));
        u.group_ids.push(GroupId::from(GROUP_ID_ADMIN));
        assert!(!u.is_admin(), "inactive admin-group member is not admin");
        u.is_active = true;
        assert!(u.is_admin());
        let mut owner = User::new(None);
        owner.is_owner = true;
        assert!(
            owner.is_admin(),
            "owner is admin even without groups or activity"
        );
    }
}
