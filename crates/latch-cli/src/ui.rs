//! Output: text lines, tables and JSON on stdout, notes on stderr. Writes go through
//! `writeln!` so a closed pipe (`latch events | head`) ends quietly.

use std::io::{self, Write as _};

use chrono::SecondsFormat;
use comfy_table::{ContentArrangement, Table, presets};
use latch_client::protocol::{
    CredentialInfo, DaemonStatus, Event, GroupInfo, LockoutInfo, LockoutKey, Timestamp, TokenInfo,
    UserInfo, UserSummary,
};
use serde_json::{Value, json};

/// Writes one line to stdout.
pub(crate) fn out(line: impl std::fmt::Display) {
    let mut stdout = io::stdout().lock();
    let _ = writeln!(stdout, "{line}");
    let _ = stdout.flush();
}

/// Writes one line to stderr.
pub(crate) fn note(line: impl std::fmt::Display) {
    let _ = writeln!(io::stderr().lock(), "{line}");
}

/// Writes a JSON document (pretty) to stdout.
pub(crate) fn json(value: &Value) {
    out(serde_json::to_string_pretty(value).unwrap_or_default());
}

/// Writes a JSON document on one line to stdout (JSON lines).
pub(crate) fn json_line(value: &Value) {
    out(serde_json::to_string(value).unwrap_or_default());
}

/// A table with the house style.
pub(crate) fn table(header: &[&str]) -> Table {
    let mut table = Table::new();
    table
        .load_style(presets::UTF8_FULL_CONDENSED)
        .set_content_arrangement(ContentArrangement::Dynamic)
        .set_header(header.to_vec());
    table
}

/// A timestamp as RFC 3339 (UTC, seconds), or `null`.
pub(crate) fn time_json(t: Option<Timestamp>) -> Value {
    t.and_then(Timestamp::to_datetime).map_or(Value::Null, |d| {
        Value::String(d.to_rfc3339_opts(SecondsFormat::Secs, true))
    })
}

/// A timestamp for a table cell (`-` if none).
pub(crate) fn time_text(t: Option<Timestamp>) -> String {
    t.and_then(Timestamp::to_datetime).map_or_else(
        || "-".to_owned(),
        |d| d.format("%Y-%m-%d %H:%M:%S UTC").to_string(),
    )
}

pub(crate) fn yes_no(b: bool) -> &'static str {
    if b { "yes" } else { "no" }
}

fn opt(s: Option<&str>) -> &str {
    s.unwrap_or("-")
}

pub(crate) fn status_json(
    status: &DaemonStatus,
    socket: &std::path::Path,
    token: &std::path::Path,
) -> Value {
    json!({
        "running": true,
        "version": status.version,
        "protocol_version": status.protocol_version,
        "pid": status.pid,
        "uptime_secs": status.uptime_secs,
        "home": status.home,
        "onboarded": status.onboarded,
        "user_count": status.user_count,
        "refresh_token_count": status.refresh_token_count,
        "socket": socket.display().to_string(),
        "token_file": token.display().to_string(),
    })
}

fn credential_json(c: &CredentialInfo) -> Value {
    json!({
        "id": c.id,
        "provider_type": c.provider_type,
        "provider_id": c.provider_id,
    })
}

pub(crate) fn user_json(u: &UserInfo) -> Value {
    json!({
        "id": u.id,
        "name": u.name,
        "username": u.username,
        "is_owner": u.is_owner,
        "is_active": u.is_active,
        "is_admin": u.is_admin,
        "local_only": u.local_only,
        "system_generated": u.system_generated,
        "group_ids": u.group_ids,
        "credentials": u.credentials.iter().map(credential_json).collect::<Vec<_>>(),
        "mfa_modules": u.mfa_modules,
    })
}

pub(crate) fn user_summary_json(u: &UserSummary) -> Value {
    json!({
        "id": u.id,
        "name": u.name,
        "is_owner": u.is_owner,
        "is_admin": u.is_admin,
        "is_active": u.is_active,
        "local_only": u.local_only,
        "system_generated": u.system_generated,
        "group_ids": u.group_ids,
    })
}

pub(crate) fn users_table(users: &[UserInfo]) -> Table {
    let mut t = table(&[
        "id",
        "name",
        "username",
        "groups",
        "owner",
        "admin",
        "active",
        "local only",
        "mfa",
    ]);
    for u in users {
        let mut name = u.name.clone().unwrap_or_default();
        if u.system_generated {
            name.push_str(" (system)");
        }
        t.add_row(vec![
            u.id.clone(),
            name,
            opt(u.username.as_deref()).to_owned(),
            u.group_ids.join(", "),
            yes_no(u.is_owner).to_owned(),
            yes_no(u.is_admin).to_owned(),
            yes_no(u.is_active).to_owned(),
            yes_no(u.local_only).to_owned(),
            if u.mfa_modules.is_empty() {
                "-".to_owned()
            } else {
                u.mfa_modules.join(", ")
            },
        ]);
    }
    t
}

pub(crate) fn token_json(t: &TokenInfo) -> Value {
    json!({
        "id": t.id,
        "user_id": t.user_id,
        "client_id": t.client_id,
        "client_name": t.client_name,
        "client_icon": t.client_icon,
        "token_type": t.token_type.as_str(),
        "created_at": time_json(Some(t.created_at)),
        "last_used_at": time_json(t.last_used_at),
        "last_used_ip": t.last_used_ip,
        "expire_at": time_json(t.expire_at),
        "auth_provider_type": t.auth_provider_type,
    })
}

pub(crate) fn tokens_table(tokens: &[TokenInfo]) -> Table {
    let mut t = table(&[
        "id",
        "type",
        "client",
        "created",
        "last used",
        "from",
        "expires",
    ]);
    for token in tokens {
        t.add_row(vec![
            token.id.clone(),
            token.token_type.as_str().to_owned(),
            token
                .client_name
                .as_deref()
                .or(token.client_id.as_deref())
                .unwrap_or("-")
                .to_owned(),
            time_text(Some(token.created_at)),
            time_text(token.last_used_at),
            opt(token.last_used_ip.as_deref()).to_owned(),
            time_text(token.expire_at),
        ]);
    }
    t
}

pub(crate) fn group_json(g: &GroupInfo) -> Value {
    let policy = serde_json::from_str::<Value>(&g.policy_json)
        .unwrap_or_else(|_| Value::String(g.policy_json.clone()));
    json!({
        "id": g.id,
        "name": g.name,
        "system_generated": g.system_generated,
        "policy": policy,
    })
}

pub(crate) fn groups_table(groups: &[GroupInfo]) -> Table {
    let mut t = table(&["id", "name", "built in", "policy"]);
    for g in groups {
        t.add_row(vec![
            g.id.clone(),
            opt(g.name.as_deref()).to_owned(),
            yes_no(g.system_generated).to_owned(),
            g.policy_json.clone(),
        ]);
    }
    t
}

/// A lockout key as the command line writes it: `username:NAME` or `source:IP`.
pub(crate) fn key_text(key: &LockoutKey) -> String {
    key.to_string()
}

pub(crate) fn lockout_json(l: &LockoutInfo) -> Value {
    let (kind, value) = match &l.key {
        LockoutKey::Username(name) => ("username", name.clone()),
        LockoutKey::Source(ip) => ("source", ip.to_string()),
    };
    json!({
        "key": key_text(&l.key),
        "kind": kind,
        "value": value,
        "failures": l.failures,
        "locked_until": time_json(l.locked_until),
    })
}

pub(crate) fn lockouts_table(lockouts: &[LockoutInfo]) -> Table {
    let mut t = table(&["key", "failures", "locked until"]);
    for l in lockouts {
        t.add_row(vec![
            key_text(&l.key),
            l.failures.to_string(),
            time_text(l.locked_until),
        ]);
    }
    t
}

/// An event as one JSON object: `kind` plus its fields.
pub(crate) fn event_json(event: &Event) -> Value {
    let kind = event.kind().as_str();
    let mut value = match event {
        Event::UserAdded { user_id }
        | Event::UserUpdated { user_id }
        | Event::UserRemoved { user_id } => json!({ "user_id": user_id }),
        Event::RefreshTokenCreated {
            user_id,
            refresh_token_id,
            token_type,
            client_id,
            client_name,
        } => json!({
            "user_id": user_id,
            "refresh_token_id": refresh_token_id,
            "token_type": token_type.as_str(),
            "client_id": client_id,
            "client_name": client_name,
        }),
        Event::RefreshTokenRevoked {
            user_id,
            refresh_token_id,
        } => json!({ "user_id": user_id, "refresh_token_id": refresh_token_id }),
        Event::LoginSucceeded {
            user_id,
            provider_type,
            source,
        } => json!({
            "user_id": user_id,
            "provider_type": provider_type,
            "source": source.map(|s| s.to_string()),
        }),
        Event::LoginFailed {
            username,
            provider_type,
            source,
            reason,
        } => json!({
            "username": username,
            "provider_type": provider_type,
            "source": source.map(|s| s.to_string()),
            "reason": reason,
        }),
        Event::LockoutStarted { key, until } => json!({
            "key": key_text(key),
            "until": time_json(Some(*until)),
        }),
        Event::LockoutCleared { key } => json!({ "key": key_text(key) }),
    };
    if let Some(map) = value.as_object_mut() {
        map.insert("kind".to_owned(), Value::String(kind.to_owned()));
    }
    value
}

/// An event as one text line: its kind, then `field=value` pairs.
pub(crate) fn event_text(event: &Event) -> String {
    let value = event_json(event);
    let mut line = event.kind().as_str().to_owned();
    if let Some(map) = value.as_object() {
        for (name, v) in map {
            if name == "kind" || v.is_null() {
                continue;
            }
            match v {
                Value::String(s) => line.push_str(&format!(" {name}={s}")),
                other => line.push_str(&format!(" {name}={other}")),
            }
        }
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_render_with_their_kind_and_fields() {
        let event = Event::LoginFailed {
            username: Some("paulus".into()),
            provider_type: "homeassistant".into(),
            source: None,
            reason: "invalid_auth".into(),
        };
        let value = event_json(&event);
        assert_eq!(value["kind"], "login_failed");
        assert_eq!(value["username"], "paulus");
        assert!(value["source"].is_null());
        let line = event_text(&event);
        assert!(line.starts_with("login_failed "), "{line}");
        assert!(line.contains("username=paulus"), "{line}");
        assert!(line.contains("reason=invalid_auth"), "{line}");
        assert!(!line.contains("source="), "{line}");
    }

    #[test]
    fn lockout_keys_round_trip_through_their_text() {
        let key = LockoutKey::Source("10.0.0.5".parse().unwrap());
        assert_eq!(key_text(&key), "source:10.0.0.5");
        assert_eq!(
            crate::commands::misc::parse_lockout_key("source:10.0.0.5").unwrap(),
            key
        );
        assert_eq!(
            crate::commands::misc::parse_lockout_key("Paulus").unwrap(),
            LockoutKey::Username("paulus".into())
        );
    }
}
