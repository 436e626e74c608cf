//! What a validation allocates, counted with a counting global allocator
//! (`allocation-counter`, which counts the calling thread's allocations only). Its own
//! test binary: the counting allocator is installed only here.
//!
//! A first validation allocates exactly twice, both in [`latch_token::decode`]: the
//! buffer `jsonwebtoken::dangerous::insecure_decode_claims` decodes the payload into, and
//! the issuer, kept as a `String` for the caller's lookup. The claims are read without
//! building a JSON value, and a verification with a prepared [`JwtKey`] clones its HMAC
//! state on the stack: neither allocates.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;

use chrono::{DateTime, Utc};
use latch_token::{JwtKey, ValidationError, decode, encode_access_token};

const ROUNDS: u64 = 100;

fn now() -> DateTime<Utc> {
    DateTime::from_timestamp(1_700_000_000, 0).unwrap()
}

/// A token as latch and Home Assistant mint it (a 32-character issuer, a 128-character
/// key) and the key, prepared.
fn token() -> (String, JwtKey) {
    let key = "5f".repeat(64);
    let jwt = encode_access_token(
        "0123456789abcdef0123456789abcdef",
        1_700_000_000,
        1_700_001_800,
        key.as_bytes(),
    );
    (jwt, JwtKey::new(key.as_bytes()))
}

#[test]
fn the_counting_allocator_is_installed() {
    // Without it every count below would be zero and prove nothing.
    let info = allocation_counter::measure(|| {
        black_box(Box::new(black_box(7_u64)));
    });
    assert_eq!(info.count_total, 1);
}

#[test]
fn a_first_validation_allocates_the_payload_buffer_and_the_issuer_only() {
    let (jwt, key) = token();
    let info = allocation_counter::measure(|| {
        for _ in 0..ROUNDS {
            let unverified = decode(black_box(&jwt)).unwrap();
            let iss = unverified.iss().unwrap();
            let claims = unverified.verify_with(&key, iss, now()).unwrap();
            assert_eq!(claims.exp, 1_700_001_800);
        }
    });
    assert_eq!(
        info.count_total,
        2 * ROUNDS,
        "{ROUNDS} first validations allocated {} times ({} bytes)",
        info.count_total,
        info.bytes_total
    );
    assert_eq!(info.count_current, 0, "a validation kept memory");
}

#[test]
fn a_payload_with_claims_that_are_not_kept_allocates_no_more() {
    // Nested values and unknown claims are read through, not built. (A string with an
    // escape in it would add one: `serde_json`'s scratch buffer for unescaping.)
    let key = JwtKey::new(&[b'k'; 128]);
    let payload = r#"{"iss":"abc","iat":1700000000,"exp":1700001800,"sub":"s","jti":"j","x":{"y":[1,2.5,"z",null,{"w":true}]}}"#;
    let jwt = format!(
        "{}.{}.{}",
        latch_token::HEADER_B64,
        base64_url(payload.as_bytes()),
        "A".repeat(43)
    );
    let info = allocation_counter::measure(|| {
        let unverified = decode(black_box(&jwt)).unwrap();
        assert_eq!(unverified.iss(), Some("abc"));
        assert_eq!(
            unverified.verify_with(&key, "abc", now()),
            Err(ValidationError::BadSignature)
        );
    });
    assert_eq!(info.count_total, 2, "{} bytes", info.bytes_total);
}

#[test]
fn verifying_with_a_prepared_key_does_not_allocate() {
    let (jwt, key) = token();
    let unverified = decode(&jwt).unwrap();
    let wrong = JwtKey::new(b"another key");
    // The dummy key of `reject_unknown_issuer` is made on first use.
    let _ = unverified.reject_unknown_issuer(now());
    let info = allocation_counter::measure(|| {
        for _ in 0..ROUNDS {
            let iss = "0123456789abcdef0123456789abcdef";
            assert!(black_box(&unverified).verify_with(&key, iss, now()).is_ok());
            assert_eq!(
                unverified.verify_with(&wrong, iss, now()),
                Err(ValidationError::BadSignature)
            );
            assert_eq!(
                unverified.reject_unknown_issuer(now()),
                ValidationError::UnknownIssuer
            );
        }
    });
    assert_eq!(
        info.count_total, 0,
        "{ROUNDS} rounds of verifications allocated {} times ({} bytes)",
        info.count_total, info.bytes_total
    );
}

fn base64_url(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}
