//! `latch user …` and `latch password set`.

use latch_client::NewUser;
use latch_client::protocol::UserInfo;
use serde_json::json;

use super::Ctx;
use crate::cli::{UserAddArgs, UserCommand};
use crate::fail::{Failure, Outcome};
use crate::ui;

/// The group a new user gets when none is named.
const DEFAULT_GROUP: &str = "system-users";

pub(crate) async fn run(ctx: &mut Ctx, cmd: UserCommand) -> Outcome {
    match cmd {
        UserCommand::List => list(ctx).await,
        UserCommand::Add(args) => add(ctx, args).await,
        UserCommand::Remove { user } => {
            let user = ctx.resolve_user(&user).await?;
            ctx.client.remove_user(&user.id).await?;
            done(ctx, "removed", &user);
            Ok(())
        }
        UserCommand::Activate { user } => {
            let user = ctx.resolve_user(&user).await?;
            ctx.client.activate_user(&user.id).await?;
            done(ctx, "activated", &user);
            Ok(())
        }
        UserCommand::Deactivate { user } => {
            let user = ctx.resolve_user(&user).await?;
            ctx.client.deactivate_user(&user.id).await?;
            done(ctx, "deactivated", &user);
            Ok(())
        }
        UserCommand::Groups { user, groups } => {
            let mut user = ctx.resolve_user(&user).await?;
            if !groups.is_empty() {
                user = ctx.client.set_user_groups(&user.id, groups).await?;
            }
            if ctx.json {
                ui::json(&json!({ "user_id": user.id, "group_ids": user.group_ids }));
            } else if user.group_ids.is_empty() {
                ui::out(format!("{} is in no group", ui::name(&user)));
            } else {
                ui::out(format!(
                    "{} is in: {}",
                    ui::name(&user),
                    user.group_ids.join(", ")
                ));
            }
            Ok(())
        }
    }
}

fn done(ctx: &Ctx, what: &str, user: &UserInfo) {
    if ctx.json {
        ui::json(&json!({ "user_id": user.id, "result": what }));
    } else {
        ui::out(format!("{what} user {} ({})", ui::name(user), user.id));
    }
}

async fn list(ctx: &Ctx) -> Outcome {
    let users = ctx.client.list_users().await?;
    if ctx.json {
        ui::json(&serde_json::Value::Array(
            users.iter().map(ui::user_json).collect(),
        ));
    } else if users.is_empty() {
        ui::out("no users yet: run `latch onboard` to create the owner");
    } else {
        ui::out(ui::users_table(&users));
    }
    Ok(())
}

/// Usernames are stored normalised: trimmed and lower-case.
pub(crate) fn normalize_username(username: &str) -> Result<String, Failure> {
    let normalized = username.trim().to_lowercase();
    if normalized.is_empty() {
        return Err(Failure::Usage("the username is empty".to_owned()));
    }
    Ok(normalized)
}

async fn add(ctx: &mut Ctx, args: UserAddArgs) -> Outcome {
    if args.name.trim().is_empty() {
        return Err(Failure::Usage("the name is empty".to_owned()));
    }
    // Ask for everything before changing anything.
    let login = match &args.username {
        Some(username) => {
            let username = normalize_username(username)?;
            let password = ctx.prompt.new_password(args.password_stdin)?;
            Some((username, password))
        }
        None => None,
    };
    let group_ids = if !args.groups.is_empty() {
        Some(args.groups)
    } else if args.system {
        None
    } else {
        Some(vec![DEFAULT_GROUP.to_owned()])
    };
    let mut user = ctx
        .client
        .create_user(NewUser {
            name: args.name.trim().to_owned(),
            group_ids,
            local_only: args.local_only,
            system_generated: args.system,
        })
        .await?;
    if let Some((username, password)) = login {
        match ctx
            .client
            .add_password(&user.id, &username, password.expose())
            .await
        {
            Ok(with_login) => user = with_login,
            Err(e) => {
                // Do not leave a user without the login that was asked for.
                let rolled_back = ctx.client.remove_user(&user.id).await.is_ok();
                if !rolled_back {
                    ui::note(format!(
                        "latch: user {} ({}) was created but has no password; remove it with `latch user remove {}`",
                        ui::name(&user),
                        user.id,
                        user.id
                    ));
                }
                return Err(e.into());
            }
        }
    }
    if ctx.json {
        ui::json(&ui::user_json(&user));
    } else {
        let login = user
            .username
            .as_deref()
            .map(|u| format!(", username {u}"))
            .unwrap_or_default();
        ui::out(format!(
            "added user {} ({}{login}, groups: {})",
            ui::name(&user),
            user.id,
            if user.group_ids.is_empty() {
                "none".to_owned()
            } else {
                user.group_ids.join(", ")
            }
        ));
    }
    Ok(())
}

/// `latch password set USER [--username U]`.
pub(crate) async fn set_password(
    ctx: &mut Ctx,
    user: &str,
    new_username: Option<&str>,
    from_stdin: bool,
) -> Outcome {
    let user = ctx.resolve_user(user).await?;
    if user.system_generated {
        return Err(Failure::Usage(format!(
            "{} is a system user: it cannot have a password",
            ui::name(&user)
        )));
    }
    let username = match (&user.username, new_username) {
        (Some(existing), None) => existing.clone(),
        (Some(existing), Some(_)) => {
            return Err(Failure::Usage(format!(
                "{} already logs in as {existing}: leave out --username to change the password",
                ui::name(&user)
            )));
        }
        (None, Some(wanted)) => normalize_username(wanted)?,
        (None, None) => {
            return Err(Failure::Usage(format!(
                "{} ({}) has no username and password login yet: pass --username to create one",
                ui::name(&user),
                user.id
            )));
        }
    };
    let password = ctx.prompt.new_password(from_stdin)?;
    if user.username.is_some() {
        ctx.client
            .change_password(&user.id, password.expose())
            .await?;
    } else {
        ctx.client
            .add_password(&user.id, &username, password.expose())
            .await?;
    }
    if ctx.json {
        ui::json(&json!({ "user_id": user.id, "username": username, "result": "password_set" }));
    } else {
        ui::out(format!(
            "password set for {} (username {username})",
            ui::name(&user)
        ));
    }
    Ok(())
}
