//! Refresh-token material: the `token` and `jwt_key` strings of a refresh token.

use latch_models::Secret;
use rand::Rng;
use zeroize::Zeroize;

/// Random bytes behind a refresh token's `token` and `jwt_key` (`secrets.token_hex(64)`).
pub const TOKEN_BYTES: usize = 64;

/// Length of the hex string [`random_token_hex`] returns: 128 characters.
pub const TOKEN_HEX_LEN: usize = TOKEN_BYTES * 2;

/// A fresh secret as Home Assistant's `secrets.token_hex(64)` makes it: 64 bytes from a
/// CSPRNG (`rand`'s thread-local generator, seeded and reseeded from the OS) written as
/// 128 lowercase hex characters. The raw bytes are wiped once encoded.
#[must_use]
pub fn random_token_hex() -> Secret {
    let mut bytes = [0u8; TOKEN_BYTES];
    rand::rng().fill_bytes(&mut bytes);
    let hex = hex::encode(bytes);
    bytes.zeroize();
    Secret::new(hex)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_hex_is_128_lowercase_hex_chars_and_fresh() {
        let a = random_token_hex();
        let b = random_token_hex();
        assert_eq!(a.expose().len(), TOKEN_HEX_LEN);
        assert!(
            a.expose()
                .bytes()
                .all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(&c))
        );
        assert_ne!(a, b);
    }
}
