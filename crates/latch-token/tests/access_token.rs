//! Access tokens: minting (reference §3.4 step 3) and validation (§3.5), including every
//! token Home Assistant's test_init.py rejects and the leeway boundaries.

// Test helpers outside #[test] functions unwrap too: a failure is a test failure.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, TimeDelta, Utc};
use hmac::{Hmac, KeyInit, Mac};
use latch_models::{RefreshToken, User};
use latch_token::{
    Claim, Claims, HEADER_B64, JwtKey, MAX_TOKEN_SIZE, NewRefreshToken, ValidationError,
    create_refresh_token, decode, encode_access_token, mint_access_token,
};
use sha2::Sha256;

const T: i64 = 1_700_000_000;

fn at(secs: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(secs, 0).unwrap()
}

fn user() -> User {
    let mut u = User::new(None);
    u.is_active = true;
    u
}

fn refresh_token(params: NewRefreshToken) -> RefreshToken {
    create_refresh_token(&user(), [], params, at(T), "test").unwrap()
}

fn long_lived(lifetime_secs: f64) -> RefreshToken {
    refresh_token(NewRefreshToken {
        access_token_expiration: lifetime_secs,
        ..NewRefreshToken::long_lived("t", None, 0)
    })
}

fn key(t: &RefreshToken) -> &[u8] {
    t.jwt_key.expose().as_bytes()
}

/// Validates as the AuthManager will: decode, look up by issuer, verify.
fn validate(
    jwt: &str,
    tokens: &[&RefreshToken],
    now: DateTime<Utc>,
) -> Result<Claims, ValidationError> {
    let u = decode(jwt)?;
    match tokens.iter().find(|t| Some(t.id.as_str()) == u.iss()) {
        Some(t) => u.verify_with(&JwtKey::from_refresh_token(t), t.id.as_str(), now),
        None => Err(u.reject_unknown_issuer(now)),
    }
}

/// A token with an arbitrary header and payload, signed with `key`.
fn forge(header: &str, payload: &str, key: &[u8]) -> String {
    let input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header),
        URL_SAFE_NO_PAD.encode(payload)
    );
    let mut mac = Hmac::<Sha256>::new_from_slice(key).unwrap();
    mac.update(input.as_bytes());
    format!(
        "{input}.{}",
        URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
    )
}

const STD_HEADER: &str = r#"{"alg":"HS256","typ":"JWT"}"#;

/// Forges a standard-header token for `t` with the given payload.
fn forge_for(t: &RefreshToken, payload: &str) -> String {
    forge(STD_HEADER, payload, key(t))
}

fn payload_of(jwt: &str) -> String {
    let seg = jwt.split('.').nth(1).unwrap();
    String::from_utf8(URL_SAFE_NO_PAD.decode(seg).unwrap()).unwrap()
}

// ---------------------------------------------------------------------------------------
// Minting

#[test]
fn minted_token_has_home_assistants_exact_layout() {
    let t = refresh_token(NewRefreshToken::normal("https://example.com/", None));
    let now = at(T) + TimeDelta::milliseconds(999);
    let jwt = mint_access_token(&t, now);
    let mut parts = jwt.split('.');
    assert_eq!(parts.next(), Some(HEADER_B64));
    assert_eq!(
        payload_of(&jwt),
        format!(r#"{{"iss":"{}","iat":{T},"exp":{}}}"#, t.id, T + 1800)
    );
    assert!(!jwt.contains('='));
    let claims = validate(&jwt, &[&t], now).unwrap();
    assert_eq!(claims.exp - claims.iat, 1800);
    assert_eq!(claims.iat, T, "iat is int(time.time())");
    assert_eq!(decode(&jwt).unwrap().iss(), Some(t.id.as_str()));
}

#[test]
fn custom_lifetimes() {
    for (lifetime, expected) in [(300.0, 300), (1.0, 1), (1800.9, 1800), (864_000.0, 864_000)] {
        let t = long_lived(lifetime);
        let claims = validate(&mint_access_token(&t, at(T)), &[&t], at(T)).unwrap();
        assert_eq!(claims.exp - claims.iat, expected, "lifetime {lifetime}");
    }
}

#[test]
fn encode_access_token_is_the_same_signer() {
    let t = long_lived(60.0);
    assert_eq!(
        mint_access_token(&t, at(T)),
        encode_access_token(t.id.as_str(), T, T + 60, key(&t))
    );
}

// ---------------------------------------------------------------------------------------
// Tokens Home Assistant's test_init.py rejects

fn good() -> (RefreshToken, String) {
    let t = long_lived(3000.0 * 86_400.0);
    let jwt = mint_access_token(&t, at(T));
    assert!(validate(&jwt, &[&t], at(T)).is_ok());
    (t, jwt)
}

fn with_signature(jwt: &str, sig: &str) -> String {
    let (input, _) = jwt.rsplit_once('.').unwrap();
    format!("{input}.{sig}")
}

#[test]
fn corrupted_signature() {
    let (t, jwt) = good();
    // Home Assistant's corruption: "a" * len. Its last character carries non-zero
    // padding bits, which only canonical base64url refuses; PyJWT rejects it later.
    let bad = with_signature(&jwt, &"a".repeat(43));
    assert_eq!(
        validate(&bad, &[&t], at(T)),
        Err(ValidationError::MalformedSignature)
    );
    let bad = with_signature(&jwt, &"A".repeat(43));
    assert_eq!(
        validate(&bad, &[&t], at(T)),
        Err(ValidationError::BadSignature)
    );
    // A different first character: canonical, but the wrong bytes.
    let sig = jwt.rsplit_once('.').unwrap().1;
    let flipped = if sig.starts_with('A') { "B" } else { "A" };
    let bad = with_signature(&jwt, &format!("{flipped}{}", &sig[1..]));
    assert_eq!(
        validate(&bad, &[&t], at(T)),
        Err(ValidationError::BadSignature)
    );
}

#[test]
fn null_signature() {
    let (t, jwt) = good();
    let bad = with_signature(&jwt, &"\0".repeat(43));
    assert_eq!(
        validate(&bad, &[&t], at(T)),
        Err(ValidationError::MalformedSignature)
    );
}

#[test]
fn empty_signature() {
    let (t, jwt) = good();
    let bad = with_signature(&jwt, "");
    assert_eq!(
        validate(&bad, &[&t], at(T)),
        Err(ValidationError::MalformedSignature)
    );
}

#[test]
fn padded_or_truncated_signature() {
    let (t, jwt) = good();
    let sig = jwt.rsplit_once('.').unwrap().1;
    for bad in [format!("{sig}="), sig[..42].to_owned(), format!("{sig}A")] {
        assert_eq!(
            validate(&with_signature(&jwt, &bad), &[&t], at(T)),
            Err(ValidationError::MalformedSignature)
        );
    }
}

#[test]
fn unknown_key_after_the_refresh_token_is_removed() {
    let (t, jwt) = good();
    // Removed from the store: the lookup finds nothing.
    assert_eq!(
        validate(&jwt, &[], at(T)),
        Err(ValidationError::UnknownIssuer)
    );
    // Still fine while it exists.
    assert!(validate(&jwt, &[&t], at(T)).is_ok());
}

#[test]
fn wrong_jwt_key() {
    let (t, jwt) = good();
    let u = decode(&jwt).unwrap();
    assert_eq!(
        u.verify(&b"f".repeat(128), t.id.as_str(), at(T)),
        Err(ValidationError::BadSignature)
    );
}

#[test]
fn signed_with_another_refresh_tokens_key() {
    let (victim, _) = good();
    let attacker = long_lived(1800.0);
    // Claims the victim's id but is signed with the attacker's own jwt_key.
    let jwt = encode_access_token(victim.id.as_str(), T, T + 1800, key(&attacker));
    assert_eq!(
        validate(&jwt, &[&victim, &attacker], at(T)),
        Err(ValidationError::BadSignature)
    );
}

#[test]
fn impossible_large_token() {
    assert_eq!(
        validate(&"a".repeat(10_000), &[], at(T)).unwrap_err(),
        ValidationError::TooLong
    );
    assert_eq!(
        decode(&"a".repeat(MAX_TOKEN_SIZE + 1)).unwrap_err(),
        ValidationError::TooLong
    );
    assert_eq!(
        decode(&"a".repeat(MAX_TOKEN_SIZE)).unwrap_err(),
        ValidationError::Malformed
    );
    // The limit counts characters, like Python's len().
    assert_eq!(
        decode(&"é".repeat(MAX_TOKEN_SIZE)).unwrap_err(),
        ValidationError::Malformed
    );
}

#[test]
fn token_of_exactly_the_maximum_size_validates() {
    let t = long_lived(1800.0);
    let base = |pad: usize| {
        forge_for(
            &t,
            &format!(
                r#"{{"iss":"{}","iat":{T},"exp":{},"x":"{}"}}"#,
                t.id,
                T + 1800,
                "p".repeat(pad)
            ),
        )
    };
    // Find the padding that makes the token exactly MAX_TOKEN_SIZE long.
    let pad = (5_000..6_200)
        .find(|&p| base(p).len() == MAX_TOKEN_SIZE)
        .unwrap();
    assert!(validate(&base(pad), &[&t], at(T)).is_ok());
    let longer = (pad + 1..pad + 4)
        .map(base)
        .find(|s| s.len() > MAX_TOKEN_SIZE)
        .unwrap();
    assert_eq!(
        validate(&longer, &[&t], at(T)),
        Err(ValidationError::TooLong)
    );
}

#[test]
fn invalid_json_payload() {
    // jws.encode(b"invalid", b"invalid", "HS256", {"alg": "HS256", "typ": "JWT"})
    let jwt = forge(STD_HEADER, "invalid", b"invalid");
    assert_eq!(
        validate(&jwt, &[], at(T)),
        Err(ValidationError::PayloadNotJson)
    );
    let jwt = forge(STD_HEADER, r#"{"iss":"x"} trailing"#, b"invalid");
    assert_eq!(decode(&jwt).unwrap_err(), ValidationError::PayloadNotJson);
    let jwt = forge(STD_HEADER, "", b"invalid");
    assert_eq!(decode(&jwt).unwrap_err(), ValidationError::PayloadNotJson);
}

#[test]
fn not_dict_json_payload() {
    for payload in [r#"["invalid"]"#, "1", "null", r#""iss""#] {
        let jwt = forge(STD_HEADER, payload, b"invalid");
        assert_eq!(
            validate(&jwt, &[], at(T)),
            Err(ValidationError::PayloadNotObject),
            "{payload}"
        );
    }
}

#[test]
fn access_token_that_expires_soon_with_leeway_boundary() {
    let t = long_lived(1.0);
    let jwt = mint_access_token(&t, at(T)); // exp = T + 1
    assert!(validate(&jwt, &[&t], at(T)).is_ok());
    // exp > now - 10: accepted until now reaches exp + 10.
    assert!(validate(&jwt, &[&t], at(T + 1 + 9)).is_ok());
    let last_micro = at(T + 11) - TimeDelta::microseconds(1);
    assert!(validate(&jwt, &[&t], last_micro).is_ok());
    assert_eq!(
        validate(&jwt, &[&t], at(T + 1 + 10)),
        Err(ValidationError::Expired)
    );
    // Home Assistant's test: a minute later.
    assert_eq!(
        validate(&jwt, &[&t], at(T + 60)),
        Err(ValidationError::Expired)
    );
}

#[test]
fn expired_default_token_after_30_minutes_and_11_seconds() {
    let t = refresh_token(NewRefreshToken::normal("https://example.com/", None));
    let jwt = mint_access_token(&t, at(T) - TimeDelta::seconds(1800 + 11));
    assert_eq!(validate(&jwt, &[&t], at(T)), Err(ValidationError::Expired));
}

#[test]
fn access_token_from_the_future() {
    let t = long_lived(10.0 * 86_400.0);
    let future = at(T) + TimeDelta::days(365);
    let jwt = mint_access_token(&t, future);
    assert_eq!(
        validate(&jwt, &[&t], at(T)),
        Err(ValidationError::IssuedInFuture)
    );
    assert!(validate(&jwt, &[&t], future).is_ok());
}

#[test]
fn issued_at_leeway_boundary() {
    let t = long_lived(1800.0);
    let jwt = encode_access_token(t.id.as_str(), T + 10, T + 1800, key(&t));
    // iat <= now + 10 is accepted...
    assert!(validate(&jwt, &[&t], at(T)).is_ok());
    // ...iat > now + 10 is not.
    let just_before = at(T) - TimeDelta::microseconds(1);
    assert_eq!(
        validate(&jwt, &[&t], just_before),
        Err(ValidationError::IssuedInFuture)
    );
    let jwt = encode_access_token(t.id.as_str(), T + 11, T + 1800, key(&t));
    assert_eq!(
        validate(&jwt, &[&t], at(T)),
        Err(ValidationError::IssuedInFuture)
    );
}

// ---------------------------------------------------------------------------------------
// Headers and claims

#[test]
fn only_hs256_is_allowed() {
    let t = long_lived(1800.0);
    let claims = format!(r#"{{"iss":"{}","iat":{T},"exp":{}}}"#, t.id, T + 1800);
    for header in [
        r#"{"alg":"none","typ":"JWT"}"#,
        r#"{"alg":"HS512","typ":"JWT"}"#,
        r#"{"alg":"RS256"}"#,
        r#"{"alg":"hs256"}"#,
        r#"{"alg":["HS256"]}"#,
        r#"{"alg":null}"#,
        r#"{"typ":"JWT"}"#,
        // Later duplicates win, as with Python's json.loads.
        r#"{"alg":"HS256","alg":"none"}"#,
    ] {
        let jwt = forge(header, &claims, key(&t));
        assert_eq!(
            validate(&jwt, &[&t], at(T)),
            Err(ValidationError::AlgorithmNotAllowed),
            "{header}"
        );
    }
    // alg none with an empty signature, as an attacker would send it.
    let none = format!(
        "{}.{}.",
        URL_SAFE_NO_PAD.encode(r#"{"alg":"none"}"#),
        URL_SAFE_NO_PAD.encode(&claims)
    );
    assert_eq!(
        decode(&none).unwrap_err(),
        ValidationError::AlgorithmNotAllowed
    );
}

#[test]
fn other_header_spellings_are_fine() {
    let t = long_lived(1800.0);
    let claims = format!(r#"{{"iss":"{}","iat":{T},"exp":{}}}"#, t.id, T + 1800);
    for header in [
        r#"{"typ":"JWT","alg":"HS256"}"#,
        r#"{"alg":"HS256"}"#,
        r#" { "alg" : "HS256", "kid": 5, "b64": true } "#,
        r#"{"alg":"none","alg":"HS256"}"#,
        r#"{"\u0061lg":"HS\u0032\u00356"}"#,
    ] {
        let jwt = forge(header, &claims, key(&t));
        assert!(validate(&jwt, &[&t], at(T)).is_ok(), "{header}");
    }
}

#[test]
fn bad_headers() {
    let claims = r#"{"iss":"x","iat":1,"exp":2}"#;
    for header in ["", "[]", "\"HS256\"", "{", r#"{"alg":"HS256"}x"#] {
        let jwt = forge(header, claims, b"k");
        assert_eq!(decode(&jwt).unwrap_err(), ValidationError::InvalidHeader);
    }
    let jwt = forge(r#"{"alg":"HS256","b64":false}"#, claims, b"k");
    assert_eq!(decode(&jwt).unwrap_err(), ValidationError::UnencodedPayload);
    let bad_b64 = format!("{}!.e30.{}", HEADER_B64, "A".repeat(43));
    assert_eq!(
        decode(&bad_b64).unwrap_err(),
        ValidationError::InvalidHeader
    );
}

#[test]
fn structure() {
    for s in ["", ".", "..", "abc", "a.b", "a.b.c.d", "...."] {
        assert!(decode(s).is_err(), "{s:?}");
    }
    let (_, jwt) = good();
    let (h, rest) = jwt.split_once('.').unwrap();
    assert_eq!(
        decode(&format!("{h}.x.{rest}")).unwrap_err(),
        ValidationError::Malformed
    );
    let payload_b64 = rest.split_once('.').unwrap().0;
    let bad = jwt.replacen(payload_b64, &format!("{payload_b64}="), 1);
    assert_eq!(decode(&bad).unwrap_err(), ValidationError::PayloadNotBase64);
}

#[test]
fn audience_claim_is_refused() {
    let t = long_lived(1800.0);
    for aud in [r#""someone""#, r#"["a","b"]"#, "null", r#""""#] {
        let jwt = forge_for(
            &t,
            &format!(
                r#"{{"iss":"{}","iat":{T},"exp":{},"aud":{aud}}}"#,
                t.id,
                T + 1800
            ),
        );
        assert_eq!(
            validate(&jwt, &[&t], at(T)),
            Err(ValidationError::AudiencePresent),
            "{aud}"
        );
    }
}

#[test]
fn not_before_is_checked_only_when_present() {
    let t = long_lived(1800.0);
    let with_nbf = |nbf: &str| {
        forge_for(
            &t,
            &format!(
                r#"{{"iss":"{}","iat":{T},"exp":{},"nbf":{nbf}}}"#,
                t.id,
                T + 1800
            ),
        )
    };
    assert_eq!(
        validate(&with_nbf(&(T + 3600).to_string()), &[&t], at(T)),
        Err(ValidationError::NotYetValid)
    );
    assert_eq!(
        validate(&with_nbf(&(T + 11).to_string()), &[&t], at(T)),
        Err(ValidationError::NotYetValid)
    );
    let c = validate(&with_nbf(&(T + 10).to_string()), &[&t], at(T)).unwrap();
    assert_eq!(c.nbf, Some(T + 10));
    assert!(validate(&with_nbf("0"), &[&t], at(T)).is_ok());
    for bad in ["null", r#""soon""#, "true"] {
        assert_eq!(
            validate(&with_nbf(bad), &[&t], at(T)),
            Err(ValidationError::InvalidClaim(Claim::Nbf)),
            "{bad}"
        );
    }
    let c = validate(&mint_access_token(&t, at(T)), &[&t], at(T)).unwrap();
    assert_eq!(c.nbf, None);
}

#[test]
fn required_claims_and_their_types() {
    let t = long_lived(1800.0);
    let id = t.id.as_str();
    let exp = T + 1800;
    let cases: &[(String, ValidationError)] = &[
        (
            format!(r#"{{"iss":"{id}","iat":{T}}}"#),
            ValidationError::MissingClaim(Claim::Exp),
        ),
        (
            format!(r#"{{"iss":"{id}","iat":{T},"exp":null}}"#),
            ValidationError::MissingClaim(Claim::Exp),
        ),
        (
            format!(r#"{{"iss":"{id}","exp":{exp}}}"#),
            ValidationError::MissingClaim(Claim::Iat),
        ),
        (
            format!(r#"{{"iss":"{id}","iat":null,"exp":{exp}}}"#),
            ValidationError::MissingClaim(Claim::Iat),
        ),
        (
            format!(r#"{{"iat":{T},"exp":{exp}}}"#),
            ValidationError::UnknownIssuer,
        ),
        (
            format!(r#"{{"iss":"{id}","iat":"{T}","exp":{exp}}}"#),
            ValidationError::InvalidClaim(Claim::Iat),
        ),
        (
            format!(r#"{{"iss":"{id}","iat":{T},"exp":"{exp}"}}"#),
            ValidationError::InvalidClaim(Claim::Exp),
        ),
        (
            format!(r#"{{"iss":"{id}","iat":{T},"exp":[{exp}]}}"#),
            ValidationError::InvalidClaim(Claim::Exp),
        ),
        (
            format!(r#"{{"iss":"{id}","iat":true,"exp":{exp}}}"#),
            ValidationError::InvalidClaim(Claim::Iat),
        ),
        (
            format!(r#"{{"iss":"{id}","iat":{T},"exp":{exp},"sub":1}}"#),
            ValidationError::InvalidClaim(Claim::Sub),
        ),
        (
            format!(r#"{{"iss":"{id}","iat":{T},"exp":{exp},"jti":null}}"#),
            ValidationError::InvalidClaim(Claim::Jti),
        ),
    ];
    for (payload, err) in cases {
        let jwt = forge_for(&t, payload);
        assert_eq!(validate(&jwt, &[&t], at(T)), Err(*err), "{payload}");
    }
    // Strings for sub and jti, and unknown claims, are fine.
    let jwt = forge_for(
        &t,
        &format!(r#"{{"iss":"{id}","iat":{T},"exp":{exp},"sub":"me","jti":"j","x":{{"y":[1]}}}}"#),
    );
    assert!(validate(&jwt, &[&t], at(T)).is_ok());
}

#[test]
fn issuer_must_match_exactly() {
    let t = long_lived(1800.0);
    let jwt = mint_access_token(&t, at(T));
    let u = decode(&jwt).unwrap();
    assert_eq!(
        u.verify(key(&t), &t.id.as_str()[..31], at(T)),
        Err(ValidationError::IssuerMismatch)
    );
    assert_eq!(
        u.verify(key(&t), &format!("{}x", t.id), at(T)),
        Err(ValidationError::IssuerMismatch)
    );
    // A non-string issuer: nothing to look up, and it never matches.
    let jwt = forge_for(&t, &format!(r#"{{"iss":5,"iat":{T},"exp":{}}}"#, T + 1800));
    let u = decode(&jwt).unwrap();
    assert_eq!(u.iss(), None);
    assert_eq!(
        u.verify(key(&t), "5", at(T)),
        Err(ValidationError::IssuerMismatch)
    );
    // Missing issuer, verified against a key anyway.
    let jwt = forge_for(&t, &format!(r#"{{"iat":{T},"exp":{}}}"#, T + 1800));
    assert_eq!(
        decode(&jwt).unwrap().verify(key(&t), t.id.as_str(), at(T)),
        Err(ValidationError::MissingClaim(Claim::Iss))
    );
}

#[test]
fn issuer_escapes_duplicates_and_long_issuers() {
    let t = long_lived(1800.0);
    let id = t.id.as_str();
    let escaped: String = id.chars().map(|c| format!("\\u{:04x}", c as u32)).collect();
    let long = "i".repeat(300);
    for (payload, iss) in [
        (
            format!(r#"{{"iss":"{escaped}","iat":{T},"exp":{}}}"#, T + 1800),
            id,
        ),
        (
            format!(
                r#"{{"iss":"other","iat":{T},"exp":{},"iss":"{id}"}}"#,
                T + 1800
            ),
            id,
        ),
        (
            format!(r#"{{"iss":"{long}","iat":{T},"exp":{}}}"#, T + 1800),
            long.as_str(),
        ),
    ] {
        let jwt = forge_for(&t, &payload);
        let u = decode(&jwt).unwrap();
        assert_eq!(u.iss(), Some(iss));
        assert!(u.verify(key(&t), iss, at(T)).is_ok());
    }
}

#[test]
fn float_times_are_truncated_like_python_int() {
    let t = long_lived(1800.0);
    let now = at(T) + TimeDelta::milliseconds(500); // T + 0.5
    // exp = T - 9.1: int() gives T - 9, which is > now - 10 = T - 9.5: accepted.
    let jwt = forge_for(
        &t,
        &format!(
            r#"{{"iss":"{}","iat":{},"exp":{}.9}}"#,
            t.id,
            T - 20,
            T - 10
        ),
    );
    // int(T - 10 + 0.9) == T - 10 <= T - 9.5: expired, although the float is not.
    assert_eq!(validate(&jwt, &[&t], now), Err(ValidationError::Expired));
    let jwt = forge_for(
        &t,
        &format!(
            r#"{{"iss":"{}","iat":{}.99,"exp":{}e0}}"#,
            t.id,
            T + 10,
            T + 100
        ),
    );
    let c = validate(&jwt, &[&t], at(T)).unwrap();
    assert_eq!((c.iat, c.exp), (T + 10, T + 100));
    // Enormous numbers saturate instead of overflowing.
    let jwt = forge_for(
        &t,
        &format!(
            r#"{{"iss":"{}","iat":-1e300,"exp":123456789012345678901234567890}}"#,
            t.id
        ),
    );
    let c = validate(&jwt, &[&t], at(T)).unwrap();
    assert_eq!((c.iat, c.exp), (i64::MIN, i64::MAX));
}

#[test]
fn empty_key_never_verifies() {
    let jwt = forge(STD_HEADER, r#"{"iss":"","iat":1,"exp":99999999999}"#, b"");
    let u = decode(&jwt).unwrap();
    assert_eq!(u.verify(b"", "", at(T)), Err(ValidationError::EmptyKey));
    assert!(JwtKey::new(b"").is_empty());
}

#[test]
fn unknown_issuer_always_fails_even_with_the_dummy_key() {
    // A token signed with the dummy key and issuer "" still fails.
    let jwt = forge(
        STD_HEADER,
        &format!(r#"{{"iss":"","iat":{T},"exp":{}}}"#, T + 1800),
        &[0u8; 128],
    );
    let u = decode(&jwt).unwrap();
    assert_eq!(
        u.reject_unknown_issuer(at(T)),
        ValidationError::UnknownIssuer
    );
}

#[test]
fn errors_and_debug_never_show_the_token() {
    let (_, jwt) = good();
    let u = decode(&jwt).unwrap();
    let dbg = format!("{u:?}");
    let sig = jwt.rsplit_once('.').unwrap().1;
    assert!(!dbg.contains(sig) && !dbg.contains(HEADER_B64), "{dbg}");
    let err = ValidationError::BadSignature;
    let copy = err;
    assert_eq!(err, copy);
    assert_eq!(err.to_string(), "token signature does not match");
    assert_eq!(
        ValidationError::MissingClaim(Claim::Exp).to_string(),
        "required claim exp is missing"
    );
}
