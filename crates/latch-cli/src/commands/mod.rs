//! The commands: each takes the connected client and its arguments and prints its result.

pub(crate) mod audit;
pub(crate) mod login;
pub(crate) mod mfa;
pub(crate) mod misc;
pub(crate) mod token;
pub(crate) mod user;

use clap::CommandFactory as _;
use latch_client::protocol::UserInfo;
use latch_client::{Client, ClientOptions};

use crate::cli::{Cli, Command, GroupCommand, PasswordCommand};
use crate::fail::{Failure, Outcome};
use crate::prompt::Prompter;

/// What every command gets.
#[derive(Debug)]
pub(crate) struct Ctx {
    pub(crate) client: Client,
    pub(crate) json: bool,
    pub(crate) prompt: Prompter,
}

/// Runs the command line.
pub(crate) async fn run(cli: Cli) -> Outcome {
    let Cli {
        home,
        socket,
        token_file,
        json,
        command,
    } = cli;
    if let Command::Completions { shell } = command {
        let mut cmd = Cli::command();
        clap_complete::generate(shell, &mut cmd, "latch", &mut std::io::stdout());
        return Ok(());
    }
    if let Command::Audit(args) = command {
        return audit::run(home, json, args).await;
    }
    let options = ClientOptions {
        home,
        socket,
        token_file,
        ..ClientOptions::default()
    };
    if let Command::Status = command {
        return misc::status(options, json).await;
    }
    let client = Client::connect_with(options).await?;
    let mut ctx = Ctx {
        client,
        json,
        prompt: Prompter::new(),
    };
    match command {
        Command::Status | Command::Completions { .. } | Command::Audit(_) => Ok(()),
        Command::Onboard(args) => misc::onboard(&mut ctx, args).await,
        Command::User(cmd) => user::run(&mut ctx, cmd).await,
        Command::Group(GroupCommand::List) => misc::groups(&ctx).await,
        Command::Password(PasswordCommand::Set {
            user,
            username,
            password_stdin,
        }) => user::set_password(&mut ctx, &user, username.as_deref(), password_stdin).await,
        Command::Login(args) => login::run(&mut ctx, args).await,
        Command::Token(cmd) => token::run(&mut ctx, cmd).await,
        Command::Mfa(cmd) => mfa::run(&mut ctx, cmd).await,
        Command::Check(args) => misc::check(&ctx, args).await,
        Command::Lockouts(args) => misc::lockouts(&ctx, args).await,
        Command::Events(args) => misc::events(&ctx, args).await,
    }
}

impl Ctx {
    /// Finds a user by id, else by username (case-insensitive), else by a display name
    /// that only one user has.
    pub(crate) async fn resolve_user(&self, user: &str) -> Result<UserInfo, Failure> {
        let users = self.client.list_users().await?;
        find_user(users, user).ok_or_else(|| {
            Failure::NotFound(format!(
                "no user with id or username {user:?} (see `latch user list`)"
            ))
        })
    }
}

fn find_user(users: Vec<UserInfo>, wanted: &str) -> Option<UserInfo> {
    let wanted_trimmed = wanted.trim();
    let lower = wanted_trimmed.to_lowercase();
    if let Some(i) = users.iter().position(|u| u.id == wanted_trimmed) {
        return users.into_iter().nth(i);
    }
    if let Some(i) = users.iter().position(|u| {
        u.username
            .as_deref()
            .is_some_and(|n| n.to_lowercase() == lower)
    }) {
        return users.into_iter().nth(i);
    }
    let mut by_name = users
        .into_iter()
        .filter(|u| u.name.as_deref() == Some(wanted_trimmed));
    match (by_name.next(), by_name.next()) {
        (Some(only), None) => Some(only),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(id: &str, name: &str, username: Option<&str>) -> UserInfo {
        UserInfo {
            id: id.into(),
            name: Some(name.into()),
            username: username.map(Into::into),
            is_owner: false,
            is_active: true,
            is_admin: false,
            local_only: false,
            system_generated: false,
            group_ids: vec![],
            credentials: vec![],
            mfa_modules: vec![],
        }
    }

    #[test]
    fn users_are_found_by_id_then_username_then_unique_name() {
        let users = vec![
            user("a1", "Paulus", Some("paulus")),
            user("b2", "Anne", Some("anne")),
            user("c3", "Twin", None),
            user("d4", "Twin", None),
        ];
        assert_eq!(find_user(users.clone(), "b2").unwrap().id, "b2");
        assert_eq!(find_user(users.clone(), "PAULUS").unwrap().id, "a1");
        assert_eq!(find_user(users.clone(), "Anne").unwrap().id, "b2");
        assert!(find_user(users.clone(), "Twin").is_none());
        assert!(find_user(users, "nobody").is_none());
    }
}
