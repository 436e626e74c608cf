//! Access-token validation: decode, then verify with a fixed key.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use hmac::{Hmac, KeyInit, Mac};
use latch_token::{
    Claims, HEADER_B64, JwtKey, LEEWAY_SECS, MAX_TOKEN_SIZE, ValidationError, decode,
    encode_access_token,
};
use sha2::Sha256;

use crate::must;

/// The refresh token's `jwt_key` (its hex text is the HMAC key, as in Home Assistant).
pub(crate) const KEY: &[u8] = b"00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff\
                     00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";
/// Another refresh token's key: nothing signed with [`KEY`] may verify with it.
const OTHER_KEY: &[u8] = b"ffeeddccbbaa99887766554433221100ffeeddccbbaa99887766554433221100\
                           ffeeddccbbaa99887766554433221100ffeeddccbbaa99887766554433221100";
/// The refresh token's id, the expected `iss`.
pub(crate) const ISS: &str = "4a3c0f5e2b6d41f8a9e07c1b3d5f2e68";
/// Validation time, Unix seconds.
pub(crate) const NOW: i64 = 1_700_000_000;

fn now() -> DateTime<Utc> {
    DateTime::from_timestamp(NOW, 0).unwrap_or_default()
}

fn hmac(key: &[u8], message: &[u8]) -> [u8; 32] {
    let mut mac = must(Hmac::<Sha256>::new_from_slice(key), "an HMAC key");
    mac.update(message);
    mac.finalize().into_bytes().into()
}

/// Signs `header.payload` (both raw bytes, base64url-encoded here) with `key`.
fn sign(header_b64: &str, payload: &[u8], key: &[u8]) -> String {
    let mut token = format!("{header_b64}.{}", URL_SAFE_NO_PAD.encode(payload));
    let signature = hmac(key, token.as_bytes());
    token.push('.');
    token.push_str(&URL_SAFE_NO_PAD.encode(signature));
    token
}

/// Access-token validation. `data[0] % 4` picks how the rest becomes a token:
///
/// - 0: the rest is the token text;
/// - 1: the rest is a payload, signed with the key under the standard header;
/// - 2: the rest is `header \n payload`, both encoded and signed with the key;
/// - 3: the rest gives `iat`, `exp` and `iss` for a token minted by
///   [`latch_token::encode_access_token`].
///
/// A token verifies only if its signature is the key's HMAC of its signing input (checked
/// here independently), never with another key or an empty one, and only with claims in
/// the time window and the expected issuer; a minted token verifies exactly when its
/// times are in the window.
pub fn token_validation(data: &[u8]) {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    match mode % 4 {
        0 => {
            if let Ok(text) = std::str::from_utf8(rest) {
                check(text, false);
            }
        }
        1 => check(&sign(HEADER_B64, rest, KEY), true),
        2 => {
            let (header, payload) = match rest.iter().position(|&b| b == b'\n') {
                Some(i) => (&rest[..i], &rest[i + 1..]),
                None => (rest, &[][..]),
            };
            check(&sign(&URL_SAFE_NO_PAD.encode(header), payload, KEY), true);
        }
        _ => minted(rest),
    }
}

/// The invariants of any token text; `signed`: it was signed with [`KEY`] here.
fn check(token: &str, signed: bool) {
    let Ok(unverified) = decode(token) else {
        return;
    };
    let now = now();
    let signature_ok = token.rsplit_once('.').is_some_and(|(input, sig)| {
        URL_SAFE_NO_PAD
            .decode(sig)
            .is_ok_and(|sig| sig == hmac(KEY, input.as_bytes()))
    });
    assert!(
        !signed || signature_ok,
        "a token signed here fails the independent check"
    );
    let result = unverified.verify(KEY, ISS, now);
    assert_eq!(
        unverified.verify_with(&JwtKey::new(KEY), ISS, now),
        result,
        "verify and verify_with disagree"
    );
    match result {
        Ok(claims) => {
            assert!(signature_ok, "verified without the key's signature");
            assert_eq!(unverified.iss(), Some(ISS), "verified with another issuer");
            assert_window(claims);
        }
        Err(ValidationError::BadSignature) => {
            assert!(!signature_ok, "the key's own signature refused");
        }
        Err(e) => assert!(signature_ok, "{e} before the signature was checked"),
    }
    assert_eq!(
        unverified.verify(OTHER_KEY, ISS, now),
        Err(ValidationError::BadSignature),
        "another key's token accepted"
    );
    assert_eq!(
        unverified.verify(b"", ISS, now),
        Err(ValidationError::EmptyKey)
    );
    assert_eq!(
        unverified.reject_unknown_issuer(now),
        ValidationError::UnknownIssuer
    );
    if signature_ok && let Some(iss) = unverified.iss() {
        assert_ne!(
            unverified.verify(KEY, iss, now),
            Err(ValidationError::IssuerMismatch),
            "the token's own issuer does not match it"
        );
    }
}

fn assert_window(claims: Claims) {
    assert!(claims.iat <= NOW + LEEWAY_SECS, "iat in the future");
    assert!(claims.exp > NOW - LEEWAY_SECS, "expired");
    if let Some(nbf) = claims.nbf {
        assert!(nbf <= NOW + LEEWAY_SECS, "not yet valid");
    }
}

/// A token minted from fuzzed claims: it decodes, names its issuer exactly, and verifies
/// exactly when its times are in the window.
fn minted(rest: &[u8]) {
    let (times, iss) = rest.split_at(rest.len().min(16));
    let mut iat = [0u8; 8];
    let mut exp = [0u8; 8];
    for (i, b) in times.iter().enumerate() {
        if i < 8 {
            iat[i] = *b;
        } else {
            exp[i - 8] = *b;
        }
    }
    let (iat, exp) = (i64::from_le_bytes(iat), i64::from_le_bytes(exp));
    // Small values are offsets from now; large ones stay as they are (extremes).
    let iat = if iat.unsigned_abs() < 1 << 20 {
        NOW + iat
    } else {
        iat
    };
    let exp = if exp.unsigned_abs() < 1 << 20 {
        iat.saturating_add(exp)
    } else {
        exp
    };
    let iss = String::from_utf8_lossy(iss);
    let token = encode_access_token(&iss, iat, exp, KEY);
    let decoded = decode(&token);
    if token.chars().count() > MAX_TOKEN_SIZE {
        assert_eq!(decoded.err(), Some(ValidationError::TooLong));
        return;
    }
    let unverified = must(decoded, "a minted token does not decode");
    assert_eq!(unverified.iss(), Some(&*iss), "the issuer does not survive");
    let expected = if iat > NOW + LEEWAY_SECS {
        Err(ValidationError::IssuedInFuture)
    } else if exp <= NOW - LEEWAY_SECS {
        Err(ValidationError::Expired)
    } else {
        Ok(Claims {
            iat,
            exp,
            nbf: None,
        })
    };
    assert_eq!(unverified.verify(KEY, &iss, now()), expected);
    check(&token, true);
}
