//! Identifier newtypes. Home Assistant uses `uuid4().hex` (32 lowercase hex characters)
//! for user, credential and refresh-token ids; group ids are free-form strings.

use std::borrow::Borrow;
use std::fmt;

use serde::{Deserialize, Serialize};

/// A fresh `uuid4().hex`: 32 lowercase hex characters from the OS random source.
#[must_use]
pub fn random_hex_id() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            /// A new random id (`uuid4().hex`).
            #[must_use]
            pub fn random() -> Self {
                Self(random_hex_id())
            }

            /// The id as a string slice.
            #[must_use]
            pub fn as_str(&self) -> &str {
                &self.0
            }

            /// The id as an owned string.
            #[must_use]
            pub fn into_string(self) -> String {
                self.0
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({:?})", stringify!($name), self.0)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl From<String> for $name {
            fn from(s: String) -> Self {
                Self(s)
            }
        }

        impl From<&str> for $name {
            fn from(s: &str) -> Self {
                Self(s.to_owned())
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl Borrow<str> for $name {
            fn borrow(&self) -> &str {
                &self.0
            }
        }
    };
}

id_type!(
    /// A user's id.
    UserId
);
id_type!(
    /// A group's id (`system-admin`, `system-users`, `system-read-only`, or custom).
    GroupId
);
id_type!(
    /// A credential's id.
    CredentialId
);
id_type!(
    /// A refresh token's id; it is also the `iss` claim of every access token it mints.
    RefreshTokenId
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn random_ids_are_32_lowercase_hex_and_distinct() {
        let a = UserId::random();
        let b = UserId::random();
        assert_eq!(a.as_str().len(), 32);
        assert!(
            a.as_str()
                .chars()
                .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
        );
        assert_ne!(a, b);
    }

    #[test]
    fn ids_serialize_as_plain_strings() {
        let id = GroupId::from("system-admin");
        assert_eq!(serde_json::to_string(&id).unwrap(), "\"system-admin\"");
    }
}
