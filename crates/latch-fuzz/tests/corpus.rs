//! Replays every committed seed (`corpus/<target>/`) and every past crash
//! (`regressions/<target>/`) through its target, on stable, so CI runs them all.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::fs;
use std::path::{Path, PathBuf};

fn inputs(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file() && p.file_name().is_some_and(|n| n != ".gitkeep"))
        .collect();
    files.sort();
    files
}

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn replay(kind: &str, target: &str) -> usize {
    let run = latch_fuzz::TARGETS
        .iter()
        .find(|(name, _)| *name == target)
        .map(|(_, run)| *run)
        .unwrap();
    let files = inputs(&root().join(kind).join(target));
    for file in &files {
        let data = fs::read(file).unwrap();
        let outcome = std::panic::catch_unwind(|| run(&data));
        assert!(outcome.is_ok(), "{} fails its target", file.display());
    }
    files.len()
}

#[test]
fn every_seed_runs_clean() {
    for (target, _) in latch_fuzz::TARGETS {
        let seeds = replay("corpus", target);
        assert!(seeds >= 3, "corpus/{target} holds only {seeds} seeds");
    }
}

#[test]
fn every_regression_runs_clean() {
    for (target, _) in latch_fuzz::TARGETS {
        replay("regressions", target);
    }
}

#[test]
fn every_input_directory_names_a_target() {
    for kind in ["corpus", "regressions"] {
        for entry in fs::read_dir(root().join(kind)).unwrap() {
            let name = entry.unwrap().file_name().into_string().unwrap();
            assert!(
                latch_fuzz::TARGETS.iter().any(|(t, _)| *t == name),
                "{kind}/{name} is not a fuzz target"
            );
        }
    }
}

#[test]
fn every_target_has_a_fuzz_binary() {
    for (target, _) in latch_fuzz::TARGETS {
        let path = root()
            .join("fuzz/fuzz_targets")
            .join(format!("{target}.rs"));
        let text = fs::read_to_string(&path).unwrap();
        assert!(
            text.contains(&format!("latch_fuzz::{target}(")),
            "{} does not call its target",
            path.display()
        );
    }
}
