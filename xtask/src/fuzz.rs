//! `cargo xtask fuzz [<target> | all] [--seconds N] [-- <libFuzzer flags>]`: runs the
//! cargo-fuzz targets of `crates/latch-fuzz/fuzz` (one per file in its `fuzz_targets/`).
//!
//! With no target it lists them. A run installs cargo-fuzz if it is missing, then runs
//! `cargo fuzz run` with `RUSTC_BOOTSTRAP=1` (libFuzzer's instrumentation needs `-Z`
//! flags; this lets the stable toolchain take them) for N seconds (60 by default), on a
//! scratch corpus in `crates/latch-fuzz/fuzz/corpus/<target>/` (ignored by git) seeded
//! from the committed `crates/latch-fuzz/corpus/<target>/`. It prints the exec count and
//! the coverage reached; a crash fails the task, naming the input libFuzzer saved under
//! `crates/latch-fuzz/fuzz/artifacts/<target>/`. Minimise it with
//! `cargo fuzz tmin --fuzz-dir crates/latch-fuzz/fuzz <target> <file>`, fix the bug, and
//! commit the input to `crates/latch-fuzz/regressions/<target>/`, where the test suite
//! replays it on every run.

use std::fs;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Instant;

use anyhow::{Context, Result, bail};

const FUZZ_DIR: &str = "crates/latch-fuzz/fuzz";
const SEEDS_DIR: &str = "crates/latch-fuzz/corpus";
const DEFAULT_SECONDS: u64 = 60;
/// An input that takes longer than this is reported as a hang.
const TIMEOUT_SECONDS: u64 = 25;

/// What one run reached, read from libFuzzer's output.
#[derive(Debug, Default, PartialEq)]
struct Outcome {
    execs: Option<u64>,
    seconds: Option<u64>,
    /// The last status line's `cov:`, `ft:` and `corp:` fields.
    cov: Option<String>,
    ft: Option<String>,
    corpus: Option<String>,
    /// Where libFuzzer saved a failing input.
    artifact: Option<String>,
}

impl Outcome {
    fn read_line(&mut self, line: &str) {
        let line = line.trim();
        if let Some(rest) = line.strip_prefix("stat::number_of_executed_units:") {
            self.execs = rest.trim().parse().ok().or(self.execs);
        } else if let Some(rest) = line.strip_prefix("Done ") {
            // "Done 123 runs in 60 second(s)"
            let words: Vec<&str> = rest.split_whitespace().collect();
            if let [runs, "runs", "in", secs, ..] = words.as_slice() {
                self.execs = self.execs.or_else(|| runs.parse().ok());
                self.seconds = secs.parse().ok();
            }
        } else if line.starts_with('#') && line.contains(" cov: ") {
            let mut words = line.split_whitespace();
            while let Some(word) = words.next() {
                let slot = match word {
                    "cov:" => &mut self.cov,
                    "ft:" => &mut self.ft,
                    "corp:" => &mut self.corpus,
                    _ => continue,
                };
                *slot = words.next().map(str::to_owned);
            }
        } else if let Some((_, path)) = line.split_once("Test unit written to ") {
            self.artifact = Some(path.trim().to_owned());
        }
    }

    fn summary(&self, target: &str, wall: f64) -> String {
        let execs = self
            .execs
            .map_or_else(|| "? execs".to_owned(), |n| format!("{n} execs"));
        let secs = self.seconds.map_or(wall, |s| s as f64);
        let rate = self
            .execs
            .filter(|_| secs > 0.0)
            .map_or_else(String::new, |n| format!(" ({:.0}/s)", n as f64 / secs));
        let field = |v: &Option<String>| v.clone().unwrap_or_else(|| "?".to_owned());
        format!(
            "fuzz {target}: {execs} in {secs:.0} s{rate}, cov {}, ft {}, corpus {}",
            field(&self.cov),
            field(&self.ft),
            field(&self.corpus)
        )
    }
}

pub(crate) fn run(root: &Path, args: &[String]) -> Result<()> {
    let mut target = None;
    let mut seconds = DEFAULT_SECONDS;
    let mut extra = Vec::new();
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--seconds" => {
                let value = args.next().context("--seconds needs a number")?;
                seconds = value
                    .parse()
                    .with_context(|| format!("--seconds {value:?} is not a number"))?;
            }
            "--" => extra.extend(args.by_ref().cloned()),
            other if other.starts_with('-') => bail!("unknown option {other:?}"),
            other if target.is_none() => target = Some(other.to_owned()),
            other => bail!("one target at a time (or `all`), not also {other:?}"),
        }
    }
    let targets = list_targets(root)?;
    let Some(target) = target else {
        println!("fuzz targets (cargo xtask fuzz <target>|all [--seconds N]):");
        for t in &targets {
            println!("  {t}");
        }
        return Ok(());
    };
    let chosen = if target == "all" {
        targets
    } else if targets.contains(&target) {
        vec![target]
    } else {
        bail!(
            "unknown fuzz target {target:?}; the targets are: {}",
            targets.join(", ")
        );
    };
    ensure_cargo_fuzz()?;
    let mut crashes = Vec::new();
    for target in &chosen {
        let (outcome, success) = run_one(root, target, seconds, &extra)?;
        if let Some(artifact) = &outcome.artifact {
            crashes.push(format!("{target}: {artifact}"));
        } else if !success {
            crashes.push(format!(
                "{target}: cargo fuzz failed (see its output above)"
            ));
        }
    }
    if crashes.is_empty() {
        Ok(())
    } else {
        bail!("fuzzing failed:\n  {}", crashes.join("\n  "))
    }
}

/// The targets: the file stems in `fuzz_targets/`, sorted.
fn list_targets(root: &Path) -> Result<Vec<String>> {
    let dir = root.join(FUZZ_DIR).join("fuzz_targets");
    let mut targets: Vec<String> = fs::read_dir(&dir)
        .with_context(|| format!("cannot list {}", dir.display()))?
        .filter_map(|e| {
            let path = e.ok()?.path();
            (path.extension()? == "rs").then(|| path.file_stem()?.to_str().map(str::to_owned))?
        })
        .collect();
    targets.sort();
    Ok(targets)
}

fn ensure_cargo_fuzz() -> Result<()> {
    let present = crate::cargo()
        .args(["fuzz", "--version"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if present {
        return Ok(());
    }
    println!("installing cargo-fuzz (cargo install cargo-fuzz --locked)");
    let status = crate::cargo()
        .args(["install", "cargo-fuzz", "--locked"])
        .status()
        .context("cannot run cargo install")?;
    if !status.success() {
        bail!("cargo install cargo-fuzz failed");
    }
    Ok(())
}

/// Runs one target; returns what it reached and whether cargo fuzz succeeded.
fn run_one(root: &Path, target: &str, seconds: u64, extra: &[String]) -> Result<(Outcome, bool)> {
    let scratch: PathBuf = root.join(FUZZ_DIR).join("corpus").join(target);
    fs::create_dir_all(&scratch).with_context(|| format!("cannot create {}", scratch.display()))?;
    let seeds = root.join(SEEDS_DIR).join(target);
    println!("fuzz {target}: {seconds} s, seeds from {SEEDS_DIR}/{target}");
    let mut command = crate::cargo();
    command
        .current_dir(root)
        .env("RUSTC_BOOTSTRAP", "1")
        .args(["fuzz", "run", "--fuzz-dir", FUZZ_DIR, target])
        .arg(&scratch)
        .arg(&seeds)
        .arg("--")
        .arg(format!("-max_total_time={seconds}"))
        .arg(format!("-timeout={TIMEOUT_SECONDS}"))
        .arg("-print_final_stats=1")
        .args(extra)
        .stderr(Stdio::piped());
    let started = Instant::now();
    let mut child = command.spawn().context("cannot run cargo fuzz")?;
    let mut outcome = Outcome::default();
    if let Some(stderr) = child.stderr.take() {
        for line in BufReader::new(stderr).lines() {
            let line = line.context("cannot read cargo fuzz's output")?;
            eprintln!("{line}");
            outcome.read_line(&line);
        }
    }
    let status = child.wait().context("cargo fuzz did not finish")?;
    println!(
        "{}{}",
        outcome.summary(target, started.elapsed().as_secs_f64()),
        match &outcome.artifact {
            Some(path) => format!("; CRASH saved to {path}"),
            None if status.success() => "; no crash".to_owned(),
            None => format!("; cargo fuzz failed ({status})"),
        }
    );
    Ok((outcome, status.success()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_libfuzzer_output() {
        let mut outcome = Outcome::default();
        for line in [
            "#2\tINITED cov: 10 ft: 11 corp: 3/40b exec/s: 0 rss: 30Mb",
            "#524288\tpulse  cov: 1234 ft: 5678 corp: 99/2Kb lim: 4096 exec/s: 8738 rss: 60Mb",
            "Done 5242880 runs in 601 second(s)",
            "stat::number_of_executed_units: 5242881",
        ] {
            outcome.read_line(line);
        }
        assert_eq!(outcome.execs, Some(5_242_881));
        assert_eq!(outcome.seconds, Some(601));
        assert_eq!(outcome.cov.as_deref(), Some("1234"));
        assert_eq!(outcome.ft.as_deref(), Some("5678"));
        assert_eq!(outcome.corpus.as_deref(), Some("99/2Kb"));
        assert_eq!(outcome.artifact, None);

        outcome.read_line(
            "artifact_prefix='/r/artifacts/policy/'; Test unit written to /r/artifacts/policy/crash-abc",
        );
        assert_eq!(
            outcome.artifact.as_deref(),
            Some("/r/artifacts/policy/crash-abc")
        );
        assert!(
            outcome
                .summary("policy", 1.0)
                .contains("5242881 execs in 601 s")
        );
    }

    /// The targets `crates/latch-fuzz/src/lib.rs` lists in `TARGETS`.
    fn latch_fuzz_target_count() -> usize {
        let lib =
            std::fs::read_to_string(crate::project_root().join("crates/latch-fuzz/src/lib.rs"))
                .unwrap();
        let (_, rest) = lib.split_once("pub const TARGETS").unwrap();
        let (list, _) = rest.split_once("];").unwrap();
        list.matches("(\"").count()
    }

    #[test]
    fn lists_the_fuzz_targets() {
        let targets = list_targets(&crate::project_root()).unwrap();
        assert!(targets.contains(&"frame_decoder".to_owned()), "{targets:?}");
        assert_eq!(targets.len(), latch_fuzz_target_count(), "{targets:?}");
    }
}
