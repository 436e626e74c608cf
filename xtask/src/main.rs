//! latch's task runner, in the cargo-xtask style: `cargo xtask <task>`.
//!
//! - `ci`: the single gate: fmt check, clippy (warnings denied), the binaries, the whole
//!   test suite (end-to-end tests included),
//!   docs (warnings denied) and the tidy checks, one summary line per step; it stops at
//!   the first failing step and prints that step's output.
//! - `tidy`: only the tidy checks.
//! - `bench [--quick] [--only GROUPS] [--peer home-assistant]`: release-mode measurements
//!   (see the README's benchmark table).
//! - `stress [--rounds N] [--seed S]`: the crash-safety test at length (50 rounds of
//!   SIGKILL at random moments of a mixed write workload), in release mode.
//! - `fuzz [<target>|all] [--seconds N]`: the cargo-fuzz targets of `crates/latch-fuzz`;
//!   with no target, lists them.

#![allow(clippy::print_stdout, clippy::print_stderr)]

mod bench;
mod fuzz;
mod stress;
mod tidy;

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::Instant;

use anyhow::{Context, Result, bail};

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let root = project_root();
    std::env::set_current_dir(&root)
        .with_context(|| format!("cannot enter the project root {}", root.display()))?;
    match args.first().map(String::as_str) {
        Some("ci") => ci(&root),
        Some("tidy") => {
            let problems = tidy::check(&root)?;
            report_tidy(&problems)
        }
        Some("bench") => bench::run(&root, &args[1..]),
        Some("fuzz") => fuzz::run(&root, &args[1..]),
        Some("stress") => stress::run(&args[1..]),
        Some("help" | "--help" | "-h") | None => {
            println!("{HELP}");
            Ok(())
        }
        Some(other) => bail!("unknown task {other:?}\n\n{HELP}"),
    }
}

const HELP: &str = "\
usage: cargo xtask <task>

tasks:
  ci             fmt --check, clippy -D warnings, tests, docs -D warnings, tidy
  tidy           the tidy checks alone
  bench [--quick] [--only GROUPS] [--peer home-assistant]
                 release-mode measurements against their floors (and Home Assistant)
  stress [--rounds N] [--seed S]
                 crash safety: N (50) rounds of SIGKILL under writes, release mode
  fuzz [<target>|all] [--seconds N]
                 run cargo-fuzz targets (default 60 s each); no target: list them";

/// The workspace root: the parent of this crate's manifest directory.
fn project_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map_or_else(|| PathBuf::from("."), Path::to_path_buf)
}

fn cargo() -> Command {
    Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
}

/// `cargo` for the CI steps: no incremental caches, which a one-shot build never reads
/// back and which take gigabytes of disk across the workspace's test binaries.
fn ci_cargo() -> Command {
    let mut command = cargo();
    command.env("CARGO_INCREMENTAL", "0");
    command
}

struct Step {
    name: &'static str,
    command: Command,
}

fn ci(root: &Path) -> Result<()> {
    let mut steps = Vec::new();

    let mut fmt = ci_cargo();
    fmt.args(["fmt", "--all", "--", "--check"]);
    steps.push(Step {
        name: "fmt",
        command: fmt,
    });

    let mut clippy = ci_cargo();
    clippy.args([
        "clippy",
        "--workspace",
        "--all-targets",
        "--quiet",
        "--",
        "-D",
        "warnings",
    ]);
    steps.push(Step {
        name: "clippy",
        command: clippy,
    });

    // The end-to-end tests start the real `latchd` and `latch` binaries.
    let mut build = ci_cargo();
    build.args(["build", "--workspace", "--bins", "--quiet"]);
    steps.push(Step {
        name: "build",
        command: build,
    });

    let mut test = ci_cargo();
    test.args(["test", "--workspace", "--no-fail-fast"]);
    steps.push(Step {
        name: "test",
        command: test,
    });

    let mut doc = ci_cargo();
    doc.args(["doc", "--workspace", "--no-deps", "--quiet"])
        .env("RUSTDOCFLAGS", "-D warnings");
    steps.push(Step {
        name: "doc",
        command: doc,
    });

    let started = Instant::now();
    for step in &mut steps {
        run_step(step)?;
    }
    let t = Instant::now();
    let problems = tidy::check(root)?;
    if problems.is_empty() {
        println!("ok   tidy ({:.1}s)", t.elapsed().as_secs_f64());
    } else {
        println!("FAIL tidy");
        report_tidy(&problems)?;
    }
    println!("ci passed in {:.0}s", started.elapsed().as_secs_f64());
    Ok(())
}

fn run_step(step: &mut Step) -> Result<()> {
    let t = Instant::now();
    let out = step
        .command
        .output()
        .with_context(|| format!("cannot run the {} step", step.name))?;
    let secs = t.elapsed().as_secs_f64();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let detail = if step.name == "test" {
        let (passed, failed) = count_tests(&stdout);
        format!(" {passed} passed, {failed} failed")
    } else {
        String::new()
    };
    if out.status.success() {
        println!("ok   {}{detail} ({secs:.1}s)", step.name);
        if step.name == "test" {
            // The closing line CI reads: "N passed, N failed".
            let (passed, failed) = count_tests(&stdout);
            println!("tests: {passed} passed, {failed} failed");
        }
        Ok(())
    } else {
        println!("FAIL {}{detail} ({secs:.1}s)", step.name);
        println!("{stdout}");
        eprintln!("{stderr}");
        bail!("step {} failed", step.name)
    }
}

/// Sums the `test result:` lines of `cargo test` output.
fn count_tests(output: &str) -> (u64, u64) {
    let mut passed = 0;
    let mut failed = 0;
    for line in output.lines() {
        let Some(rest) = line.trim().strip_prefix("test result: ") else {
            continue;
        };
        for part in rest.split(';') {
            let mut words = part
                .split_whitespace()
                .filter(|w| *w != "ok." && *w != "FAILED.");
            let (Some(n), Some(what)) = (words.next(), words.next()) else {
                continue;
            };
            let Ok(n) = n.parse::<u64>() else { continue };
            match what {
                "passed" => passed += n,
                "failed" => failed += n,
                _ => {}
            }
        }
    }
    (passed, failed)
}

fn report_tidy(problems: &[String]) -> Result<()> {
    if problems.is_empty() {
        println!("tidy: no problems");
        return Ok(());
    }
    for p in problems {
        println!("  {p}");
    }
    bail!("tidy found {} problem(s)", problems.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_cargo_test_summaries() {
        let out = "test result: ok. 12 passed; 0 failed; 0 ignored; 0 measured; 0 filtered out; finished in 0.00s\n\
                   test result: FAILED. 3 passed; 2 failed; 0 ignored; 0 measured; 0 filtered out\n";
        assert_eq!(count_tests(out), (15, 2));
    }

    #[test]
    fn the_workspace_is_tidy() {
        let problems = tidy::check(&project_root()).unwrap();
        assert!(
            problems.is_empty(),
            "tidy problems:\n{}",
            problems.join("\n")
        );
    }
}
