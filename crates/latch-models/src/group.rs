//! Groups and the three built-in ones.

use serde::{Deserialize, Serialize};

use crate::GroupId;
use crate::permissions::Policy;

/// Id of the built-in administrators group.
pub const GROUP_ID_ADMIN: &str = "system-admin";
/// Id of the built-in users group.
pub const GROUP_ID_USER: &str = "system-users";
/// Id of the built-in read-only group.
pub const GROUP_ID_READ_ONLY: &str = "system-read-only";
/// Canonical name of [`GROUP_ID_ADMIN`].
pub const GROUP_NAME_ADMIN: &str = "Administrators";
/// Canonical name of [`GROUP_ID_USER`].
pub const GROUP_NAME_USER: &str = "Users";
/// Canonical name of [`GROUP_ID_READ_ONLY`].
pub const GROUP_NAME_READ_ONLY: &str = "Read Only";

/// A group of users sharing a permission policy.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Group {
    /// `system-admin`, `system-users`, `system-read-only`, or a custom id (uuid4 hex).
    pub id: GroupId,
    /// Display name.
    pub name: Option<String>,
    /// The group's policy. Never stored for system groups: it is rebuilt on load.
    pub policy: Policy,
    /// True for the three built-in groups.
    pub system_generated: bool,
}

impl Group {
    /// A custom (not system-generated) group with a fresh id.
    #[must_use]
    pub fn new_custom(name: Option<String>, policy: Policy) -> Self {
        Self {
            id: GroupId::random(),
            name,
            policy,
            system_generated: false,
        }
    }

    /// True if this is one of the three built-in groups.
    #[must_use]
    pub fn is_system(&self) -> bool {
        system_group(self.id.as_str()).is_some()
    }
}

/// The canonical built-in group for `id`, or `None` if `id` is not a system group id.
#[must_use]
pub fn system_group(id: &str) -> Option<Group> {
    let (name, policy) = match id {
        GROUP_ID_ADMIN => (GROUP_NAME_ADMIN, Policy::all_entities()),
        GROUP_ID_USER => (GROUP_NAME_USER, Policy::all_entities()),
        GROUP_ID_READ_ONLY => (GROUP_NAME_READ_ONLY, Policy::read_only()),
        _ => return None,
    };
    Some(Group {
        id: GroupId::from(id),
        name: Some(name.to_owned()),
        policy,
        system_generated: true,
    })
}

/// The three built-in groups in the order a fresh store holds them:
/// admin, users, read-only.
#[must_use]
pub fn system_groups() -> Vec<Group> {
    [GROUP_ID_ADMIN, GROUP_ID_USER, GROUP_ID_READ_ONLY]
        .into_iter()
        .filter_map(system_group)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn built_in_groups_have_canonical_names_and_order() {
        let ids: Vec<_> = system_groups()
            .into_iter()
            .map(|g| (g.id.into_string(), g.name.unwrap_or_default()))
            .collect();
        assert_eq!(
            ids,
            vec![
                ("system-admin".to_owned(), "Administrators".to_owned()),
                ("system-users".to_owned(), "Users".to_owned()),
                ("system-read-only".to_owned(), "Read Only".to_owned()),
            ]
        );
        assert!(system_group("custom").is_none());
    }

    #[test]
    fn admin_and_users_share_a_policy_read_only_differs() {
        let admin = system_group(GROUP_ID_ADMIN).unwrap();
        let users = system_group(GROUP_ID_USER).unwrap();
        let ro = system_group(GROUP_ID_READ_ONLY).unwrap();
        assert_eq!(admin.policy, users.policy);
        assert_ne!(admin.policy, ro.policy);
    }
}
