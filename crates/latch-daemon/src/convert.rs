//! Conversions from the manager's values to the protocol's wire mirrors. Pure data
//! plumbing: no decisions are made here.

use latch_auth::{AuthManager, FlowOutcome, Lockout, SetupOutcome};
use latch_models::{Group, RefreshToken, User};
use latch_protocol::{
    CredentialInfo, Field, FieldKind, FlowForm, FlowState, GroupInfo, IssuedTokens, LockoutInfo,
    PermissionKey, Sensitive, SetupFlowState, Timestamp, TokenInfo, UserInfo, UserSummary,
};
use latch_provider::{FieldType, FlowId, Form, FormField};

use crate::events::lockout_key;

fn field(f: &FormField) -> Field {
    Field {
        name: f.name.clone(),
        kind: match &f.field_type {
            FieldType::String => FieldKind::Text,
            FieldType::Password => FieldKind::Secret,
            FieldType::Select { options } => FieldKind::Select(options.clone()),
        },
        required: f.required,
    }
}

pub(crate) fn flow_form(flow_id: &FlowId, form: Form) -> FlowForm {
    FlowForm {
        flow_id: flow_id.as_str().to_owned(),
        fields: form.fields.iter().map(field).collect(),
        step_id: form.step_id,
        errors: form.errors.into_iter().collect(),
        placeholders: form
            .description_placeholders
            .into_iter()
            .map(|(k, v)| (k, Sensitive::new(v)))
            .collect(),
    }
}

/// Seconds as the protocol counts them; a negative count (never expected) is zero.
fn secs(value: i64) -> u64 {
    u64::try_from(value).unwrap_or(0)
}

pub(crate) fn flow_state(outcome: FlowOutcome) -> FlowState {
    match outcome {
        // Only code flows (the HTTP door's requests) end in these; a token flow never
        // does, and `LoginContinue` does not find a code flow.
        FlowOutcome::CheckRedirect { flow_id, .. }
        | FlowOutcome::Code { flow_id, .. }
        | FlowOutcome::Refused { flow_id, .. } => FlowState::Abort {
            flow_id: flow_id.as_str().to_owned(),
            reason: "unknown_error".to_owned(),
        },
        FlowOutcome::Form { flow_id, form, .. } => FlowState::Form(flow_form(&flow_id, form)),
        FlowOutcome::Abort {
            flow_id, reason, ..
        } => FlowState::Abort {
            flow_id: flow_id.as_str().to_owned(),
            reason: reason.as_str().to_owned(),
        },
        FlowOutcome::Done {
            flow_id,
            handler,
            tokens,
        } => FlowState::Done {
            flow_id: flow_id.as_str().to_owned(),
            tokens: IssuedTokens {
                user_id: tokens.user_id.as_str().to_owned(),
                refresh_token_id: tokens.refresh_token_id.as_str().to_owned(),
                refresh_token: Sensitive::from(tokens.refresh_token.expose()),
                expires_in: secs(tokens.access_token.expires_in),
                access_token: Sensitive::new(tokens.access_token.token),
                provider_type: handler.provider_type,
            },
        },
    }
}

pub(crate) fn setup_state(outcome: SetupOutcome) -> SetupFlowState {
    match outcome {
        SetupOutcome::Form { flow_id, form } => SetupFlowState::Form(flow_form(&flow_id, form)),
        SetupOutcome::Abort { flow_id, reason } => SetupFlowState::Abort {
            flow_id: flow_id.as_str().to_owned(),
            reason: reason.as_str().to_owned(),
        },
        SetupOutcome::Done {
            flow_id,
            module_id,
            recovery_codes,
        } => SetupFlowState::Done {
            flow_id: flow_id.as_str().to_owned(),
            module_id,
            recovery_codes: recovery_codes.into_iter().map(Sensitive::new).collect(),
        },
    }
}

pub(crate) fn user_summary(user: &User) -> UserSummary {
    UserSummary {
        id: user.id.as_str().to_owned(),
        name: user.name.clone(),
        is_owner: user.is_owner,
        is_admin: user.is_admin(),
        is_active: user.is_active,
        local_only: user.local_only,
        system_generated: user.system_generated,
        group_ids: group_ids(user),
    }
}

fn group_ids(user: &User) -> Vec<String> {
    user.group_ids
        .iter()
        .map(|g| g.as_str().to_owned())
        .collect()
}

pub(crate) fn user_info(manager: &AuthManager, user: &User) -> UserInfo {
    let id = user.id.as_str();
    UserInfo {
        id: id.to_owned(),
        name: user.name.clone(),
        username: manager.username_of(id),
        is_owner: user.is_owner,
        is_active: user.is_active,
        is_admin: user.is_admin(),
        local_only: user.local_only,
        system_generated: user.system_generated,
        group_ids: group_ids(user),
        credentials: manager
            .store()
            .credentials_of(id)
            .into_iter()
            .map(|c| CredentialInfo {
                id: c.id.as_str().to_owned(),
                provider_type: c.auth_provider_type,
                provider_id: c.auth_provider_id,
            })
            .collect(),
        mfa_modules: manager
            .enabled_mfa(&user.id)
            .iter()
            .map(|m| m.id().to_owned())
            .collect(),
    }
}

/// A Unix time in (fractional) seconds as a timestamp; `None` if it is not finite.
fn unix_seconds(value: f64) -> Option<Timestamp> {
    // Rounded to whole microseconds; `as` saturates far outside any real expiry.
    #[allow(clippy::cast_possible_truncation)]
    value
        .is_finite()
        .then(|| Timestamp::from_micros((value * 1_000_000.0).round() as i64))
}

pub(crate) fn token_info(manager: &AuthManager, token: &RefreshToken) -> TokenInfo {
    TokenInfo {
        id: token.id.as_str().to_owned(),
        user_id: token.user_id.as_str().to_owned(),
        client_id: token.client_id.clone(),
        client_name: token.client_name.clone(),
        client_icon: token.client_icon.clone(),
        token_type: token.token_type.into(),
        created_at: Timestamp::from(token.created_at),
        last_used_at: token.last_used_at.map(Timestamp::from),
        last_used_ip: token.last_used_ip.clone(),
        expire_at: token.expire_at.and_then(unix_seconds),
        auth_provider_type: token
            .credential_id
            .as_ref()
            .and_then(|cid| manager.store().credential(cid.as_str()))
            .map(|c| c.auth_provider_type),
    }
}

pub(crate) fn group_info(group: &Group) -> GroupInfo {
    GroupInfo {
        id: group.id.as_str().to_owned(),
        name: group.name.clone(),
        system_generated: group.system_generated,
        policy_json: serde_json::to_string(&group.policy).unwrap_or_else(|_| "{}".to_owned()),
    }
}

pub(crate) fn lockout_info(lockout: &Lockout) -> LockoutInfo {
    LockoutInfo {
        key: lockout_key(&lockout.key),
        failures: lockout.failures,
        locked_until: lockout.locked_until.map(Timestamp::from),
    }
}

pub(crate) fn permission_key(key: PermissionKey) -> latch_models::PermissionKey {
    match key {
        PermissionKey::Read => latch_models::PermissionKey::Read,
        PermissionKey::Control => latch_models::PermissionKey::Control,
        PermissionKey::Edit => latch_models::PermissionKey::Edit,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unix_seconds_keep_microseconds_and_refuse_non_finite() {
        assert_eq!(
            unix_seconds(1_700_000_000.123_456),
            Some(Timestamp::from_micros(1_700_000_000_123_456))
        );
        assert_eq!(unix_seconds(f64::NAN), None);
        assert_eq!(unix_seconds(f64::INFINITY), None);
    }

    #[test]
    fn forms_keep_fields_errors_and_redact_placeholders() {
        let form = Form::new(
            "mfa",
            vec![
                FormField::string("username"),
                FormField::password("code"),
                FormField::select("m", vec![("totp".into(), "App".into())]),
            ],
        )
        .with_error(latch_provider::ErrorKey::InvalidCode)
        .with_placeholder("code", "JBSWY3DPEHPK3PXP");
        let wire = flow_form(&FlowId::from("f1"), form);
        assert_eq!(wire.flow_id, "f1");
        assert_eq!(wire.step_id, "mfa");
        assert_eq!(
            wire.fields.iter().map(|f| &f.kind).collect::<Vec<_>>(),
            [
                &FieldKind::Text,
                &FieldKind::Secret,
                &FieldKind::Select(vec![("totp".into(), "App".into())])
            ]
        );
        assert_eq!(wire.error("base"), Some("invalid_code"));
        assert_eq!(
            wire.placeholder("code").map(Sensitive::expose),
            Some("JBSWY3DPEHPK3PXP")
        );
        assert!(!format!("{wire:?}").contains("JBSWY3DPEHPK3PXP"));
    }
}
