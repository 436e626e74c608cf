//! `cargo xtask bench [--quick] [--only GROUPS] [--peer home-assistant]`: release-mode
//! measurements of latch against the performance targets of design.md, each beside its
//! floor.
//!
//! Builds `latchd` and `latch-http` and runs `cargo run --release -p latch-bench -- [--quick]`, which
//! prints one table (scenario, figure, floor or peer, ratio, target, met?) and writes
//! the same as JSON to `target/bench/latest.json`. `--quick` is a reduced run of under
//! a minute; the full run takes a few. Neither is part of `ci`.
//!
//! `--peer home-assistant` also measures Home Assistant's own access-token validation in
//! the same run: it makes (once, then reuses) a Python virtual environment in
//! `target/bench/ha-venv` with [`HA_REQUIREMENTS`] from PyPI, and hands its interpreter
//! to latch-bench (`--ha-python`). Without it, the Home Assistant rows say "reference,
//! not measured".

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

/// What the Home Assistant peer runs on: the release this machine's Python (3.11) runs,
/// and the `josepy` its dependencies (acme) still import (josepy 2 removed what they use).
const HA_REQUIREMENTS: [&str; 2] = ["homeassistant==2024.3.3", "josepy<2"];

/// The interpreter the virtual environment is made with (`LATCH_BENCH_PYTHON` overrides).
const PYTHON: &str = "python3.11";

const USAGE: &str = "usage: cargo xtask bench [--quick] [--only GROUPS] [--peer home-assistant]";

pub(crate) fn run(root: &Path, args: &[String]) -> Result<()> {
    let mut passed = Vec::new();
    let mut peer = false;
    let mut rest = args.iter();
    while let Some(arg) = rest.next() {
        match arg.as_str() {
            "--quick" => passed.push(arg.clone()),
            "--only" => {
                passed.push(arg.clone());
                passed.push(rest.next().context(USAGE)?.clone());
            }
            "--peer" => match rest.next().map(String::as_str) {
                Some("home-assistant") => peer = true,
                Some(other) => bail!("unknown peer {other:?}; the one peer is home-assistant"),
                None => bail!("{USAGE}"),
            },
            other => bail!("unknown bench argument {other:?}; {USAGE}"),
        }
    }
    if peer {
        let python = home_assistant_venv(&target_dir(root))?;
        passed.push("--ha-python".to_owned());
        passed.push(python.to_string_lossy().into_owned());
    }

    // The bench starts the real daemon, `target/release/latchd`, and the HTTP door,
    // `target/release/latch-http`, as child processes.
    let status = crate::cargo()
        .args([
            "build",
            "--release",
            "--quiet",
            "-p",
            "latch-daemon",
            "-p",
            "latch-http",
            "--bin",
            "latchd",
            "--bin",
            "latch-http",
        ])
        .status()?;
    if !status.success() {
        bail!("cannot build latchd and latch-http in release mode");
    }
    let mut cmd = crate::cargo();
    cmd.args(["run", "--release", "--quiet", "-p", "latch-bench", "--"]);
    cmd.args(&passed);
    let status = cmd.status()?;
    if !status.success() {
        bail!("the benchmark failed");
    }
    Ok(())
}

fn target_dir(root: &Path) -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| root.join("target"), PathBuf::from)
}

/// The Python of `target/bench/ha-venv`, made with [`HA_REQUIREMENTS`] unless a previous
/// run already did (its `latch-requirements.txt` says what it holds).
fn home_assistant_venv(target: &Path) -> Result<PathBuf> {
    let venv = target.join("bench").join("ha-venv");
    let python = venv.join("bin").join("python");
    let marker = venv.join("latch-requirements.txt");
    let wanted = HA_REQUIREMENTS.join("\n") + "\n";
    if python.is_file() && std::fs::read_to_string(&marker).is_ok_and(|m| m == wanted) {
        eprintln!("xtask: Home Assistant peer: reusing {}", venv.display());
        return Ok(python);
    }
    let interpreter = std::env::var("LATCH_BENCH_PYTHON").unwrap_or_else(|_| PYTHON.to_owned());
    eprintln!(
        "xtask: Home Assistant peer: making {} with {interpreter} and {} (a few minutes)",
        venv.display(),
        HA_REQUIREMENTS.join(", ")
    );
    let _ = std::fs::remove_file(&marker);
    run_checked(
        Command::new(&interpreter)
            .args(["-m", "venv", "--clear"])
            .arg(&venv),
        &format!("{interpreter} -m venv (is {interpreter} installed?)"),
    )?;
    run_checked(
        Command::new(venv.join("bin").join("pip"))
            .args(["install", "--quiet", "--disable-pip-version-check"])
            .args(HA_REQUIREMENTS),
        "pip install of the Home Assistant peer",
    )?;
    run_checked(
        Command::new(&python).args(["-c", "import homeassistant.auth"]),
        "importing homeassistant.auth in the new environment",
    )?;
    std::fs::write(&marker, wanted)
        .with_context(|| format!("cannot write {}", marker.display()))?;
    Ok(python)
}

fn run_checked(cmd: &mut Command, what: &str) -> Result<()> {
    let status = cmd
        .status()
        .with_context(|| format!("cannot start {what}"))?;
    if !status.success() {
        bail!("{what} failed ({status})");
    }
    Ok(())
}
