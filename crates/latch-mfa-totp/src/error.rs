//! The crate's error enums.

use latch_models::UserId;
use latch_provider::ProviderError;
use latch_store::{ChangeError, StoreError};

/// Why a base32 TOTP secret cannot be used. The secret itself is never part of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SecretError {
    /// The secret holds a non-ASCII character.
    #[error("the secret is not ascii")]
    NotAscii,
    /// A character outside `A–Z`, `a–z`, `2–7` (or `=` anywhere but at the end).
    #[error("the secret holds a character that is not base32")]
    InvalidCharacter,
    /// Trailing `=` padding of a length base32 never produces.
    #[error("the secret has incorrect base32 padding")]
    InvalidPadding,
    /// The secret decodes to no bytes at all.
    #[error("the secret is empty")]
    Empty,
    /// The time is before the Unix epoch or too far in the future for a time step.
    #[error("the time is outside the range of totp time steps")]
    TimeOutOfRange,
}

/// An error of the TOTP module's own operations.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TotpError {
    /// The store has no user with this id, so nothing can be stored for it.
    #[error("user {0} does not exist")]
    UnknownUser(UserId),
    /// The user has no TOTP secret (recovery codes need one).
    #[error("totp is not set up for user {0}")]
    NotSetUp(UserId),
    /// System-generated users cannot set up a second factor (Home Assistant's
    /// `not_system_user`).
    #[error("system-generated user {0} cannot set up totp")]
    SystemUser(UserId),
    /// A secret given to `setup_user` does not decode as base32.
    #[error("invalid totp secret: {0}")]
    InvalidSecret(#[source] SecretError),
    /// The setup flow has already finished; start a new one.
    #[error("the totp setup flow has already finished")]
    FlowFinished,
    /// The store refused or failed the change; nothing was changed.
    #[error("storing totp data failed: {0}")]
    Storage(#[source] StoreError),
}

impl TotpError {
    /// Maps a store error, turning "unknown user" into [`TotpError::UnknownUser`].
    pub(crate) fn from_store(e: StoreError) -> Self {
        match e {
            StoreError::Rejected {
                reason: ChangeError::UnknownUser(id),
                ..
            } => Self::UnknownUser(id),
            other => Self::Storage(other),
        }
    }
}

impl From<TotpError> for ProviderError {
    fn from(e: TotpError) -> Self {
        match e {
            TotpError::UnknownUser(_) | TotpError::NotSetUp(_) => Self::UserNotFound,
            TotpError::SystemUser(_) => {
                Self::NotSupported("system-generated users cannot set up totp")
            }
            TotpError::Storage(e) => Self::Storage(e.to_string()),
            e @ (TotpError::InvalidSecret(_) | TotpError::FlowFinished) => {
                Self::Internal(e.to_string())
            }
        }
    }
}

/// Why an `otpauth://` URI cannot be imported.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum OtpAuthError {
    /// The URI does not start with `otpauth://`.
    #[error("not an otpauth:// uri")]
    NotOtpAuth,
    /// The type is not `totp` (for example `hotp`).
    #[error("otp type {0:?} is not supported (only totp)")]
    UnsupportedType(String),
    /// A `%` escape that is not followed by two hex digits, or an escape that decodes
    /// to invalid UTF-8.
    #[error("bad percent-encoding in the {0}")]
    BadEncoding(&'static str),
    /// A query parameter appears twice.
    #[error("parameter {0:?} is given more than once")]
    DuplicateParameter(String),
    /// There is no `secret` parameter.
    #[error("the uri has no secret")]
    MissingSecret,
    /// The secret is not usable base32.
    #[error("invalid secret: {0}")]
    InvalidSecret(#[source] SecretError),
    /// A parameter asks for something this module cannot check (an algorithm other
    /// than SHA1, digits other than 6, a period other than 30).
    #[error("unsupported {name}: {value:?} (only SHA1, 6 digits, 30 s)")]
    Unsupported {
        /// The parameter.
        name: &'static str,
        /// Its value.
        value: String,
    },
}

/// Why a QR code cannot be drawn.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum QrError {
    /// The data does not fit in the largest QR code (version 40) at error-correction
    /// level H.
    #[error("{len} bytes do not fit in a qr code at error correction level h")]
    TooLong {
        /// Length of the data in bytes.
        len: usize,
    },
    /// The PNG encoder refused the image (not expected for a QR code).
    #[error("cannot encode the qr code as png: {0}")]
    Png(String),
}
