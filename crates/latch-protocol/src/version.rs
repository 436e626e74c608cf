//! The protocol version and the rule that decides which peers may talk to each other.

/// The version of the socket API this crate describes.
///
/// Both sides send it in the handshake; [`compatible`] decides whether they go on. It is
/// bumped whenever an existing variant or struct changes its fields, order or meaning
/// (see the compatibility rule in the crate documentation).
pub const PROTOCOL_VERSION: u32 = 1;

/// The compatibility rule: may a client speaking `client` talk to a daemon speaking
/// `daemon`?
///
/// Today the versions must be equal. Variants appended under the append-only rule keep
/// the version number, so equal versions still allow a newer peer to know a few more
/// variants than an older one; the wire layout of everything both know is identical.
#[must_use]
pub const fn compatible(client: u32, daemon: u32) -> bool {
    client == daemon
}

/// A client and a daemon that cannot talk: they speak different protocol versions.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, thiserror::Error)]
#[error("{}", incompatible_message(*.client, *.daemon))]
pub struct IncompatibleVersion {
    /// The client's protocol version.
    pub client: u32,
    /// The daemon's protocol version.
    pub daemon: u32,
}

/// Applies [`compatible`], returning the typed error when the peers cannot talk.
///
/// # Errors
///
/// [`IncompatibleVersion`] naming both versions when they are not compatible.
pub const fn check_compatible(client: u32, daemon: u32) -> Result<(), IncompatibleVersion> {
    if compatible(client, daemon) {
        Ok(())
    } else {
        Err(IncompatibleVersion { client, daemon })
    }
}

/// The message shown when the versions do not match: it names both versions and says
/// which side to upgrade.
#[must_use]
pub fn incompatible_message(client: u32, daemon: u32) -> String {
    let advice = if client > daemon {
        "upgrade and restart latchd"
    } else {
        "upgrade the client (latch, or the program using latch-client)"
    };
    format!(
        "incompatible latch protocol versions: the client speaks version {client}, \
         the daemon speaks version {daemon}; {advice}"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_versions_are_compatible_and_others_are_not() {
        assert!(compatible(PROTOCOL_VERSION, PROTOCOL_VERSION));
        assert!(compatible(7, 7));
        assert!(!compatible(1, 2));
        assert!(!compatible(2, 1));
        assert!(!compatible(0, PROTOCOL_VERSION));
    }

    #[test]
    fn check_returns_typed_error() {
        assert_eq!(check_compatible(1, 1), Ok(()));
        let err = check_compatible(3, 1).unwrap_err();
        assert_eq!(
            err,
            IncompatibleVersion {
                client: 3,
                daemon: 1
            }
        );
        assert_eq!(err.to_string(), incompatible_message(3, 1));
    }

    #[test]
    fn message_names_both_versions_and_the_side_to_upgrade() {
        let newer_client = incompatible_message(12, 7);
        assert!(
            newer_client.contains("client speaks version 12"),
            "{newer_client}"
        );
        assert!(
            newer_client.contains("daemon speaks version 7"),
            "{newer_client}"
        );
        assert!(newer_client.contains("upgrade and restart latchd"));

        let newer_daemon = incompatible_message(7, 12);
        assert!(
            newer_daemon.contains("client speaks version 7"),
            "{newer_daemon}"
        );
        assert!(
            newer_daemon.contains("daemon speaks version 12"),
            "{newer_daemon}"
        );
        assert!(newer_daemon.contains("upgrade the client"));
        // Lower-case, no trailing period (the project's message style).
        assert!(!newer_daemon.ends_with('.'));
        assert!(newer_daemon.starts_with(char::is_lowercase));
    }
}
