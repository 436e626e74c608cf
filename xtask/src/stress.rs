//! `cargo xtask stress [--rounds N] [--seed S]`: the crash-safety test of issue 7 at
//! length, in release mode.
//!
//! Runs the end-to-end test `lifecycle::acknowledged_writes_survive_sigkill_and_sigterm`
//! (`cargo test --release -p latch-tests --test e2e <name> -- --exact --nocapture`) with
//! `LATCH_STRESS_ROUNDS` (default 50) and, if given, `LATCH_STRESS_SEED`. Each round
//! stops `latchd` at a random moment of a mixed write workload (SIGKILL, the last one
//! SIGTERM), restarts it and checks every acknowledged mutation; the test prints one
//! line per round and a summary, which this task repeats with the wall time. CI runs
//! the same test with a few rounds as part of `cargo test`. Not part of `ci`.

use std::io::{BufRead as _, BufReader};
use std::process::Stdio;
use std::time::Instant;

use anyhow::{Context as _, Result, bail};

/// The test this task runs.
const TEST: &str = "lifecycle::acknowledged_writes_survive_sigkill_and_sigterm";
/// Rounds without `--rounds`.
const DEFAULT_ROUNDS: u64 = 50;
/// The prefix of the test's own summary lines.
const SUMMARY: &str = "crash-safety:";

/// The parsed arguments.
#[derive(Debug, PartialEq, Eq)]
struct Args {
    rounds: u64,
    seed: Option<u64>,
}

fn parse(args: &[String]) -> Result<Args> {
    const USAGE: &str = "usage: cargo xtask stress [--rounds N] [--seed S]";
    let mut parsed = Args {
        rounds: DEFAULT_ROUNDS,
        seed: None,
    };
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        let (flag, inline) = match arg.split_once('=') {
            Some((flag, value)) => (flag, Some(value.to_owned())),
            None => (arg.as_str(), None),
        };
        let mut value = |what: &str| -> Result<u64> {
            let text = match inline.clone() {
                Some(text) => text,
                None => args
                    .next()
                    .cloned()
                    .with_context(|| format!("{flag} needs {what}\n{USAGE}"))?,
            };
            text.parse()
                .with_context(|| format!("{flag} {text:?}: not a number\n{USAGE}"))
        };
        match flag {
            "--rounds" => {
                parsed.rounds = value("a number of rounds")?;
                if parsed.rounds == 0 {
                    bail!("--rounds must be at least 1\n{USAGE}");
                }
            }
            "--seed" => parsed.seed = Some(value("a seed")?),
            _ => bail!("unknown stress argument {arg:?}\n{USAGE}"),
        }
    }
    Ok(parsed)
}

pub(crate) fn run(args: &[String]) -> Result<()> {
    let args = parse(args)?;
    let mut cmd = crate::cargo();
    cmd.args([
        "test",
        "--release",
        "-p",
        "latch-tests",
        "--test",
        "e2e",
        TEST,
        "--",
        "--exact",
        "--nocapture",
    ])
    .env("LATCH_STRESS_ROUNDS", args.rounds.to_string())
    .env_remove("LATCH_STRESS_SEED")
    .stdout(Stdio::piped());
    if let Some(seed) = args.seed {
        cmd.env("LATCH_STRESS_SEED", seed.to_string());
    }
    let seed = args
        .seed
        .map_or_else(|| "random".to_owned(), |s| s.to_string());
    println!(
        "stress: {} rounds, seed {seed} (release build)",
        args.rounds
    );
    let started = Instant::now();
    let mut child = cmd.spawn().context("cannot run cargo test")?;
    // Passed through line by line; the test's own summary lines are kept for the end.
    let mut summary = Vec::new();
    if let Some(stdout) = child.stdout.take() {
        for line in BufReader::new(stdout).lines() {
            let line = line.context("cannot read the test's output")?;
            println!("{line}");
            if line.starts_with(SUMMARY) {
                summary.push(line);
            }
        }
    }
    let status = child.wait().context("cannot wait for cargo test")?;
    let secs = started.elapsed().as_secs_f64();
    println!();
    for line in &summary {
        println!("{line}");
    }
    if !status.success() {
        bail!(
            "stress FAILED after {secs:.0}s ({status}); rerun with the seed printed above: \
             cargo xtask stress --rounds {} --seed <seed>",
            args.rounds
        );
    }
    println!("stress passed in {secs:.0}s (build included)");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(args: &[&str]) -> Vec<String> {
        args.iter().map(|a| (*a).to_owned()).collect()
    }

    #[test]
    fn parses_rounds_and_seed() {
        assert_eq!(
            parse(&[]).unwrap(),
            Args {
                rounds: 50,
                seed: None
            }
        );
        assert_eq!(
            parse(&strings(&["--rounds", "7", "--seed=42"])).unwrap(),
            Args {
                rounds: 7,
                seed: Some(42)
            }
        );
        assert!(parse(&strings(&["--rounds", "0"])).is_err());
        assert!(parse(&strings(&["--rounds"])).is_err());
        assert!(parse(&strings(&["--seed", "x"])).is_err());
        assert!(parse(&strings(&["--quick"])).is_err());
    }
}
