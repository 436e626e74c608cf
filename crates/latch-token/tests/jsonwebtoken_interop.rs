//! Cross-checks with the `jsonwebtoken` crate (which latch-token verifies and signs with):
//! what latch mints it accepts, what it mints with the same claims latch accepts, and the
//! differences from PyJWT that keep a few steps hand-written. `jsonwebtoken` reads the system clock, so these
//! tokens are minted around the real time, far from every boundary.

// Test helpers outside #[test] functions unwrap too: a failure is a test failure.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use latch_models::{RefreshToken, User};
use latch_token::{
    NewRefreshToken, ValidationError, create_refresh_token, decode, mint_access_token,
};
use serde::{Deserialize, Serialize};

#[derive(Debug, Serialize, Deserialize, PartialEq)]
struct HaClaims {
    iss: String,
    iat: i64,
    exp: i64,
}

fn now() -> DateTime<Utc> {
    latch_models::now_micros()
}

fn refresh_token(lifetime: f64) -> RefreshToken {
    let mut user = User::new(None);
    user.is_active = true;
    let params = NewRefreshToken {
        access_token_expiration: lifetime,
        ..NewRefreshToken::long_lived("interop", None, 0)
    };
    create_refresh_token(&user, [], params, now(), "test").unwrap()
}

fn key(t: &RefreshToken) -> &[u8] {
    t.jwt_key.expose().as_bytes()
}

fn ha_validation(iss: &str) -> Validation {
    let mut v = Validation::new(Algorithm::HS256);
    v.leeway = 10;
    v.set_required_spec_claims(&["exp", "iss"]);
    v.set_issuer(&[iss]);
    v
}

#[test]
fn jsonwebtoken_accepts_latch_tokens() {
    let t = refresh_token(1800.0);
    let now = now();
    let jwt = mint_access_token(&t, now);
    let data = jsonwebtoken::decode::<HaClaims>(
        &jwt,
        &DecodingKey::from_secret(key(&t)),
        &ha_validation(t.id.as_str()),
    )
    .unwrap();
    assert_eq!(data.header.alg, Algorithm::HS256);
    assert_eq!(data.header.typ.as_deref(), Some("JWT"));
    assert_eq!(
        data.claims,
        HaClaims {
            iss: t.id.to_string(),
            iat: now.timestamp(),
            exp: now.timestamp() + 1800,
        }
    );
}

#[test]
fn jsonwebtoken_refuses_latch_tokens_under_another_key_or_issuer() {
    let t = refresh_token(1800.0);
    let jwt = mint_access_token(&t, now());
    let err = jsonwebtoken::decode::<HaClaims>(
        &jwt,
        &DecodingKey::from_secret(&b"0".repeat(128)),
        &ha_validation(t.id.as_str()),
    )
    .unwrap_err();
    assert_eq!(*err.kind(), ErrorKind::InvalidSignature);
    let err = jsonwebtoken::decode::<HaClaims>(
        &jwt,
        &DecodingKey::from_secret(key(&t)),
        &ha_validation("someone else"),
    )
    .unwrap_err();
    assert_eq!(*err.kind(), ErrorKind::InvalidIssuer);
}

#[test]
fn latch_accepts_jsonwebtoken_tokens() {
    let t = refresh_token(1800.0);
    let now = now();
    let claims = HaClaims {
        iss: t.id.to_string(),
        iat: now.timestamp(),
        exp: now.timestamp() + 600,
    };
    // jsonwebtoken writes the header as {"typ":"JWT","alg":"HS256"}: another byte layout.
    let jwt = jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(key(&t)),
    )
    .unwrap();
    let u = decode(&jwt).unwrap();
    assert_eq!(u.iss(), Some(t.id.as_str()));
    let c = u.verify(key(&t), t.id.as_str(), now).unwrap();
    assert_eq!((c.iat, c.exp), (claims.iat, claims.exp));

    // The same claims minted by latch verify identically in both.
    let ours = mint_access_token(&t, now);
    assert!(
        decode(&ours)
            .unwrap()
            .verify(key(&t), t.id.as_str(), now)
            .is_ok()
    );
}

#[test]
fn latch_refuses_jsonwebtoken_tokens_that_break_the_rules() {
    let t = refresh_token(1800.0);
    let now = now();
    let n = now.timestamp();
    let enc = |alg: Algorithm, claims: &serde_json::Value| {
        jsonwebtoken::encode(
            &Header::new(alg),
            claims,
            &EncodingKey::from_secret(key(&t)),
        )
        .unwrap()
    };
    let id = t.id.as_str();
    let good = serde_json::json!({"iss": id, "iat": n, "exp": n + 600});
    for alg in [Algorithm::HS384, Algorithm::HS512] {
        assert_eq!(
            decode(&enc(alg, &good)).unwrap_err(),
            ValidationError::AlgorithmNotAllowed
        );
    }
    let cases = [
        (
            serde_json::json!({"iss": id, "iat": n - 7200, "exp": n - 3600}),
            ValidationError::Expired,
        ),
        (
            serde_json::json!({"iss": id, "iat": n + 3600, "exp": n + 7200}),
            ValidationError::IssuedInFuture,
        ),
        (
            serde_json::json!({"iss": id, "iat": n, "exp": n + 600, "nbf": n + 3600}),
            ValidationError::NotYetValid,
        ),
        (
            serde_json::json!({"iss": id, "iat": n, "exp": n + 600, "aud": "x"}),
            ValidationError::AudiencePresent,
        ),
        (
            serde_json::json!({"iss": "other", "iat": n, "exp": n + 600}),
            ValidationError::IssuerMismatch,
        ),
    ];
    for (claims, expected) in cases {
        let jwt = enc(Algorithm::HS256, &claims);
        assert_eq!(
            decode(&jwt).unwrap().verify(key(&t), id, now),
            Err(expected),
            "{claims}"
        );
    }
}

// ---------------------------------------------------------------------------------------
// Why latch-token does not hand everything to jsonwebtoken (its crate docs): each test
// pins one difference from PyJWT. If one starts failing, jsonwebtoken has changed and the
// hand-written step it justifies may go.

#[test]
fn jsonwebtokens_encoder_does_not_write_pyjwts_bytes() {
    #[derive(Serialize)]
    struct Ordered<'a> {
        iss: &'a str,
        iat: i64,
        exp: i64,
    }
    let t = refresh_token(1800.0);
    let now = now();
    let ours = mint_access_token(&t, now);
    let theirs = jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &Ordered {
            iss: t.id.as_str(),
            iat: now.timestamp(),
            exp: now.timestamp() + 1800,
        },
        &EncodingKey::from_secret(key(&t)),
    )
    .unwrap();
    let header = |jwt: &str| {
        let seg = jwt.split('.').next().unwrap();
        String::from_utf8(URL_SAFE_NO_PAD.decode(seg).unwrap()).unwrap()
    };
    // PyJWT sorts the header's keys; jsonwebtoken writes its struct's field order.
    assert_eq!(header(&ours), r#"{"alg":"HS256","typ":"JWT"}"#);
    assert_eq!(header(&theirs), r#"{"typ":"JWT","alg":"HS256"}"#);
    assert_ne!(ours, theirs);
    // The payloads agree: only the header (and so the signature) differs.
    assert_eq!(ours.split('.').nth(1), theirs.split('.').nth(1));
}

#[test]
fn jsonwebtokens_validation_accepts_a_token_pyjwt_refuses() {
    let t = refresh_token(1800.0);
    let now = now();
    let n = now.timestamp();
    // Issued an hour from now: PyJWT (and latch) refuse it, jsonwebtoken never checks iat.
    let claims = HaClaims {
        iss: t.id.to_string(),
        iat: n + 3600,
        exp: n + 7200,
    };
    let jwt = jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(key(&t)),
    )
    .unwrap();
    assert!(
        jsonwebtoken::decode::<HaClaims>(
            &jwt,
            &DecodingKey::from_secret(key(&t)),
            &ha_validation(t.id.as_str())
        )
        .is_ok()
    );
    assert_eq!(
        decode(&jwt).unwrap().verify(key(&t), t.id.as_str(), now),
        Err(ValidationError::IssuedInFuture)
    );
}

#[test]
fn jsonwebtokens_typed_header_refuses_headers_pyjwt_reads() {
    let t = refresh_token(1800.0);
    let now = now();
    let n = now.timestamp();
    let payload = URL_SAFE_NO_PAD.encode(format!(
        r#"{{"iss":"{}","iat":{n},"exp":{}}}"#,
        t.id,
        n + 600
    ));
    for header in [
        r#"{"alg":"HS256","kid":5}"#,
        r#"{"alg":"none","alg":"HS256"}"#,
        r#"{"alg":"HS256","typ":["JWT"]}"#,
    ] {
        let input = format!("{}.{payload}", URL_SAFE_NO_PAD.encode(header));
        let signature = jsonwebtoken::crypto::sign(
            input.as_bytes(),
            &EncodingKey::from_secret(key(&t)),
            Algorithm::HS256,
        )
        .unwrap();
        let jwt = format!("{input}.{signature}");
        assert!(jsonwebtoken::decode_header(&jwt).is_err(), "{header}");
        let claims = decode(&jwt)
            .and_then(|u| u.verify(key(&t), t.id.as_str(), now))
            .unwrap_or_else(|e| panic!("{header}: {e}"));
        assert_eq!(claims.iat, n);
    }
}
