//! Errors the daemon answers with: a stable code and a human message.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

macro_rules! error_codes {
    ($( $(#[$meta:meta])* $variant:ident = $num:literal => $name:literal, )*) => {
        /// What went wrong, as a stable number and a stable `snake_case` name.
        ///
        /// **Codes never change meaning.** A number and its name, once released, keep
        /// their meaning forever; a code that is no longer used is retired, never
        /// reused. New codes take the next free number.
        ///
        /// On the wire a code is its number (a `u16`), not an enum index, and a number
        /// the reader does not know decodes as [`ErrorCode::Unknown`]. That makes
        /// error codes the one place where a newer daemon may send an older client a
        /// value it has never seen: the client still gets the error and its message.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        #[repr(u16)]
        pub enum ErrorCode {
            $( $(#[$meta])* $variant = $num, )*
        }

        impl ErrorCode {
            /// Every code, in numeric order.
            pub const ALL: &'static [ErrorCode] = &[$(ErrorCode::$variant,)*];

            /// The stable `snake_case` name.
            #[must_use]
            pub const fn as_str(self) -> &'static str {
                match self {
                    $(Self::$variant => $name,)*
                }
            }

            /// The code with this number, if this version knows it.
            #[must_use]
            pub const fn from_code(code: u16) -> Option<Self> {
                match code {
                    $($num => Some(Self::$variant),)*
                    _ => None,
                }
            }

            /// The code with this name, if this version knows it.
            #[must_use]
            pub fn from_name(name: &str) -> Option<Self> {
                match name {
                    $($name => Some(Self::$variant),)*
                    _ => None,
                }
            }
        }
    };
}

error_codes! {
    /// A code this version does not know: a newer peer sent it. The message still
    /// says what happened.
    Unknown = 0 => "unknown",
    /// The request is malformed or its arguments are invalid (bad form input, a flow
    /// continued from another address, a bad client id, …).
    InvalidRequest = 1 => "invalid_request",
    /// The daemon does not know this kind of request: the client is newer than the
    /// daemon.
    UnsupportedRequest = 2 => "unsupported_request",
    /// The thing named does not exist (the generic form of the more specific
    /// `*_not_found` codes).
    NotFound = 3 => "not_found",
    /// No user has this id.
    UserNotFound = 4 => "user_not_found",
    /// Wrong username, password or code.
    InvalidAuth = 5 => "invalid_auth",
    /// The access or refresh token is unknown, malformed, expired or revoked.
    InvalidToken = 6 => "invalid_token",
    /// The user may not do this (inactive, local-only from a remote address, not an
    /// admin, …).
    Forbidden = 7 => "forbidden",
    /// The owner cannot be deactivated or removed, and its credentials cannot be removed.
    OwnerProtected = 8 => "owner_protected",
    /// System-generated users cannot be changed this way (updated, removed, given a
    /// password or MFA, or a non-system token).
    SystemUser = 9 => "system_user",
    /// Something with this name or key already exists (a username, a long-lived token's
    /// client name, a credential of this provider).
    AlreadyExists = 10 => "already_exists",
    /// The username is not normalised (lower-case, no surrounding whitespace) or is
    /// otherwise unusable.
    InvalidUsername = 11 => "invalid_username",
    /// The new password is refused by the password policy.
    WeakPassword = 12 => "weak_password",
    /// No login or MFA setup flow has this id (finished, aborted or never started).
    FlowNotFound = 13 => "flow_not_found",
    /// Locked out after too many failures (by username or by source address).
    TooManyAttempts = 14 => "too_many_attempts",
    /// No MFA module has this id.
    MfaModuleNotFound = 15 => "mfa_module_not_found",
    /// The change could not be made durable; nothing was changed.
    StorageFailed = 16 => "storage_failed",
    /// A bug or an unexpected condition in the daemon.
    Internal = 17 => "internal",
    /// A group id that does not exist.
    GroupNotFound = 18 => "group_not_found",
    /// No credential has this id, or the user has no credential of this provider.
    CredentialNotFound = 19 => "credential_not_found",
    /// No refresh token has this id.
    TokenNotFound = 20 => "token_not_found",
    /// No auth provider has this type and id, or it cannot start a login from here.
    /// (Like Home Assistant's "Invalid handler specified": the two are not told apart.)
    ProviderNotFound = 21 => "provider_not_found",
    /// Onboarding was already done: an owner exists.
    AlreadyOnboarded = 22 => "already_onboarded",
    /// The daemon is shutting down and takes no new work.
    ShuttingDown = 23 => "shutting_down",
    /// The answer would not fit in one frame (a listing of everything in a large
    /// store): ask for it a page at a time.
    AnswerTooLarge = 24 => "answer_too_large",
    /// The daemon cannot answer safely now: its shared database has not been heard from
    /// for longer than the configured staleness bound (a revocation made on another
    /// host could be missing), or a write could not reach it. Retry later.
    Unavailable = 25 => "unavailable",
}

impl ErrorCode {
    /// The stable number.
    #[must_use]
    pub const fn code(self) -> u16 {
        self as u16
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A string that is no error code name.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("unknown error code name {0:?}")]
pub struct UnknownErrorCode(pub String);

impl FromStr for ErrorCode {
    type Err = UnknownErrorCode;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::from_name(s).ok_or_else(|| UnknownErrorCode(s.to_owned()))
    }
}

impl Serialize for ErrorCode {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_u16(self.code())
    }
}

impl<'de> Deserialize<'de> for ErrorCode {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let code = u16::deserialize(deserializer)?;
        Ok(Self::from_code(code).unwrap_or(Self::Unknown))
    }
}

/// An error answer: a stable [`ErrorCode`] for programs and a message for people.
///
/// Messages are lower-case without a trailing period and never contain secrets.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{message} ({code})")]
pub struct ApiError {
    /// What went wrong, for programs.
    pub code: ErrorCode,
    /// What went wrong, for people.
    pub message: String,
}

impl ApiError {
    /// An error with this code and message.
    #[must_use]
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }

    /// The answer to a request variant the daemon does not know.
    #[must_use]
    pub fn unsupported_request(variant: u32) -> Self {
        Self::new(
            ErrorCode::UnsupportedRequest,
            format!(
                "unsupported request (variant {variant}): the client is newer than this daemon; \
                 upgrade latchd"
            ),
        )
    }

    /// The answer to a request that does not decode.
    #[must_use]
    pub fn invalid_request(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::InvalidRequest, message)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    #[test]
    fn numbers_and_names_are_unique_and_round_trip() {
        let mut numbers = HashSet::new();
        let mut names = HashSet::new();
        for &code in ErrorCode::ALL {
            assert!(
                numbers.insert(code.code()),
                "duplicate number {}",
                code.code()
            );
            assert!(
                names.insert(code.as_str()),
                "duplicate name {}",
                code.as_str()
            );
            assert_eq!(ErrorCode::from_code(code.code()), Some(code));
            assert_eq!(code.as_str().parse::<ErrorCode>(), Ok(code));
            assert_eq!(code.to_string(), code.as_str());
            assert!(
                code.as_str()
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c == '_'),
                "{} is not snake_case",
                code.as_str()
            );
        }
        // ALL is complete: every number up to the highest is a code.
        let highest = ErrorCode::ALL.iter().map(|c| c.code()).max().unwrap();
        assert_eq!(usize::from(highest) + 1, ErrorCode::ALL.len());
    }

    /// Pins released numbers and names: reordering or renumbering fails here.
    #[test]
    fn released_codes_are_stable() {
        let pinned = [
            (ErrorCode::Unknown, 0, "unknown"),
            (ErrorCode::InvalidRequest, 1, "invalid_request"),
            (ErrorCode::UnsupportedRequest, 2, "unsupported_request"),
            (ErrorCode::NotFound, 3, "not_found"),
            (ErrorCode::UserNotFound, 4, "user_not_found"),
            (ErrorCode::InvalidAuth, 5, "invalid_auth"),
            (ErrorCode::InvalidToken, 6, "invalid_token"),
            (ErrorCode::Forbidden, 7, "forbidden"),
            (ErrorCode::OwnerProtected, 8, "owner_protected"),
            (ErrorCode::SystemUser, 9, "system_user"),
            (ErrorCode::AlreadyExists, 10, "already_exists"),
            (ErrorCode::InvalidUsername, 11, "invalid_username"),
            (ErrorCode::WeakPassword, 12, "weak_password"),
            (ErrorCode::FlowNotFound, 13, "flow_not_found"),
            (ErrorCode::TooManyAttempts, 14, "too_many_attempts"),
            (ErrorCode::MfaModuleNotFound, 15, "mfa_module_not_found"),
            (ErrorCode::StorageFailed, 16, "storage_failed"),
            (ErrorCode::Internal, 17, "internal"),
            (ErrorCode::GroupNotFound, 18, "group_not_found"),
            (ErrorCode::CredentialNotFound, 19, "credential_not_found"),
            (ErrorCode::TokenNotFound, 20, "token_not_found"),
            (ErrorCode::ProviderNotFound, 21, "provider_not_found"),
            (ErrorCode::AlreadyOnboarded, 22, "already_onboarded"),
            (ErrorCode::ShuttingDown, 23, "shutting_down"),
            (ErrorCode::AnswerTooLarge, 24, "answer_too_large"),
            (ErrorCode::Unavailable, 25, "unavailable"),
        ];
        assert_eq!(
            pinned.len(),
            ErrorCode::ALL.len(),
            "pin every new code here"
        );
        for (code, number, name) in pinned {
            assert_eq!(code.code(), number, "{name}");
            assert_eq!(code.as_str(), name);
        }
    }

    #[test]
    fn wire_form_is_the_number() {
        let bytes = postcard::to_stdvec(&ErrorCode::TooManyAttempts).unwrap();
        assert_eq!(bytes, [14]);
        let bytes = postcard::to_stdvec(&ErrorCode::ShuttingDown).unwrap();
        assert_eq!(bytes, [23]);
    }

    #[test]
    fn unknown_number_decodes_as_unknown_keeping_the_message() {
        // A newer daemon's code 4000 with a message, as bytes.
        let future = (4000_u16, String::from("something new went wrong"));
        let bytes = postcard::to_stdvec(&future).unwrap();
        let err: ApiError = postcard::from_bytes(&bytes).unwrap();
        assert_eq!(err.code, ErrorCode::Unknown);
        assert_eq!(err.message, "something new went wrong");
    }

    #[test]
    fn unknown_name_is_a_typed_error() {
        let err = "no_such_code".parse::<ErrorCode>().unwrap_err();
        assert_eq!(err, UnknownErrorCode("no_such_code".into()));
        assert_eq!(err.to_string(), "unknown error code name \"no_such_code\"");
    }

    #[test]
    fn display_shows_message_and_code() {
        let err = ApiError::new(ErrorCode::UserNotFound, "user abc not found");
        assert_eq!(err.to_string(), "user abc not found (user_not_found)");
        let unsupported = ApiError::unsupported_request(99);
        assert_eq!(unsupported.code, ErrorCode::UnsupportedRequest);
        assert!(unsupported.message.contains("99"));
        assert_eq!(
            ApiError::invalid_request("bad").code,
            ErrorCode::InvalidRequest
        );
    }
}
