//! The peer-credential check made on accept, before a byte is read, and by a client on
//! the daemon it connected to, before a byte is written.
//!
//! The kernel reports the connecting process's effective uid (`SO_PEERCRED` and friends,
//! through `interprocess`). A peer whose uid is not the daemon's, not root (unless root is
//! disallowed) and not listed is closed at once; so is a peer whose credentials cannot be
//! read (fail closed). Credentials are those in effect at `connect()`: decisions use the
//! uid, never the pid.
//!
//! On Windows the credentials carry only a pid; there the check admits every peer and the
//! session-token handshake is the only gate.

use std::io;

use interprocess::local_socket::PeerCreds;

/// Which peers may start a handshake.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerPolicy {
    /// The daemon's own effective uid; peers with this uid are allowed.
    pub daemon_uid: u32,
    /// Whether root (uid 0) is allowed.
    pub allow_root: bool,
    /// Further allowed uids (from configuration).
    pub allowed_uids: Vec<u32>,
}

impl Default for PeerPolicy {
    fn default() -> Self {
        Self::current_user()
    }
}

impl PeerPolicy {
    /// Allows this process's effective uid and root.
    pub fn current_user() -> Self {
        Self {
            daemon_uid: crate::home::current_uid(),
            allow_root: true,
            allowed_uids: Vec::new(),
        }
    }

    /// Whether a peer with effective uid `uid` is allowed.
    pub fn allows_uid(&self, uid: u32) -> bool {
        uid == self.daemon_uid || (self.allow_root && uid == 0) || self.allowed_uids.contains(&uid)
    }

    /// Applies the policy to the credentials the kernel reported for a connection.
    pub(crate) fn check(&self, creds: io::Result<PeerCreds>) -> Result<PeerInfo, PeerRefusal> {
        let creds = creds.map_err(PeerRefusal::NoCredentials)?;
        let pid = creds.pid().and_then(|pid| u32::try_from(pid).ok());
        #[cfg(unix)]
        {
            let uid = creds.euid().ok_or(PeerRefusal::UnknownUid)?;
            if !self.allows_uid(uid) {
                return Err(PeerRefusal::UidNotAllowed(uid));
            }
            Ok(PeerInfo {
                uid: Some(uid),
                pid,
            })
        }
        #[cfg(not(unix))]
        {
            Ok(PeerInfo { uid: None, pid })
        }
    }
}

/// What the kernel said about an accepted peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PeerInfo {
    /// The peer's effective uid at connect time (`None` where the platform has none).
    pub uid: Option<u32>,
    /// The peer's pid at connect time, when known. Informational only: pids are reused.
    pub pid: Option<u32>,
}

/// Why a peer was closed before its handshake.
#[derive(Debug, thiserror::Error)]
pub(crate) enum PeerRefusal {
    #[error("cannot read the peer's credentials: {0}")]
    NoCredentials(#[source] io::Error),
    #[cfg_attr(not(unix), allow(dead_code))]
    #[error("the kernel reported no uid for the peer")]
    UnknownUid,
    #[cfg_attr(not(unix), allow(dead_code))]
    #[error("peer uid {0} is not allowed")]
    UidNotAllowed(u32),
}

impl PeerRefusal {
    /// The refused peer's uid, when the kernel reported one.
    pub(crate) fn uid(&self) -> Option<u32> {
        match self {
            Self::UidNotAllowed(uid) => Some(*uid),
            Self::NoCredentials(_) | Self::UnknownUid => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_uid_root_and_listed_uids_are_allowed() {
        let policy = PeerPolicy {
            daemon_uid: 1000,
            allow_root: true,
            allowed_uids: vec![1001],
        };
        assert!(policy.allows_uid(1000));
        assert!(policy.allows_uid(0));
        assert!(policy.allows_uid(1001));
        assert!(!policy.allows_uid(1002));
        let no_root = PeerPolicy {
            allow_root: false,
            ..policy
        };
        assert!(!no_root.allows_uid(0));
    }

    #[test]
    fn missing_credentials_fail_closed() {
        let refused = PeerPolicy::current_user().check(Err(io::Error::other("no creds")));
        assert!(matches!(refused, Err(PeerRefusal::NoCredentials(_))));
    }
}
