//! `latch-http`: Home Assistant's HTTP auth API and a sign-in page, in front of latchd.

// A binary: printing to the terminal is its job.
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::io::IsTerminal as _;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::Parser;
use latch_client::{Client, ClientOptions};
use latch_http::config::{CONFIG_FILE, EXAMPLE};
use latch_http::{HttpConfig, HttpServer};
use tracing_subscriber::EnvFilter;

/// Home Assistant's HTTP auth API and a sign-in page, served in front of latchd.
#[derive(Debug, Parser)]
#[command(name = "latch-http", version)]
struct Cli {
    /// The latch home: latchd's socket and session token are found there, and
    /// latch.toml's [http] section is read from it. Default: $LATCH_HOME, else ~/.latch
    /// ($LATCH_SOCKET and $LATCH_TOKEN_FILE name the socket and token elsewhere).
    #[arg(long, value_name = "DIR")]
    home: Option<PathBuf>,

    /// The configuration file (its [http] section). Default: latch.toml in the home if
    /// it exists, else the embedded defaults.
    #[arg(long, value_name = "PATH")]
    config: Option<PathBuf>,

    /// Address and port to serve on; overrides http.listen (default 127.0.0.1:8123).
    #[arg(long, value_name = "ADDR:PORT")]
    listen: Option<SocketAddr>,

    /// latchd's socket; overrides the home and $LATCH_SOCKET.
    #[arg(long, value_name = "PATH")]
    socket: Option<PathBuf>,

    /// latchd's session-token file; overrides the home and $LATCH_TOKEN_FILE.
    #[arg(long, value_name = "PATH")]
    token_file: Option<PathBuf>,

    /// Log filter (a level or tracing directives); overrides RUST_LOG and http.log_level.
    #[arg(long, value_name = "FILTER")]
    log_level: Option<String>,

    /// Parse and check the configuration (and the TLS files), then exit: 0 if it is
    /// valid, 2 if not.
    #[arg(long, conflicts_with = "print_default_config")]
    check_config: bool,

    /// Print the default [http] section, every key documented, and exit.
    #[arg(long)]
    print_default_config: bool,
}

/// The configuration file: `--config`, else `<home>/latch.toml`.
fn config_path(cli: &Cli) -> anyhow::Result<(PathBuf, bool)> {
    if let Some(path) = &cli.config {
        return Ok((path.clone(), true));
    }
    let home = match &cli.home {
        Some(home) => home.clone(),
        None => match std::env::var_os("LATCH_HOME").filter(|v| !v.is_empty()) {
            Some(home) => PathBuf::from(home),
            None => std::env::var_os("HOME")
                .map(|h| PathBuf::from(h).join(".latch"))
                .context("cannot find the latch home: pass --home, or set LATCH_HOME or HOME")?,
        },
    };
    Ok((home.join(CONFIG_FILE), false))
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if cli.print_default_config {
        print!("{EXAMPLE}");
        return ExitCode::SUCCESS;
    }
    let config = match load(&cli) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("latch-http: {e:#}");
            return ExitCode::from(2);
        }
    };
    if let Err(e) = init_logging(cli.log_level.as_deref(), &config.log_level) {
        eprintln!("latch-http: {e:#}");
        return ExitCode::from(2);
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("latch-http: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(&cli, config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            eprintln!("latch-http: {e:#}");
            ExitCode::from(1)
        }
    }
}

/// The configuration with the flags applied, checked.
fn load(cli: &Cli) -> anyhow::Result<HttpConfig> {
    let (path, explicit) = config_path(cli)?;
    let mut config = HttpConfig::load(&path, explicit)?;
    if let Some(listen) = cli.listen {
        config.listen = listen;
    }
    if cli.check_config {
        latch_http::check_tls(&config)?;
        let findings = config.access_findings();
        for finding in &findings {
            let level = if finding.is_error() {
                "error"
            } else {
                "warning"
            };
            eprintln!("latch-http: {level}: {} ({})", finding, path.display());
        }
        if findings.iter().any(latch_http::access::Finding::is_error) {
            anyhow::bail!("the access rules need fixing");
        }
        let source = if path.exists() {
            path.display().to_string()
        } else {
            "defaults".to_owned()
        };
        println!("configuration ok ({source})");
        std::process::exit(0);
    }
    Ok(config)
}

async fn run(cli: &Cli, config: HttpConfig) -> anyhow::Result<()> {
    let options = ClientOptions {
        home: cli.home.clone(),
        socket: cli.socket.clone(),
        token_file: cli.token_file.clone(),
        ..ClientOptions::default()
    };
    let client = Client::new_lazy(options).context("cannot find latchd")?;
    let server = HttpServer::bind(config, client.clone()).await?;
    let scheme = if server.is_tls() { "https" } else { "http" };
    tracing::info!(
        version = env!("CARGO_PKG_VERSION"),
        socket = %client.socket_path().display(),
        "latch-http serving on {scheme}://{}",
        server.local_addr()
    );
    match client.ping().await {
        Ok(()) => tracing::info!("latchd answers"),
        Err(e) => {
            tracing::error!(error = %e, "latchd is not reachable yet: answering 503 until it is");
        }
    }
    #[cfg(unix)]
    let _ = sd_notify::notify(&[sd_notify::NotifyState::Ready]);
    server.serve(shutdown_signal()).await;
    tracing::info!("latch-http stopped");
    Ok(())
}

/// SIGTERM or SIGINT (Ctrl-C).
async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// `--log-level`, else `RUST_LOG`, else `http.log_level`.
fn init_logging(flag: Option<&str>, configured: &str) -> anyhow::Result<()> {
    let from_env = std::env::var("RUST_LOG").ok().filter(|v| !v.is_empty());
    let (filter, origin) = match (flag, from_env) {
        (Some(flag), _) => (flag.to_owned(), "--log-level"),
        (None, Some(env)) => (env, "RUST_LOG"),
        (None, None) => (configured.to_owned(), "log_level"),
    };
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
