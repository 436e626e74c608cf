//! Vectors made by Home Assistant's own code path with PyJWT 2.10.1
//! (fixtures/gen_pyjwt_vectors.py, output committed as fixtures/pyjwt_vectors.json):
//! latch must mint the identical strings and accept and refuse the same tokens.

// Test helpers outside #[test] functions unwrap too: a failure is a test failure.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use chrono::{DateTime, Utc};
use latch_models::{RefreshToken, RefreshTokenId, Secret, TokenType, UserId};
use latch_token::{ValidationError, decode, mint_access_token};
use serde::Deserialize;

#[derive(Deserialize)]
struct Vectors {
    generator: String,
    mint: Vec<MintVector>,
    reject: Vec<RejectVector>,
}

#[derive(Deserialize)]
struct MintVector {
    iss: String,
    jwt_key: String,
    now: i64,
    access_token_expiration: f64,
    token: String,
    valid_at_now: bool,
}

#[derive(Deserialize)]
struct RejectVector {
    name: String,
    token: String,
    jwt_key: String,
    iss: String,
    now: i64,
    error: String,
}

fn vectors() -> Vectors {
    serde_json::from_str(include_str!("fixtures/pyjwt_vectors.json")).unwrap()
}

fn at(secs: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(secs, 0).unwrap()
}

fn refresh_token(v: &MintVector) -> RefreshToken {
    RefreshToken {
        id: RefreshTokenId::from(v.iss.as_str()),
        user_id: UserId::random(),
        client_id: None,
        client_name: Some("vector".into()),
        client_icon: None,
        token_type: TokenType::LongLivedAccessToken,
        created_at: at(v.now),
        access_token_expiration: v.access_token_expiration,
        token: Secret::new("0".repeat(128)),
        jwt_key: Secret::new(v.jwt_key.clone()),
        last_used_at: None,
        last_used_ip: None,
        expire_at: None,
        credential_id: None,
        version: None,
    }
}

/// The variant name of an error, without its fields.
fn variant(e: ValidationError) -> String {
    let dbg = format!("{e:?}");
    dbg.split('(').next().unwrap_or_default().to_owned()
}

#[test]
fn vectors_come_from_pyjwt() {
    let v = vectors();
    assert!(v.generator.starts_with("PyJWT 2."), "{}", v.generator);
    assert!(v.mint.len() >= 10);
    assert!(v.reject.len() >= 15);
}

#[test]
fn latch_mints_the_same_strings_as_home_assistant() {
    for v in vectors().mint {
        let t = refresh_token(&v);
        assert_eq!(mint_access_token(&t, at(v.now)), v.token, "iss {:?}", v.iss);
    }
}

#[test]
fn latch_accepts_what_home_assistant_accepts() {
    for v in vectors().mint {
        let u = decode(&v.token).unwrap();
        assert_eq!(u.iss(), Some(v.iss.as_str()));
        let result = u.verify(v.jwt_key.as_bytes(), &v.iss, at(v.now));
        assert_eq!(
            result.is_ok(),
            v.valid_at_now,
            "iss {:?}: {result:?}",
            v.iss
        );
        if let Ok(claims) = result {
            assert_eq!(claims.iat, v.now);
        }
    }
}

#[test]
fn latch_refuses_what_home_assistant_refuses() {
    for v in vectors().reject {
        let now = at(v.now);
        let result = decode(&v.token).and_then(|u| u.verify(v.jwt_key.as_bytes(), &v.iss, now));
        let err = result.expect_err(&v.name);
        assert_eq!(variant(err), v.error, "{}", v.name);
    }
}
