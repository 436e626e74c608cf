//! `cargo xtask bench`: release-mode measurements.
//!
//! For now this runs the access-token validation micro-benchmark of `latch-token`
//! (validations per second against the floor of a bare HMAC-SHA256 over the same bytes).

use std::path::Path;

use anyhow::{Result, bail};

pub(crate) fn run(_root: &Path, args: &[String]) -> Result<()> {
    let quick = args.iter().any(|a| a == "--quick");
    let mut cmd = crate::cargo();
    cmd.args([
        "run",
        "--release",
        "--quiet",
        "-p",
        "latch-token",
        "--example",
        "validate_bench",
    ]);
    if quick {
        cmd.env("LATCH_BENCH_QUICK", "1");
    }
    let status = cmd.status()?;
    if !status.success() {
        bail!("the token validation benchmark failed");
    }
    Ok(())
}
