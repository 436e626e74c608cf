//! The command tree (clap derive).

use std::path::PathBuf;

use clap::{ArgGroup, Args, Parser, Subcommand, ValueEnum};
use clap_complete::Shell;

/// The long help's epilogue: where the daemon is found, and the exit codes.
const AFTER_LONG_HELP: &str = "\
Finding the daemon:
  The socket is --socket, else <home>/latch.sock when --home is given, else $LATCH_SOCKET,
  else <$LATCH_HOME or ~/.latch>/latch.sock. The session-token file is found the same way
  (--token-file, <home>/session-token, $LATCH_TOKEN_FILE, <$LATCH_HOME or ~/.latch>/session-token).
  Start the daemon with `latchd` (or `cargo run --release --bin latchd` in a source checkout).

Non-interactive use:
  When stdin is not a terminal, every prompt reads one line from stdin (a new password is
  asked twice: pipe it twice, or use --password-stdin to pipe it once). Secrets are never
  echoed.

Exit codes:
  0  success
  1  denied or negative answer (`check` denied, `token validate` of an invalid token,
     a failed login, a lockout)
  2  usage or configuration error (bad arguments, passwords that do not match or are too
     short, incompatible versions)
  3  latchd is not running or cannot be reached
  4  the socket's authentication failed (missing or stale session-token file, impostor)
  5  not found (user, token, flow, module, ...)
  6  any other error answered by latchd";

/// latch: manage the users, passwords, tokens and second factors of a running latchd.
#[derive(Debug, Parser)]
#[command(name = "latch", version, after_long_help = AFTER_LONG_HELP)]
pub(crate) struct Cli {
    /// The latch home of the daemon to talk to [default: $LATCH_HOME, else ~/.latch].
    #[arg(long, global = true, value_name = "DIR")]
    pub(crate) home: Option<PathBuf>,
    /// The daemon's socket [default: $LATCH_SOCKET, else latch.sock in the home].
    #[arg(long, global = true, value_name = "PATH")]
    pub(crate) socket: Option<PathBuf>,
    /// The session-token file [default: $LATCH_TOKEN_FILE, else session-token in the home].
    #[arg(long, global = true, value_name = "PATH")]
    pub(crate) token_file: Option<PathBuf>,
    /// Print machine-readable JSON (one document, or one line per event) instead of text.
    #[arg(long, global = true)]
    pub(crate) json: bool,
    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Show whether latchd runs, its version, uptime and counts.
    Status,
    /// First-run setup: create the owner with a username and password.
    Onboard(OnboardArgs),
    /// List, add, remove, (de)activate users and set their groups.
    #[command(subcommand)]
    User(UserCommand),
    /// List the groups.
    #[command(subcommand)]
    Group(GroupCommand),
    /// Set a user's password.
    #[command(subcommand)]
    Password(PasswordCommand),
    /// Log in as a user through the real login flow (password, then TOTP if enabled).
    Login(LoginArgs),
    /// List, validate, refresh, revoke and create tokens.
    #[command(subcommand)]
    Token(TokenCommand),
    /// Set up or disable a second factor (TOTP), regenerate recovery codes.
    #[command(subcommand)]
    Mfa(MfaCommand),
    /// Check a permission: exit 0 if allowed, 1 if denied.
    Check(CheckArgs),
    /// List brute-force lockouts, or clear one.
    Lockouts(LockoutsArgs),
    /// Follow the daemon's events, one line each (JSON lines with --json).
    Events(EventsArgs),
    /// Read the audit log (audit.log in the home) directly: logins, failures, lockouts, token
    /// and user changes. Needs no running daemon, but the daemon's user.
    Audit(AuditArgs),
    /// Print a shell completion script.
    Completions {
        /// The shell.
        shell: Shell,
    },
}

#[derive(Debug, Args)]
pub(crate) struct OnboardArgs {
    /// The owner's display name (prompted if absent).
    #[arg(long)]
    pub(crate) name: Option<String>,
    /// The owner's username (prompted if absent).
    #[arg(long)]
    pub(crate) username: Option<String>,
    /// Read the password from the first line of stdin, without confirmation.
    #[arg(long)]
    pub(crate) password_stdin: bool,
}

#[derive(Debug, Subcommand)]
pub(crate) enum UserCommand {
    /// List the users.
    List,
    /// Add a user; with --username it also gets a password (prompted).
    Add(UserAddArgs),
    /// Remove a user, its credentials and its tokens.
    Remove {
        /// The user (id or username).
        user: String,
    },
    /// Allow a user to log in again.
    Activate {
        /// The user (id or username).
        user: String,
    },
    /// Stop a user from logging in and revoke its tokens.
    Deactivate {
        /// The user (id or username).
        user: String,
    },
    /// Show a user's groups, or replace them with the ones given.
    Groups {
        /// The user (id or username).
        user: String,
        /// The new groups (e.g. system-admin, system-users, system-read-only).
        groups: Vec<String>,
    },
}

#[derive(Debug, Args)]
pub(crate) struct UserAddArgs {
    /// The display name.
    pub(crate) name: String,
    /// Give the user this username and a password (prompted).
    #[arg(long)]
    pub(crate) username: Option<String>,
    /// A group to put the user in (repeatable) [default: system-users].
    #[arg(long = "group", value_name = "GROUP")]
    pub(crate) groups: Vec<String>,
    /// The user may log in from local addresses only.
    #[arg(long)]
    pub(crate) local_only: bool,
    /// A system-generated user (a service account).
    #[arg(long)]
    pub(crate) system: bool,
    /// Read the password from the first line of stdin, without confirmation.
    #[arg(long, requires = "username")]
    pub(crate) password_stdin: bool,
}

#[derive(Debug, Subcommand)]
pub(crate) enum GroupCommand {
    /// List the groups and their policies.
    List,
}

#[derive(Debug, Subcommand)]
pub(crate) enum PasswordCommand {
    /// Set a user's password (an operator action: the old one is not needed).
    Set {
        /// The user (id or username).
        user: String,
        /// For a user without a password login yet: the username to create it with.
        #[arg(long)]
        username: Option<String>,
        /// Read the password from the first line of stdin, without confirmation.
        #[arg(long)]
        password_stdin: bool,
    },
}

#[derive(Debug, Args)]
pub(crate) struct LoginArgs {
    /// The username to log in with.
    pub(crate) user: String,
    /// The OAuth client id the tokens are issued to.
    #[arg(long, default_value = crate::commands::login::DEFAULT_CLIENT_ID)]
    pub(crate) client_id: String,
    /// Print the access and refresh tokens (they are secrets).
    #[arg(long)]
    pub(crate) show_tokens: bool,
    /// Read the password from the first line of stdin.
    #[arg(long)]
    pub(crate) password_stdin: bool,
}

#[derive(Debug, Subcommand)]
pub(crate) enum TokenCommand {
    /// List a user's refresh tokens.
    List {
        /// The user (id or username).
        user: String,
    },
    /// Check an access token: exit 0 if valid, 1 if not. `-` reads it from stdin.
    Validate {
        /// The access token, or `-`.
        token: String,
    },
    /// Mint a new access token from a refresh token. `-` reads it from stdin.
    Refresh {
        /// The refresh token, or `-`.
        refresh_token: String,
        /// The client id the refresh token was issued to (`latch login` issues to the
        /// CLI's own).
        #[arg(long, default_value = crate::commands::login::DEFAULT_CLIENT_ID, conflicts_with = "no_client_id")]
        client_id: String,
        /// The refresh token was issued to no client (a long-lived or system token).
        #[arg(long)]
        no_client_id: bool,
    },
    /// Revoke a refresh token, by id or by value.
    #[command(group(ArgGroup::new("which").required(true).args(["id", "token"])))]
    Revoke {
        /// The refresh token's id (see `latch token list`).
        #[arg(long)]
        id: Option<String>,
        /// The refresh token itself, or `-` to read it from stdin.
        #[arg(long)]
        token: Option<String>,
    },
    /// Create a long-lived access token for a user (shown once).
    CreateLongLived {
        /// The user (id or username).
        user: String,
        /// The token's name, unique per user.
        #[arg(long)]
        name: String,
        /// How many days each access token minted from it lives.
        #[arg(long, default_value_t = 3650)]
        days: u32,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum MfaCommand {
    /// Enrol a user: shows a QR code and the otpauth URI, asks for a code, prints the
    /// recovery codes once.
    Setup {
        /// The user (id or username).
        user: String,
        /// The MFA module.
        #[arg(long, default_value = "totp")]
        module: String,
        /// Also write the QR code as a PNG image to this new file (mode 0600: it holds
        /// the secret), to show on another screen.
        #[arg(long, value_name = "FILE")]
        qr_png: Option<PathBuf>,
    },
    /// Turn a user's second factor off.
    Disable {
        /// The user (id or username).
        user: String,
        /// The MFA module.
        #[arg(long, default_value = "totp")]
        module: String,
    },
    /// Replace a user's recovery codes (the old ones stop working) and print them once.
    RecoveryCodes {
        /// The user (id or username).
        user: String,
        /// The MFA module.
        #[arg(long, default_value = "totp")]
        module: String,
    },
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub(crate) enum Permission {
    /// See the entity's state.
    Read,
    /// Operate the entity.
    Control,
    /// Change the entity's configuration.
    Edit,
}

#[derive(Debug, Args)]
pub(crate) struct CheckArgs {
    /// The user (id or username).
    pub(crate) user: String,
    /// The entity, e.g. light.kitchen.
    pub(crate) entity: String,
    /// What is asked for.
    pub(crate) permission: Permission,
}

#[derive(Debug, Args)]
pub(crate) struct LockoutsArgs {
    /// Clear this lockout: `username:NAME`, `source:IP`, or a bare IP or username.
    #[arg(long, value_name = "KEY")]
    pub(crate) clear: Option<String>,
}

#[derive(Debug, Args)]
pub(crate) struct EventsArgs {
    /// Only these kinds (repeatable) [default: all]: user_added, user_updated,
    /// user_removed, refresh_token_created, refresh_token_revoked, login_succeeded,
    /// login_failed, lockout_started, lockout_cleared.
    #[arg(long = "kind", value_name = "KIND")]
    pub(crate) kinds: Vec<String>,
}

#[derive(Debug, Args)]
pub(crate) struct AuditArgs {
    /// Keep running and print lines as they are appended (follows rotation).
    #[arg(long, short = 'f')]
    pub(crate) follow: bool,
    /// Only the last N matching lines [default: all].
    #[arg(long, short = 'n', value_name = "N")]
    pub(crate) lines: Option<usize>,
    /// Only these events (repeatable): user_added, user_updated, user_removed,
    /// refresh_token_created, refresh_token_revoked, login_succeeded, login_failed,
    /// lockout_started, lockout_cleared, audit_lagged.
    #[arg(long = "event", value_name = "NAME")]
    pub(crate) events: Vec<String>,
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    #[test]
    fn the_command_tree_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn revoke_needs_exactly_one_of_id_or_token() {
        assert!(Cli::try_parse_from(["latch", "token", "revoke"]).is_err());
        assert!(
            Cli::try_parse_from(["latch", "token", "revoke", "--id", "a", "--token", "b"]).is_err()
        );
        assert!(Cli::try_parse_from(["latch", "token", "revoke", "--id", "a"]).is_ok());
    }

    #[test]
    fn global_flags_go_anywhere() {
        let cli = Cli::try_parse_from(["latch", "user", "list", "--json", "--home", "/h"]).unwrap();
        assert!(cli.json);
        assert_eq!(cli.home.as_deref(), Some(std::path::Path::new("/h")));
    }
}
