//! One-time recovery codes: generated from an unambiguous alphabet, shown once, stored
//! only as salted SHA-256 hashes, consumed on use.

use latch_models::{Secret, UserId};
use rand::RngExt;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use unicode_normalization::UnicodeNormalization;

/// The characters of a recovery code: lower-case letters and digits without the
/// look-alikes `0 o 1 i l` (31 characters, so a 10-character code holds 49.5 bits).
pub const RECOVERY_ALPHABET: &str = "23456789abcdefghjkmnpqrstuvwxyz";

/// Characters in a recovery code (shown as two groups of five: `xxxxx-xxxxx`).
pub const RECOVERY_CODE_LEN: usize = 10;

/// `count` fresh, distinct codes, formatted `xxxxx-xxxxx`.
pub(crate) fn generate(count: usize) -> Vec<String> {
    let alphabet = RECOVERY_ALPHABET.as_bytes();
    let mut rng = rand::rng();
    let mut codes: Vec<String> = Vec::with_capacity(count);
    while codes.len() < count {
        let mut code = String::with_capacity(RECOVERY_CODE_LEN + 1);
        for i in 0..RECOVERY_CODE_LEN {
            if i == RECOVERY_CODE_LEN / 2 {
                code.push('-');
            }
            code.push(char::from(alphabet[rng.random_range(0..alphabet.len())]));
        }
        if !codes.contains(&code) {
            codes.push(code);
        }
    }
    codes
}

/// The canonical form of a typed recovery code: NFKC, surrounding white space trimmed,
/// lower case, dashes and inner spaces dropped. `None` if the result is not
/// [`RECOVERY_CODE_LEN`] characters of [`RECOVERY_ALPHABET`] (so a 6-digit TOTP code is
/// never taken for one).
#[must_use]
pub fn normalize_recovery_code(typed: &str) -> Option<String> {
    let nfkc: String = typed.nfkc().collect();
    let code: String = nfkc
        .trim()
        .chars()
        .filter(|c| *c != '-' && *c != ' ')
        .flat_map(char::to_lowercase)
        .collect();
    (code.chars().count() == RECOVERY_CODE_LEN
        && code.chars().all(|c| RECOVERY_ALPHABET.contains(c)))
    .then_some(code)
}

/// What is stored for a normalised code: the lower-case hex SHA-256 of
/// `"<user id>:<code>"`. The user id salts the hash, so one precomputed table does not
/// fit every user.
pub(crate) fn hash(user_id: &UserId, normalized: &str) -> Secret {
    let digest = Sha256::new()
        .chain_update(user_id.as_str().as_bytes())
        .chain_update(b":")
        .chain_update(normalized.as_bytes())
        .finalize();
    Secret::new(hex::encode(digest))
}

/// The position of `candidate` among `stored`, comparing against every entry in
/// constant time.
pub(crate) fn position(stored: &[Secret], candidate: &Secret) -> Option<usize> {
    let mut found = None;
    for (i, h) in stored.iter().enumerate() {
        if bool::from(h.expose().as_bytes().ct_eq(candidate.expose().as_bytes())) {
            found = Some(i);
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_codes_have_the_shape() {
        let codes = generate(10);
        assert_eq!(codes.len(), 10);
        for c in &codes {
            assert_eq!(c.len(), 11);
            assert_eq!(&c[5..6], "-");
            assert_eq!(normalize_recovery_code(c).unwrap(), c.replace('-', ""));
        }
        let mut sorted = codes.clone();
        sorted.sort();
        sorted.dedup();
        assert_eq!(sorted.len(), 10);
    }

    #[test]
    fn normalisation() {
        assert_eq!(
            normalize_recovery_code(" ABCDE-FGHJK\n").as_deref(),
            Some("abcdefghjk")
        );
        assert_eq!(
            normalize_recovery_code("abcdefghjk").as_deref(),
            Some("abcdefghjk")
        );
        assert_eq!(
            normalize_recovery_code("abcde fghjk").as_deref(),
            Some("abcdefghjk")
        );
        // Full-width letters fold under NFKC.
        assert_eq!(
            normalize_recovery_code("ＡＢＣＤＥ-ＦＧＨＪＫ").as_deref(),
            Some("abcdefghjk")
        );
        assert_eq!(normalize_recovery_code("123456"), None);
        assert_eq!(
            normalize_recovery_code("abcde-fghij"),
            None,
            "i is not in the alphabet"
        );
        assert_eq!(normalize_recovery_code("abcde-fghjkm"), None);
        assert_eq!(normalize_recovery_code(""), None);
    }

    #[test]
    fn hashes_are_salted_hex() {
        let a = hash(&UserId::from("u1"), "abcdefghjk");
        assert_eq!(a.expose().len(), 64);
        assert!(!a.expose().contains("abcdefghjk"));
        assert_ne!(a, hash(&UserId::from("u2"), "abcdefghjk"));
        assert_eq!(
            position(&[hash(&UserId::from("u2"), "x"), a.clone()], &a),
            Some(1)
        );
    }
}
