//! Home Assistant's `tests/auth/permissions/*` and `tests/auth/test_models.py`
//! scenarios, ported as tables, plus latch's own edge cases.

use serde_json::{Value, json};

use super::PermissionKey::{Control, Edit, Read};
use super::*;
use crate::{GROUP_ID_ADMIN, GROUP_ID_READ_ONLY, GROUP_ID_USER, Group, User, system_group};

/// A policy `{"entities": category}`, unvalidated (as HA's tests call
/// `compile_entities` directly).
fn entities(category: Value) -> Policy {
    let mut map = serde_json::Map::new();
    map.insert("entities".to_owned(), category);
    Policy::from_map(map)
}

fn policy(value: Value) -> Policy {
    match value {
        Value::Object(map) => Policy::from_map(map),
        other => panic!("test policy must be an object, got {other}"),
    }
}

/// Asserts every `(entity_id, key, expected)` row against `perms`.
fn assert_checks<L: EntityLookup>(
    perms: &PolicyPermissions<L>,
    rows: &[(&str, PermissionKey, bool)],
) {
    for &(entity_id, key, expected) in rows {
        assert_eq!(
            perms.check_entity(entity_id, key),
            expected,
            "check_entity({entity_id:?}, {key}) under {:?}",
            perms.policy()
        );
    }
}

/// HA's `ENTITY_POLICY_SCHEMA(category)`.
fn category_is_valid(category: &Value) -> bool {
    entities(category.clone()).validate().is_ok()
}

/// Compiles `{"entities": category}` with `lookup`, after checking HA's schema accepts
/// the category.
fn valid<L>(category: Value, lookup: L) -> PolicyPermissions<L> {
    assert!(
        category_is_valid(&category),
        "schema refused {category}: {:?}",
        entities(category.clone()).validate()
    );
    PolicyPermissions::new(entities(category), lookup)
}

// ---- test_entities.py ---------------------------------------------------------------

#[test]
fn entities_none_denies() {
    // `policy = None`: no entities category at all, and an explicit null.
    assert_checks(
        &PolicyPermissions::new(Policy::empty(), NoRegistry),
        &[("light.kitchen", Read, false)],
    );
    assert_checks(
        &PolicyPermissions::new(entities(Value::Null), NoRegistry),
        &[("light.kitchen", Read, false)],
    );
}

#[test]
fn entities_empty_dict_is_valid_and_denies() {
    assert_checks(
        &valid(json!({}), NoRegistry),
        &[("light.kitchen", Read, false)],
    );
}

#[test]
fn entities_false_is_invalid() {
    assert!(!category_is_valid(&json!(false)));
}

#[test]
fn entities_true_allows() {
    assert_checks(
        &valid(json!(true), NoRegistry),
        &[("light.kitchen", Read, true)],
    );
}

#[test]
fn domains_true_allows_everything() {
    assert_checks(
        &valid(json!({"domains": true}), NoRegistry),
        &[("light.kitchen", Read, true)],
    );
}

#[test]
fn domains_domain_true_allows_that_domain_only() {
    assert_checks(
        &valid(json!({"domains": {"light": true}}), NoRegistry),
        &[
            ("light.kitchen", Read, true),
            ("switch.kitchen", Read, false),
        ],
    );
}

#[test]
fn domains_domain_false_is_invalid() {
    assert!(!category_is_valid(&json!({"domains": {"light": false}})));
}

#[test]
fn entity_ids_true_allows_everything() {
    assert_checks(
        &valid(json!({"entity_ids": true}), NoRegistry),
        &[("light.kitchen", Read, true)],
    );
}

#[test]
fn entity_ids_false_is_invalid() {
    assert!(!category_is_valid(&json!({"entity_ids": false})));
}

#[test]
fn entity_ids_entity_true_allows_that_entity_only() {
    assert_checks(
        &valid(json!({"entity_ids": {"light.kitchen": true}}), NoRegistry),
        &[
            ("light.kitchen", Read, true),
            ("switch.kitchen", Read, false),
        ],
    );
}

#[test]
fn entity_ids_entity_false_is_invalid() {
    assert!(!category_is_valid(
        &json!({"entity_ids": {"light.kitchen": false}})
    ));
}

#[test]
fn entity_read_only_dict_grants_read_only() {
    // HA's `test_entities_control_only`.
    assert_checks(
        &valid(
            json!({"entity_ids": {"light.kitchen": {"read": true}}}),
            NoRegistry,
        ),
        &[
            ("light.kitchen", Read, true),
            ("light.kitchen", Control, false),
            ("light.kitchen", Edit, false),
        ],
    );
}

#[test]
fn domain_read_control_dict_grants_read_and_control() {
    assert_checks(
        &valid(
            json!({"domains": {"light": {"read": true, "control": true}}}),
            NoRegistry,
        ),
        &[
            ("light.kitchen", Read, true),
            ("light.kitchen", Control, true),
            ("light.kitchen", Edit, false),
        ],
    );
}

#[test]
fn all_true_allows_everything() {
    assert_checks(
        &valid(json!({"all": true}), NoRegistry),
        &[
            ("light.kitchen", Read, true),
            ("light.kitchen", Control, true),
            ("switch.kitchen", Read, true),
        ],
    );
}

#[test]
fn all_read_grants_read_on_every_entity() {
    assert_checks(
        &valid(json!({"all": {"read": true}}), NoRegistry),
        &[
            ("light.kitchen", Read, true),
            ("light.kitchen", Control, false),
            ("switch.kitchen", Read, true),
        ],
    );
}

#[test]
fn all_control_grants_control_but_not_read() {
    assert_checks(
        &valid(json!({"all": {"control": true}}), NoRegistry),
        &[
            ("light.kitchen", Read, false),
            ("light.kitchen", Control, true),
            ("switch.kitchen", Read, false),
            ("switch.kitchen", Control, true),
        ],
    );
}

#[test]
fn device_ids_match_through_the_entity_registry() {
    let registry = InMemoryRegistry::new()
        .with_entity("test_domain.allowed", Some("mock-allowed-dev-id"))
        .with_entity("test_domain.not_allowed", Some("mock-not-allowed-dev-id"));
    assert_checks(
        &valid(
            json!({"device_ids": {"mock-allowed-dev-id": {"read": true}}}),
            &registry,
        ),
        &[
            ("test_domain.allowed", Read, true),
            ("test_domain.allowed", Control, false),
            ("test_domain.not_allowed", Read, false),
            ("test_domain.not_allowed", Control, false),
            // Not in the registry, or on no device: no opinion, so denied.
            ("test_domain.unknown", Read, false),
        ],
    );
}

#[test]
fn device_ids_need_a_registry_entry_with_a_device() {
    let registry = InMemoryRegistry::new().with_entity("light.loose", None);
    let perms = valid(json!({"device_ids": {"dev": true}}), &registry);
    assert_checks(&perms, &[("light.loose", Read, false)]);
    let perms = valid(json!({"device_ids": {"dev": true}}), NoRegistry);
    assert_checks(&perms, &[("light.loose", Read, false)]);
}

#[test]
fn area_ids_true_allows_everything() {
    assert_checks(
        &valid(json!({"area_ids": true}), NoRegistry),
        &[("light.kitchen", Read, true)],
    );
}

#[test]
fn area_ids_match_through_the_device_area() {
    let registry = InMemoryRegistry::new()
        .with_entity("light.kitchen", Some("mock-dev-id"))
        .with_device("mock-dev-id", Some("mock-area-id"), None);
    assert_checks(
        &valid(
            json!({"area_ids": {"mock-area-id": {"read": true, "control": true}}}),
            &registry,
        ),
        &[
            ("light.kitchen", Read, true),
            ("light.kitchen", Control, true),
            ("light.kitchen", Edit, false),
            ("switch.kitchen", Read, false),
        ],
    );
}

#[test]
fn area_ids_child_device_inherits_parent_area() {
    let registry = InMemoryRegistry::new()
        .with_entity("light.lamp", Some("lamp"))
        .with_entity("light.hub", Some("hub"))
        .with_entity("light.grandchild", Some("bulb"))
        .with_entity("light.own_area", Some("own"))
        .with_device("hub", Some("kitchen"), None)
        .with_device("lamp", None, Some("hub"))
        .with_device("bulb", None, Some("lamp"))
        .with_device("own", Some("hall"), Some("hub"));
    assert_checks(
        &valid(json!({"area_ids": {"kitchen": true}}), &registry),
        &[
            ("light.hub", Read, true),
            // No area of its own: the parent's area counts.
            ("light.lamp", Read, true),
            // One level only: the parent has no area of its own either.
            ("light.grandchild", Read, false),
            // A device's own area wins over its parent's.
            ("light.own_area", Read, false),
        ],
    );
}

#[test]
fn area_ids_ignore_the_entity_area_override() {
    let mut registry = InMemoryRegistry::new()
        .with_entity("light.kitchen", Some("dev"))
        .with_device("dev", Some("kitchen"), None)
        .with_entity("light.no_device", None);
    for id in ["light.kitchen", "light.no_device"] {
        if let Some(entry) = registry.entity_mut(id) {
            entry.area_id = Some("garage".to_owned());
        }
    }
    assert_checks(
        &valid(json!({"area_ids": {"garage": true}}), &registry),
        &[
            ("light.kitchen", Read, false),
            ("light.no_device", Read, false),
        ],
    );
    assert_checks(
        &valid(json!({"area_ids": {"kitchen": true}}), &registry),
        &[("light.kitchen", Read, true)],
    );
}

#[test]
fn registry_changes_apply_without_recompiling() {
    let mut registry = InMemoryRegistry::new().with_entity("light.kitchen", Some("dev"));
    let compiled = CompiledPolicy::compile(&entities(json!({"area_ids": {"kitchen": true}})));
    assert!(!compiled.check_entity("light.kitchen", Read, &registry));
    registry.insert_device(
        "dev",
        DeviceEntry {
            area_id: Some("kitchen".to_owned()),
            via_device_id: None,
        },
    );
    assert!(compiled.check_entity("light.kitchen", Read, &registry));
}

// ---- priority order and HA's dict-lookup rule ------------------------------------------

#[test]
fn dict_lacking_the_key_falls_through_to_the_next_subcategory() {
    // HA's dict lookup answers `dict.get(key)`, i.e. nothing for a missing key, so the
    // next subcategory decides.
    assert_checks(
        &valid(
            json!({
                "entity_ids": {"light.kitchen": {"read": true}},
                "domains": {"light": {"control": true}},
            }),
            NoRegistry,
        ),
        &[
            ("light.kitchen", Read, true),
            ("light.kitchen", Control, true),
            ("light.kitchen", Edit, false),
            ("light.hall", Read, false),
            ("light.hall", Control, true),
        ],
    );
}

#[test]
fn any_true_subcategory_allows_everything_even_after_narrower_rules() {
    assert_checks(
        &valid(
            json!({
                "entity_ids": {"light.kitchen": {"read": true}},
                "domains": true,
            }),
            NoRegistry,
        ),
        &[
            ("light.kitchen", Control, true),
            ("light.kitchen", Edit, true),
            ("switch.any", Edit, true),
        ],
    );
}

#[test]
fn subcategories_are_tried_in_priority_order() {
    let registry = InMemoryRegistry::new()
        .with_entity("light.kitchen", Some("dev"))
        .with_device("dev", Some("kitchen"), None);
    let perms = valid(
        json!({
            "all": {"edit": true},
            "domains": {"light": {"control": true}},
            "area_ids": {"kitchen": {"read": true}},
        }),
        &registry,
    );
    // Each key is answered by the first subcategory that says something about it.
    assert_checks(
        &perms,
        &[
            ("light.kitchen", Read, true),
            ("light.kitchen", Control, true),
            ("light.kitchen", Edit, true),
            ("switch.x", Read, false),
            ("switch.x", Edit, true),
        ],
    );
}

#[test]
fn domain_is_the_part_before_the_first_dot() {
    assert_checks(
        &valid(
            json!({"domains": {"light": true, "nodot": true}}),
            NoRegistry,
        ),
        &[
            ("light.kitchen.extra", Read, true),
            ("nodot", Read, true),
            ("lights.kitchen", Read, false),
            (".light", Read, false),
            ("", Read, false),
        ],
    );
}

#[test]
fn explicit_false_value_decides_deny_as_in_ha() {
    // Invalid, but a store may hold it: HA's lookup returns False, which decides.
    let perms = PolicyPermissions::new(
        entities(json!({
            "entity_ids": {"light.kitchen": {"read": false}, "light.hall": false},
            "domains": {"light": true},
        })),
        NoRegistry,
    );
    assert_checks(
        &perms,
        &[
            ("light.kitchen", Read, false),
            ("light.kitchen", Control, true),
            ("light.hall", Read, false),
            ("light.other", Read, true),
        ],
    );
}

#[test]
fn invalid_false_subcategory_never_grants() {
    // HA 2026 would allow everything here; latch denies whoever reaches the `false`.
    let perms = PolicyPermissions::new(
        entities(json!({
            "entity_ids": {"light.kitchen": true},
            "domains": false,
            "all": {"read": true},
        })),
        NoRegistry,
    );
    assert_checks(
        &perms,
        &[
            ("light.kitchen", Control, true),
            ("switch.kitchen", Read, false),
        ],
    );
    let all_false = PolicyPermissions::new(entities(json!({"all": false})), NoRegistry);
    assert_checks(&all_false, &[("light.kitchen", Read, false)]);
}

#[test]
fn invalid_shapes_deny_without_panicking() {
    for category in [
        json!(false),
        json!(1),
        json!("yes"),
        json!([true]),
        json!({"all": "yes"}),
        json!({"all": 1}),
        json!({"entity_ids": ["light.kitchen"]}),
        json!({"entity_ids": {"light.kitchen": "read"}}),
        json!({"entity_ids": {"light.kitchen": {"read": 1}}}),
        json!({"unknown": true}),
        json!({"all": null, "entity_ids": null}),
    ] {
        let perms = PolicyPermissions::new(entities(category.clone()), NoRegistry);
        for key in PermissionKey::ALL {
            assert!(
                !perms.check_entity("light.kitchen", key),
                "{category} {key}"
            );
            assert!(!perms.access_all_entities(key), "{category} {key}");
        }
    }
}

#[test]
fn null_value_counts_as_absent() {
    let perms = PolicyPermissions::new(
        entities(json!({
            "entity_ids": {"light.kitchen": null},
            "domains": {"light": {"read": null, "control": true}},
        })),
        NoRegistry,
    );
    assert_checks(
        &perms,
        &[
            ("light.kitchen", Read, false),
            ("light.kitchen", Control, true),
        ],
    );
}

#[test]
fn other_categories_are_ignored_by_checks() {
    let perms = PolicyPermissions::new(policy(json!({"something_else": true})), NoRegistry);
    assert_checks(&perms, &[("light.kitchen", Read, false)]);
}

// ---- test_merge.py and test_models.py -----------------------------------------------

#[test]
fn merge_true_rules_over_dict() {
    let p1 = policy(json!({
        "something_else": true,
        "entities": {"entity_ids": {"light.kitchen": true}},
    }));
    let p2 = policy(json!({"entities": {"entity_ids": true}}));
    assert_eq!(
        merge_policies(&[&p1, &p2]),
        policy(json!({
            "something_else": true,
            "entities": {"entity_ids": true},
        }))
    );
}

#[test]
fn merge_multiple_subcategories() {
    let p1 = policy(json!({"entities": null}));
    let p2 = policy(json!({"entities": {"entity_ids": true}}));
    let p3 = policy(json!({"entities": true}));
    assert_eq!(merge_policies(&[&p1, &p2]), p2);
    assert_eq!(merge_policies(&[&p1, &p3]), p3);
    assert_eq!(merge_policies(&[&p2, &p3]), p3);
}

#[test]
fn merge_of_no_policies_is_empty_and_denies() {
    let merged = merge_policies(&[]);
    assert_eq!(merged, Policy::empty());
    let perms = PolicyPermissions::new(merged, NoRegistry);
    assert!(!perms.check_entity("light.kitchen", Read));
}

#[test]
fn merge_unions_dicts_key_by_key_in_first_seen_order() {
    let p1 = policy(json!({"entities": {
        "entity_ids": {"light.kitchen": {"read": true}},
        "all": {"read": true},
    }}));
    let p2 = policy(json!({
        "other": {"x": true},
        "entities": {
            "domains": {"switch": true},
            "entity_ids": {"light.kitchen": {"control": true}, "light.hall": true},
        },
    }));
    let merged = merge_policies(&[&p1, &p2]);
    assert_eq!(
        serde_json::to_string(&merged).unwrap(),
        concat!(
            r#"{"entities":{"entity_ids":{"light.kitchen":{"read":true,"control":true},"#,
            r#""light.hall":true},"all":{"read":true},"domains":{"switch":true}},"#,
            r#""other":{"x":true}}"#
        )
    );
}

#[test]
fn merge_keeps_null_when_every_group_is_null() {
    let p1 = policy(json!({"entities": null}));
    let p2 = policy(json!({}));
    assert_eq!(
        merge_policies(&[&p1, &p2]),
        policy(json!({"entities": null}))
    );
}

#[test]
fn merge_drops_invalid_values_instead_of_failing() {
    let p1 = policy(json!({"entities": {"entity_ids": false, "all": {"read": 1}}}));
    let p2 = policy(json!({"entities": {"domains": {"light": true}}}));
    assert_eq!(
        merge_policies(&[&p1, &p2]),
        policy(json!({"entities": {
            "entity_ids": null,
            "all": {"read": null},
            "domains": {"light": true},
        }}))
    );
}

#[test]
fn user_permissions_merge_group_policies() {
    // HA's test_models.py `test_permissions_merged`.
    let switches = Group::new_custom(
        Some("Test Group".into()),
        policy(json!({"entities": {"domains": {"switch": true}}})),
    );
    let kitchen = Group::new_custom(
        Some("Test Group".into()),
        policy(json!({"entities": {"entity_ids": {"light.kitchen": true}}})),
    );
    let user = User::new(Some("Test User".into()));
    let perms = permissions_for(&user, &[&switches, &kitchen], NoRegistry);
    assert!(perms.check_entity("switch.bla", Read));
    assert!(perms.check_entity("light.kitchen", Read));
    assert!(!perms.check_entity("light.not_kitchen", Read));
}

// ---- test_util.py -------------------------------------------------------------------

#[test]
fn access_all_entities_truth_table() {
    // HA's `test_test_all`, plus the other keys.
    let rows: &[(Option<Value>, PermissionKey, bool)] = &[
        (None, Read, false),
        (Some(json!(null)), Read, false),
        (Some(json!({})), Read, false),
        (Some(json!({"all": null})), Read, false),
        (Some(json!({"all": {}})), Read, false),
        (Some(json!(true)), Read, true),
        (Some(json!({"all": true})), Read, true),
        (Some(json!({"all": {"read": true}})), Read, true),
        (Some(json!({"all": {"read": true}})), Control, false),
        (Some(json!({"all": {"control": true}})), Control, true),
        (Some(json!({"all": {"control": true}})), Read, false),
        // `entity_ids: true` allows every check but is not an "all" grant.
        (Some(json!({"entity_ids": true})), Read, false),
        (Some(json!(false)), Read, false),
        (Some(json!({"all": false})), Read, false),
        (Some(json!({"all": {"read": 1}})), Read, false),
    ];
    for (category, key, expected) in rows {
        let p = match category {
            Some(c) => entities(c.clone()),
            None => Policy::empty(),
        };
        assert_eq!(
            CompiledPolicy::compile(&p).access_all_entities(*key),
            *expected,
            "access_all_entities({key}) under {category:?}"
        );
    }
}

// ---- test_system_policies.py --------------------------------------------------------

#[test]
fn system_policies_are_valid_and_grant_as_documented() {
    let rows: &[(&str, [bool; 3])] = &[
        (GROUP_ID_ADMIN, [true, true, true]),
        (GROUP_ID_USER, [true, true, true]),
        (GROUP_ID_READ_ONLY, [true, false, false]),
    ];
    for &(group_id, grants) in rows {
        let group = system_group(group_id).unwrap();
        assert_eq!(group.policy.validate(), Ok(()), "{group_id}");
        let perms = PolicyPermissions::new(group.policy.clone(), NoRegistry);
        for key in PermissionKey::ALL {
            assert_eq!(
                perms.check_entity("light.kitchen", key),
                grants[key.index()],
                "{group_id} {key}"
            );
            assert_eq!(
                perms.access_all_entities(key),
                grants[key.index()],
                "{group_id} access_all {key}"
            );
        }
    }
}

#[test]
fn system_policies_have_ha_json() {
    assert_eq!(
        serde_json::to_string(&Policy::all_entities()).unwrap(),
        r#"{"entities":true}"#
    );
    assert_eq!(
        serde_json::to_string(&Policy::read_only()).unwrap(),
        r#"{"entities":{"all":{"read":true}}}"#
    );
}

// ---- permissions/test_init.py -------------------------------------------------------

#[test]
fn owner_is_allowed_everything_whatever_the_groups() {
    let empty = Group::new_custom(Some("Test Group".into()), Policy::empty());
    let mut owner = User::new(Some("Test User".into()));
    owner.is_owner = true;
    for groups in [&[][..], &[&empty][..]] {
        let perms = permissions_for(&owner, groups, NoRegistry);
        assert!(perms.is_owner());
        assert_eq!(perms, Permissions::<NoRegistry>::Owner(OwnerPermissions));
        assert_eq!(perms.policy(), None);
        for key in PermissionKey::ALL {
            assert!(perms.check_entity("light.kitchen", key));
            assert!(perms.access_all_entities(key));
        }
    }
}

#[test]
fn non_owner_without_groups_is_denied_everything() {
    let user = User::new(None);
    let perms = permissions_for(&user, &[], NoRegistry);
    assert!(!perms.is_owner());
    assert_eq!(perms.policy(), Some(&Policy::empty()));
    for key in PermissionKey::ALL {
        assert!(!perms.check_entity("light.kitchen", key));
        assert!(!perms.access_all_entities(key));
    }
}

#[test]
fn admin_group_member_is_allowed_through_the_policy_not_the_admin_flag() {
    // An inactive member of system-admin is not admin, yet the group policy still
    // grants everything: the policy and `is_admin` are separate gates.
    let admin = system_group(GROUP_ID_ADMIN).unwrap();
    let mut user = User::new(None);
    user.group_ids.push(admin.id.clone());
    assert!(!user.is_admin());
    let perms = permissions_for(&user, &[&admin], NoRegistry);
    assert!(!perms.is_owner());
    assert!(perms.check_entity("lock.front_door", Edit));
}

#[test]
fn permissions_compare_by_policy() {
    let a = PolicyPermissions::new(Policy::read_only(), NoRegistry);
    let b = PolicyPermissions::new(Policy::read_only(), InMemoryRegistry::new());
    let c = PolicyPermissions::new(Policy::all_entities(), NoRegistry);
    assert_eq!(a, b);
    assert_ne!(a, c);
    assert_ne!(
        Permissions::Policy(a),
        Permissions::<NoRegistry>::Owner(OwnerPermissions)
    );
}

#[test]
fn filter_entity_ids_keeps_allowed_ids_in_order() {
    let user = User::new(None);
    let group = Group::new_custom(
        None,
        policy(json!({"entities": {"entity_ids": {"light.kitchen": true, "light.balcony": true}}})),
    );
    let perms = permissions_for(&user, &[&group], NoRegistry);
    let ids = ["light.kitchen", "light.living_room", "light.balcony"];
    assert_eq!(
        perms.filter_entity_ids(ids, Read),
        vec!["light.kitchen", "light.balcony"]
    );
    let all = permissions_for(&user, &[&system_group(GROUP_ID_USER).unwrap()], NoRegistry);
    assert_eq!(all.filter_entity_ids(ids, Edit), ids.to_vec());
}

// ---- validation ---------------------------------------------------------------------

#[test]
fn validate_accepts_the_full_grammar() {
    let p = policy(json!({"entities": {
        "all": {"read": true},
        "entity_ids": {"light.kitchen": true, "light.hall": {"read": true, "edit": true}},
        "device_ids": true,
        "area_ids": {"kitchen": {"control": true}},
        "domains": {},
    }}));
    assert_eq!(p.validate(), Ok(()));
    assert_eq!(Policy::empty().validate(), Ok(()));
    assert_eq!(policy(json!({"entities": {}})).validate(), Ok(()));
}

#[test]
fn validate_names_the_offending_path() {
    let rows: &[(Value, &str)] = &[
        (
            json!({"entities": {"entity_ids": {"light.kitchen": {"read": false}}}}),
            "entities.entity_ids.light.kitchen.read: false is not allowed, only true",
        ),
        (
            json!({"entities": false}),
            "entities: false is not allowed, only true",
        ),
        (
            json!({"entities": null}),
            "entities: expected true or an object, found null",
        ),
        (
            json!({"entities": {"domains": {"light": "yes"}}}),
            "entities.domains.light: expected true or an object, found a string",
        ),
        (
            json!({"entities": {"all": {"read": 1}}}),
            "entities.all.read: expected true, found a number",
        ),
        (
            json!({"entities": {"all": {"write": true}}}),
            "entities.all.write: unknown key, expected one of read, control, edit",
        ),
        (
            json!({"entities": {"areas": true}}),
            "entities.areas: unknown key, expected one of all, entity_ids, device_ids, \
             area_ids, domains",
        ),
        (
            json!({"something_else": true}),
            "something_else: unknown key, expected one of entities",
        ),
        (
            json!({"entities": {"device_ids": [1]}}),
            "entities.device_ids: expected true or an object, found an array",
        ),
    ];
    for (value, message) in rows {
        let err = Policy::from_json(value.clone()).unwrap_err();
        assert_eq!(err.to_string(), *message, "{value}");
        assert_eq!(policy(value.clone()).validate(), Err(err));
    }
}

#[test]
fn from_json_refuses_a_non_object() {
    let err = Policy::try_from(json!([])).unwrap_err();
    assert_eq!(err.path(), "");
    assert_eq!(
        err.to_string(),
        "policy: expected an object, found an array"
    );
    let ok = Policy::try_from(json!({"entities": true})).unwrap();
    assert_eq!(ok, Policy::all_entities());
}

#[test]
fn deserialize_is_lenient_and_keeps_invalid_policies() {
    let text = r#"{"entities":{"entity_ids":false},"custom":[1,2]}"#;
    let p: Policy = serde_json::from_str(text).unwrap();
    assert!(p.validate().is_err());
    assert_eq!(serde_json::to_string(&p).unwrap(), text);
    assert!(serde_json::from_str::<Policy>("[]").is_err());
    assert!(serde_json::from_str::<Policy>("null").is_err());
}

#[test]
fn serde_round_trip_keeps_key_order() {
    // Deliberately not alphabetical at every level.
    let text = concat!(
        r#"{"zeta":true,"entities":{"entity_ids":{"switch.b":true,"light.a":{"edit":true,"read":true}},"#,
        r#""all":{"control":true},"domains":{"z":true,"a":true}}}"#
    );
    let p: Policy = serde_json::from_str(text).unwrap();
    assert_eq!(serde_json::to_string(&p).unwrap(), text);
    let pretty = serde_json::to_string_pretty(&p).unwrap();
    let again: Policy = serde_json::from_str(&pretty).unwrap();
    assert_eq!(serde_json::to_string(&again).unwrap(), text);
    let debug = format!("{p:?}");
    let positions: Vec<usize> = [
        "zeta", "entities", "switch.b", "light.a", "edit", "read", "all", "\"z\"", "\"a\"",
    ]
    .iter()
    .map(|needle| debug.find(needle).unwrap())
    .collect();
    assert!(positions.windows(2).all(|w| w[0] < w[1]), "{debug}");
}

#[test]
fn permission_key_parses_and_serializes_lower_case() {
    for key in PermissionKey::ALL {
        assert_eq!(key.as_str().parse::<PermissionKey>(), Ok(key));
        assert_eq!(key.to_string(), key.as_str());
        assert_eq!(
            serde_json::to_string(&key).unwrap(),
            format!("\"{}\"", key.as_str())
        );
        assert_eq!(
            serde_json::from_str::<PermissionKey>(&format!("\"{key}\"")).unwrap(),
            key
        );
    }
    assert_eq!(
        "READ".parse::<PermissionKey>(),
        Err(UnknownPermissionKey("READ".into()))
    );
    assert_eq!(
        "write".parse::<PermissionKey>().unwrap_err().to_string(),
        "unknown permission key \"write\": expected read, control or edit"
    );
    assert!(serde_json::from_str::<PermissionKey>("\"Read\"").is_err());
}

#[test]
fn compiled_constructors_match_their_policies() {
    assert_eq!(
        CompiledPolicy::allow_all(),
        CompiledPolicy::compile(&Policy::all_entities())
    );
    assert_eq!(
        CompiledPolicy::deny_all(),
        CompiledPolicy::compile(&Policy::empty())
    );
}
