//! Property tests: merging laws, semantic exactness of the merge, and no panics on any
//! JSON.

use proptest::prelude::*;
use serde_json::{Map, Value};

use super::*;

const ENTITY_IDS: [&str; 6] = [
    "light.kitchen",
    "light.hall",
    "switch.kitchen",
    "sensor.temp",
    "lock.door",
    "nodot",
];
const KEYS_POOL: [&str; 10] = [
    "light.kitchen",
    "light.hall",
    "switch.kitchen",
    "light",
    "switch",
    "nodot",
    "dev-a",
    "dev-b",
    "kitchen",
    "hall",
];

fn registry() -> InMemoryRegistry {
    InMemoryRegistry::new()
        .with_entity("light.kitchen", Some("dev-a"))
        .with_entity("light.hall", Some("dev-b"))
        .with_entity("switch.kitchen", Some("dev-c"))
        .with_entity("sensor.temp", None)
        .with_device("dev-a", Some("kitchen"), None)
        .with_device("dev-b", None, Some("dev-a"))
        .with_device("dev-c", Some("hall"), Some("dev-a"))
}

fn object(entries: Vec<(String, Value)>) -> Value {
    Value::Object(entries.into_iter().collect::<Map<String, Value>>())
}

/// `VALUE := true | {"read"?: true, "control"?: true, "edit"?: true}`.
fn valid_value() -> impl Strategy<Value = Value> {
    prop_oneof![
        1 => Just(Value::Bool(true)),
        4 => proptest::sample::subsequence(vec!["read", "control", "edit"], 0..=3).prop_shuffle()
            .prop_map(|keys| object(keys.into_iter().map(|k| (k.to_owned(), Value::Bool(true))).collect())),
    ]
}

/// `SUBCAT := true | {key: VALUE}`.
fn valid_subcategory() -> impl Strategy<Value = Value> {
    prop_oneof![
        1 => Just(Value::Bool(true)),
        6 => proptest::collection::vec((proptest::sample::select(&KEYS_POOL[..]), valid_value()), 0..4)
            .prop_map(|entries| object(entries.into_iter().map(|(k, v)| (k.to_owned(), v)).collect())),
    ]
}

/// `CATEGORY := true | {"all"?: VALUE, <subcat>?: SUBCAT}`, subcategories in any order.
fn valid_category() -> impl Strategy<Value = Value> {
    let dict = (
        proptest::option::of(valid_value()),
        proptest::option::of(valid_subcategory()),
        proptest::option::of(valid_subcategory()),
        proptest::option::of(valid_subcategory()),
        proptest::option::of(valid_subcategory()),
        any::<u64>(),
    )
        .prop_map(|(all, entity_ids, device_ids, area_ids, domains, seed)| {
            let mut entries: Vec<(String, Value)> = [
                ("all", all),
                ("entity_ids", entity_ids),
                ("device_ids", device_ids),
                ("area_ids", area_ids),
                ("domains", domains),
            ]
            .into_iter()
            .filter_map(|(k, v)| v.map(|v| (k.to_owned(), v)))
            .collect();
            // Cheap deterministic shuffle so key order varies.
            let len = entries.len();
            if len > 1 {
                entries.rotate_left(usize::try_from(seed % len as u64).unwrap_or(0));
            }
            object(entries)
        });
    prop_oneof![1 => Just(Value::Bool(true)), 8 => dict]
}

/// A policy that passes `validate`.
fn valid_policy() -> impl Strategy<Value = Policy> {
    proptest::option::of(valid_category()).prop_map(|category| {
        let mut map = Map::new();
        if let Some(category) = category {
            map.insert(CAT_ENTITIES.to_owned(), category);
        }
        Policy::from_map(map)
    })
}

/// Any JSON at all, a few levels deep, biased towards policy-looking keys.
fn any_json() -> impl Strategy<Value = Value> {
    let key = prop_oneof![
        proptest::sample::select(
            &[
                "entities",
                "all",
                "entity_ids",
                "device_ids",
                "area_ids",
                "domains",
                "read",
                "control",
                "edit",
                "light",
                "light.kitchen",
                "dev-a",
                "kitchen",
            ][..]
        )
        .prop_map(str::to_owned),
        ".{0,6}",
    ];
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        ".{0,8}".prop_map(Value::String),
    ];
    leaf.prop_recursive(5, 64, 6, move |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            proptest::collection::vec((key.clone(), inner), 0..6).prop_map(object),
        ]
    })
}

/// Any JSON object, as a lenient (unvalidated) policy.
fn any_policy() -> impl Strategy<Value = Policy> {
    prop_oneof![
        any_json(),
        any_json().prop_map(|v| object(vec![(CAT_ENTITIES.to_owned(), v)])),
    ]
    .prop_map(|v| match v {
        Value::Object(map) => Policy::from_map(map),
        other => Policy::from_map(std::iter::once((CAT_ENTITIES.to_owned(), other)).collect()),
    })
}

/// Every check under `policy` against the fixed registry.
fn behaviour(policy: &Policy) -> Vec<bool> {
    let compiled = CompiledPolicy::compile(policy);
    let registry = registry();
    let mut out = Vec::new();
    for entity_id in ENTITY_IDS {
        for key in PermissionKey::ALL {
            out.push(compiled.check_entity(entity_id, key, &registry));
        }
    }
    for key in PermissionKey::ALL {
        out.push(compiled.access_all_entities(key));
    }
    out
}

fn refs(policies: &[Policy]) -> Vec<&Policy> {
    policies.iter().collect()
}

proptest! {
    #[test]
    fn generated_valid_policies_validate(p in valid_policy()) {
        prop_assert_eq!(p.validate(), Ok(()));
    }

    #[test]
    fn merge_is_order_independent(
        (policies, shuffled) in proptest::collection::vec(any_policy(), 0..5)
            .prop_flat_map(|v| (Just(v.clone()), Just(v).prop_shuffle()))
    ) {
        // Content equality (serde_json's map equality ignores key order).
        prop_assert_eq!(merge_policies(&refs(&policies)), merge_policies(&refs(&shuffled)));
    }

    #[test]
    fn merge_of_valid_policies_is_order_independent_in_behaviour(
        (policies, shuffled) in proptest::collection::vec(valid_policy(), 0..5)
            .prop_flat_map(|v| (Just(v.clone()), Just(v).prop_shuffle()))
    ) {
        prop_assert_eq!(
            behaviour(&merge_policies(&refs(&policies))),
            behaviour(&merge_policies(&refs(&shuffled)))
        );
    }

    #[test]
    fn merge_is_idempotent(a in valid_policy()) {
        prop_assert_eq!(&merge_policies(&[&a, &a]), &a);
        prop_assert_eq!(&merge_policies(&[&a]), &a);
    }

    #[test]
    fn merge_normalises_any_policy_once(a in any_policy()) {
        // merge([x]) of an invalid policy drops its invalid values; doing it again
        // changes nothing more.
        let once = merge_policies(&[&a]);
        prop_assert_eq!(&merge_policies(&[&once]), &once);
        prop_assert_eq!(&merge_policies(&[&once, &once]), &once);
    }

    #[test]
    fn merge_with_empty_policy_is_identity(a in valid_policy()) {
        // `{}` is an exact identity, on either side.
        let empty = Policy::empty();
        prop_assert_eq!(&merge_policies(&[&a, &empty]), &a);
        prop_assert_eq!(&merge_policies(&[&empty, &a]), &a);
        // `{"entities": null}` may add an `entities: null` key, but never changes a check.
        let null = Policy::from_map(std::iter::once((CAT_ENTITIES.to_owned(), Value::Null)).collect());
        prop_assert_eq!(behaviour(&merge_policies(&[&a, &null])), behaviour(&a));
    }

    #[test]
    fn merge_grants_exactly_the_union(a in valid_policy(), b in valid_policy()) {
        // For valid policies, a check passes under merge(a, b) iff it passes under a or b.
        let merged = merge_policies(&[&a, &b]);
        let union: Vec<bool> = behaviour(&a)
            .into_iter()
            .zip(behaviour(&b))
            .map(|(x, y)| x || y)
            .collect();
        prop_assert_eq!(behaviour(&merged), union);
    }

    #[test]
    fn merge_of_valid_policies_is_valid(a in valid_policy(), b in valid_policy(), c in valid_policy()) {
        prop_assert_eq!(merge_policies(&[&a, &b, &c]).validate(), Ok(()));
    }

    #[test]
    fn valid_policy_round_trips_byte_for_byte(p in valid_policy()) {
        let text = serde_json::to_string(&p).unwrap();
        let back: Policy = serde_json::from_str(&text).unwrap();
        prop_assert_eq!(serde_json::to_string(&back).unwrap(), text);
        prop_assert_eq!(Policy::from_json(p.to_value()), Ok(p));
    }

    #[test]
    fn any_json_never_panics(value in any_json()) {
        let checked = Policy::from_json(value.clone());
        if let Ok(p) = &checked {
            prop_assert_eq!(p.validate(), Ok(()));
        }
        if let Value::Object(map) = value {
            let lenient = Policy::from_map(map);
            prop_assert_eq!(checked.is_ok(), lenient.validate().is_ok());
            let _ = behaviour(&lenient);
            let _ = merge_policies(&[&lenient, &lenient]);
        }
    }

    #[test]
    fn any_policy_compiles_and_checks_without_panicking(p in any_policy(), q in any_policy()) {
        let merged = merge_policies(&[&p, &q]);
        let _ = behaviour(&p);
        let _ = behaviour(&merged);
        let text = serde_json::to_string(&merged).unwrap();
        prop_assert_eq!(serde_json::from_str::<Policy>(&text).unwrap(), merged);
    }
}
