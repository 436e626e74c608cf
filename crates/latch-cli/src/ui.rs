//! Output: text lines, tables and JSON on stdout, notes on stderr. Writes go through
//! `writeln!` so a closed pipe (`latch events | head`) ends quietly.
//!
//! Nothing reaches the terminal raw: every text from the daemon, a file or the command
//! line goes through [`escape`], which writes control characters as visible escapes, and
//! [`out`] and [`note`] apply it once more to whatever they print (it is idempotent), so
//! a username holding an ESC sequence shows as `\x1b[…` instead of recolouring or
//! clearing the operator's terminal. JSON output is escaped by the JSON encoder.

use std::borrow::Cow;
use std::fmt::Write as _;
use std::io::{self, Write as _};
use std::time::Duration;

use chrono::SecondsFormat;
use comfy_table::{ColumnConstraint, ContentArrangement, Table, presets};
use latch_client::protocol::{
    CredentialInfo, DaemonStatus, Event, GroupInfo, LockoutInfo, LockoutKey, StoreBackendKind,
    StoreStatus, Timestamp, TokenInfo, UserInfo, UserSummary,
};
use serde_json::{Value, json};

/// True for the characters [`escape`] rewrites: control characters (C0, DEL, C1) and
/// the invisible bidirectional controls that reorder what follows them.
fn needs_escape(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{061c}' | '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}'
        )
}

/// How [`escape_as`] writes a character it escapes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Escapes {
    /// For text: `\n`, `\r`, `\t`, `\x1b`, `\u{9b}`, `\u{202e}`.
    Text,
    /// For JSON text that an encoder already wrote (whose own line breaks are layout):
    /// `\u009b`, valid inside the JSON strings where such characters can only be. Line
    /// breaks are kept.
    Json,
}

/// `text` safe to print in a terminal (see [`escape_as`]).
pub(crate) fn escape(text: &str) -> Cow<'_, str> {
    escape_as(text, Escapes::Text)
}

/// `text` with each control character (C0, DEL, C1) and each bidirectional control
/// written as a visible escape; everything else is kept. The result holds no character
/// that needs escaping, so escaping twice changes nothing. This is the one escaping
/// function of the CLI.
pub(crate) fn escape_as(text: &str, style: Escapes) -> Cow<'_, str> {
    let wanted = |c: char| needs_escape(c) && !(style == Escapes::Json && c == '\n');
    let clean = if text.is_ascii() {
        !text.bytes().any(|b| wanted(char::from(b)))
    } else {
        !text.chars().any(wanted)
    };
    if clean {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if !wanted(c) {
            out.push(c);
            continue;
        }
        let _ = match (style, c) {
            (Escapes::Json, c) => write!(out, "\\u{:04x}", u32::from(c)),
            (Escapes::Text, '\n') => write!(out, "\\n"),
            (Escapes::Text, '\r') => write!(out, "\\r"),
            (Escapes::Text, '\t') => write!(out, "\\t"),
            (Escapes::Text, c) if c.is_ascii() => write!(out, "\\x{:02x}", u32::from(c)),
            (Escapes::Text, c) => write!(out, "\\u{{{:x}}}", u32::from(c)),
        };
    }
    Cow::Owned(out)
}

/// A user's name to show ([`UserInfo::display_name`]), [`escape`]d.
pub(crate) fn name(user: &UserInfo) -> Cow<'_, str> {
    escape(user.display_name())
}

/// Multi-line text with every line [`escape`]d (the line breaks are kept).
fn escape_lines(text: &str) -> String {
    text.split('\n').map(escape).collect::<Vec<_>>().join("\n")
}

/// Writes one line (or several, joined by `\n`) to stdout, escaped.
pub(crate) fn out(line: impl std::fmt::Display) {
    out_raw(&escape_lines(&line.to_string()));
}

/// Writes text to stdout as it is. Only for text the CLI composed itself from known
/// pieces, such as the painted QR code.
pub(crate) fn out_raw(text: &str) {
    let mut stdout = io::stdout().lock();
    let _ = writeln!(stdout, "{text}");
    let _ = stdout.flush();
}

/// Writes text to stderr as it is; see [`out_raw`].
pub(crate) fn note_raw(text: &str) {
    let _ = writeln!(io::stderr().lock(), "{text}");
}

/// The colours a QR code is drawn in: black ink (the glyphs' foreground) on white
/// paper (their background), as entries 16 and 231 of the 256-colour cube. Terminal
/// themes remap the 16 basic colours (a "black" may be grey, or white on a light
/// theme) but not the cube, so the code is dark on light, as readers expect, on
/// light and dark themes alike, quiet zone included.
const QR_INK_ON_PAPER: &str = "\x1b[38;5;16;48;5;231m";
/// Back to the terminal's own colours.
const RESET_COLOURS: &str = "\x1b[0m";

/// A QR code in half-block glyphs (`█`, `▀`, `▄` and spaces, dark modules drawn) painted
/// in [`QR_INK_ON_PAPER`], each line reset at its end; `None` if the text holds anything
/// else (it came from the daemon: nothing else is printed raw).
pub(crate) fn paint_qr(glyphs: &str) -> Option<String> {
    if glyphs.is_empty()
        || !glyphs
            .chars()
            .all(|c| matches!(c, '█' | '▀' | '▄' | ' ' | '\n'))
    {
        return None;
    }
    Some(
        glyphs
            .split('\n')
            .map(|line| format!("{QR_INK_ON_PAPER}{line}{RESET_COLOURS}"))
            .collect::<Vec<_>>()
            .join("\n"),
    )
}

/// The `(columns, lines)` a block of text takes.
pub(crate) fn text_size(text: &str) -> (usize, usize) {
    let columns = text
        .split('\n')
        .map(|l| l.chars().count())
        .max()
        .unwrap_or(0);
    (columns, text.split('\n').count())
}

/// Writes one line to stderr, escaped.
pub(crate) fn note(line: impl std::fmt::Display) {
    let _ = writeln!(io::stderr().lock(), "{}", escape_lines(&line.to_string()));
}

/// Writes a JSON document (pretty) to stdout. The encoder escapes C0 controls; C1 and
/// bidirectional controls are escaped here.
pub(crate) fn json(value: &Value) {
    let text = serde_json::to_string_pretty(value).unwrap_or_default();
    out_raw(&escape_as(&text, Escapes::Json));
}

/// Writes a JSON document on one line to stdout (JSON lines).
pub(crate) fn json_line(value: &Value) {
    let text = serde_json::to_string(value).unwrap_or_default();
    out_raw(&escape_as(&text, Escapes::Json));
}

/// A table with the house style. In a narrow terminal the other columns wrap; the
/// first column, which holds ids, is never wrapped or cut.
pub(crate) fn table(header: &[&str]) -> Table {
    let mut table = Table::new();
    table
        .load_style(presets::UTF8_FULL_CONDENSED)
        .set_content_arrangement(ContentArrangement::Dynamic)
        .set_header(header.to_vec());
    if let Some(id) = table.column_mut(0) {
        id.set_constraint(ColumnConstraint::ContentWidth);
    }
    table
}

/// Adds a row, each cell [`escape`]d.
pub(crate) fn add_row(table: &mut Table, cells: Vec<String>) {
    table.add_row(cells.into_iter().map(|c| escape(&c).into_owned()));
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

/// The `latch status` rows of the store: its backend, the last batch applied, the lag
/// and, for a shared database, how long since it last answered.
pub(crate) fn store_rows(store: &StoreStatus) -> Vec<(&'static str, String)> {
    let mut rows = vec![("store", store.backend.as_str().to_owned())];
    rows.push(("last applied batch", store.last_applied.to_string()));
    if store.backend == StoreBackendKind::Postgres {
        rows.push((
            "lag",
            format!("{} batches (newest known {})", store.lag(), store.log_head),
        ));
        let contact = store.since_contact_ms.map_or_else(
            || "never".to_owned(),
            |ms| format!("{:.1} s ago", Duration::from_millis(ms).as_secs_f64()),
        );
        rows.push((
            "database",
            if store.connected {
                format!("connected, last answer {contact}")
            } else {
                format!(
                    "unreachable ({}), last answer {contact}",
                    store.last_error.as_deref().unwrap_or("no answer")
                )
            },
        ));
        if let Some(max) = store.max_staleness_secs {
            rows.push(("staleness bound", format!("{max} s")));
        }
    }
    rows
}

pub(crate) fn status_json(
    status: &DaemonStatus,
    store: Option<&StoreStatus>,
    socket: &std::path::Path,
    token: &std::path::Path,
) -> Value {
    let store = store.map(|s| {
        json!({
            "backend": s.backend.as_str(),
            "last_applied": s.last_applied,
            "log_head": s.log_head,
            "lag": s.lag(),
            "connected": s.connected,
            "since_contact_ms": s.since_contact_ms,
            "max_staleness_secs": s.max_staleness_secs,
            "last_error": s.last_error,
        })
    });
    json!({
        "store": store,
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
        add_row(
            &mut t,
            vec![
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
            ],
        );
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
        add_row(
            &mut t,
            vec![
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
            ],
        );
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
        add_row(
            &mut t,
            vec![
                g.id.clone(),
                opt(g.name.as_deref()).to_owned(),
                yes_no(g.system_generated).to_owned(),
                g.policy_json.clone(),
            ],
        );
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
        add_row(
            &mut t,
            vec![
                key_text(&l.key),
                l.failures.to_string(),
                time_text(l.locked_until),
            ],
        );
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
                Value::String(s) => line.push_str(&format!(" {name}={}", escape(s))),
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
    fn store_rows_show_the_backend_batch_lag_and_contact() {
        let files = StoreStatus {
            backend: StoreBackendKind::Files,
            last_applied: 7,
            log_head: 7,
            connected: true,
            since_contact_ms: None,
            max_staleness_secs: None,
            last_error: None,
        };
        assert_eq!(
            store_rows(&files),
            vec![
                ("store", "files".to_owned()),
                ("last applied batch", "7".to_owned())
            ]
        );
        let down = StoreStatus {
            backend: StoreBackendKind::Postgres,
            last_applied: 40,
            log_head: 43,
            connected: false,
            since_contact_ms: Some(12_500),
            max_staleness_secs: Some(30),
            last_error: Some("the database did not answer within 3s".into()),
        };
        let rows = store_rows(&down);
        assert_eq!(rows[0], ("store", "postgres".to_owned()));
        assert_eq!(rows[2], ("lag", "3 batches (newest known 43)".to_owned()));
        assert_eq!(
            rows[3],
            (
                "database",
                "unreachable (the database did not answer within 3s), last answer 12.5 s ago"
                    .to_owned()
            )
        );
        assert_eq!(rows[4], ("staleness bound", "30 s".to_owned()));
        let json = status_json(
            &DaemonStatus {
                version: "0.1.0".into(),
                protocol_version: 1,
                pid: 1,
                uptime_secs: 1,
                home: "/h".into(),
                onboarded: true,
                user_count: 1,
                refresh_token_count: 0,
            },
            Some(&down),
            std::path::Path::new("/s"),
            std::path::Path::new("/t"),
        );
        assert_eq!(json["store"]["lag"], 3);
        assert_eq!(json["store"]["backend"], "postgres");
    }

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
    fn control_characters_are_written_as_visible_escapes() {
        assert!(matches!(escape("paulus"), Cow::Borrowed("paulus")));
        assert!(matches!(escape("Zoë ▀"), Cow::Borrowed(_)));
        assert_eq!(escape("\u{1b}[2J\u{1b}[31mevil"), r"\x1b[2J\x1b[31mevil");
        assert_eq!(escape("a\nb\rc\td\u{7}e\u{7f}"), r"a\nb\rc\td\x07e\x7f");
        assert_eq!(escape("\u{9b}31m"), r"\u{9b}31m");
        assert_eq!(escape("abc\u{202e}txt.exe"), r"abc\u{202e}txt.exe");
        // Idempotent: the escaped text holds nothing left to escape.
        let once = escape("\u{1b}\n\u{9b}").into_owned();
        assert_eq!(escape(&once), once);
        // Lines keep their breaks; what is in them is escaped.
        assert_eq!(escape_lines("one\u{1b}\ntwo\r"), "one\\x1b\ntwo\\r");
        // JSON text keeps its layout and stays JSON.
        let doc = serde_json::to_string_pretty(&json!({"u": "a\u{9b}\u{202e}b\u{1b}"})).unwrap();
        let escaped = escape_as(&doc, Escapes::Json);
        assert!(!escaped.contains('\u{9b}') && escaped.contains('\n'));
        let back: Value = serde_json::from_str(&escaped).unwrap();
        assert_eq!(back["u"], "a\u{9b}\u{202e}b\u{1b}");
    }

    #[test]
    fn events_and_tables_escape_what_users_typed() {
        let event = Event::LoginFailed {
            username: Some("\u{1b}[2Jroot\nlogin_succeeded user_id=x\r\u{7}".into()),
            provider_type: "homeassistant".into(),
            source: None,
            reason: "invalid_auth".into(),
        };
        let line = event_text(&event);
        assert!(
            line.contains(r"username=\x1b[2Jroot\nlogin_succeeded user_id=x\r\x07"),
            "{line}"
        );
        assert!(!line.chars().any(char::is_control), "{line:?}");

        let mut t = table(&["id", "name"]);
        add_row(&mut t, vec!["u1".into(), "a\nb\u{1b}[0m".into()]);
        let text = t.to_string();
        assert!(text.contains(r"a\nb\x1b[0m"), "{text}");
        assert!(!text.contains('\u{1b}'));
    }

    #[test]
    fn ids_stay_whole_in_a_narrow_table() {
        let id = "0123456789abcdef0123456789abcdef";
        let mut t = table(&["id", "name", "username", "groups"]);
        add_row(
            &mut t,
            vec![
                id.into(),
                "A rather long display name".into(),
                "a-long-username".into(),
                "system-admin, system-users".into(),
            ],
        );
        t.set_width(60);
        let text = t.to_string();
        assert!(text.contains(id), "the id is cut:\n{text}");
        assert!(text.lines().all(|l| l.chars().count() <= 60), "{text}");
    }

    /// A terminal with a colour theme: its default foreground and background (grey
    /// levels), and what it makes of the 256-colour cube entries the QR code uses.
    struct Theme {
        foreground: u8,
        background: u8,
    }

    const DARK: Theme = Theme {
        foreground: 0xcc,
        background: 0x1e,
    };
    const LIGHT: Theme = Theme {
        foreground: 0x22,
        background: 0xff,
    };

    /// Renders `text` as this terminal would, in a margin of its background: each
    /// character cell 4 px wide and 8 px high, `▀` its upper half in the foreground,
    /// `▄` its lower half, `█` all of it; SGR sequences set the colours. Returns a
    /// greyscale image (width, height, pixels).
    fn render(text: &str, theme: &Theme) -> (usize, usize, Vec<u8>) {
        const CW: usize = 4;
        const CH: usize = 8;
        const MARGIN: usize = 6;
        let grey = |index: u32| match index {
            16 => 0x00,
            231 => 0xff,
            other => panic!("colour {other} is not one the QR code uses"),
        };
        let mut cells: Vec<Vec<(char, u8, u8)>> = Vec::new();
        for line in text.split('\n') {
            let (mut fg, mut bg) = (theme.foreground, theme.background);
            let mut row = Vec::new();
            let mut chars = line.chars().peekable();
            while let Some(c) = chars.next() {
                if c == '\u{1b}' {
                    assert_eq!(chars.next(), Some('['));
                    let mut params = String::new();
                    for p in chars.by_ref() {
                        if p == 'm' {
                            break;
                        }
                        params.push(p);
                    }
                    let nums: Vec<u32> = params.split(';').map(|n| n.parse().unwrap()).collect();
                    let mut i = 0;
                    while i < nums.len() {
                        match nums[i] {
                            0 => (fg, bg) = (theme.foreground, theme.background),
                            38 => {
                                fg = grey(nums[i + 2]);
                                i += 2;
                            }
                            48 => {
                                bg = grey(nums[i + 2]);
                                i += 2;
                            }
                            other => panic!("unexpected SGR {other}"),
                        }
                        i += 1;
                    }
                    continue;
                }
                row.push((c, fg, bg));
            }
            cells.push(row);
        }
        let columns = cells.iter().map(Vec::len).max().unwrap_or(0);
        let (w, h) = ((columns + 2 * MARGIN) * CW, (cells.len() + 2 * MARGIN) * CH);
        let mut pixels = vec![theme.background; w * h];
        for (y, row) in cells.iter().enumerate() {
            for (x, &(c, fg, bg)) in row.iter().enumerate() {
                let (top, bottom) = match c {
                    '█' => (fg, fg),
                    '▀' => (fg, bg),
                    '▄' => (bg, fg),
                    ' ' => (bg, bg),
                    other => panic!("unexpected glyph {other:?}"),
                };
                for py in 0..CH {
                    for px in 0..CW {
                        let (gx, gy) = ((x + MARGIN) * CW + px, (y + MARGIN) * CH + py);
                        pixels[gy * w + gx] = if py < CH / 2 { top } else { bottom };
                    }
                }
            }
        }
        (w, h, pixels)
    }

    /// What a phone's reader makes of the screen.
    fn scan(text: &str, theme: &Theme) -> Option<String> {
        let (w, h, pixels) = render(text, theme);
        let mut image = rqrr::PreparedImage::prepare_from_greyscale(w, h, |x, y| pixels[y * w + x]);
        let grids = image.detect_grids();
        grids
            .first()
            .and_then(|g| g.decode().ok())
            .map(|(_, content)| content)
    }

    #[test]
    fn the_painted_qr_code_scans_on_dark_and_light_themes() {
        for name in ["Paulus", "Paulus Schoutsen", "Zoë"] {
            let uri = latch_mfa_totp::provisioning_uri(
                "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP",
                Some(name),
                "Home Assistant",
            );
            let glyphs = latch_mfa_totp::qr_terminal(&uri).unwrap();
            let painted = paint_qr(&glyphs).unwrap();
            assert_eq!(scan(&painted, &DARK).as_deref(), Some(uri.as_str()), "dark");
            assert_eq!(
                scan(&painted, &LIGHT).as_deref(),
                Some(uri.as_str()),
                "light"
            );
            // In an 80×24 terminal, with a line for the prompt.
            let (columns, lines) = text_size(&glyphs);
            assert!(columns <= 80 && lines < 24, "{columns}×{lines}");
            // Unpainted, the glyphs take the theme's colours: on a dark theme the code
            // is inverted, and does not read.
            assert_ne!(scan(&glyphs, &DARK).as_deref(), Some(uri.as_str()));
        }
    }

    #[test]
    fn only_qr_glyphs_are_painted() {
        assert_eq!(paint_qr(""), None);
        assert_eq!(paint_qr("█\u{1b}[2J"), None);
        assert_eq!(
            paint_qr("█▀\n ▄").unwrap(),
            "\u{1b}[38;5;16;48;5;231m█▀\u{1b}[0m\n\u{1b}[38;5;16;48;5;231m ▄\u{1b}[0m"
        );
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
