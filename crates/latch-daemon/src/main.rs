//! `latchd`: the latch daemon.

// A binary: printing to the terminal is its job.
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::io::IsTerminal as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::LazyLock;

use clap::Parser;
use latch_daemon::config::EXAMPLE;
use latch_daemon::{DaemonError, DaemonOptions};
use tracing_subscriber::EnvFilter;

/// The exit statuses, as `--help` shows them (the README's systemd section has the same
/// table).
const EXIT_STATUSES: &str = "\
Exit status:
  0  stopped cleanly (SIGTERM or SIGINT), or --check-config found the configuration valid
  1  a transient error a restart may fix: an I/O error, the OS out of a resource, a
     failed shutdown
  2  a permanent error a restart cannot fix: a bad configuration or command line,
     latchd already running on the home, an unsafe home (another owner, group- or
     world-writable, a symlink), a store file that does not parse or cannot be read, a
     symlink or another file planted at the socket, token or audit log, Home Assistant
     running on the home
systemd: Restart=on-failure with RestartPreventExitStatus=2 restarts only on 1.";

/// The latch daemon: users, logins and tokens behind a local socket.
#[derive(Debug, Parser)]
#[command(name = "latchd", version = VERSION.as_str(), after_help = EXIT_STATUSES)]
struct Cli {
    /// The latch home (socket, session token, latch.toml, .storage/). Default:
    /// $LATCH_HOME, else ~/.latch. May be a Home Assistant configuration directory.
    #[arg(long, value_name = "DIR")]
    home: Option<PathBuf>,

    /// The configuration file. Default: latch.toml in the home if it exists, else the
    /// embedded defaults.
    #[arg(long, value_name = "PATH")]
    config: Option<PathBuf>,

    /// Log filter (a level or tracing directives); overrides RUST_LOG and the
    /// configuration's log_level.
    #[arg(long, value_name = "FILTER")]
    log_level: Option<String>,

    /// Parse and validate the configuration, then exit: 0 if it is valid, 2 if not.
    #[arg(long, conflicts_with = "print_default_config")]
    check_config: bool,

    /// Print the default configuration, every key documented, and exit.
    #[arg(long)]
    print_default_config: bool,

    #[command(subcommand)]
    command: Option<Command>,
}

/// Moving a home into the shared database and back out (`[store] backend =
/// "postgres"` names the database; latchd does not serve while it moves).
#[derive(Debug, clap::Subcommand)]
enum Command {
    /// Put DIR's users, credentials, tokens, password hashes and TOTP secrets (a latch
    /// home or a Home Assistant configuration directory, its .storage files) into the
    /// shared database, which must be empty. Stop latchd and Home Assistant on DIR first.
    Import {
        /// The home to import.
        dir: PathBuf,
    },
    /// Write the shared database's state into DIR/.storage as Home Assistant's files
    /// (auth, auth_provider.homeassistant, auth_module.totp), which must hold no users yet.
    Export {
        /// Where to write (created if missing).
        dir: PathBuf,
    },
}

/// `--version`: the crate version and the protocol version.
static VERSION: LazyLock<String> = LazyLock::new(|| {
    format!(
        "{} (protocol {})",
        env!("CARGO_PKG_VERSION"),
        latch_protocol::PROTOCOL_VERSION
    )
});

fn main() -> ExitCode {
    let cli = Cli::parse();
    if cli.print_default_config {
        print!("{EXAMPLE}");
        return ExitCode::SUCCESS;
    }
    let options = match DaemonOptions::load(cli.home.as_deref(), cli.config.as_deref()) {
        Ok(options) => options,
        Err(e) => return fail(&e),
    };
    if cli.check_config {
        println!("configuration ok ({})", options.config_source);
        return ExitCode::SUCCESS;
    }
    if let Err(e) = init_logging(cli.log_level.as_deref(), &options.config.log_level) {
        eprintln!("latchd: {e:#}");
        return ExitCode::from(latch_daemon::EXIT_PERMANENT);
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("latchd: cannot start the async runtime: {e}");
            return ExitCode::from(latch_daemon::EXIT_TRANSIENT);
        }
    };
    if let Some(command) = cli.command {
        return runtime.block_on(move_home(&command, &options.config.store));
    }
    // The signal handlers are installed before the daemon starts, inside the runtime.
    let served = runtime.block_on(async {
        let shutdown = latch_daemon::shutdown_signal();
        latch_daemon::run(options, shutdown).await
    });
    match served {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e}");
            fail(&e)
        }
    }
}

/// `latchd import DIR` / `latchd export DIR`.
async fn move_home(command: &Command, store: &latch_daemon::config::StoreConfig) -> ExitCode {
    let (result, verb, dir) = match command {
        Command::Import { dir } => (
            latch_daemon::moving::import_home(store, dir).await,
            "imported from",
            dir,
        ),
        Command::Export { dir } => (
            latch_daemon::moving::export_home(store, dir).await,
            "exported to",
            dir,
        ),
    };
    match result {
        Ok(m) => {
            println!(
                "{verb} {}: {} users, {} refresh tokens, {} passwords, {} TOTP secrets (batch {})",
                dir.display(),
                m.users,
                m.refresh_tokens,
                m.passwords,
                m.totp_secrets,
                m.batch
            );
            ExitCode::SUCCESS
        }
        Err(e) => fail(&e),
    }
}

fn fail(e: &DaemonError) -> ExitCode {
    eprintln!("latchd: {e}");
    ExitCode::from(e.exit_code())
}

/// `--log-level`, else `RUST_LOG`, else the configuration's `log_level`.
fn init_logging(flag: Option<&str>, configured: &str) -> anyhow::Result<()> {
    use anyhow::Context as _;
    let from_env = std::env::var("RUST_LOG").ok().filter(|v| !v.is_empty());
    let (filter, origin) = match (flag, from_env) {
        (Some(flag), _) => (flag.to_owned(), "--log-level"),
        (None, Some(env)) => (env, "RUST_LOG"),
        (None, None) => (configured.to_owned(), "log_level"),
    };
    // Field values literal, as in `DaemonConfig::validate`: no regex compilation.
    let filter = EnvFilter::builder()
        .with_regex(false)
        .parse(&filter)
        .with_context(|| format!("invalid {origin} {filter:?}"))?;
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .try_init()
        .map_err(|e| anyhow::anyhow!(e))
        .context("cannot set up logging")
}
