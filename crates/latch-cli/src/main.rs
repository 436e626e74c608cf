//! `latch`: the operator's command line for `latchd`.
//!
//! One job: turn commands into `latch-client` calls and their answers into tables, JSON
//! and exit codes. It holds no auth logic: every decision is the daemon's. The exit
//! codes are documented in `latch --help` and in [`latch_client::exit`].
#![allow(clippy::print_stdout, clippy::print_stderr)]

mod cli;
mod commands;
mod fail;
mod prompt;
mod ui;

use std::process::ExitCode;

use clap::Parser as _;
use tracing_subscriber::EnvFilter;

fn main() -> ExitCode {
    let cli = match cli::Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            if !e.use_stderr() {
                // --help, --version
                let _ = e.print();
                return ExitCode::SUCCESS;
            }
            if std::env::args_os().any(|a| a == "--json") {
                let message = e.render().to_string();
                ui::json(&fail::error_json("usage", message.trim_end()));
            } else {
                let _ = e.print();
            }
            return ExitCode::from(latch_client::exit::USAGE);
        }
    };
    let json = cli.json;
    // Quiet unless RUST_LOG asks: the client's own diagnostics are for debugging.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("off")),
        )
        .with_writer(std::io::stderr)
        .try_init();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            let failure = fail::Failure::Other(format!("cannot start the async runtime: {e}"));
            return report(&failure, json);
        }
    };
    let outcome = runtime.block_on(commands::run(cli));
    // Do not wait for the client's background tasks.
    runtime.shutdown_background();
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => report(&failure, json),
    }
}

/// Reports a failure: a JSON error document on stdout with `--json`, else a line on
/// stderr; then its exit code.
fn report(failure: &fail::Failure, json: bool) -> ExitCode {
    if json {
        if let Some(doc) = failure.json() {
            ui::json(&doc);
        }
    } else if let Some(message) = failure.message() {
        ui::note(format!("latch: {message}"));
    }
    ExitCode::from(failure.exit_code())
}
