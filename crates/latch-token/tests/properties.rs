//! Property tests: `decode` and `verify` never panic on anything, and mint → decode →
//! verify round-trips for arbitrary issuers, times and lifetimes.

// Test helpers outside #[test] functions unwrap too: a failure is a test failure.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use latch_models::{RefreshToken, RefreshTokenId, Secret, TokenType, UserId};
use latch_token::{ValidationError, decode, mint_access_token};
use proptest::prelude::*;

fn refresh_token(id: &str, jwt_key: &str, lifetime: f64) -> RefreshToken {
    RefreshToken {
        id: RefreshTokenId::from(id),
        user_id: UserId::random(),
        client_id: None,
        client_name: None,
        client_icon: None,
        token_type: TokenType::System,
        created_at: DateTime::UNIX_EPOCH,
        access_token_expiration: lifetime,
        token: Secret::new("0".repeat(128)),
        jwt_key: Secret::new(jwt_key),
        last_used_at: None,
        last_used_ip: None,
        expire_at: None,
        credential_id: None,
        version: None,
    }
}

/// Exercises every entry point on `s`; must not panic.
fn poke(s: &str) {
    let now = DateTime::from_timestamp(1_700_000_000, 0).unwrap_or_default();
    if let Ok(u) = decode(s) {
        let iss = u.iss().unwrap_or_default().to_owned();
        let _ = u.verify(b"key", &iss, now);
        let _ = u.verify(b"", "", now);
        assert_eq!(u.reject_unknown_issuer(now), ValidationError::UnknownIssuer);
    }
}

/// A JSON-ish text: mostly claims and structure characters.
fn jsonish() -> impl Strategy<Value = String> {
    prop::collection::vec(
        prop_oneof![
            Just("{".to_owned()),
            Just("}".to_owned()),
            Just("[".to_owned()),
            Just("]".to_owned()),
            Just(",".to_owned()),
            Just(":".to_owned()),
            Just("\"iss\"".to_owned()),
            Just("\"exp\"".to_owned()),
            Just("\"iat\"".to_owned()),
            Just("\"nbf\"".to_owned()),
            Just("\"aud\"".to_owned()),
            Just("\"alg\"".to_owned()),
            Just("\"HS256\"".to_owned()),
            Just("null".to_owned()),
            Just("true".to_owned()),
            any::<i64>().prop_map(|n| n.to_string()),
            any::<f64>().prop_map(|n| n.to_string()),
            "\"[^\"]{0,8}\"",
        ],
        0..24,
    )
    .prop_map(|parts| parts.concat())
}

proptest! {
    #[test]
    fn decode_never_panics_on_strings(s in ".{0,400}") {
        poke(&s);
    }

    #[test]
    fn decode_never_panics_on_bytes(bytes in prop::collection::vec(any::<u8>(), 0..600)) {
        poke(&String::from_utf8_lossy(&bytes));
    }

    #[test]
    fn decode_never_panics_on_token_shaped_input(s in "[A-Za-z0-9_=.-]{0,300}") {
        poke(&s);
    }

    #[test]
    fn decode_never_panics_on_encoded_segments(
        header in jsonish(),
        payload in jsonish(),
        sig in prop::collection::vec(any::<u8>(), 0..40),
        raw_payload in prop::collection::vec(any::<u8>(), 0..80),
        use_raw in any::<bool>(),
    ) {
        let payload = if use_raw { raw_payload } else { payload.into_bytes() };
        for h in [header.as_str(), r#"{"alg":"HS256","typ":"JWT"}"#] {
            let token = format!(
                "{}.{}.{}",
                URL_SAFE_NO_PAD.encode(h),
                URL_SAFE_NO_PAD.encode(&payload),
                URL_SAFE_NO_PAD.encode(&sig),
            );
            poke(&token);
        }
    }

    #[test]
    fn mint_decode_verify_round_trips(
        id in any::<String>(),
        key_bytes in prop::collection::vec(any::<u8>(), 1..64),
        secs in -2_000_000_000_i64..10_000_000_000,
        micros in 0_u32..1_000_000,
        lifetime in 11_i64..400_000_000,
        fraction in 0.0_f64..1.0,
    ) {
        let jwt_key = hex::encode(key_bytes);
        #[allow(clippy::cast_precision_loss)]
        let t = refresh_token(&id, &jwt_key, lifetime as f64 + fraction);
        let now: DateTime<Utc> = DateTime::from_timestamp(secs, micros * 1_000).unwrap();
        let jwt = mint_access_token(&t, now);

        let u = decode(&jwt).unwrap();
        prop_assert_eq!(u.iss(), Some(id.as_str()));
        let claims = u.verify(jwt_key.as_bytes(), &id, now).unwrap();
        // int(time.time()) truncates toward zero.
        let iat = if secs < 0 && micros > 0 { secs + 1 } else { secs };
        prop_assert_eq!(claims.iat, iat);
        prop_assert_eq!(claims.exp - claims.iat, lifetime);
        prop_assert_eq!(claims.nbf, None);

        prop_assert_eq!(
            u.verify(b"another key", &id, now),
            Err(ValidationError::BadSignature)
        );
        prop_assert_eq!(
            u.verify(jwt_key.as_bytes(), &format!("{id}."), now),
            Err(ValidationError::IssuerMismatch)
        );
        prop_assert_eq!(u.reject_unknown_issuer(now), ValidationError::UnknownIssuer);
    }
}
