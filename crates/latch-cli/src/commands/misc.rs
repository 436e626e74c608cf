//! `latch status`, `onboard`, `group list`, `check`, `lockouts`, `events`.

use std::net::IpAddr;

use latch_client::protocol::{EventKind, LockoutKey, PermissionKey, Subject};
use latch_client::{Client, ClientError, ClientEvent, ClientOptions};
use serde_json::json;

use super::Ctx;
use super::user::normalize_username;
use crate::cli::{CheckArgs, EventsArgs, LockoutsArgs, OnboardArgs, Permission};
use crate::fail::{Failure, Outcome};
use crate::ui;

/// `latch status`: with `--json`, a daemon that is not running is reported as
/// `{"running": false, …}` on stdout too (and still exits 3).
pub(crate) async fn status(options: ClientOptions, json: bool) -> Outcome {
    let result = async {
        let client = Client::connect_with(options.clone()).await?;
        let status = client.status().await?;
        // A daemon older than `StoreStatus` answers unsupported_request: no store rows.
        let store = client.store_status().await.ok();
        Ok::<_, ClientError>((client, (status, store)))
    }
    .await;
    let (client, (status, store)) = match result {
        Ok(ok) => ok,
        Err(e) => {
            if json {
                let failure = Failure::from(e);
                let (socket, token) = options.resolve_paths().unwrap_or_default();
                ui::json(&json!({
                    "running": false,
                    "socket": socket.display().to_string(),
                    "token_file": token.display().to_string(),
                    "error": crate::fail::error_object(
                        failure.code(),
                        &failure.message().unwrap_or_default(),
                    ),
                }));
                return Err(Failure::Silent(failure.exit_code()));
            }
            return Err(e.into());
        }
    };
    if json {
        ui::json(&ui::status_json(
            &status,
            store.as_ref(),
            client.socket_path(),
            client.token_path(),
        ));
        return Ok(());
    }
    let mut t = comfy_table::Table::new();
    t.load_style(comfy_table::presets::NOTHING);
    ui::add_row(
        &mut t,
        vec![
            "latchd".to_owned(),
            format!("running, version {}", status.version),
        ],
    );
    ui::add_row(&mut t, vec!["pid".to_owned(), status.pid.to_string()]);
    ui::add_row(
        &mut t,
        vec!["uptime".to_owned(), uptime(status.uptime_secs)],
    );
    ui::add_row(
        &mut t,
        vec!["protocol".to_owned(), status.protocol_version.to_string()],
    );
    ui::add_row(&mut t, vec!["home".to_owned(), status.home.clone()]);
    ui::add_row(
        &mut t,
        vec![
            "socket".to_owned(),
            client.socket_path().display().to_string(),
        ],
    );
    ui::add_row(
        &mut t,
        vec![
            "onboarded".to_owned(),
            if status.onboarded {
                "yes".to_owned()
            } else {
                "no (run `latch onboard`)".to_owned()
            },
        ],
    );
    ui::add_row(
        &mut t,
        vec!["users".to_owned(), status.user_count.to_string()],
    );
    ui::add_row(
        &mut t,
        vec![
            "refresh tokens".to_owned(),
            status.refresh_token_count.to_string(),
        ],
    );
    if let Some(store) = &store {
        for (k, v) in ui::store_rows(store) {
            ui::add_row(&mut t, vec![k.to_owned(), v]);
        }
    }
    ui::out(t);
    Ok(())
}

fn uptime(secs: u64) -> String {
    let (d, h, m, s) = (secs / 86_400, secs / 3600 % 24, secs / 60 % 60, secs % 60);
    if d > 0 {
        format!("{d}d {h}h {m}m")
    } else if h > 0 {
        format!("{h}h {m}m {s}s")
    } else if m > 0 {
        format!("{m}m {s}s")
    } else {
        format!("{s}s")
    }
}

/// `latch onboard`: asks for whatever the flags did not give, then creates the owner.
pub(crate) async fn onboard(ctx: &mut Ctx, args: OnboardArgs) -> Outcome {
    let status = ctx.client.status().await?;
    if status.onboarded {
        return Err(Failure::Usage(
            "latch is already onboarded: an owner exists (add more users with `latch user add`)"
                .to_owned(),
        ));
    }
    let name = match args.name {
        Some(name) => name,
        None => ctx.prompt.text("Your name")?,
    };
    if name.trim().is_empty() {
        return Err(Failure::Usage("the name is empty".to_owned()));
    }
    let username = match args.username {
        Some(username) => username,
        None => ctx.prompt.text("Username")?,
    };
    let username = normalize_username(&username)?;
    let password = ctx.prompt.new_password(args.password_stdin)?;
    let owner = ctx
        .client
        .onboard(name.trim(), &username, password.expose())
        .await?;
    if ctx.json {
        ui::json(&ui::user_json(&owner));
    } else {
        ui::out(format!(
            "onboarded: {} is the owner (username {username}, user {})",
            ui::name(&owner),
            owner.id
        ));
    }
    Ok(())
}

/// `latch group list`.
pub(crate) async fn groups(ctx: &Ctx) -> Outcome {
    let groups = ctx.client.list_groups().await?;
    if ctx.json {
        ui::json(&serde_json::Value::Array(
            groups.iter().map(ui::group_json).collect(),
        ));
    } else {
        ui::out(ui::groups_table(&groups));
    }
    Ok(())
}

/// `latch check USER ENTITY read|control|edit`: exit 0 if allowed, 1 if denied.
pub(crate) async fn check(ctx: &Ctx, args: CheckArgs) -> Outcome {
    let user = ctx.resolve_user(&args.user).await?;
    let key = match args.permission {
        Permission::Read => PermissionKey::Read,
        Permission::Control => PermissionKey::Control,
        Permission::Edit => PermissionKey::Edit,
    };
    let allowed = ctx
        .client
        .check_permission(Subject::User(user.id.clone()), &args.entity, key)
        .await?;
    if ctx.json {
        ui::json(&json!({
            "allowed": allowed,
            "user_id": user.id,
            "entity_id": args.entity,
            "permission": key.as_str(),
        }));
    } else {
        ui::out(format!(
            "{}: {} may {}{} {}",
            if allowed { "allowed" } else { "denied" },
            ui::name(&user),
            if allowed { "" } else { "not " },
            key,
            args.entity
        ));
    }
    if allowed {
        Ok(())
    } else {
        Err(Failure::Silent(latch_client::exit::DENIED))
    }
}

/// Parses a lockout key: `username:NAME`, `source:IP`, or a bare IP or username.
pub(crate) fn parse_lockout_key(text: &str) -> Result<LockoutKey, Failure> {
    let text = text.trim();
    let bad_ip = |ip: &str| Failure::Usage(format!("{ip:?} is not an IP address"));
    if let Some(name) = text.strip_prefix("username:") {
        return Ok(LockoutKey::Username(normalize_username(name)?));
    }
    if let Some(ip) = text.strip_prefix("source:") {
        return ip
            .trim()
            .parse::<IpAddr>()
            .map(LockoutKey::Source)
            .map_err(|_| bad_ip(ip));
    }
    match text.parse::<IpAddr>() {
        Ok(ip) => Ok(LockoutKey::Source(ip)),
        Err(_) => Ok(LockoutKey::Username(normalize_username(text)?)),
    }
}

/// `latch lockouts [--clear KEY]`.
pub(crate) async fn lockouts(ctx: &Ctx, args: LockoutsArgs) -> Outcome {
    if let Some(key) = args.clear {
        let key = parse_lockout_key(&key)?;
        ctx.client.clear_lockout(key.clone()).await?;
        if ctx.json {
            ui::json(&json!({ "key": ui::key_text(&key), "result": "cleared" }));
        } else {
            ui::out(format!("cleared the lockout of {key}"));
        }
        return Ok(());
    }
    let lockouts = ctx.client.list_lockouts().await?;
    if ctx.json {
        ui::json(&serde_json::Value::Array(
            lockouts.iter().map(ui::lockout_json).collect(),
        ));
    } else if lockouts.is_empty() {
        ui::out("no lockouts and no failures counted");
    } else {
        ui::out(ui::lockouts_table(&lockouts));
    }
    Ok(())
}

/// `latch events [--kind K]…`: follows the stream until interrupted.
pub(crate) async fn events(ctx: &Ctx, args: EventsArgs) -> Outcome {
    let kinds: Vec<EventKind> = if args.kinds.is_empty() {
        EventKind::ALL.to_vec()
    } else {
        args.kinds
            .iter()
            .map(|k| {
                k.parse::<EventKind>().map_err(|_| {
                    Failure::Usage(format!(
                        "unknown event kind {k:?}; known kinds: {}",
                        EventKind::ALL.map(EventKind::as_str).join(", ")
                    ))
                })
            })
            .collect::<Result<_, _>>()?
    };
    let mut events = ctx.client.subscribe(kinds).await?;
    if !ctx.json {
        ui::note("latch: following events (Ctrl-C to stop)");
    }
    loop {
        let next = tokio::select! {
            next = events.next_event() => next,
            _ = tokio::signal::ctrl_c() => return Ok(()),
        };
        match next {
            Some(ClientEvent::Event(event)) => {
                if ctx.json {
                    ui::json_line(&ui::event_json(&event));
                } else {
                    ui::out(ui::event_text(&event));
                }
            }
            Some(ClientEvent::Lagged { missed }) => {
                if ctx.json {
                    ui::json_line(&json!({ "kind": "lagged", "missed": missed }));
                } else {
                    ui::out(format!("lagged: {missed} events were dropped"));
                }
            }
            Some(ClientEvent::Reconnected) => {
                if ctx.json {
                    ui::json_line(&json!({ "kind": "reconnected" }));
                } else {
                    ui::out("reconnected: events in between were missed");
                }
            }
            None => return Err(ClientError::Disconnected.into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uptime_is_short_and_readable() {
        assert_eq!(uptime(5), "5s");
        assert_eq!(uptime(65), "1m 5s");
        assert_eq!(uptime(3 * 3600 + 61), "3h 1m 1s");
        assert_eq!(uptime(2 * 86_400 + 3600), "2d 1h 0m");
    }

    #[test]
    fn lockout_keys_parse_in_every_form() {
        assert_eq!(
            parse_lockout_key("username:Anne").unwrap(),
            LockoutKey::Username("anne".into())
        );
        assert!(parse_lockout_key("source:nope").is_err());
        assert_eq!(
            parse_lockout_key("::1").unwrap(),
            LockoutKey::Source("::1".parse().unwrap())
        );
    }
}
