//! The latch home directory: where it is, what lives in it, and the checks made on it.
//!
//! The home is `--home`, else `$LATCH_HOME`, else `~/.latch`. The daemon creates it mode
//! 0700 when it is missing and refuses to run in it when it is a symbolic link, is owned by
//! another user, or can be written by group or others: whoever can write the directory can
//! replace the socket or the token file.

use std::ffi::OsString;
use std::io;
use std::path::{Path, PathBuf};

/// Environment variable naming the latch home (the directory holding the socket and token).
pub const ENV_HOME: &str = "LATCH_HOME";
/// Environment variable naming the socket a client connects to (e.g. a forwarded socket).
pub const ENV_SOCKET: &str = "LATCH_SOCKET";
/// Environment variable naming the session-token file a client reads.
pub const ENV_TOKEN_FILE: &str = "LATCH_TOKEN_FILE";

/// Name of the home directory under the user's home when nothing else is set.
pub const DEFAULT_DIR_NAME: &str = ".latch";
/// File name of the socket inside the home.
pub const SOCKET_FILE: &str = "latch.sock";
/// File name of the session token inside the home.
pub const TOKEN_FILE: &str = "session-token";
/// File name of the single-instance lock inside the home.
pub const LOCK_FILE: &str = "latchd.lock";

/// Errors about the latch home directory.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HomeError {
    /// Neither `--home`, `LATCH_HOME` nor the user's home directory is known.
    #[error("cannot find the latch home: pass --home, or set LATCH_HOME or HOME")]
    NoHome,
    /// The directory could not be created.
    #[error("cannot create latch home {}: {source}", path.display())]
    Create {
        /// The home directory.
        path: PathBuf,
        /// The OS error.
        source: io::Error,
    },
    /// The directory could not be inspected.
    #[error("cannot inspect latch home {}: {source}", path.display())]
    Inspect {
        /// The home directory.
        path: PathBuf,
        /// The OS error.
        source: io::Error,
    },
    /// The home path is a symbolic link.
    #[error(
        "refusing latch home {}: it is a symbolic link (point --home or LATCH_HOME at the real directory)",
        path.display()
    )]
    Symlink {
        /// The home directory.
        path: PathBuf,
    },
    /// The home path exists and is not a directory.
    #[error("refusing latch home {}: it is not a directory", path.display())]
    NotADirectory {
        /// The home directory.
        path: PathBuf,
    },
    /// The home directory belongs to another user.
    #[error("refusing latch home {}: it is owned by uid {owner}, but latchd runs as uid {expected}", path.display())]
    WrongOwner {
        /// The home directory.
        path: PathBuf,
        /// The directory's owner.
        owner: u32,
        /// The uid that must own it.
        expected: u32,
    },
    /// Group or others can write the home directory.
    #[error(
        "refusing latch home {}: mode {mode:03o} lets group or others write it (run `chmod 700 {}`)",
        path.display(),
        path.display()
    )]
    TooPermissive {
        /// The home directory.
        path: PathBuf,
        /// The directory's permission bits.
        mode: u32,
    },
}

/// The latch home directory and the paths of the files inside it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Home {
    dir: PathBuf,
}

impl Home {
    /// A home at `dir`, taken as given (nothing is checked or created).
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into() }
    }

    /// Resolves the home from the process environment: `explicit` (`--home`), else
    /// `$LATCH_HOME`, else `$HOME/.latch` (`%USERPROFILE%\.latch` on Windows).
    pub fn resolve(explicit: Option<&Path>) -> Result<Self, HomeError> {
        Self::resolve_with(explicit, |key| std::env::var_os(key))
    }

    /// [`Home::resolve`] with an injected environment lookup.
    pub fn resolve_with(
        explicit: Option<&Path>,
        env: impl Fn(&str) -> Option<OsString>,
    ) -> Result<Self, HomeError> {
        if let Some(dir) = explicit {
            return Ok(Self::new(dir));
        }
        if let Some(dir) = env(ENV_HOME).filter(|v| !v.is_empty()) {
            return Ok(Self::new(dir));
        }
        let user_home_var = if cfg!(windows) { "USERPROFILE" } else { "HOME" };
        env(user_home_var)
            .filter(|v| !v.is_empty())
            .map(|home| Self::new(PathBuf::from(home).join(DEFAULT_DIR_NAME)))
            .ok_or(HomeError::NoHome)
    }

    /// The home directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The socket path: `<home>/latch.sock` on Unix. On Windows, a named pipe whose name is
    /// derived from the home path (`\\.\pipe\latch-<hash>`); the handshake's server proof is
    /// what protects a client against a squatter on that predictable name.
    pub fn socket_path(&self) -> PathBuf {
        #[cfg(windows)]
        {
            use sha2::{Digest, Sha256};
            let digest = Sha256::digest(self.dir.as_os_str().as_encoded_bytes());
            let hash = crate::token::hex_lower(&digest[..12]);
            PathBuf::from(format!(r"\\.\pipe\latch-{hash}"))
        }
        #[cfg(not(windows))]
        {
            self.dir.join(SOCKET_FILE)
        }
    }

    /// The session-token path: `<home>/session-token`.
    pub fn token_path(&self) -> PathBuf {
        self.dir.join(TOKEN_FILE)
    }

    /// The single-instance lock path: `<home>/latchd.lock`.
    pub fn lock_path(&self) -> PathBuf {
        self.dir.join(LOCK_FILE)
    }

    /// Creates the home if needed and checks it: see [`ensure_home`].
    pub fn ensure(&self) -> Result<(), HomeError> {
        ensure_home(&self.dir)
    }
}

/// The effective uid of this process (0 on platforms without uids).
pub fn current_uid() -> u32 {
    #[cfg(unix)]
    {
        rustix::process::geteuid().as_raw()
    }
    #[cfg(not(unix))]
    {
        0
    }
}

/// Creates `dir` (mode 0700) if it is missing, then checks that it is a real directory
/// (not a symbolic link), owned by this process's effective uid, and not writable by group
/// or others. The error names the path and the reason.
pub fn ensure_home(dir: &Path) -> Result<(), HomeError> {
    ensure_home_owned_by(dir, current_uid())
}

/// [`ensure_home`], with the uid that must own the directory given explicitly.
pub fn ensure_home_owned_by(dir: &Path, owner: u32) -> Result<(), HomeError> {
    let inspect = |source| HomeError::Inspect {
        path: dir.to_path_buf(),
        source,
    };
    let metadata = match std::fs::symlink_metadata(dir) {
        Ok(metadata) => metadata,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            create_private_dir(dir).map_err(|source| HomeError::Create {
                path: dir.to_path_buf(),
                source,
            })?;
            std::fs::symlink_metadata(dir).map_err(inspect)?
        }
        Err(e) => return Err(inspect(e)),
    };
    check_home(dir, &metadata, owner)
}

#[cfg(unix)]
fn create_private_dir(dir: &Path) -> io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
}

#[cfg(not(unix))]
fn create_private_dir(dir: &Path) -> io::Result<()> {
    std::fs::create_dir_all(dir)
}

fn check_home(dir: &Path, metadata: &std::fs::Metadata, owner: u32) -> Result<(), HomeError> {
    let path = || dir.to_path_buf();
    let file_type = metadata.file_type();
    if file_type.is_symlink() {
        return Err(HomeError::Symlink { path: path() });
    }
    if !file_type.is_dir() {
        return Err(HomeError::NotADirectory { path: path() });
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        if metadata.uid() != owner {
            return Err(HomeError::WrongOwner {
                path: path(),
                owner: metadata.uid(),
                expected: owner,
            });
        }
        let mode = metadata.mode() & 0o7777;
        if mode & 0o022 != 0 {
            return Err(HomeError::TooPermissive { path: path(), mode });
        }
    }
    #[cfg(not(unix))]
    let _ = owner;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env_of(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<OsString> {
        let pairs: Vec<(String, OsString)> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), OsString::from(v)))
            .collect();
        move |key| pairs.iter().find(|(k, _)| k == key).map(|(_, v)| v.clone())
    }

    #[test]
    fn explicit_home_wins_over_the_environment() {
        let env = env_of(&[("LATCH_HOME", "/env/latch"), ("HOME", "/home/u")]);
        let home = Home::resolve_with(Some(Path::new("/flag")), env).unwrap();
        assert_eq!(home.dir(), Path::new("/flag"));
    }

    #[test]
    fn latch_home_wins_over_home() {
        let env = env_of(&[("LATCH_HOME", "/env/latch"), ("HOME", "/home/u")]);
        let home = Home::resolve_with(None, env).unwrap();
        assert_eq!(home.dir(), Path::new("/env/latch"));
    }

    #[cfg(unix)]
    #[test]
    fn falls_back_to_dot_latch_in_home_and_names_the_files() {
        let env = env_of(&[("LATCH_HOME", ""), ("HOME", "/home/u")]);
        let home = Home::resolve_with(None, env).unwrap();
        assert_eq!(home.dir(), Path::new("/home/u/.latch"));
        assert_eq!(home.socket_path(), Path::new("/home/u/.latch/latch.sock"));
        assert_eq!(home.token_path(), Path::new("/home/u/.latch/session-token"));
        assert_eq!(home.lock_path(), Path::new("/home/u/.latch/latchd.lock"));
    }

    #[test]
    fn no_home_at_all_is_an_error() {
        let err = Home::resolve_with(None, env_of(&[])).unwrap_err();
        assert!(matches!(err, HomeError::NoHome));
        assert!(err.to_string().contains("LATCH_HOME"));
    }
}
