//! Compiling a policy into a checker (HA's `compile_entities` and `test_all`).

use std::collections::HashMap;

use serde_json::{Map, Value};

use super::lookup::effective_device_area;
use super::policy::{
    ENTITY_SUBCATEGORIES, SUBCAT_ALL, SUBCAT_AREA_IDS, SUBCAT_DEVICE_IDS, SUBCAT_DOMAINS,
    SUBCAT_ENTITY_IDS,
};
use super::{EntityLookup, PermissionKey, Policy};

/// A policy's `entities` category compiled once into hash maps, so a check is at most
/// one map probe per subcategory and never walks JSON.
///
/// # Semantics (Home Assistant's `compile_entities`)
///
/// - Category missing, `null`, `false` or `{}` (or a dict naming no subcategory):
///   every check is denied.
/// - Category `true`: every check is allowed.
/// - Category a dict: if any present subcategory is `true`, every check is allowed.
///   Otherwise the subcategories are tried in priority order `entity_ids`,
///   `device_ids`, `area_ids`, `domains`, `all`, each looking up a VALUE for the entity:
///   - `entity_ids`: by the entity id;
///   - `device_ids`: by the entity's device (no registry entry or no device: nothing);
///   - `area_ids`: by the area of the entity's device, or of that device's parent
///     (`via_device_id`) when it has none; the entity's own area is ignored;
///   - `domains`: by the part of the entity id before the first `.` (the whole id when
///     there is no dot);
///   - `all`: the `all` VALUE itself.
///
///   A VALUE `true` answers "allow" for every key; a VALUE dict answers `dict[key]`,
///   which is `true` or **nothing**. The first subcategory that answers something
///   decides; when none does, the check is denied.
///
/// So a dict that lacks the key does *not* decide: with
/// `{"entity_ids": {"light.kitchen": {"read": true}}, "domains": {"light": true}}`,
/// `control` on `light.kitchen` falls through `entity_ids` to `domains` and is allowed,
/// exactly as in Home Assistant (whose dict lookup returns `dict.get(key)`, `None` here).
///
/// # Invalid policies
///
/// [`Policy::validate`] refuses all of these, but a store may hold them. Compiling never
/// panics, and an invalid value never grants anything:
/// - `false`, a number, a string or an array where a VALUE or a VALUE's key is expected
///   answers "deny" (and so decides, like HA's `False`); `null` answers nothing;
/// - a subcategory that is `false`, a number, a string or an array answers "deny" for
///   every entity that reaches it. (Home Assistant 2026 treats *any* boolean subcategory,
///   `false` included, as allow-all; latch does not grant on `false`.)
/// - a category that is a number, a string or an array denies everything.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CompiledPolicy {
    entities: Entities,
    /// `access_all_entities` per key, indexed by [`PermissionKey::index`].
    access_all: [bool; 3],
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Entities {
    DenyAll,
    AllowAll,
    /// Non-empty, in priority order.
    Lookups(Vec<Lookup>),
}

/// One subcategory.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Lookup {
    /// Answers the same for every entity (`all`, or an invalid non-dict subcategory).
    Every(Answer),
    /// Looks the entity up by `Source` in a map.
    Map(Source, HashMap<String, Answer>),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Source {
    EntityId,
    DeviceId,
    AreaId,
    Domain,
}

/// What a VALUE answers per key: `Some(true)` allow, `Some(false)` deny, `None` nothing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Answer([Option<bool>; 3]);

impl Answer {
    const ALLOW: Self = Self([Some(true); 3]);
    const DENY: Self = Self([Some(false); 3]);

    /// The answer of a VALUE; `None` for `null` (as if the key were absent).
    fn of(value: &Value) -> Option<Self> {
        match value {
            Value::Null => None,
            Value::Bool(true) => Some(Self::ALLOW),
            Value::Object(map) => Some(Self(PermissionKey::ALL.map(
                |key| match map.get(key.as_str()) {
                    None | Some(Value::Null) => None,
                    Some(Value::Bool(true)) => Some(true),
                    Some(_) => Some(false),
                },
            ))),
            _ => Some(Self::DENY),
        }
    }

    fn is_silent(self) -> bool {
        self.0.iter().all(Option::is_none)
    }
}

impl CompiledPolicy {
    /// Compiles `policy`'s `entities` category (other categories are ignored).
    #[must_use]
    pub fn compile(policy: &Policy) -> Self {
        let category = policy.entities();
        Self {
            entities: compile_entities(category),
            access_all: PermissionKey::ALL.map(|key| test_all(category, key)),
        }
    }

    /// Allows everything (what `{"entities": true}` compiles to).
    #[must_use]
    pub fn allow_all() -> Self {
        Self {
            entities: Entities::AllowAll,
            access_all: [true; 3],
        }
    }

    /// Denies everything (what `{}` compiles to).
    #[must_use]
    pub fn deny_all() -> Self {
        Self {
            entities: Entities::DenyAll,
            access_all: [false; 3],
        }
    }

    /// May `key` be done on `entity_id`? `lookup` answers `device_ids` and `area_ids`
    /// rules and is only consulted when the policy has such rules.
    #[must_use]
    pub fn check_entity<L: EntityLookup + ?Sized>(
        &self,
        entity_id: &str,
        key: PermissionKey,
        lookup: &L,
    ) -> bool {
        let lookups = match &self.entities {
            Entities::DenyAll => return false,
            Entities::AllowAll => return true,
            Entities::Lookups(lookups) => lookups,
        };
        let mut device: Option<Option<&str>> = None;
        for lookup_rule in lookups {
            let answer = match lookup_rule {
                Lookup::Every(answer) => Some(*answer),
                Lookup::Map(source, map) => {
                    let id = match source {
                        Source::EntityId => Some(entity_id),
                        Source::Domain => Some(domain(entity_id)),
                        Source::DeviceId => {
                            *device.get_or_insert_with(|| lookup.entity_device(entity_id))
                        }
                        Source::AreaId => (*device
                            .get_or_insert_with(|| lookup.entity_device(entity_id)))
                        .and_then(|d| effective_device_area(lookup, d)),
                    };
                    id.and_then(|id| map.get(id)).copied()
                }
            };
            if let Some(decision) = answer.and_then(|a| a.0[key.index()]) {
                return decision;
            }
        }
        false
    }

    /// HA's `test_all`: does the policy grant `key` on every entity through the
    /// category itself or its `all` subcategory?
    ///
    /// True when the category is `true`, when `all` is `true`, or when `all` is a dict
    /// whose `key` is `true`; false otherwise, even for policies whose other
    /// subcategories happen to allow everything (e.g. `{"entity_ids": true}`). Only the
    /// literal `true` counts (Home Assistant would also take truthy invalid values).
    #[must_use]
    pub fn access_all_entities(&self, key: PermissionKey) -> bool {
        self.access_all[key.index()]
    }
}

/// The part of `entity_id` before the first `.` (Python's `split(".", 1)[0]`).
fn domain(entity_id: &str) -> &str {
    entity_id
        .split_once('.')
        .map_or(entity_id, |(domain, _)| domain)
}

fn test_all(category: Option<&Value>, key: PermissionKey) -> bool {
    match category {
        Some(Value::Bool(true)) => true,
        Some(Value::Object(map)) => match map.get(SUBCAT_ALL) {
            Some(Value::Bool(true)) => true,
            Some(Value::Object(all)) => matches!(all.get(key.as_str()), Some(Value::Bool(true))),
            _ => false,
        },
        _ => false,
    }
}

fn compile_entities(category: Option<&Value>) -> Entities {
    let map = match category {
        Some(Value::Bool(true)) => return Entities::AllowAll,
        Some(Value::Object(map)) => map,
        _ => return Entities::DenyAll,
    };
    let mut lookups = Vec::new();
    for name in ENTITY_SUBCATEGORIES {
        let value = match map.get(name) {
            None | Some(Value::Null) => continue,
            // Any subcategory `true` allows everything, wherever it sits.
            Some(Value::Bool(true)) => return Entities::AllowAll,
            Some(value) => value,
        };
        let lookup = match (source_of(name), value) {
            // `all` is a VALUE, answered for every entity.
            (None, value) => Answer::of(value).map(Lookup::Every),
            (Some(source), Value::Object(keys)) => Some(Lookup::Map(source, compile_map(keys))),
            // `false` or another invalid subcategory: a deny for everyone reaching it.
            (Some(_), _) => Some(Lookup::Every(Answer::DENY)),
        };
        match lookup {
            Some(Lookup::Every(answer)) if answer.is_silent() => {}
            Some(Lookup::Map(_, ref keys)) if keys.is_empty() => {}
            Some(lookup) => lookups.push(lookup),
            None => {}
        }
    }
    if lookups.is_empty() {
        Entities::DenyAll
    } else {
        Entities::Lookups(lookups)
    }
}

fn source_of(subcategory: &str) -> Option<Source> {
    match subcategory {
        SUBCAT_ENTITY_IDS => Some(Source::EntityId),
        SUBCAT_DEVICE_IDS => Some(Source::DeviceId),
        SUBCAT_AREA_IDS => Some(Source::AreaId),
        SUBCAT_DOMAINS => Some(Source::Domain),
        _ => None,
    }
}

fn compile_map(keys: &Map<String, Value>) -> HashMap<String, Answer> {
    keys.iter()
        .filter_map(|(key, value)| Answer::of(value).map(|answer| (key.clone(), answer)))
        .collect()
}
