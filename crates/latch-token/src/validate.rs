//! Access-token validation, the hot path (reference §3.5), in two steps so the caller can
//! look the refresh token up by the unverified issuer in between:
//!
//! 1. [`decode`] checks the size and the structure, allows only HS256 and reads the
//!    claims without trusting them (`jsonwebtoken::decode_header` and
//!    `jsonwebtoken::dangerous::insecure_decode_claims`);
//! 2. [`UnverifiedToken::verify_with`] (or [`UnverifiedToken::verify`]) checks the
//!    signature (HMAC-SHA256 from the key's prepared state, compared in constant time;
//!    the crate docs say why not `jsonwebtoken::crypto::verify`) and then the claims with
//!    PyJWT's rules and a 10 s leeway; when no refresh token has that issuer,
//!    [`UnverifiedToken::reject_unknown_issuer`] does the same work with a dummy key and
//!    always fails.
//!
//! What is written here rather than taken from `jsonwebtoken`, and why (each is pinned by
//! a test in `tests/access_token.rs` or `tests/jsonwebtoken_interop.rs`):
//! - the claim checks. `jsonwebtoken`'s `Validation` reads the system clock (latch injects
//!   time), compares whole seconds as `u64` (PyJWT compares a float `now`, and a negative
//!   or float `iat`/`exp` is valid there), never checks `iat`, and has no "refuse any
//!   `aud`" rule; PyJWT's order of checks decides which error a token gets;
//! - the shape checks before it: PyJWT's `len(token) > 8192` limit, exactly three
//!   segments (`jsonwebtoken` splits from the right and reports a fourth segment as a
//!   base64 error of the header) and a 43-character canonical signature (so a malformed
//!   signature is told apart from a wrong one before any key is looked up);
//! - a second reading of a header `jsonwebtoken`'s typed `Header` refuses but PyJWT
//!   accepts (duplicate keys, where the later one wins as with `json.loads`; a `kid` or
//!   `typ` that is not a string; an unknown `alg`, which must be "algorithm not allowed",
//!   not "invalid header"), as a plain JSON object;
//! - the header Home Assistant and latch write is recognised by its encoded bytes rather
//!   than decoded: measured (thread CPU time, release build), `jsonwebtoken::decode_header`
//!   costs about 0.4 µs, a quarter of a first validation, to learn what the comparison
//!   of 36 bytes already says; any other header goes through it;
//! - the reading of the claims as PyJWT's `int()` reads them (floats truncated, integers
//!   beyond `i64` saturated, booleans and numeric strings refused), by `RawClaims`'s own
//!   `Deserialize`, which `jsonwebtoken::dangerous::insecure_decode_claims` runs on the
//!   decoded payload: it keeps only what the checks need and builds nothing else (the
//!   crate docs give the measurement). A unit test holds it to what reading the same
//!   payload as a `serde_json::Map` gives, errors included.
//!
//! Deliberate differences from PyJWT, all stricter and none affecting a token Home
//! Assistant or latch mints: base64url must be canonical and unpadded (PyJWT skips stray
//! characters and ignores non-zero trailing bits); a token must have exactly three
//! segments; the signature must be 32 bytes; `exp`, `iat` and `nbf` must be JSON numbers
//! (PyJWT's `int()` also takes numeric strings and booleans); any `aud` claim is refused
//! (PyJWT ignores a falsy one); a null `nbf` is refused (PyJWT raises a `TypeError`);
//! JSON nesting deeper than 128 is refused, and so is a lone surrogate escape such as
//! `"\ud800"` in any string (`serde_json` refuses it, `json.loads` reads it).
//!
//! A first validation allocates twice, both in [`decode`]: `jsonwebtoken`'s buffer for
//! the decoded payload and the issuer (a third if a payload string has escapes:
//! `serde_json`'s scratch buffer); verifying with a prepared [`JwtKey`] allocates
//! nothing (`tests/allocations.rs`). The caller's cache of verified tokens (latch-auth's)
//! is what makes repeat validations allocation-free.

use std::fmt;
use std::sync::LazyLock;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use jsonwebtoken::Algorithm;
use jsonwebtoken::errors::ErrorKind;
use serde::de::{self, Deserialize, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};

use crate::jwt::{HEADER_B64, JwtKey};

/// Longest token accepted, in characters (`MAX_TOKEN_SIZE`).
pub const MAX_TOKEN_SIZE: usize = 8192;

/// Clock leeway of the `exp`, `iat` and `nbf` checks, in seconds.
pub const LEEWAY_SECS: i64 = 10;

/// Length of a base64url-encoded HS256 signature (32 bytes).
const SIGNATURE_B64_LEN: usize = 43;

/// A registered claim named in a [`ValidationError`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Claim {
    /// Expiration time.
    Exp,
    /// Issued-at time.
    Iat,
    /// Not-before time.
    Nbf,
    /// Issuer (the refresh token id).
    Iss,
    /// Subject; must be a string if present.
    Sub,
    /// JWT id; must be a string if present.
    Jti,
}

impl Claim {
    /// The claim's name in the payload.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Exp => "exp",
            Self::Iat => "iat",
            Self::Nbf => "nbf",
            Self::Iss => "iss",
            Self::Sub => "sub",
            Self::Jti => "jti",
        }
    }
}

impl fmt::Display for Claim {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why an access token was rejected. Safe to log: it never contains the token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
pub enum ValidationError {
    /// Longer than [`MAX_TOKEN_SIZE`] characters.
    #[error("token longer than 8192 characters")]
    TooLong,
    /// Not three non-empty-signature, dot-separated segments.
    #[error("token is not three dot-separated segments")]
    Malformed,
    /// The header is not base64url-encoded JSON object.
    #[error("token header is not a base64url JSON object")]
    InvalidHeader,
    /// The header's `alg` is not `HS256` (this includes `none`).
    #[error("token algorithm is not HS256")]
    AlgorithmNotAllowed,
    /// The header asks for an unencoded, detached payload (`"b64": false`).
    #[error("token header asks for an unencoded payload")]
    UnencodedPayload,
    /// The payload segment is not base64url.
    #[error("token payload is not base64url")]
    PayloadNotBase64,
    /// The payload is not JSON.
    #[error("token payload is not JSON")]
    PayloadNotJson,
    /// The payload is JSON but not an object.
    #[error("token payload is not a JSON object")]
    PayloadNotObject,
    /// The signature segment is not a base64url-encoded 32-byte signature.
    #[error("token signature is not an HS256 signature")]
    MalformedSignature,
    /// The signature does not match the key.
    #[error("token signature does not match")]
    BadSignature,
    /// The verification key is empty.
    #[error("verification key is empty")]
    EmptyKey,
    /// No refresh token has the token's issuer.
    #[error("no refresh token has this issuer")]
    UnknownIssuer,
    /// A required claim (`exp`, `iat`, `iss`) is absent or null.
    #[error("required claim {0} is missing")]
    MissingClaim(Claim),
    /// A claim has a type PyJWT refuses (`exp`/`iat`/`nbf` not numbers, `sub`/`jti` not
    /// strings).
    #[error("claim {0} has an invalid value")]
    InvalidClaim(Claim),
    /// `exp <= now - 10 s`.
    #[error("token has expired")]
    Expired,
    /// `iat > now + 10 s`: a token from the future.
    #[error("token was issued in the future")]
    IssuedInFuture,
    /// `nbf > now + 10 s`.
    #[error("token is not valid yet")]
    NotYetValid,
    /// `iss` is not the expected refresh token id.
    #[error("token issuer does not match")]
    IssuerMismatch,
    /// The token has an `aud` claim; no audience is expected.
    #[error("token has an audience claim")]
    AudiencePresent,
}

/// The verified time claims of an access token (values beyond `i64` saturate).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Claims {
    /// Issued at, Unix seconds.
    pub iat: i64,
    /// Expires at, Unix seconds.
    pub exp: i64,
    /// Not before, Unix seconds, if the token has one.
    pub nbf: Option<i64>,
}

impl Claims {
    /// Whether the token has expired at `now`, by the same rule (and leeway) as
    /// [`UnverifiedToken::verify_with`]: a caller that keeps verified claims for a while
    /// stops accepting the token exactly when a fresh verification would refuse it.
    #[must_use]
    pub fn is_expired_at(&self, now: DateTime<Utc>) -> bool {
        exp_passed(self.exp, now)
    }
}

/// A structurally valid HS256 token whose signature and claims are not checked yet.
/// Made by [`decode`]; borrows the token string.
pub struct UnverifiedToken<'a> {
    signing_input: &'a str,
    signature: [u8; 32],
    claims: RawClaims,
}

impl fmt::Debug for UnverifiedToken<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The token itself is a bearer credential: show only the (public) issuer.
        f.debug_struct("UnverifiedToken")
            .field("iss", &self.iss())
            .finish_non_exhaustive()
    }
}

/// Checks the size and structure of `token` and reads its claims without trusting them
/// (reference §3.5 steps 1–2): at most [`MAX_TOKEN_SIZE`] characters; three base64url
/// segments; a JSON-object header whose `alg` is `HS256`; a JSON-object payload; a
/// 32-byte signature.
///
/// ```
/// let key = "0".repeat(128);
/// let now = chrono::DateTime::from_timestamp(1_700_000_000, 0).unwrap();
/// let jwt = latch_token::encode_access_token("abc", 1_700_000_000, 1_700_001_800, key.as_bytes());
/// let token = latch_token::decode(&jwt).unwrap();
/// assert_eq!(token.iss(), Some("abc"));
/// let claims = token.verify(key.as_bytes(), "abc", now).unwrap();
/// assert_eq!(claims.exp - claims.iat, 1800);
/// ```
///
/// # Errors
///
/// [`ValidationError::TooLong`], [`ValidationError::Malformed`],
/// [`ValidationError::InvalidHeader`], [`ValidationError::AlgorithmNotAllowed`],
/// [`ValidationError::UnencodedPayload`], [`ValidationError::MalformedSignature`],
/// [`ValidationError::PayloadNotBase64`], [`ValidationError::PayloadNotJson`] or
/// [`ValidationError::PayloadNotObject`].
pub fn decode(token: &str) -> Result<UnverifiedToken<'_>, ValidationError> {
    // `len(token)` counts characters; bytes are never fewer, so count only when needed.
    if token.len() > MAX_TOKEN_SIZE && token.chars().count() > MAX_TOKEN_SIZE {
        return Err(ValidationError::TooLong);
    }
    let (signing_input, signature) = token.rsplit_once('.').ok_or(ValidationError::Malformed)?;
    let (header_b64, payload_b64) = signing_input
        .split_once('.')
        .ok_or(ValidationError::Malformed)?;
    if payload_b64.contains('.') {
        return Err(ValidationError::Malformed);
    }
    check_header(token, header_b64)?;
    let signature = decode_signature(signature)?;
    let claims =
        jsonwebtoken::dangerous::insecure_decode_claims::<RawClaims>(token).map_err(|e| match e
            .kind()
        {
            ErrorKind::Json(e) if e.classify() == serde_json::error::Category::Data => {
                ValidationError::PayloadNotObject
            }
            ErrorKind::Json(_) => ValidationError::PayloadNotJson,
            _ => ValidationError::PayloadNotBase64,
        })?;
    Ok(UnverifiedToken {
        signing_input,
        signature,
        claims,
    })
}

/// The header must be a JSON object whose `alg` is `HS256` and whose `b64` is not
/// `false`. The header latch and Home Assistant write is recognised by its encoded bytes.
fn check_header(token: &str, header_b64: &str) -> Result<(), ValidationError> {
    if header_b64 == HEADER_B64 {
        return Ok(());
    }
    let (alg_is_hs256, unencoded_payload) = match jsonwebtoken::decode_header(token) {
        Ok(header) => (
            header.alg == Algorithm::HS256,
            // PyJWT: `header.get("b64", True) is False`.
            matches!(header.extras.get::<bool>("b64"), Ok(Some(false))),
        ),
        // jsonwebtoken's typed header refuses some that PyJWT reads: read those as
        // `json.loads` does.
        Err(e) if matches!(e.kind(), ErrorKind::Json(_)) => {
            let bytes = URL_SAFE_NO_PAD
                .decode(header_b64)
                .map_err(|_| ValidationError::InvalidHeader)?;
            let header: Map<String, Value> =
                serde_json::from_slice(&bytes).map_err(|_| ValidationError::InvalidHeader)?;
            (
                header.get("alg").and_then(Value::as_str) == Some("HS256"),
                header.get("b64") == Some(&Value::Bool(false)),
            )
        }
        Err(_) => return Err(ValidationError::InvalidHeader),
    };
    if !alg_is_hs256 {
        return Err(ValidationError::AlgorithmNotAllowed);
    }
    if unencoded_payload {
        return Err(ValidationError::UnencodedPayload);
    }
    Ok(())
}

/// The signature must be 32 bytes in canonical, unpadded base64url.
fn decode_signature(signature: &str) -> Result<[u8; 32], ValidationError> {
    // Room for what any 43 characters decode to (32 bytes, 33 if not canonical).
    let mut buf = [0u8; SIGNATURE_B64_LEN];
    match URL_SAFE_NO_PAD.decode_slice(signature, &mut buf) {
        Ok(32) if signature.len() == SIGNATURE_B64_LEN => {
            let mut out = [0u8; 32];
            out.copy_from_slice(&buf[..32]);
            Ok(out)
        }
        _ => Err(ValidationError::MalformedSignature),
    }
}

impl UnverifiedToken<'_> {
    /// The unverified issuer: the id of the refresh token to look up. `None` if the
    /// claim is absent or not a string (then no refresh token can match).
    #[must_use]
    pub fn iss(&self) -> Option<&str> {
        match &self.claims.iss {
            Iss::String(s) => Some(s),
            Iss::Absent | Iss::NotString => None,
        }
    }

    /// Verifies the token against the refresh token found for [`Self::iss`]: `jwt_key`
    /// (the UTF-8 bytes of its hex `jwt_key`) and `expected_iss` (its id). This prepares
    /// the key on every call; the hot path should keep a [`JwtKey`] per refresh token
    /// and call [`Self::verify_with`].
    ///
    /// # Errors
    ///
    /// As [`Self::verify_with`].
    pub fn verify(
        &self,
        jwt_key: &[u8],
        expected_iss: &str,
        now: DateTime<Utc>,
    ) -> Result<Claims, ValidationError> {
        self.verify_with(&JwtKey::new(jwt_key), expected_iss, now)
    }

    /// Verifies the token (reference §3.5 step 4), in PyJWT's order: the HMAC-SHA256
    /// signature, compared in constant time; `exp` and `iat` present; `iat <= now + 10`
    /// (else [`ValidationError::IssuedInFuture`]); `nbf <= now + 10` if present;
    /// `exp > now - 10` (else [`ValidationError::Expired`]); `iss == expected_iss`; no
    /// `aud`; `sub` and `jti` strings if present. `exp`, `iat` and `nbf` may be JSON
    /// integers or floats (truncated, as Python's `int()` does).
    ///
    /// The caller still has to check that the user is active (step 5).
    ///
    /// # Errors
    ///
    /// [`ValidationError::EmptyKey`] for an empty key, else the first failing check.
    pub fn verify_with(
        &self,
        key: &JwtKey,
        expected_iss: &str,
        now: DateTime<Utc>,
    ) -> Result<Claims, ValidationError> {
        let signature_ok = key.verify(self.signing_input.as_bytes(), &self.signature);
        if key.is_empty() {
            return Err(ValidationError::EmptyKey);
        }
        if !signature_ok {
            return Err(ValidationError::BadSignature);
        }
        self.claims.check(expected_iss, now)
    }

    /// The failure for a token whose issuer matches no refresh token. Home Assistant
    /// still runs the verification then (with an empty key and issuer), so the answer
    /// takes as long for an unknown id as for a known one; this does the same work as
    /// [`Self::verify_with`] (a prepared key, one HMAC, the claim checks) with a dummy
    /// 128-byte key, and always returns [`ValidationError::UnknownIssuer`].
    ///
    /// Callers that verify with raw key bytes ([`Self::verify`]) rather than a prepared
    /// [`JwtKey`] get matching timing from `self.verify(&[0; 128], "", now)` instead.
    #[must_use]
    pub fn reject_unknown_issuer(&self, now: DateTime<Utc>) -> ValidationError {
        static DUMMY_KEY: LazyLock<JwtKey> = LazyLock::new(|| JwtKey::new(&[0u8; 128]));
        let signature_ok = DUMMY_KEY.verify(self.signing_input.as_bytes(), &self.signature);
        let claims = self.claims.check("", now);
        let _ = std::hint::black_box((signature_ok, claims));
        ValidationError::UnknownIssuer
    }
}

// ---------------------------------------------------------------------------------------
// Claims as read, before any check.
//
// `jsonwebtoken::dangerous::insecure_decode_claims` decodes the payload and hands it to
// `serde_json` with `RawClaims`'s `Deserialize`, which keeps only what the checks need
// and reads every other value through without building it: the whole payload is still
// parsed and validated as `serde_json::Value` would parse it (strings checked, nesting
// capped at 128), and later duplicate keys win, as with Python's `json.loads`.

/// A time claim as found in the payload.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
enum Num {
    #[default]
    Absent,
    Null,
    /// Python's `int(value)`, saturated to `i64` (which changes no comparison with a
    /// representable `now`).
    Int(i64),
    /// Present but not a number.
    Invalid,
}

impl From<Read> for Num {
    fn from(value: Read) -> Self {
        match value {
            Read::Null => Self::Null,
            Read::Number(Some(n)) => Self::Int(n),
            Read::Number(None) | Read::String(_) | Read::Other => Self::Invalid,
        }
    }
}

/// Python's `int(float)`: truncation toward zero, saturated to `i64`. JSON has no NaN
/// or infinity, but serde_json reads a number too large for `f64` as infinite.
#[allow(clippy::cast_possible_truncation)]
fn truncate(v: f64) -> Option<i64> {
    v.is_finite().then(|| v.trunc() as i64)
}

/// The issuer as found in the payload.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
enum Iss {
    #[default]
    Absent,
    NotString,
    String(String),
}

impl From<Read> for Iss {
    fn from(value: Read) -> Self {
        match value {
            Read::String(Some(s)) => Self::String(s),
            Read::String(None) | Read::Null | Read::Number(_) | Read::Other => Self::NotString,
        }
    }
}

#[derive(Debug, Default, PartialEq, Eq)]
struct RawClaims {
    exp: Num,
    iat: Num,
    nbf: Num,
    iss: Iss,
    aud: bool,
    sub_invalid: bool,
    jti_invalid: bool,
}

/// A payload key: one of the claims [`RawClaims`] keeps, or any other.
enum Field {
    Exp,
    Iat,
    Nbf,
    Iss,
    Aud,
    Sub,
    Jti,
    Other,
}

impl<'de> Deserialize<'de> for Field {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct FieldVisitor;
        impl Visitor<'_> for FieldVisitor {
            type Value = Field;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a claim name")
            }
            fn visit_str<E: de::Error>(self, key: &str) -> Result<Field, E> {
                Ok(match key {
                    "exp" => Field::Exp,
                    "iat" => Field::Iat,
                    "nbf" => Field::Nbf,
                    "iss" => Field::Iss,
                    "aud" => Field::Aud,
                    "sub" => Field::Sub,
                    "jti" => Field::Jti,
                    _ => Field::Other,
                })
            }
        }
        deserializer.deserialize_identifier(FieldVisitor)
    }
}

/// A JSON value as far as the claim checks care.
#[derive(Debug, PartialEq, Eq)]
enum Read {
    Null,
    /// A number as Python's `int()` reads it; `None` if infinite.
    Number(Option<i64>),
    /// A string, kept only when [`ReadValue::keep_string`] asked for it.
    String(Option<String>),
    /// A boolean, an array or an object (read through, not kept).
    Other,
}

/// Reads one JSON value into a [`Read`] with `deserialize_any`, as `serde_json::Value`
/// would read it, without building arrays or objects.
#[derive(Clone, Copy)]
struct ReadValue {
    keep_string: bool,
}

impl ReadValue {
    const SKIP: Self = Self { keep_string: false };
    const KEEP: Self = Self { keep_string: true };
}

impl<'de> DeserializeSeed<'de> for ReadValue {
    type Value = Read;
    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Read, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for ReadValue {
    type Value = Read;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_unit<E: de::Error>(self) -> Result<Read, E> {
        Ok(Read::Null)
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Read, E> {
        Ok(Read::Other)
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Read, E> {
        Ok(Read::Number(Some(v)))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Read, E> {
        Ok(Read::Number(Some(i64::try_from(v).unwrap_or(i64::MAX))))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Read, E> {
        Ok(Read::Number(truncate(v)))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Read, E> {
        Ok(Read::String(self.keep_string.then(|| v.to_owned())))
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<Read, E> {
        Ok(Read::String(self.keep_string.then_some(v)))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Read, A::Error> {
        while seq.next_element_seed(Self::SKIP)?.is_some() {}
        Ok(Read::Other)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Read, A::Error> {
        while map.next_key_seed(Self::SKIP)?.is_some() {
            map.next_value_seed(Self::SKIP)?;
        }
        Ok(Read::Other)
    }
}

impl<'de> Deserialize<'de> for RawClaims {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ClaimsVisitor;
        impl<'de> Visitor<'de> for ClaimsVisitor {
            type Value = RawClaims;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<RawClaims, A::Error> {
                let mut claims = RawClaims::default();
                while let Some(field) = map.next_key::<Field>()? {
                    match field {
                        Field::Exp => claims.exp = map.next_value_seed(ReadValue::SKIP)?.into(),
                        Field::Iat => claims.iat = map.next_value_seed(ReadValue::SKIP)?.into(),
                        Field::Nbf => claims.nbf = map.next_value_seed(ReadValue::SKIP)?.into(),
                        Field::Iss => claims.iss = map.next_value_seed(ReadValue::KEEP)?.into(),
                        Field::Aud => {
                            map.next_value_seed(ReadValue::SKIP)?;
                            claims.aud = true;
                        }
                        Field::Sub => {
                            let value = map.next_value_seed(ReadValue::SKIP)?;
                            claims.sub_invalid = !matches!(value, Read::String(_));
                        }
                        Field::Jti => {
                            let value = map.next_value_seed(ReadValue::SKIP)?;
                            claims.jti_invalid = !matches!(value, Read::String(_));
                        }
                        Field::Other => {
                            map.next_value_seed(ReadValue::SKIP)?;
                        }
                    }
                }
                Ok(claims)
            }
        }
        deserializer.deserialize_map(ClaimsVisitor)
    }
}

/// Microseconds in a second, for exact comparisons with a microsecond `now`.
const MICROS: i128 = 1_000_000;

fn micros_of(secs: i64) -> i128 {
    i128::from(secs) * MICROS
}

/// Whether a token expiring at `exp` (Unix seconds) has expired at `now`: `exp <= now -
/// 10 s`, PyJWT's check with its leeway.
fn exp_passed(exp: i64, now: DateTime<Utc>) -> bool {
    let leeway_us = i128::from(LEEWAY_SECS) * MICROS;
    micros_of(exp) <= i128::from(now.timestamp_micros()) - leeway_us
}

impl RawClaims {
    fn check(&self, expected_iss: &str, now: DateTime<Utc>) -> Result<Claims, ValidationError> {
        // `require: ["exp", "iat"]`: absent or null counts as missing.
        if matches!(self.exp, Num::Absent | Num::Null) {
            return Err(ValidationError::MissingClaim(Claim::Exp));
        }
        if matches!(self.iat, Num::Absent | Num::Null) {
            return Err(ValidationError::MissingClaim(Claim::Iat));
        }
        let now_us = i128::from(now.timestamp_micros());
        let leeway_us = i128::from(LEEWAY_SECS) * MICROS;

        let Num::Int(iat) = self.iat else {
            return Err(ValidationError::InvalidClaim(Claim::Iat));
        };
        if micros_of(iat) > now_us + leeway_us {
            return Err(ValidationError::IssuedInFuture);
        }
        let nbf = match self.nbf {
            Num::Absent => None,
            Num::Null | Num::Invalid => return Err(ValidationError::InvalidClaim(Claim::Nbf)),
            Num::Int(nbf) => {
                if micros_of(nbf) > now_us + leeway_us {
                    return Err(ValidationError::NotYetValid);
                }
                Some(nbf)
            }
        };
        let Num::Int(exp) = self.exp else {
            return Err(ValidationError::InvalidClaim(Claim::Exp));
        };
        if exp_passed(exp, now) {
            return Err(ValidationError::Expired);
        }
        match &self.iss {
            Iss::Absent => return Err(ValidationError::MissingClaim(Claim::Iss)),
            Iss::String(iss) if iss == expected_iss => {}
            Iss::String(_) | Iss::NotString => return Err(ValidationError::IssuerMismatch),
        }
        if self.aud {
            return Err(ValidationError::AudiencePresent);
        }
        if self.sub_invalid {
            return Err(ValidationError::InvalidClaim(Claim::Sub));
        }
        if self.jti_invalid {
            return Err(ValidationError::InvalidClaim(Claim::Jti));
        }
        Ok(Claims { iat, exp, nbf })
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn claims(json: &str) -> RawClaims {
        serde_json::from_str(json).unwrap_or_else(|e| panic!("{json}: {e}"))
    }

    fn num(json: &str) -> Num {
        claims(&format!(r#"{{"exp":{json}}}"#)).exp
    }

    #[test]
    fn numbers_are_read_as_pythons_int_reads_them() {
        assert_eq!(claims("{}").exp, Num::Absent);
        assert_eq!(num("null"), Num::Null);
        assert_eq!(num("-5"), Num::Int(-5));
        assert_eq!(num("1.99"), Num::Int(1));
        assert_eq!(num("-1.99"), Num::Int(-1));
        assert_eq!(num("1e3"), Num::Int(1000));
        assert_eq!(num("18446744073709551615"), Num::Int(i64::MAX));
        assert_eq!(num("184467440737095516150"), Num::Int(i64::MAX));
        assert_eq!(num("1e300"), Num::Int(i64::MAX));
        assert_eq!(num("-1e300"), Num::Int(i64::MIN));
        for invalid in ["true", "\"5\"", "[5]", "{}", r#"{"a":[1,{"b":null}]}"#] {
            assert_eq!(num(invalid), Num::Invalid, "{invalid}");
        }
    }

    #[test]
    fn claims_keep_what_the_checks_need() {
        let c = claims(r#"{"iss":"a","iss":"b","exp":2,"aud":null,"sub":1,"jti":"j","x":[1]}"#);
        assert_eq!(c.iss, Iss::String("b".into()));
        assert_eq!(
            (c.exp, c.iat, c.nbf),
            (Num::Int(2), Num::Absent, Num::Absent)
        );
        assert!(c.aud && c.sub_invalid && !c.jti_invalid);
        assert_eq!(claims(r#"{"iss":null}"#).iss, Iss::NotString);
        assert_eq!(claims(r#"{"iss":["a"]}"#).iss, Iss::NotString);
        // Escaped keys and values are read as `json.loads` reads them.
        let c = claims(r#"{"i\u0073s":"a\"\u00e9","s\u0075b":"x","sub":2,"sub":"y"}"#);
        assert_eq!(c.iss, Iss::String("a\"é".into()));
        assert!(!c.sub_invalid);
    }

    #[test]
    fn everything_in_the_payload_is_parsed() {
        // Values the checks do not keep are still read through, so a payload that is
        // not JSON is refused wherever the fault is.
        for bad in [
            r#"{"x":[1,}"#,
            r#"{"x":{"y":tru}}"#,
            "{\"x\":\"\u{1}\"}",
            r#"{"x":"\ud800"}"#,
            r#"{"x":1e400}"#,
            r#"{"x":1} x"#,
        ] {
            assert!(serde_json::from_str::<RawClaims>(bad).is_err(), "{bad}");
        }
        let deep = format!(r#"{{"x":{}{}}}"#, "[".repeat(200), "]".repeat(200));
        assert!(serde_json::from_str::<RawClaims>(&deep).is_err());
        assert!(serde_json::from_slice::<RawClaims>(b"{\"x\":\"\xff\"}").is_err());
    }

    /// How the claims were read before `RawClaims` had its own `Deserialize`: from the
    /// `serde_json::Value` object. The property test below holds the two to the same
    /// results, errors included.
    fn read_through_value(payload: &[u8]) -> Result<RawClaims, serde_json::error::Category> {
        fn num(value: Option<&Value>) -> Num {
            match value {
                None => Num::Absent,
                Some(Value::Null) => Num::Null,
                Some(Value::Number(n)) => n
                    .as_i64()
                    .or_else(|| n.as_u64().map(|_| i64::MAX))
                    .or_else(|| n.as_f64().and_then(truncate))
                    .map_or(Num::Invalid, Num::Int),
                Some(_) => Num::Invalid,
            }
        }
        let map: Map<String, Value> = serde_json::from_slice(payload).map_err(|e| e.classify())?;
        let not_string = |key: &str| map.get(key).is_some_and(|v| !v.is_string());
        Ok(RawClaims {
            exp: num(map.get("exp")),
            iat: num(map.get("iat")),
            nbf: num(map.get("nbf")),
            iss: match map.get("iss") {
                None => Iss::Absent,
                Some(Value::String(s)) => Iss::String(s.clone()),
                Some(_) => Iss::NotString,
            },
            aud: map.contains_key("aud"),
            sub_invalid: not_string("sub"),
            jti_invalid: not_string("jti"),
        })
    }

    /// JSON-ish text made mostly of claim names, values and structure characters.
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
                Just("\"sub\"".to_owned()),
                Just("\"jti\"".to_owned()),
                Just("\"\\u0069ss\"".to_owned()),
                Just("null".to_owned()),
                Just("true".to_owned()),
                Just("1e400".to_owned()),
                Just("18446744073709551616".to_owned()),
                any::<i64>().prop_map(|n| n.to_string()),
                any::<u64>().prop_map(|n| n.to_string()),
                any::<f64>().prop_map(|n| n.to_string()),
                "\"[^\"]{0,8}\"",
            ],
            0..24,
        )
        .prop_map(|parts| parts.concat())
    }

    /// A well-formed claims object with arbitrary claim values (a generated value list
    /// alone is rarely valid JSON).
    fn claims_object() -> impl Strategy<Value = String> {
        let key = prop_oneof![
            Just("iss"),
            Just("exp"),
            Just("iat"),
            Just("nbf"),
            Just("aud"),
            Just("sub"),
            Just("jti"),
            Just("x"),
        ];
        let value = prop_oneof![
            Just("null".to_owned()),
            Just("false".to_owned()),
            Just("[1,{\"a\":\"b\"}]".to_owned()),
            Just("{}".to_owned()),
            any::<i64>().prop_map(|n| n.to_string()),
            any::<u64>().prop_map(|n| n.to_string()),
            any::<f64>().prop_map(|n| format!("{n:e}")),
            any::<String>().prop_map(|s| serde_json::to_string(&s).unwrap_or_default()),
        ];
        prop::collection::vec((key, value), 0..10).prop_map(|entries| {
            let body: Vec<String> = entries
                .iter()
                .map(|(k, v)| format!("\"{k}\":{v}"))
                .collect();
            format!("{{{}}}", body.join(","))
        })
    }

    fn same_as_through_value(payload: &[u8]) -> Result<(), TestCaseError> {
        let direct = serde_json::from_slice::<RawClaims>(payload).map_err(|e| e.classify());
        prop_assert_eq!(direct, read_through_value(payload));
        Ok(())
    }

    proptest! {
        #[test]
        fn reads_claims_as_the_value_object_did(payload in jsonish()) {
            same_as_through_value(payload.as_bytes())?;
        }

        #[test]
        fn reads_well_formed_claims_as_the_value_object_did(payload in claims_object()) {
            same_as_through_value(payload.as_bytes())?;
        }

        #[test]
        fn reads_bytes_as_the_value_object_did(bytes in prop::collection::vec(any::<u8>(), 0..64)) {
            same_as_through_value(&bytes)?;
        }
    }
}
