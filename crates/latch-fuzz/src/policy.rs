//! Permission policies: parsing, validation, merging and compiling.

use latch_models::permissions::{CompiledPolicy, InMemoryRegistry, merge_policies};
use latch_models::{PermissionKey, Policy};
use serde_json::Value;

use crate::must;

/// Policy parsing: the input as JSON, read as a policy both leniently (as the store
/// does) and with Home Assistant's schema check (as an admin request does).
///
/// A policy that validates also loads leniently, to the same policy; a policy survives
/// serialisation; merging is idempotent, keeps a valid policy valid and unchanged, and
/// only ever adds permissions; compiling and checking never panic.
pub fn policy(data: &[u8]) {
    let Ok(value) = serde_json::from_slice::<Value>(data) else {
        return;
    };
    let strict = Policy::from_json(value.clone());
    let lenient = serde_json::from_value::<Policy>(value);
    if let Ok(strict) = &strict {
        let lenient = lenient
            .as_ref()
            .unwrap_or_else(|e| panic!("a valid policy does not load: {e}"));
        assert_eq!(strict, lenient);
    }
    let Ok(policy) = lenient else {
        return;
    };
    let valid = match policy.validate() {
        Ok(()) => true,
        Err(e) => {
            let _ = (e.to_string(), e.path());
            false
        }
    };
    assert_eq!(valid, strict.is_ok(), "validate and from_json disagree");

    let text = must(serde_json::to_string(&policy), "serialise a policy");
    let back: Policy = must(serde_json::from_str(&text), "reload a policy");
    assert_eq!(back, policy, "policy round trip");
    assert_eq!(
        Policy::from_map(policy.clone().into_map()),
        policy,
        "map round trip"
    );

    let merged = merge_policies(&[&policy]);
    assert_eq!(
        merge_policies(&[&policy, &policy]),
        merged,
        "merging is not idempotent"
    );
    if valid {
        assert_eq!(merged, policy, "merging one valid policy changes it");
        let wider = merge_policies(&[&policy, &Policy::read_only()]);
        assert!(
            wider.validate().is_ok(),
            "a merge of valid policies is invalid"
        );
    }

    let compiled = CompiledPolicy::compile(&policy);
    let registry = InMemoryRegistry::new()
        .with_entity("light.kitchen", Some("dev1"))
        .with_entity("switch.porch", None)
        .with_device("dev1", Some("area1"), None);
    let ids = entity_ids(&policy);
    let all = CompiledPolicy::compile(&merge_policies(&[&policy, &Policy::all_entities()]));
    let read_only = CompiledPolicy::compile(&merge_policies(&[&policy, &Policy::read_only()]));
    for key in PermissionKey::ALL {
        let _ = compiled.access_all_entities(key);
        assert!(
            all.access_all_entities(key),
            "all entities does not allow {key:?}"
        );
        for id in &ids {
            let allowed = compiled.check_entity(id, key, &registry);
            assert!(all.check_entity(id, key, &registry));
            if valid && allowed {
                assert!(
                    read_only.check_entity(id, key, &registry),
                    "merging took {key:?} on {id} away"
                );
            }
        }
    }
}

/// Entity ids worth checking: fixed ones, and ones built from the policy's own keys.
fn entity_ids(policy: &Policy) -> Vec<String> {
    let mut ids = vec![
        "light.kitchen".to_owned(),
        "switch.porch".to_owned(),
        "sensor".to_owned(),
        String::new(),
    ];
    if let Some(Value::Object(entities)) = policy.entities() {
        for (subcategory, value) in entities.iter().take(8) {
            let Value::Object(map) = value else { continue };
            for key in map.keys().take(8) {
                if subcategory == "domains" {
                    ids.push(format!("{key}.x"));
                } else {
                    ids.push(key.clone());
                }
            }
        }
    }
    ids
}
