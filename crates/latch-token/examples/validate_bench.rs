//! Micro-benchmark of access-token validation (decode + verify), run by
//! `cargo run --release -p latch-token --example validate_bench` (and `cargo xtask bench`).
//!
//! Prints validations per second and ns per validation for the prepared-key path (the
//! hot path), the raw-key path and the unknown-issuer path, next to a bare HMAC-SHA256
//! over the same signing input, for comparison, and the `jsonwebtoken` calls the crate
//! docs measure its own two steps against (`crypto::verify` for the signature,
//! `insecure_decode_claims` into a `serde_json::Map` for the claims). Each loop runs for
//! about one second.
#![allow(clippy::print_stdout)]

use std::hint::black_box;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use hmac::{Hmac, KeyInit, Mac};
use latch_models::User;
use latch_token::{JwtKey, NewRefreshToken, create_refresh_token, decode, mint_access_token};
use sha2::Sha256;

const TARGET: Duration = Duration::from_secs(1);
const BATCH: u64 = 1_000;

/// Runs `f` in batches until `TARGET` has passed; returns (iterations, elapsed).
fn run(mut f: impl FnMut() -> bool) -> (u64, Duration) {
    // Warm-up.
    for _ in 0..BATCH {
        assert!(black_box(f()));
    }
    let start = Instant::now();
    let mut n = 0_u64;
    loop {
        for _ in 0..BATCH {
            assert!(black_box(f()));
        }
        n += BATCH;
        let elapsed = start.elapsed();
        if elapsed >= TARGET {
            return (n, elapsed);
        }
    }
}

#[allow(clippy::cast_precision_loss)]
fn report(name: &str, (n, elapsed): (u64, Duration)) {
    let secs = elapsed.as_secs_f64();
    println!(
        "{name:<34} {:>12.0} /s {:>9.1} ns/op",
        n as f64 / secs,
        secs * 1e9 / n as f64
    );
}

fn main() {
    let now: DateTime<Utc> = latch_models::now_micros();
    let mut user = User::new(Some("bench".into()));
    user.is_active = true;
    let token = create_refresh_token(
        &user,
        [],
        NewRefreshToken::normal("https://example.com/", None),
        now,
        "bench",
    )
    .unwrap_or_else(|e| panic!("cannot create a refresh token: {e}"));
    let jwt = mint_access_token(&token, now);
    let raw_key = token.jwt_key.expose().as_bytes();
    let key = JwtKey::from_refresh_token(&token);
    let id = token.id.as_str();
    println!("token: {} characters", jwt.len());

    report(
        "decode + verify_with (prepared)",
        run(|| {
            decode(black_box(&jwt))
                .and_then(|u| u.verify_with(&key, id, now))
                .is_ok()
        }),
    );
    report(
        "decode + verify (raw key)",
        run(|| {
            decode(black_box(&jwt))
                .and_then(|u| u.verify(raw_key, id, now))
                .is_ok()
        }),
    );
    report(
        "decode + reject_unknown_issuer",
        run(|| {
            decode(black_box(&jwt))
                .map(|u| u.reject_unknown_issuer(now))
                .is_ok()
        }),
    );
    report("decode only", run(|| decode(black_box(&jwt)).is_ok()));

    let signing_input = jwt
        .rsplit_once('.')
        .map(|(input, _)| input.as_bytes())
        .unwrap_or_default();
    report(
        "bare HMAC-SHA256 (raw key)",
        run(|| {
            let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(black_box(raw_key)) else {
                return false;
            };
            mac.update(black_box(signing_input));
            black_box(mac.finalize().into_bytes());
            true
        }),
    );
    let prepared =
        Hmac::<Sha256>::new_from_slice(raw_key).unwrap_or_else(|e| panic!("hmac key: {e}"));
    let decoding = jsonwebtoken::DecodingKey::from_secret(raw_key);
    let signature = jwt.rsplit_once('.').map(|(_, s)| s).unwrap_or_default();
    report(
        "bare HMAC-SHA256 (prepared key)",
        run(|| {
            let mut mac = black_box(&prepared).clone();
            mac.update(black_box(signing_input));
            black_box(mac.finalize().into_bytes());
            true
        }),
    );
    report(
        "jsonwebtoken::crypto::verify",
        run(|| {
            jsonwebtoken::crypto::verify(
                black_box(signature),
                black_box(signing_input),
                &decoding,
                jsonwebtoken::Algorithm::HS256,
            )
            .unwrap_or(false)
        }),
    );
    report(
        "insecure_decode_claims into a Map",
        run(|| {
            jsonwebtoken::dangerous::insecure_decode_claims::<
                serde_json::Map<String, serde_json::Value>,
            >(black_box(&jwt))
            .is_ok_and(|claims| claims.contains_key("iss"))
        }),
    );
}
