//! The session token and its file.
//!
//! The daemon draws 32 bytes from the OS CSPRNG at every start and writes them as 64
//! lowercase hex characters to `<home>/session-token`. The file is never written in place:
//! a temp file with a random name is created in the same directory with `O_CREAT|O_EXCL`
//! (`create_new`), `O_NOFOLLOW` and mode 0600 (so it is private from its first byte, never
//! chmod'ed afterwards), checked with `fstat` (owner, mode, link count, regular file),
//! written, fsynced and renamed over the final name. A symbolic link planted at the final
//! name is replaced by the rename, never followed; one planted at the temp name makes the
//! exclusive create fail, and another random name is tried.
//!
//! The token itself never crosses the socket: the handshake proves possession with HMACs.

use std::fmt;
use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use rand::TryRng;
use subtle::ConstantTimeEq;
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

/// Lowercase hex digits, indexed by nibble.
pub(crate) const HEX_DIGITS: &[u8; 16] = b"0123456789abcdef";

/// How many random temp names are tried before giving up.
const TEMP_ATTEMPTS: usize = 8;

/// Why a string is not a session token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TokenParseError {
    /// The text does not have exactly 64 characters.
    #[error("expected {} hex characters, found {len}", SessionToken::HEX_LEN)]
    WrongLength {
        /// How many characters (bytes) were found.
        len: usize,
    },
    /// A character is not a hex digit.
    #[error("character {index} is not a hex digit")]
    NotHex {
        /// Zero-based position of the first bad character.
        index: usize,
    },
}

/// Errors about generating, writing or reading the session-token file.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TokenError {
    /// The OS random source failed.
    #[error("cannot get random bytes from the OS: {0}")]
    Random(#[source] rand::rngs::SysError),
    /// The token path has no file name (it ends in `..` or is a root).
    #[error("session token path {} has no file name", path.display())]
    BadPath {
        /// The token path.
        path: PathBuf,
    },
    /// The temp file could not be created.
    #[error("cannot create {}: {source}", path.display())]
    Create {
        /// The temp file.
        path: PathBuf,
        /// The OS error.
        source: io::Error,
    },
    /// Every random temp name was already taken (something is planting files in the home).
    #[error("refusing to write the session token in {}: {TEMP_ATTEMPTS} random temp names were already taken", dir.display())]
    TempNamesTaken {
        /// The directory.
        dir: PathBuf,
    },
    /// The freshly created file is not what was asked for.
    #[error("refusing token file {}: {reason}", path.display())]
    Unsafe {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// Writing, syncing or renaming failed.
    #[error("cannot write session token {}: {source}", path.display())]
    Write {
        /// The token path.
        path: PathBuf,
        /// The OS error.
        source: io::Error,
    },
    /// Removing the token file failed.
    #[error("cannot remove session token {}: {source}", path.display())]
    Remove {
        /// The token path.
        path: PathBuf,
        /// The OS error.
        source: io::Error,
    },
    /// There is no token file.
    #[error(
        "no session token at {}: is latchd running with this home? set LATCH_TOKEN_FILE to use another file",
        path.display()
    )]
    Missing {
        /// The token path.
        path: PathBuf,
    },
    /// The token file could not be read.
    #[error("cannot read session token {}: {source}", path.display())]
    Read {
        /// The token path.
        path: PathBuf,
        /// The OS error.
        source: io::Error,
    },
    /// The token file could have been planted, or read, by another user: it is owned by
    /// someone other than the caller and root, gives group or others access, or is not
    /// a regular file. Nothing was read from it.
    #[error(
        "refusing session token {}: {} (set LATCH_TOKEN_FILE to use another file)",
        path.display(),
        untrusted_reason(*owner, *mode, *caller, *not_a_file)
    )]
    Untrusted {
        /// The token path.
        path: PathBuf,
        /// The file's owner.
        owner: u32,
        /// The file's permission bits.
        mode: u32,
        /// The caller's effective uid.
        caller: u32,
        /// The path is not a regular file.
        not_a_file: bool,
    },
    /// The token file does not hold 64 hex characters.
    #[error(
        "session token at {} is not {} hex characters ({source}): set LATCH_TOKEN_FILE to use another file",
        path.display(),
        SessionToken::HEX_LEN
    )]
    Malformed {
        /// The token path.
        path: PathBuf,
        /// What is wrong with the text.
        source: TokenParseError,
    },
}

fn untrusted_reason(owner: u32, mode: u32, caller: u32, not_a_file: bool) -> String {
    let found = if not_a_file {
        "it is not a regular file".to_owned()
    } else {
        format!("it is owned by uid {owner} with mode {mode:04o}")
    };
    format!(
        "{found}, but a token file must be a regular file owned by you (uid {caller}) or root \
         that group and others cannot read or write (mode 0600)"
    )
}

/// The daemon's session token: 32 secret bytes.
///
/// `Debug` redacts it, equality is constant-time, and the bytes are zeroized on drop.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct SessionToken([u8; 32]);

impl SessionToken {
    /// Length of the token in bytes.
    pub const LEN: usize = 32;
    /// Length of the token's hex form.
    pub const HEX_LEN: usize = 64;

    /// A fresh token from the OS CSPRNG.
    pub fn generate() -> Result<Self, TokenError> {
        let mut bytes = [0u8; Self::LEN];
        fill_random(&mut bytes).map_err(TokenError::Random)?;
        let token = Self(bytes);
        bytes.zeroize();
        Ok(token)
    }

    /// A token made of the given bytes.
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// Parses 64 hex characters (either case).
    pub fn from_hex(text: &str) -> Result<Self, TokenParseError> {
        Self::from_hex_bytes(text.as_bytes())
    }

    fn from_hex_bytes(text: &[u8]) -> Result<Self, TokenParseError> {
        if text.len() != Self::HEX_LEN {
            return Err(TokenParseError::WrongLength { len: text.len() });
        }
        let mut bytes = [0u8; Self::LEN];
        for (i, pair) in text.chunks_exact(2).enumerate() {
            let (Some(high), Some(low)) = (hex_value(pair[0]), hex_value(pair[1])) else {
                bytes.zeroize();
                let index = if hex_value(pair[0]).is_none() {
                    2 * i
                } else {
                    2 * i + 1
                };
                return Err(TokenParseError::NotHex { index });
            };
            bytes[i] = (high << 4) | low;
        }
        let token = Self(bytes);
        bytes.zeroize();
        Ok(token)
    }

    /// The 64-character lowercase hex form (zeroized when dropped).
    pub fn to_hex(&self) -> Zeroizing<String> {
        Zeroizing::new(hex_lower(&self.0))
    }

    /// The raw bytes, for the handshake's HMACs.
    pub(crate) fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl fmt::Debug for SessionToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SessionToken(<redacted>)")
    }
}

impl PartialEq for SessionToken {
    fn eq(&self, other: &Self) -> bool {
        self.0.ct_eq(&other.0).into()
    }
}

impl Eq for SessionToken {}

/// Lowercase hex of `bytes`.
pub(crate) fn hex_lower(bytes: &[u8]) -> String {
    let mut text = String::with_capacity(bytes.len() * 2);
    for byte in bytes {
        text.push(char::from(HEX_DIGITS[usize::from(byte >> 4)]));
        text.push(char::from(HEX_DIGITS[usize::from(byte & 0x0f)]));
    }
    text
}

fn hex_value(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

/// Fills `buf` from the OS CSPRNG.
pub(crate) fn fill_random(buf: &mut [u8]) -> Result<(), rand::rngs::SysError> {
    rand::rngs::SysRng.try_fill_bytes(buf)
}

/// The session-token file written by a running daemon. Dropping it (or calling
/// [`TokenFile::remove`]) removes the file, if the path still holds the file written
/// (a newer token file at the same path is left alone).
#[derive(Debug)]
pub struct TokenFile {
    path: PathBuf,
    token: SessionToken,
    identity: Option<FileIdentity>,
}

/// Device and inode of a file, to recognise it later.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct FileIdentity {
    dev: u64,
    ino: u64,
}

impl FileIdentity {
    #[cfg(unix)]
    fn of(metadata: &std::fs::Metadata) -> Self {
        use std::os::unix::fs::MetadataExt;
        Self {
            dev: metadata.dev(),
            ino: metadata.ino(),
        }
    }

    #[cfg(not(unix))]
    fn of(_metadata: &std::fs::Metadata) -> Self {
        Self { dev: 0, ino: 0 }
    }
}

impl TokenFile {
    /// Generates a fresh token and writes it to `path` (see [`write_token_file`]).
    pub fn create(path: impl Into<PathBuf>) -> Result<Self, TokenError> {
        let path = path.into();
        let token = SessionToken::generate()?;
        let identity = write_token_file_with(&path, &token, &mut |_, _| {})?;
        Ok(Self {
            path,
            token,
            identity: Some(identity),
        })
    }

    /// The token in the file.
    pub fn token(&self) -> &SessionToken {
        &self.token
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Removes the file now, reporting failure (a missing file is not a failure).
    pub fn remove(mut self) -> Result<(), TokenError> {
        self.remove_now().map_err(|source| TokenError::Remove {
            path: self.path.clone(),
            source,
        })
    }

    fn remove_now(&mut self) -> io::Result<()> {
        let Some(identity) = self.identity.take() else {
            return Ok(());
        };
        match std::fs::symlink_metadata(&self.path) {
            Ok(metadata) if FileIdentity::of(&metadata) == identity => {
                match std::fs::remove_file(&self.path) {
                    Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
                    other => other,
                }
            }
            Ok(_) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e),
        }
    }
}

impl Drop for TokenFile {
    fn drop(&mut self) {
        let _ = self.remove_now();
    }
}

/// Writes `token` to `path` as 64 lowercase hex characters, atomically and privately:
/// temp file (random name, `create_new`, `O_NOFOLLOW`, mode 0600), `fstat` check,
/// write, fsync, rename over `path`, fsync of the directory.
pub fn write_token_file(path: &Path, token: &SessionToken) -> Result<(), TokenError> {
    write_token_file_with(path, token, &mut |_, _| {}).map(|_| ())
}

/// [`write_token_file`] with a hook called on the freshly created, still empty temp file
/// (tests use it to check the mode the file is created with).
pub(crate) fn write_token_file_with(
    path: &Path,
    token: &SessionToken,
    on_create: &mut dyn FnMut(&File, &Path),
) -> Result<FileIdentity, TokenError> {
    let file_name = path.file_name().ok_or_else(|| TokenError::BadPath {
        path: path.to_path_buf(),
    })?;
    let dir = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent.to_path_buf(),
        _ => PathBuf::from("."),
    };
    for _ in 0..TEMP_ATTEMPTS {
        let mut suffix = [0u8; 8];
        fill_random(&mut suffix).map_err(TokenError::Random)?;
        let mut temp_name = file_name.to_os_string();
        temp_name.push(".tmp-");
        temp_name.push(hex_lower(&suffix));
        let temp = dir.join(temp_name);
        match open_private_new(&temp) {
            Ok(file) => {
                on_create(&file, &temp);
                let result = fill_and_rename(file, &temp, path, &dir, token);
                if result.is_err() {
                    let _ = std::fs::remove_file(&temp);
                }
                return result;
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(source) => return Err(TokenError::Create { path: temp, source }),
        }
    }
    Err(TokenError::TempNamesTaken { dir })
}

/// Creates a new file that is private from its first byte and never follows a link.
pub(crate) fn open_private_new(path: &Path) -> io::Result<File> {
    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        let flags = rustix::fs::OFlags::NOFOLLOW | rustix::fs::OFlags::CLOEXEC;
        options.mode(0o600).custom_flags(flags.bits().cast_signed());
    }
    options.open(path)
}

fn fill_and_rename(
    mut file: File,
    temp: &Path,
    path: &Path,
    dir: &Path,
    token: &SessionToken,
) -> Result<FileIdentity, TokenError> {
    let identity = verify_private(&file).map_err(|reason| TokenError::Unsafe {
        path: temp.to_path_buf(),
        reason,
    })?;
    let write_err = |source| TokenError::Write {
        path: path.to_path_buf(),
        source,
    };
    let hex = token.to_hex();
    file.write_all(hex.as_bytes()).map_err(write_err)?;
    file.sync_all().map_err(write_err)?;
    drop(file);
    std::fs::rename(temp, path).map_err(write_err)?;
    sync_dir(dir).map_err(write_err)?;
    Ok(identity)
}

#[cfg(unix)]
fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

#[cfg(not(unix))]
fn sync_dir(_dir: &Path) -> io::Result<()> {
    Ok(())
}

/// Checks, on the open file (`fstat`), that it is a regular file with one link, owned by
/// this process's effective uid, mode 0600.
#[cfg(unix)]
fn verify_private(file: &File) -> Result<FileIdentity, &'static str> {
    use std::os::unix::fs::MetadataExt;
    let metadata = file.metadata().map_err(|_| "cannot stat the open file")?;
    if !metadata.file_type().is_file() {
        return Err("not a regular file");
    }
    if metadata.uid() != crate::home::current_uid() {
        return Err("owned by another user");
    }
    if metadata.mode() & 0o777 != 0o600 {
        return Err("its mode is not 0600");
    }
    if metadata.nlink() != 1 {
        return Err("it has other hard links");
    }
    Ok(FileIdentity::of(&metadata))
}

#[cfg(not(unix))]
fn verify_private(file: &File) -> Result<FileIdentity, &'static str> {
    let metadata = file.metadata().map_err(|_| "cannot stat the open file")?;
    if metadata.file_type().is_file() {
        Ok(FileIdentity::of(&metadata))
    } else {
        Err("not a regular file")
    }
}

/// Reads a session token from `path`: 64 hex characters, optionally followed by a line
/// ending. The error says which file was looked for and which variable picks another.
///
/// The file must be one no other user could have planted or read: a regular file owned
/// by the caller's effective uid or by root, with no access for group or others
/// (checked with `fstat` on the open file, before a byte is read). Anything else is
/// [`TokenError::Untrusted`]: another local user could otherwise hand a client a token
/// of their own (and an impostor daemon to go with it), or read it.
pub fn read_token_file(path: &Path) -> Result<SessionToken, TokenError> {
    read_trusted_token_file(path, crate::home::current_uid()).map(|(token, _)| token)
}

/// [`read_token_file`] for a caller of effective uid `caller`; also returns the file's
/// owner (`None` where the platform has no uids).
pub(crate) fn read_trusted_token_file(
    path: &Path,
    caller: u32,
) -> Result<(SessionToken, Option<u32>), TokenError> {
    let file = File::open(path).map_err(|source| {
        if source.kind() == io::ErrorKind::NotFound {
            TokenError::Missing {
                path: path.to_path_buf(),
            }
        } else {
            TokenError::Read {
                path: path.to_path_buf(),
                source,
            }
        }
    })?;
    let metadata = file.metadata().map_err(|source| TokenError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let owner = check_token_file_metadata(&metadata, caller).map_err(|(owner, mode)| {
        TokenError::Untrusted {
            path: path.to_path_buf(),
            owner,
            mode,
            caller,
            not_a_file: !metadata.is_file(),
        }
    })?;
    // Read a little more than a token so an oversized file is reported, not loaded.
    let limit = u64::try_from(SessionToken::HEX_LEN + 8).unwrap_or(u64::MAX);
    let mut text = Zeroizing::new(Vec::with_capacity(SessionToken::HEX_LEN + 8));
    file.take(limit)
        .read_to_end(&mut text)
        .map_err(|source| TokenError::Read {
            path: path.to_path_buf(),
            source,
        })?;
    let trimmed = text
        .strip_suffix(b"\r\n")
        .or_else(|| text.strip_suffix(b"\n"))
        .unwrap_or(&text);
    let token = SessionToken::from_hex_bytes(trimmed).map_err(|source| TokenError::Malformed {
        path: path.to_path_buf(),
        source,
    })?;
    Ok((token, owner))
}

/// Whether a token file of this owner and these permission bits may be trusted by a
/// caller of effective uid `caller`: owned by the caller or root, no access for group
/// or others.
pub fn token_file_is_trusted(owner: u32, mode: u32, caller: u32) -> bool {
    (owner == caller || owner == 0) && mode & 0o077 == 0
}

/// Applies [`token_file_is_trusted`] to a file's metadata: its owner, or the owner and
/// mode found when it is refused.
#[cfg(unix)]
fn check_token_file_metadata(
    metadata: &std::fs::Metadata,
    caller: u32,
) -> Result<Option<u32>, (u32, u32)> {
    use std::os::unix::fs::MetadataExt;
    let (owner, mode) = (metadata.uid(), metadata.mode() & 0o7777);
    if metadata.is_file() && token_file_is_trusted(owner, mode, caller) {
        Ok(Some(owner))
    } else {
        Err((owner, mode))
    }
}

/// Without uids and modes, only the file type is checked.
#[cfg(not(unix))]
fn check_token_file_metadata(
    metadata: &std::fs::Metadata,
    _caller: u32,
) -> Result<Option<u32>, (u32, u32)> {
    if metadata.is_file() {
        Ok(None)
    } else {
        Err((0, 0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trip_is_lowercase_and_64_chars() {
        let token = SessionToken::from_bytes([0xab; 32]);
        let hex = token.to_hex();
        assert_eq!(hex.len(), 64);
        assert!(
            hex.chars()
                .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
        );
        assert_eq!(SessionToken::from_hex(&hex).unwrap(), token);
        assert_eq!(SessionToken::from_hex(&hex.to_uppercase()).unwrap(), token);
    }

    #[test]
    fn parse_errors_are_typed() {
        assert_eq!(
            SessionToken::from_hex("abc").unwrap_err(),
            TokenParseError::WrongLength { len: 3 }
        );
        let mut bad = "0".repeat(64);
        bad.replace_range(9..10, "g");
        assert_eq!(
            SessionToken::from_hex(&bad).unwrap_err(),
            TokenParseError::NotHex { index: 9 }
        );
        bad.replace_range(8..10, "x0");
        assert_eq!(
            SessionToken::from_hex(&bad).unwrap_err(),
            TokenParseError::NotHex { index: 8 }
        );
        assert_eq!(
            SessionToken::from_hex(&"é".repeat(32)).unwrap_err(),
            TokenParseError::NotHex { index: 0 }
        );
    }

    #[test]
    fn debug_redacts() {
        let token = SessionToken::from_bytes([0x5a; 32]);
        let shown = format!("{token:?}");
        assert!(!shown.contains("5a"), "{shown}");
        assert!(shown.contains("redacted"));
    }

    #[test]
    fn generated_tokens_differ() {
        assert_ne!(
            SessionToken::generate().unwrap(),
            SessionToken::generate().unwrap()
        );
    }

    #[cfg(unix)]
    #[test]
    fn temp_file_is_0600_and_empty_when_created() {
        use std::os::unix::fs::MetadataExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("session-token");
        let token = SessionToken::generate().unwrap();
        let mut seen = Vec::new();
        write_token_file_with(&path, &token, &mut |file, temp| {
            let by_fd = file.metadata().unwrap();
            let by_path = std::fs::symlink_metadata(temp).unwrap();
            seen.push((by_fd.mode() & 0o777, by_fd.len(), by_path.mode() & 0o777));
        })
        .unwrap();
        assert_eq!(seen, vec![(0o600, 0, 0o600)]);
        let metadata = std::fs::metadata(&path).unwrap();
        assert_eq!(metadata.mode() & 0o777, 0o600);
        assert_eq!(metadata.nlink(), 1);
        assert_eq!(read_token_file(&path).unwrap(), token);
        // No temp file is left behind.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[cfg(unix)]
    #[test]
    fn exclusive_create_does_not_follow_a_planted_symlink() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("victim");
        std::fs::write(&target, b"original").unwrap();
        let planted = dir.path().join("planted");
        std::os::unix::fs::symlink(&target, &planted).unwrap();
        let err = open_private_new(&planted).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::AlreadyExists);
        assert_eq!(std::fs::read(&target).unwrap(), b"original");
    }

    /// Writes `contents` to `path`, mode 0600.
    fn write_private(path: &Path, contents: impl AsRef<[u8]>) {
        std::fs::write(path, contents).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).unwrap();
        }
    }

    #[test]
    fn only_the_callers_or_roots_private_files_are_trusted() {
        assert!(token_file_is_trusted(1000, 0o600, 1000));
        assert!(token_file_is_trusted(0, 0o600, 1000));
        assert!(token_file_is_trusted(0, 0o400, 0));
        assert!(!token_file_is_trusted(1001, 0o600, 1000));
        assert!(!token_file_is_trusted(1001, 0o600, 0));
        for open in [0o640, 0o604, 0o660, 0o606, 0o644, 0o610, 0o601] {
            assert!(!token_file_is_trusted(1000, open, 1000), "{open:o}");
            assert!(!token_file_is_trusted(0, open, 0), "{open:o}");
        }
    }

    #[cfg(unix)]
    #[test]
    fn a_token_file_open_to_group_or_others_is_refused_before_it_is_read() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("session-token");
        let token = SessionToken::from_bytes([7; 32]);
        write_private(&path, token.to_hex().as_bytes());
        assert_eq!(read_token_file(&path).unwrap(), token);
        for mode in [0o640, 0o604, 0o660, 0o606] {
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
            let err = read_token_file(&path).unwrap_err();
            assert!(
                matches!(err, TokenError::Untrusted { mode: m, .. } if m == mode),
                "{err}"
            );
            let text = err.to_string();
            assert!(text.contains(&path.display().to_string()), "{text}");
            assert!(text.contains(&format!("mode {mode:04o}")), "{text}");
            assert!(text.contains("mode 0600"), "{text}");
            assert!(text.contains("LATCH_TOKEN_FILE"), "{text}");
        }
    }

    #[cfg(unix)]
    #[test]
    fn a_token_file_of_another_owner_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("session-token");
        write_private(&path, SessionToken::from_bytes([7; 32]).to_hex().as_bytes());
        let me = crate::home::current_uid();
        let (caller, owner) = if me == 0 {
            // Root (as in CI): the file really belongs to another user.
            std::os::unix::fs::chown(&path, Some(65_534), Some(65_534)).unwrap();
            (0, 65_534)
        } else {
            // Not root: no file can be given away, so ours is read as a caller of another
            // uid would read it: the same fstat, the same refusal.
            (me + 1, me)
        };
        let err = read_trusted_token_file(&path, caller).unwrap_err();
        let TokenError::Untrusted {
            owner: found,
            caller: c,
            ..
        } = &err
        else {
            panic!("{err}")
        };
        assert_eq!((*found, *c), (owner, caller));
        let text = err.to_string();
        assert!(text.contains(&format!("owned by uid {owner}")), "{text}");
        assert!(
            text.contains(&format!("owned by you (uid {caller}) or root")),
            "{text}"
        );
    }

    #[test]
    fn read_accepts_a_trailing_newline_and_refuses_junk() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t");
        let token = SessionToken::from_bytes([7; 32]);
        write_private(&path, format!("{}\n", token.to_hex().as_str()));
        assert_eq!(read_token_file(&path).unwrap(), token);

        write_private(&path, "not a token");
        let err = read_token_file(&path).unwrap_err();
        assert!(matches!(err, TokenError::Malformed { .. }), "{err}");
        assert!(err.to_string().contains("LATCH_TOKEN_FILE"), "{err}");

        write_private(&path, "a".repeat(10_000));
        let err = read_token_file(&path).unwrap_err();
        assert!(
            matches!(
                err,
                TokenError::Malformed {
                    source: TokenParseError::WrongLength { len: 72 },
                    ..
                }
            ),
            "{err}"
        );
    }

    #[test]
    fn missing_file_names_the_path_and_the_variable() {
        let err = read_token_file(Path::new("/nonexistent/x/session-token")).unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("no session token at /nonexistent/x/session-token"),
            "{text}"
        );
        assert!(text.contains("LATCH_TOKEN_FILE"), "{text}");
    }
}
