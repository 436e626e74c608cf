//! The commands: each takes the connected client and its arguments and prints its result.

pub(crate) mod audit;
pub(crate) mod login;
pub(crate) mod mfa;
pub(crate) mod misc;
pub(crate) mod token;
pub(crate) mod user;

use clap::CommandFactory as _;
use latch_client::protocol::ErrorCode;
use latch_client::protocol::UserInfo;
use latch_client::{Client, ClientError, ClientOptions};

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
    /// Finds a user directly: by id, else by username (compared as Home Assistant
    /// compares usernames), else by a display name that only one user has. Each step is
    /// one lookup in the daemon, whatever the number of users.
    pub(crate) async fn resolve_user(&self, user: &str) -> Result<UserInfo, Failure> {
        let wanted = user.trim();
        let not_found = || {
            Failure::NotFound(format!(
                "no user with id, username or name \"{}\" (see `latch user list`)",
                crate::ui::escape(user)
            ))
        };
        if wanted.is_empty() {
            return Err(not_found());
        }
        match self.client.get_user(wanted).await {
            Err(ClientError::Api {
                code: ErrorCode::UserNotFound,
                ..
            }) => {}
            found => return Ok(found?),
        }
        match self.client.get_user_by_username(wanted).await {
            Err(ClientError::Api {
                code: ErrorCode::UserNotFound,
                ..
            }) => {}
            found => return Ok(found?),
        }
        let mut named = self.client.find_users_by_name(wanted, 2).await?;
        match named.len() {
            1 => Ok(named.remove(0)),
            0 => Err(not_found()),
            _ => Err(Failure::Usage(format!(
                "more than one user is named \"{}\": name the user by id or username",
                crate::ui::escape(wanted)
            ))),
        }
    }
}
