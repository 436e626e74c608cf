//! Permission policies: Home Assistant's `auth/permissions`, ported exactly.
//!
//! A [`Group`] carries a [`Policy`], kept verbatim in Home Assistant's JSON shape so a
//! store round-trips byte for byte. A user's permissions come from their groups:
//!
//! 1. **Merge** ([`merge_policies`]): the policies of the user's groups are merged, the
//!    most permissive value winning (`true` > dict > absent). No groups give `{}`,
//!    which denies everything.
//! 2. **Compile** ([`CompiledPolicy`]): the merged `entities` category is compiled once
//!    into hash maps per subcategory (`entity_ids`, `device_ids`, `area_ids`, `domains`,
//!    `all`, in that priority order); checks never walk the JSON again.
//! 3. **Check** ([`Permissions::check_entity`]): may the user `read`, `control` or
//!    `edit` ([`PermissionKey`]) an entity? `device_ids` and `area_ids` rules ask an
//!    [`EntityLookup`] (the entity and device registries) at check time.
//!
//! The owner bypasses all of this and is allowed everything ([`OwnerPermissions`]);
//! [`permissions_for`] picks the right one. Admin-only operations are gated on
//! [`User::is_admin`], never on the policy: the `system-admin` and `system-users`
//! groups grant the same thing (`{"entities": true}`), and `system-read-only` grants
//! `read` on every entity and nothing else.
//!
//! [`Policy::validate`] is Home Assistant's schema check for a custom group's policy;
//! deserializing a policy does not validate it (see [`Policy`]).
//!
//! ```
//! use latch_models::permissions::{NoRegistry, PermissionKey, permissions_for};
//! use latch_models::{GROUP_ID_READ_ONLY, User, system_group};
//!
//! let read_only = system_group(GROUP_ID_READ_ONLY).ok_or("no such group")?;
//! let user = User::new(Some("guest".into()));
//! let perms = permissions_for(&user, &[&read_only], NoRegistry);
//! assert!(perms.check_entity("light.kitchen", PermissionKey::Read));
//! assert!(!perms.check_entity("light.kitchen", PermissionKey::Control));
//! # Ok::<(), &str>(())
//! ```
//!
//! [`Group`]: crate::Group
//! [`User::is_admin`]: crate::User::is_admin

mod compile;
mod key;
mod lookup;
mod merge;
mod policy;

#[cfg(test)]
mod proptests;
#[cfg(test)]
mod tests;

use std::fmt;

pub use compile::CompiledPolicy;
pub use key::{PermissionKey, UnknownPermissionKey};
pub use lookup::{DeviceEntry, EntityEntry, EntityLookup, InMemoryRegistry, NoRegistry};
pub use merge::merge_policies;
pub use policy::{
    CAT_ENTITIES, Policy, PolicyError, SUBCAT_ALL, SUBCAT_AREA_IDS, SUBCAT_DEVICE_IDS,
    SUBCAT_DOMAINS, SUBCAT_ENTITY_IDS,
};

use crate::{Group, User};

/// The permissions of the owner: everything is allowed, whatever the groups say.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct OwnerPermissions;

impl OwnerPermissions {
    /// Always true.
    #[must_use]
    pub fn check_entity(&self, _entity_id: &str, _key: PermissionKey) -> bool {
        true
    }

    /// Always true.
    #[must_use]
    pub fn access_all_entities(&self, _key: PermissionKey) -> bool {
        true
    }
}

/// The permissions a (merged) policy grants, compiled once, with the registry lookup
/// its `device_ids` and `area_ids` rules consult at check time.
///
/// `L` is any [`EntityLookup`]: an owned registry, a reference to one, an `Arc` of one,
/// or [`NoRegistry`]. Two `PolicyPermissions` are equal when their policies are (as in
/// Home Assistant); the lookup is not compared.
#[derive(Clone)]
pub struct PolicyPermissions<L = NoRegistry> {
    policy: Policy,
    compiled: CompiledPolicy,
    lookup: L,
}

impl<L> PolicyPermissions<L> {
    /// Compiles `policy` (normally the output of [`merge_policies`]).
    #[must_use]
    pub fn new(policy: Policy, lookup: L) -> Self {
        let compiled = CompiledPolicy::compile(&policy);
        Self {
            policy,
            compiled,
            lookup,
        }
    }

    /// The policy these permissions were compiled from.
    #[must_use]
    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    /// The compiled form of [`PolicyPermissions::policy`].
    #[must_use]
    pub fn compiled(&self) -> &CompiledPolicy {
        &self.compiled
    }

    /// The registry lookup.
    #[must_use]
    pub fn lookup(&self) -> &L {
        &self.lookup
    }
}

impl<L: EntityLookup> PolicyPermissions<L> {
    /// May `key` be done on `entity_id`? See [`CompiledPolicy`] for the rules.
    #[must_use]
    pub fn check_entity(&self, entity_id: &str, key: PermissionKey) -> bool {
        self.compiled.check_entity(entity_id, key, &self.lookup)
    }

    /// Does the policy grant `key` on all entities at once? See
    /// [`CompiledPolicy::access_all_entities`].
    #[must_use]
    pub fn access_all_entities(&self, key: PermissionKey) -> bool {
        self.compiled.access_all_entities(key)
    }
}

impl<L> fmt::Debug for PolicyPermissions<L> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PolicyPermissions")
            .field("policy", &self.policy)
            .finish_non_exhaustive()
    }
}

impl<L, M> PartialEq<PolicyPermissions<M>> for PolicyPermissions<L> {
    fn eq(&self, other: &PolicyPermissions<M>) -> bool {
        self.policy == other.policy
    }
}

/// A user's permissions: the owner's allow-all, or a compiled policy.
#[derive(Clone)]
pub enum Permissions<L = NoRegistry> {
    /// The owner: everything is allowed.
    Owner(OwnerPermissions),
    /// Everyone else: what the merged group policy allows.
    Policy(PolicyPermissions<L>),
}

impl<L: EntityLookup> Permissions<L> {
    /// May `key` be done on `entity_id`?
    #[must_use]
    pub fn check_entity(&self, entity_id: &str, key: PermissionKey) -> bool {
        match self {
            Self::Owner(owner) => owner.check_entity(entity_id, key),
            Self::Policy(policy) => policy.check_entity(entity_id, key),
        }
    }

    /// Is `key` granted on every entity at once (owner, `entities: true`, or through
    /// `all`)? Callers use it to skip per-entity checks.
    #[must_use]
    pub fn access_all_entities(&self, key: PermissionKey) -> bool {
        match self {
            Self::Owner(owner) => owner.access_all_entities(key),
            Self::Policy(policy) => policy.access_all_entities(key),
        }
    }

    /// Home Assistant 2026's `filter_entity_ids_by_permission`: every id when `key` is
    /// granted on all entities, otherwise the ids `check_entity` allows, in input order.
    ///
    /// (Home Assistant also short-cuts on `is_admin`; an admin is in `system-admin`,
    /// whose `{"entities": true}` already grants all entities, so the result is the same.)
    pub fn filter_entity_ids<S, I>(&self, ids: I, key: PermissionKey) -> Vec<S>
    where
        S: AsRef<str>,
        I: IntoIterator<Item = S>,
    {
        if self.access_all_entities(key) {
            return ids.into_iter().collect();
        }
        ids.into_iter()
            .filter(|id| self.check_entity(id.as_ref(), key))
            .collect()
    }
}

impl<L> Permissions<L> {
    /// True for the owner's permissions.
    #[must_use]
    pub fn is_owner(&self) -> bool {
        matches!(self, Self::Owner(_))
    }

    /// The merged policy, or `None` for the owner.
    #[must_use]
    pub fn policy(&self) -> Option<&Policy> {
        match self {
            Self::Owner(_) => None,
            Self::Policy(policy) => Some(policy.policy()),
        }
    }
}

impl<L> fmt::Debug for Permissions<L> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Owner(owner) => f.debug_tuple("Owner").field(owner).finish(),
            Self::Policy(policy) => f.debug_tuple("Policy").field(policy).finish(),
        }
    }
}

impl<L, M> PartialEq<Permissions<M>> for Permissions<L> {
    fn eq(&self, other: &Permissions<M>) -> bool {
        match (self, other) {
            (Self::Owner(_), Permissions::Owner(_)) => true,
            (Self::Policy(a), Permissions::Policy(b)) => a == b,
            _ => false,
        }
    }
}

/// The permissions of `user`, a member of `groups`.
///
/// The owner gets [`OwnerPermissions`] whatever `groups` hold (and whether or not they
/// are active, as in Home Assistant). Everyone else gets the merge of the groups'
/// policies, compiled; a user in no group is denied everything.
///
/// `groups` are the user's groups, resolved by the caller from `user.group_ids`; this
/// function does not check membership. Admin-only operations must be gated on
/// [`User::is_admin`], not on these permissions.
#[must_use]
pub fn permissions_for<L>(user: &User, groups: &[&Group], lookup: L) -> Permissions<L> {
    if user.is_owner {
        return Permissions::Owner(OwnerPermissions);
    }
    let policies: Vec<&Policy> = groups.iter().map(|group| &group.policy).collect();
    Permissions::Policy(PolicyPermissions::new(merge_policies(&policies), lookup))
}
