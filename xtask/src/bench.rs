//! `cargo xtask bench [--quick]`: release-mode measurements of latch against the
//! performance targets of design.md, each beside its floor.
//!
//! Builds `latchd` and runs `cargo run --release -p latch-bench -- [--quick]`, which
//! prints one table (scenario, figure, floor or peer, ratio, target, met?) and writes
//! the same as JSON to `target/bench/latest.json`. `--quick` is a reduced run of under
//! a minute; the full run takes a few. Neither is part of `ci`.

use std::path::Path;

use anyhow::{Result, bail};

pub(crate) fn run(_root: &Path, args: &[String]) -> Result<()> {
    if let Some(other) = args
        .iter()
        .find(|a| a.starts_with('-') && *a != "--quick" && *a != "--only")
    {
        bail!(
            "unknown bench argument {other:?}; usage: cargo xtask bench [--quick] [--only GROUPS]"
        );
    }
    // The bench starts the real daemon, `target/release/latchd`, as a child process.
    let status = crate::cargo()
        .args([
            "build",
            "--release",
            "--quiet",
            "-p",
            "latch-daemon",
            "--bin",
            "latchd",
        ])
        .status()?;
    if !status.success() {
        bail!("cannot build latchd in release mode");
    }
    let mut cmd = crate::cargo();
    cmd.args(["run", "--release", "--quiet", "-p", "latch-bench", "--"]);
    // `--quick` and `--only GROUPS` go through to latch-bench, which checks them.
    cmd.args(args);
    let status = cmd.status()?;
    if !status.success() {
        bail!("the benchmark failed");
    }
    Ok(())
}
