//! Tidy checks: project policy that no compiler lint covers.
//!
//! - every `crates/*/src/lib.rs` opens with a `//!` doc naming the crate's job;
//! - no `todo!`, `dbg!` or `#[ignore]` anywhere in the workspace's Rust sources;
//! - no printing to stdout/stderr from library code (`crates/*/src/**` except binaries).

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

// Built with concat! so this file does not trip its own checks.
const FORBIDDEN_EVERYWHERE: [&str; 3] = [
    concat!("todo", "!("),
    concat!("dbg", "!("),
    concat!("#[", "ignore"),
];
const FORBIDDEN_IN_LIBRARIES: [&str; 4] = [
    concat!("println", "!("),
    concat!("print", "!("),
    concat!("eprintln", "!("),
    concat!("eprint", "!("),
];

/// Returns one line per problem found under `root`.
pub(crate) fn check(root: &Path) -> Result<Vec<String>> {
    let mut problems = Vec::new();
    let crates = root.join("crates");
    let mut crate_dirs: Vec<PathBuf> = fs::read_dir(&crates)
        .with_context(|| format!("cannot list {}", crates.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_dir())
        .collect();
    crate_dirs.sort();

    for dir in &crate_dirs {
        let lib = dir.join("src/lib.rs");
        if lib.exists() {
            let text = fs::read_to_string(&lib)
                .with_context(|| format!("cannot read {}", lib.display()))?;
            if !text.starts_with("//!") {
                problems.push(format!(
                    "{}: does not open with a //! doc naming the crate's one job",
                    rel(root, &lib)
                ));
            }
        }
    }

    let mut files = Vec::new();
    for top in ["crates", "xtask", "tests"] {
        collect_rs(&root.join(top), &mut files)?;
    }
    for file in &files {
        let text =
            fs::read_to_string(file).with_context(|| format!("cannot read {}", file.display()))?;
        let library = is_library_source(root, file);
        for (n, line) in text.lines().enumerate() {
            let code = line.split("//").next().unwrap_or("");
            for pat in FORBIDDEN_EVERYWHERE {
                if code.contains(pat) {
                    problems.push(format!(
                        "{}:{}: {pat} is not allowed",
                        rel(root, file),
                        n + 1
                    ));
                }
            }
            if library {
                for pat in FORBIDDEN_IN_LIBRARIES {
                    if code.contains(pat) {
                        problems.push(format!(
                            "{}:{}: {pat} in library code (use tracing, or return the text)",
                            rel(root, file),
                            n + 1
                        ));
                        break;
                    }
                }
            }
        }
    }
    Ok(problems)
}

/// Library code: `crates/<name>/src/**` except `main.rs` and `src/bin/**`.
fn is_library_source(root: &Path, file: &Path) -> bool {
    let Ok(rel) = file.strip_prefix(root.join("crates")) else {
        return false;
    };
    let parts: Vec<_> = rel
        .components()
        .map(|c| c.as_os_str().to_string_lossy())
        .collect();
    parts.len() >= 3
        && parts[1] == "src"
        && parts.last().is_some_and(|f| f != "main.rs")
        && !parts.iter().any(|p| p == "bin")
}

fn collect_rs(dir: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    if !dir.exists() {
        return Ok(());
    }
    for entry in fs::read_dir(dir).with_context(|| format!("cannot list {}", dir.display()))? {
        let path = entry?.path();
        if path.is_dir() {
            if path.file_name().is_some_and(|n| n == "target") {
                continue;
            }
            collect_rs(&path, out)?;
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
    Ok(())
}

fn rel(root: &Path, p: &Path) -> String {
    p.strip_prefix(root).unwrap_or(p).display().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn library_sources_are_recognised() {
        let root = Path::new("/r");
        assert!(is_library_source(root, Path::new("/r/crates/a/src/lib.rs")));
        assert!(is_library_source(root, Path::new("/r/crates/a/src/x/y.rs")));
        assert!(!is_library_source(
            root,
            Path::new("/r/crates/a/src/main.rs")
        ));
        assert!(!is_library_source(
            root,
            Path::new("/r/crates/a/src/bin/t.rs")
        ));
        assert!(!is_library_source(
            root,
            Path::new("/r/crates/a/tests/t.rs")
        ));
        assert!(!is_library_source(root, Path::new("/r/xtask/src/main.rs")));
    }

    #[test]
    fn finds_forbidden_macros_and_missing_docs() {
        let dir = tempdir();
        let lib = dir.join("crates/demo/src");
        fs::create_dir_all(&lib).unwrap();
        fs::write(
            lib.join("lib.rs"),
            format!("pub fn f() {{ {}; }}\n", concat!("println", "!(\"x\")")),
        )
        .unwrap();
        let problems = check(&dir).unwrap();
        assert!(
            problems
                .iter()
                .any(|p| p.contains("does not open with a //! doc"))
        );
        assert!(problems.iter().any(|p| p.contains("library code")));
        fs::remove_dir_all(&dir).unwrap();
    }

    fn tempdir() -> PathBuf {
        let d = std::env::temp_dir().join(format!("xtask-tidy-{}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        fs::create_dir_all(&d).unwrap();
        d
    }
}
