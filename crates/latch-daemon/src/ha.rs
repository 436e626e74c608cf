//! Telling whether Home Assistant runs on the same directory.
//!
//! latch can serve an existing Home Assistant configuration directory (`--home` pointing
//! at it): its `.storage/auth*` files load unchanged. But Home Assistant keeps its auth
//! data in memory and rewrites those files whenever it saves, so the two must never run
//! on one directory at the same time; each would overwrite the other's changes.
//!
//! Home Assistant takes no lock on `.storage`, so this cannot be detected reliably. What
//! latchd does:
//!
//! - if the home holds `.HA_VERSION` (Home Assistant writes it at every start), it is a
//!   Home Assistant directory, and latchd logs a warning saying so;
//! - on Linux it then looks through `/proc` for a running `hass` / `python -m
//!   homeassistant` process whose `-c`/`--config` directory (or, without one, its
//!   default `~/.homeassistant`) is the home, and refuses to start if it finds one.
//!
//! Why that is best effort: a Home Assistant in a container sees the directory under
//! another path (`/config`) and may be in another PID namespace; a process of another
//! user, or one under `hidepid`, shows no command line, working directory or
//! environment; a directory shared over the network is used from another machine; and a
//! Home Assistant started *after* latchd is not noticed at all. Other systems have no
//! `/proc` to look through.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};

/// The file Home Assistant writes into its configuration directory at every start.
pub const HA_VERSION_FILE: &str = ".HA_VERSION";

/// A running Home Assistant found on the home.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HomeAssistantProcess {
    /// Its process id.
    pub pid: u32,
    /// Its configuration directory, as it named it.
    pub config_dir: PathBuf,
}

/// True if `dir` is a Home Assistant configuration directory (it holds `.HA_VERSION`).
#[must_use]
pub fn is_home_assistant_dir(dir: &Path) -> bool {
    dir.join(HA_VERSION_FILE).is_file()
}

/// A running Home Assistant whose configuration directory is `home`, found through
/// `/proc`; always `None` where there is no `/proc`.
#[must_use]
pub fn find_running(home: &Path) -> Option<HomeAssistantProcess> {
    if cfg!(target_os = "linux") {
        find_running_in(Path::new("/proc"), home)
    } else {
        None
    }
}

/// [`find_running`] over a `/proc`-shaped directory (for tests).
#[must_use]
pub fn find_running_in(proc_root: &Path, home: &Path) -> Option<HomeAssistantProcess> {
    let home = std::fs::canonicalize(home).ok()?;
    let own = std::process::id();
    for entry in std::fs::read_dir(proc_root).ok()?.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        if pid == own {
            continue;
        }
        let dir = entry.path();
        let Ok(cmdline) = std::fs::read(dir.join("cmdline")) else {
            continue;
        };
        let args: Vec<&OsStr> = cmdline
            .split(|b| *b == 0)
            .filter(|a| !a.is_empty())
            .map(os_str)
            .collect();
        if !is_home_assistant(&args) {
            continue;
        }
        let Some(config_dir) = config_dir(&args, &dir) else {
            continue;
        };
        let same = std::fs::canonicalize(&config_dir).is_ok_and(|c| c == home);
        if same {
            return Some(HomeAssistantProcess { pid, config_dir });
        }
    }
    None
}

#[cfg(unix)]
fn os_str(bytes: &[u8]) -> &OsStr {
    use std::os::unix::ffi::OsStrExt;
    OsStr::from_bytes(bytes)
}

#[cfg(not(unix))]
fn os_str(bytes: &[u8]) -> &OsStr {
    OsStr::new(std::str::from_utf8(bytes).unwrap_or(""))
}

fn file_name(arg: &OsStr) -> String {
    Path::new(arg)
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// `hass …`, `homeassistant …`, `python3 -m homeassistant …`, `python3 /…/bin/hass …`.
fn is_home_assistant(args: &[&OsStr]) -> bool {
    let Some(first) = args.first() else {
        return false;
    };
    let program = file_name(first);
    if program == "hass" || program.starts_with("homeassistant") {
        return true;
    }
    if !program.starts_with("python") {
        return false;
    }
    args.windows(2)
        .any(|w| w[0] == "-m" && w[1] == "homeassistant")
        || args
            .get(1)
            .is_some_and(|script| file_name(script) == "hass")
}

/// The configuration directory the process runs on: its `-c`/`--config` argument
/// (relative to its working directory), else `$HOME/.homeassistant` from its
/// environment. `None` when that cannot be read.
fn config_dir(args: &[&OsStr], proc_dir: &Path) -> Option<PathBuf> {
    let mut named = None;
    let mut it = args.iter().skip(1);
    while let Some(arg) = it.next() {
        let text = arg.to_string_lossy();
        if text == "-c" || text == "--config" {
            named = it.next().map(PathBuf::from);
        } else if let Some(value) = text.strip_prefix("--config=") {
            named = Some(PathBuf::from(value));
        } else if let Some(value) = text.strip_prefix("-c").filter(|v| !v.is_empty()) {
            named = Some(PathBuf::from(value));
        }
    }
    match named {
        Some(path) if path.is_absolute() => Some(path),
        Some(path) => std::fs::read_link(proc_dir.join("cwd"))
            .ok()
            .map(|cwd| cwd.join(path)),
        None => {
            let environ = std::fs::read(proc_dir.join("environ")).ok()?;
            environ
                .split(|b| *b == 0)
                .find_map(|var| var.strip_prefix(b"HOME="))
                .map(|home| Path::new(os_str(home)).join(".homeassistant"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&'static str]) -> Vec<&'static OsStr> {
        list.iter().map(|s| OsStr::new(*s)).collect()
    }

    #[test]
    fn recognises_home_assistant_command_lines() {
        assert!(is_home_assistant(&args(&["/srv/ha/bin/hass", "-c", "/x"])));
        assert!(is_home_assistant(&args(&[
            "python3",
            "-m",
            "homeassistant"
        ])));
        assert!(is_home_assistant(&args(&[
            "/usr/bin/python3.13",
            "/srv/ha/bin/hass"
        ])));
        assert!(!is_home_assistant(&args(&["vim", "homeassistant.yaml"])));
        assert!(!is_home_assistant(&args(&[
            "latchd",
            "--home",
            "/x/homeassistant"
        ])));
        assert!(!is_home_assistant(&args(&["python3", "server.py"])));
        assert!(!is_home_assistant(&[]));
    }

    #[test]
    fn reads_the_config_argument_in_every_form() {
        let proc_dir = Path::new("/nonexistent");
        for form in [
            &["hass", "-c", "/cfg"][..],
            &["hass", "--config", "/cfg"],
            &["hass", "--config=/cfg"],
            &["hass", "-c/cfg"],
            &["hass", "--verbose", "-c", "/cfg", "--log-rotate-days", "3"],
        ] {
            assert_eq!(
                config_dir(&args(form), proc_dir),
                Some(PathBuf::from("/cfg")),
                "{form:?}"
            );
        }
        // Relative, with no readable working directory; no argument, no environment.
        assert_eq!(config_dir(&args(&["hass", "-c", "cfg"]), proc_dir), None);
        assert_eq!(config_dir(&args(&["hass"]), proc_dir), None);
    }
}
