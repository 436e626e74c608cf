//! Home Assistant's JSON for login-flow results (`data_entry_flow` results as
//! `components/auth/login_flow.py` sends them), keys in Home Assistant's order.

use latch_protocol::{FieldKind, FlowForm, Handler};
use serde_json::{Map, Value, json};

/// `["homeassistant", null]`.
pub(crate) fn handler(h: &Handler) -> Value {
    json!([h.provider_type, h.provider_id])
}

/// A form's `data_schema`, as `voluptuous_serialize` writes it.
fn data_schema(form: &FlowForm) -> Value {
    form.fields
        .iter()
        .map(|f| {
            let mut field = Map::new();
            match &f.kind {
                FieldKind::Text | FieldKind::Secret => {
                    field.insert("type".into(), json!("string"));
                }
                FieldKind::Select(options) => {
                    field.insert("type".into(), json!("select"));
                    field.insert(
                        "options".into(),
                        Value::Array(options.iter().map(|(v, l)| json!([v, l])).collect()),
                    );
                }
            }
            field.insert("name".into(), json!(f.name));
            // A field that is not required is a plain key in Home Assistant's schemas
            // (the MFA choice), which voluptuous_serialize writes without a marker.
            if f.required {
                field.insert("required".into(), json!(true));
            }
            Value::Object(field)
        })
        .collect()
}

/// A `form` result. `errors` is `null` for the `trusted_networks` provider, whose
/// only step Home Assistant shows without an errors dict, and a dict otherwise;
/// `description_placeholders` is `null` when there are none.
pub(crate) fn form(h: &Handler, form: &FlowForm) -> Value {
    let errors = if h.provider_type == "trusted_networks" && form.errors.is_empty() {
        Value::Null
    } else {
        Value::Object(
            form.errors
                .iter()
                .map(|(k, v)| (k.clone(), json!(v)))
                .collect(),
        )
    };
    let placeholders = if form.placeholders.is_empty() {
        Value::Null
    } else {
        // Home Assistant lists the MFA step's name before its id.
        let mut pairs: Vec<_> = form.placeholders.iter().collect();
        pairs.sort_by_key(|(k, _)| usize::from(k.as_str() != "mfa_module_name"));
        Value::Object(
            pairs
                .into_iter()
                .map(|(k, v)| (k.clone(), json!(v.expose())))
                .collect(),
        )
    };
    json!({
        "type": "form",
        "flow_id": form.flow_id,
        "handler": handler(h),
        "data_schema": data_schema(form),
        "errors": errors,
        "description_placeholders": placeholders,
        "last_step": null,
        "preview": null,
        "step_id": form.step_id,
    })
}

/// An `abort` result.
pub(crate) fn abort(flow_id: &str, h: &Handler, reason: &str) -> Value {
    json!({
        "type": "abort",
        "flow_id": flow_id,
        "handler": handler(h),
        "reason": reason,
        "description_placeholders": null,
    })
}

/// A `create_entry` result carrying the authorization code.
pub(crate) fn create_entry(flow_id: &str, h: &Handler, code: &str) -> Value {
    json!({
        "version": 1,
        "minor_version": 1,
        "type": "create_entry",
        "flow_id": flow_id,
        "handler": handler(h),
        "description": null,
        "description_placeholders": null,
        "result": code,
    })
}

#[cfg(test)]
mod tests {
    use latch_protocol::{Field, Sensitive};

    use super::*;

    fn login_form(errors: Vec<(String, String)>) -> FlowForm {
        FlowForm {
            flow_id: "f".into(),
            step_id: "init".into(),
            fields: vec![
                Field {
                    name: "username".into(),
                    kind: FieldKind::Text,
                    required: true,
                },
                Field {
                    name: "password".into(),
                    kind: FieldKind::Secret,
                    required: true,
                },
            ],
            errors,
            placeholders: vec![],
        }
    }

    #[test]
    fn a_password_form_is_home_assistants() {
        let value = form(&Handler::new("homeassistant"), &login_form(vec![]));
        assert_eq!(
            value,
            json!({"type": "form", "flow_id": "f", "handler": ["homeassistant", null],
                "data_schema": [{"type": "string", "name": "username", "required": true},
                                {"type": "string", "name": "password", "required": true}],
                "errors": {}, "description_placeholders": null, "last_step": null,
                "preview": null, "step_id": "init"})
        );
        let keys: Vec<&String> = value.as_object().unwrap().keys().collect();
        assert_eq!(keys[0], "type");
        assert_eq!(keys[8], "step_id");
        let value = form(
            &Handler::new("homeassistant"),
            &login_form(vec![("base".into(), "invalid_auth".into())]),
        );
        assert_eq!(value["errors"], json!({"base": "invalid_auth"}));
    }

    #[test]
    fn trusted_networks_forms_have_null_errors_and_select_options() {
        let select = FlowForm {
            flow_id: "f".into(),
            step_id: "init".into(),
            fields: vec![Field {
                name: "user".into(),
                kind: FieldKind::Select(vec![("u1".into(), "Paulus".into())]),
                required: true,
            }],
            errors: vec![],
            placeholders: vec![],
        };
        let value = form(&Handler::new("trusted_networks"), &select);
        assert_eq!(value["errors"], Value::Null);
        assert_eq!(
            value["data_schema"],
            json!([{"type": "select", "options": [["u1", "Paulus"]], "name": "user", "required": true}])
        );
    }

    /// The recorded body of a fixture case, its flow id filled in with `f`.
    fn recorded(case: &str) -> Value {
        let fixtures: Value =
            serde_json::from_str(include_str!("../tests/fixtures/home_assistant_2024_3.json"))
                .unwrap();
        let mut body = fixtures["cases"][case]["response"]["body"].clone();
        body["flow_id"] = json!("f");
        body
    }

    /// The MFA choice: latch ships one MFA module (TOTP), so this step never shows
    /// through latch-http end to end; its JSON is compared with Home Assistant's here, for
    /// the form latch-auth builds (a select that is not required) and the step after it
    /// (a module with a `pin` field, like latch-auth's test module).
    #[test]
    fn the_mfa_choice_and_step_are_home_assistants() {
        let choice = FlowForm {
            flow_id: "f".into(),
            step_id: "select_mfa_module".into(),
            fields: vec![Field {
                name: "multi_factor_auth_module".into(),
                kind: FieldKind::Select(vec![
                    ("totp".into(), "Authenticator app".into()),
                    ("pin".into(), "PIN".into()),
                ]),
                required: false,
            }],
            errors: vec![],
            placeholders: vec![],
        };
        let h = Handler::new("homeassistant");
        assert_eq!(form(&h, &choice), recorded("select_mfa_password_ok"));
        let step = FlowForm {
            flow_id: "f".into(),
            step_id: "mfa".into(),
            fields: vec![Field {
                name: "pin".into(),
                kind: FieldKind::Secret,
                required: true,
            }],
            errors: vec![],
            placeholders: vec![
                ("mfa_module_id".into(), Sensitive::from("pin")),
                ("mfa_module_name".into(), Sensitive::from("PIN")),
            ],
        };
        assert_eq!(form(&h, &step), recorded("select_mfa_chosen"));
    }

    #[test]
    fn placeholders_name_before_id() {
        let mut mfa = login_form(vec![]);
        mfa.placeholders = vec![
            ("mfa_module_id".into(), Sensitive::from("totp")),
            (
                "mfa_module_name".into(),
                Sensitive::from("Authenticator app"),
            ),
        ];
        let value = form(&Handler::new("homeassistant"), &mfa);
        let keys: Vec<&String> = value["description_placeholders"]
            .as_object()
            .unwrap()
            .keys()
            .collect();
        assert_eq!(keys, ["mfa_module_name", "mfa_module_id"]);
    }
}
