//! The one-time-password arithmetic: base32 secrets with pyotp's decoding rules, RFC 6238
//! codes (HMAC-SHA-1, 6 digits, 30 s steps) and constant-time comparison of a typed code.

use latch_models::Secret;
use rand::RngExt;
use subtle::ConstantTimeEq;
use totp_rs::{Algorithm, Builder};
use unicode_normalization::UnicodeNormalization;

use crate::SecretError;

/// Length of a TOTP time step in seconds (RFC 6238 `X`, pyotp's `interval`).
pub const STEP_SECONDS: i64 = 30;

/// Digits in a code.
pub const DIGITS: usize = 6;

/// The secret Home Assistant verifies against when the user has no TOTP secret, so an
/// unknown user costs as much as a known one. It is only 80 bits long.
pub const DUMMY_SECRET: &str = "FPPTH34D4E3MI2HG";

/// The RFC 4648 base32 alphabet.
const ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

/// Bytes of entropy in a generated secret (160 bits, 32 base32 characters).
const SECRET_BYTES: usize = 20;

/// A fresh secret as pyotp's `random_base32()` makes it: 32 characters from `A–Z2–7`,
/// no padding, 160 bits from the operating system's CSPRNG (through `rand`'s
/// thread-local ChaCha generator, which the OS seeds).
#[must_use]
pub fn generate_secret() -> Secret {
    let mut rng = rand::rng();
    let mut out = String::with_capacity(SECRET_BYTES * 8 / 5);
    for _ in 0..SECRET_BYTES * 8 / 5 {
        out.push(char::from(ALPHABET[rng.random_range(0..ALPHABET.len())]));
    }
    Secret::new(out)
}

/// Encodes bytes as unpadded upper-case base32.
#[must_use]
pub fn encode_base32(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len().div_ceil(5) * 8);
    let mut acc: u64 = 0;
    let mut bits = 0u32;
    for &b in bytes {
        acc = (acc << 8) | u64::from(b);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(char::from(ALPHABET[((acc >> bits) & 31) as usize]));
        }
    }
    if bits > 0 {
        out.push(char::from(ALPHABET[((acc << (5 - bits)) & 31) as usize]));
    }
    out
}

/// Decodes a secret exactly as pyotp's `byte_secret()` does: pad with `=` to a multiple
/// of 8, then Python's `base64.b32decode(..., casefold=True)`. Lower case and missing
/// padding are accepted; anything else outside `A–Z2–7` (spaces included), padding in
/// the middle, or a padding length base32 never produces, is refused.
///
/// # Errors
/// [`SecretError`] naming what is wrong; the secret itself is never part of the error.
pub fn decode_secret(secret: &str) -> Result<Vec<u8>, SecretError> {
    if !secret.is_ascii() {
        return Err(SecretError::NotAscii);
    }
    let mut s: Vec<u8> = secret.bytes().map(|b| b.to_ascii_uppercase()).collect();
    let missing = s.len() % 8;
    if missing != 0 {
        s.resize(s.len() + 8 - missing, b'=');
    }
    let total = s.len();
    let data_len = s.iter().rposition(|&b| b != b'=').map_or(0, |i| i + 1);
    let pad = total - data_len;
    let data = &s[..data_len];

    let mut out = Vec::with_capacity(total / 8 * 5);
    for quantum in data.chunks(8) {
        let mut acc: u64 = 0;
        for &c in quantum {
            let v = match c {
                b'A'..=b'Z' => c - b'A',
                b'2'..=b'7' => c - b'2' + 26,
                _ => return Err(SecretError::InvalidCharacter),
            };
            acc = (acc << 5) | u64::from(v);
        }
        // A short last quantum is left-aligned, as Python's `acc <<= 5 * padchars`.
        acc <<= 5 * (8 - quantum.len());
        out.extend_from_slice(&acc.to_be_bytes()[3..]);
    }
    let keep = match pad {
        0 => 5,
        1 => 4,
        3 => 3,
        4 => 2,
        6 => 1,
        _ => return Err(SecretError::InvalidPadding),
    };
    if pad > 0 && !out.is_empty() {
        out.truncate(out.len() - 5 + keep);
    }
    Ok(out)
}

/// The TOTP time step of a Unix time: `floor(unix / 30)`. `None` before the epoch
/// (there is no step -1; pyotp refuses negative counters too).
#[must_use]
pub fn step_at(unix_seconds: i64) -> Option<u64> {
    u64::try_from(unix_seconds.div_euclid(STEP_SECONDS)).ok()
}

/// The 6-digit code of `key` (the decoded secret) at time step `step`, zero-padded.
/// `None` only for a step so large that its start time overflows.
#[must_use]
pub fn code_at_step(key: &[u8], step: u64) -> Option<String> {
    let time = step.checked_mul(STEP_SECONDS.unsigned_abs())?;
    let totp = Builder::new()
        .with_algorithm(Algorithm::SHA1)
        .with_digits(6)
        .with_skew(0)
        .with_step_duration(STEP_SECONDS.unsigned_abs())
        .with_secret(key.to_vec())
        .build_noncompliant();
    Some(totp.generate(time).to_string())
}

/// The current code of a base32 secret at Unix time `unix_seconds` (for tools and
/// tests that need to type a code).
///
/// # Errors
/// [`SecretError`] if the secret does not decode, or the time is before the epoch
/// or absurdly far in the future.
pub fn code_at(secret: &str, unix_seconds: i64) -> Result<String, SecretError> {
    let key = decode_secret(secret)?;
    step_at(unix_seconds)
        .and_then(|step| code_at_step(&key, step))
        .ok_or(SecretError::TimeOutOfRange)
}

/// pyotp's `strings_equal`: NFKC-normalise both sides, then compare the UTF-8 bytes in
/// constant time (only the length can leak, as with `hmac.compare_digest`).
#[must_use]
pub fn codes_equal(typed: &str, expected: &str) -> bool {
    let typed: String = typed.nfkc().collect();
    let expected: String = expected.nfkc().collect();
    typed.as_bytes().ct_eq(expected.as_bytes()).into()
}

/// Checks `typed` against the codes of `key` for steps `step - window ..= step + window`
/// (steps below 0 do not exist). Every candidate is computed and compared, so the time
/// taken does not depend on which one matched. Returns the **highest** matching step,
/// so recording it also blocks every other step the same code could pass for.
#[must_use]
pub(crate) fn matching_step(key: &[u8], typed: &str, step: u64, window: u64) -> Option<u64> {
    let mut found = None;
    for candidate in step.saturating_sub(window)..=step.saturating_add(window) {
        if let Some(code) = code_at_step(key, candidate)
            && codes_equal(typed, &code)
        {
            found = Some(candidate);
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base32_round_trip_and_known_value() {
        assert_eq!(
            encode_base32(b"12345678901234567890"),
            "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ"
        );
        assert_eq!(
            decode_secret("GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ").unwrap(),
            b"12345678901234567890"
        );
        for len in 0..=21 {
            let bytes: Vec<u8> = (0..len).map(|i| (i * 37 + 11) as u8).collect();
            let enc = encode_base32(&bytes);
            assert_eq!(decode_secret(&enc).unwrap(), bytes, "len {len}");
            assert_eq!(decode_secret(&enc.to_lowercase()).unwrap(), bytes);
        }
    }

    #[test]
    fn decoding_follows_python() {
        // b32decode("MZXW6===") == b"foo"; pyotp pads "MZXW6" the same way.
        assert_eq!(decode_secret("MZXW6===").unwrap(), b"foo");
        assert_eq!(decode_secret("mzxw6").unwrap(), b"foo");
        assert_eq!(decode_secret("MZXW6YQ").unwrap(), b"foob");
        assert_eq!(decode_secret("").unwrap(), b"");
        // Lengths 1, 3 and 6 modulo 8 need 7, 5 or 2 pad characters: incorrect padding.
        assert_eq!(decode_secret("A"), Err(SecretError::InvalidPadding));
        assert_eq!(decode_secret("AAA"), Err(SecretError::InvalidPadding));
        assert_eq!(decode_secret("AAAAAA"), Err(SecretError::InvalidPadding));
        assert_eq!(decode_secret("========"), Err(SecretError::InvalidPadding));
        assert_eq!(
            decode_secret("MZ=XW6=="),
            Err(SecretError::InvalidCharacter)
        );
        assert_eq!(decode_secret("MZXW 6"), Err(SecretError::InvalidCharacter));
        assert_eq!(decode_secret("MZXW1"), Err(SecretError::InvalidCharacter));
        assert_eq!(decode_secret("MZXWé"), Err(SecretError::NotAscii));
        assert_eq!(decode_secret(DUMMY_SECRET).unwrap().len(), 10);
    }

    #[test]
    fn generated_secrets_look_like_pyotp_ones() {
        let a = generate_secret();
        assert_eq!(a.expose().len(), 32);
        assert!(a.expose().bytes().all(|b| ALPHABET.contains(&b)));
        assert_eq!(decode_secret(a.expose()).unwrap().len(), 20);
        assert_ne!(a, generate_secret());
    }

    #[test]
    fn steps() {
        assert_eq!(step_at(0), Some(0));
        assert_eq!(step_at(29), Some(0));
        assert_eq!(step_at(30), Some(1));
        assert_eq!(step_at(59), Some(1));
        assert_eq!(step_at(-1), None);
        assert!(step_at(i64::MAX).is_some());
        assert!(code_at_step(b"k", u64::MAX).is_none());
    }

    #[test]
    fn nfkc_comparison() {
        assert!(codes_equal("１２３４５６", "123456"));
        assert!(!codes_equal(" 123456", "123456"));
        assert!(!codes_equal("12345", "123456"));
    }
}
