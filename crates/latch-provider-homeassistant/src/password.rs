//! bcrypt hashing and checking exactly as Home Assistant does it, as plain synchronous
//! functions. They are slow on purpose: async code runs them through a
//! [`HashPool`](crate::HashPool), never directly.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use latch_models::Secret;
use zeroize::Zeroizing;

/// Home Assistant's dummy hash, checked against `b"foo"` when a login names an unknown
/// user, so that the answer takes as long as a real check.
pub const DUMMY_HASH: &str = "$2b$12$CiuFGszHx9eNHxPuQcwBWez4CwDTOcLTX5CbOpV6gef2nYuXkY7BO";

/// The password Home Assistant checks against [`DUMMY_HASH`].
pub const DUMMY_PASSWORD: &[u8] = b"foo";

/// bcrypt reads at most this many bytes of a password; Home Assistant cuts the UTF-8
/// bytes here before hashing and before checking.
pub const MAX_PASSWORD_BYTES: usize = 72;

/// The cost Home Assistant hashes with.
pub const DEFAULT_BCRYPT_COST: u32 = 12;

/// The smallest cost bcrypt accepts.
pub const MIN_BCRYPT_COST: u32 = 4;

/// The largest cost bcrypt accepts.
pub const MAX_BCRYPT_COST: u32 = 31;

/// A password as bcrypt sees it: its UTF-8 bytes cut at [`MAX_PASSWORD_BYTES`] (Home
/// Assistant's `password.encode()[:72]`; the cut may fall inside a multi-byte
/// character). Zeroed on drop; `Debug` redacts.
#[derive(Clone)]
pub struct CutPassword(Zeroizing<Vec<u8>>);

impl CutPassword {
    /// Cuts `password` at 72 UTF-8 bytes.
    #[must_use]
    pub fn new(password: &str) -> Self {
        Self::from_bytes(password.as_bytes())
    }

    /// Cuts raw bytes at 72.
    #[must_use]
    pub fn from_bytes(bytes: &[u8]) -> Self {
        let end = bytes.len().min(MAX_PASSWORD_BYTES);
        Self(Zeroizing::new(bytes[..end].to_vec()))
    }

    /// The bytes bcrypt gets.
    #[must_use]
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

impl std::fmt::Debug for CutPassword {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CutPassword(<redacted>)")
    }
}

/// Why a password could not be hashed or a stored entry could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum HashError {
    /// The stored value is not standard Base64 of an ASCII string.
    #[error("the stored password hash is not base64 of a bcrypt string")]
    NotBase64,
    /// The decoded value is not a bcrypt string bcrypt can check against.
    #[error("the stored password hash is not a valid bcrypt hash: {0}")]
    InvalidHash(String),
    /// Hashing failed (a cost outside 4..=31, or no OS randomness for the salt).
    #[error("cannot hash the password: {0}")]
    Hashing(String),
}

/// Hashes a cut password with `cost`: the 60-character `$2b$<cost>$...` string.
///
/// # Errors
/// [`HashError::Hashing`] for a cost outside 4..=31 or a failing random source.
pub fn hash(password: &CutPassword, cost: u32) -> Result<Zeroizing<String>, HashError> {
    // The truncating API is the right one: the input is at most 72 bytes already, so it
    // is taken whole (the non-truncating one refuses exactly 72 bytes).
    bcrypt::hash(password.as_bytes(), cost)
        .map(Zeroizing::new)
        .map_err(|e| HashError::Hashing(e.to_string()))
}

/// Checks a cut password against a bcrypt string in constant time.
///
/// # Errors
/// [`HashError::InvalidHash`] if `bcrypt_hash` is not a bcrypt string.
pub fn verify(password: &CutPassword, bcrypt_hash: &str) -> Result<bool, HashError> {
    bcrypt::verify(password.as_bytes(), bcrypt_hash)
        .map_err(|e| HashError::InvalidHash(e.to_string()))
}

/// The stored form of a bcrypt string: standard, padded Base64 (80 characters).
#[must_use]
pub fn encode_for_storage(bcrypt_hash: &str) -> Secret {
    Secret::new(STANDARD.encode(bcrypt_hash.as_bytes()))
}

/// The bcrypt string inside a stored entry.
///
/// # Errors
/// [`HashError::NotBase64`] if it is not standard Base64 of an ASCII string.
pub fn decode_stored(stored: &Secret) -> Result<Zeroizing<String>, HashError> {
    let bytes = Zeroizing::new(
        STANDARD
            .decode(stored.expose().as_bytes())
            .map_err(|_| HashError::NotBase64)?,
    );
    if !bytes.is_ascii() {
        return Err(HashError::NotBase64);
    }
    String::from_utf8(bytes.to_vec())
        .map(Zeroizing::new)
        .map_err(|_| HashError::NotBase64)
}

/// The cost written in a bcrypt string (`$2b$12$...` → 12).
///
/// # Errors
/// [`HashError::InvalidHash`] if it is not a bcrypt string.
pub fn cost_of(bcrypt_hash: &str) -> Result<u32, HashError> {
    bcrypt_hash
        .parse::<bcrypt::HashParts>()
        .map(|p| p.get_cost())
        .map_err(|e| HashError::InvalidHash(e.to_string()))
}

/// The cost of a stored entry read from its first eight Base64 characters (`$2b$12`),
/// without decoding the rest: cheap enough to run over every entry. `None` for an entry
/// that does not start like a bcrypt string.
#[must_use]
pub fn stored_cost(stored: &Secret) -> Option<u32> {
    let head = stored.expose().get(..8)?;
    let bytes = STANDARD.decode(head).ok()?;
    match bytes.as_slice() {
        [b'$', b'2', _, b'$', d1, d2] if d1.is_ascii_digit() && d2.is_ascii_digit() => {
            Some(u32::from(d1 - b'0') * 10 + u32::from(d2 - b'0'))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cut_keeps_at_most_72_bytes_and_may_split_a_character() {
        assert_eq!(CutPassword::new("short").as_bytes(), b"short");
        let long = "x".repeat(100);
        assert_eq!(CutPassword::new(&long).as_bytes().len(), 72);
        let umlauts = format!("a{}", "ü".repeat(50));
        let cut = CutPassword::new(&umlauts);
        assert_eq!(cut.as_bytes().len(), 72);
        assert_eq!(cut.as_bytes()[71], 0xc3, "the cut falls inside the 36th ü");
        assert_eq!(format!("{cut:?}"), "CutPassword(<redacted>)");
    }

    #[test]
    fn exactly_72_bytes_hash_and_verify() {
        let pw = CutPassword::new(&"y".repeat(72));
        let h = hash(&pw, 4).unwrap();
        assert!(verify(&pw, &h).unwrap());
        assert!(!verify(&CutPassword::new(&"y".repeat(71)), &h).unwrap());
    }

    #[test]
    fn hashes_are_2b_60_chars_and_store_as_80_base64_chars() {
        let h = hash(&CutPassword::new("secret"), 4).unwrap();
        assert!(h.starts_with("$2b$04$"));
        assert_eq!(h.len(), 60);
        let stored = encode_for_storage(&h);
        assert_eq!(stored.expose().len(), 80);
        assert_eq!(decode_stored(&stored).unwrap().as_str(), h.as_str());
        assert_eq!(cost_of(&h).unwrap(), 4);
        assert_eq!(stored_cost(&stored), Some(4));
        assert_eq!(stored_cost(&encode_for_storage(DUMMY_HASH)), Some(12));
        assert_eq!(stored_cost(&Secret::new("short")), None);
        assert_eq!(stored_cost(&encode_for_storage("not bcrypt at all")), None);
    }

    #[test]
    fn dummy_hash_is_a_cost_12_hash_of_foo() {
        // A real, full-cost check: a malformed dummy would fail fast and leak timing.
        assert_eq!(cost_of(DUMMY_HASH).unwrap(), 12);
        assert!(verify(&CutPassword::new("foo"), DUMMY_HASH).unwrap());
    }

    #[test]
    fn bad_stored_values_are_errors_not_panics() {
        assert_eq!(
            decode_stored(&Secret::new("not base64!")),
            Err(HashError::NotBase64)
        );
        let not_bcrypt = encode_for_storage("$2b$12$short");
        let decoded = decode_stored(&not_bcrypt).unwrap();
        assert!(matches!(
            verify(&CutPassword::new("x"), &decoded),
            Err(HashError::InvalidHash(_))
        ));
        assert!(cost_of("garbage").is_err());
        assert!(matches!(
            hash(&CutPassword::new("x"), 3),
            Err(HashError::Hashing(_))
        ));
    }
}
