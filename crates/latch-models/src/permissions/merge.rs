//! Merging the policies of a user's groups (HA's `permissions/merge.py`).

use serde_json::{Map, Value};

use super::Policy;

/// Merges group policies into the one policy a user is checked against: the most
/// permissive wins, in the order `true` > dict > absent or `null`.
///
/// - Every category that appears in any policy appears in the result, in order of first
///   appearance (categories other than `entities` are kept, though nothing reads them).
/// - A category (or any nested key) is `true` if any policy has `true` there.
/// - Otherwise the dicts found there are merged key by key, recursively, by the same rule;
///   keys come out in order of first appearance.
/// - If every policy has `null` (or nothing) for a key that some policy names, the result
///   holds `null` for it, as Home Assistant's does.
/// - No policies give `{}`, which denies everything.
///
/// Home Assistant's merge fails an assertion on values that are neither `true`, a dict
/// nor `null`; here such invalid values (`false`, numbers, strings, arrays) count as
/// absent. For policies that pass [`Policy::validate`] the result is exactly Home
/// Assistant's, and it validates too.
#[must_use]
pub fn merge_policies(policies: &[&Policy]) -> Policy {
    let mut merged = Map::new();
    for policy in policies {
        for category in policy.as_map().keys() {
            if merged.contains_key(category) {
                continue;
            }
            let sources: Vec<Option<&Value>> =
                policies.iter().map(|p| p.category(category)).collect();
            merged.insert(category.clone(), merge_values(&sources));
        }
    }
    Policy::from_map(merged)
}

/// HA's `_merge_policies`: `true` if any source is `true`, else the key-by-key merge of
/// the dict sources, else `null`.
fn merge_values(sources: &[Option<&Value>]) -> Value {
    let dicts: Vec<&Map<String, Value>> = sources
        .iter()
        .filter_map(|source| match source {
            Some(Value::Object(map)) => Some(map),
            _ => None,
        })
        .collect();
    if sources
        .iter()
        .any(|source| matches!(source, Some(Value::Bool(true))))
    {
        return Value::Bool(true);
    }
    if dicts.is_empty() {
        return Value::Null;
    }
    let mut merged = Map::new();
    for dict in &dicts {
        for key in dict.keys() {
            if merged.contains_key(key) {
                continue;
            }
            let key_sources: Vec<Option<&Value>> = dicts.iter().map(|d| d.get(key)).collect();
            merged.insert(key.clone(), merge_values(&key_sources));
        }
    }
    Value::Object(merged)
}
