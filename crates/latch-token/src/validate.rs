//! Access-token validation, the hot path (reference §3.5), in two steps so the caller can
//! look the refresh token up by the unverified issuer in between:
//!
//! 1. [`decode`] checks the size and the structure, allows only HS256 and extracts the
//!    claims without trusting them;
//! 2. [`UnverifiedToken::verify_with`] (or [`UnverifiedToken::verify`]) checks the
//!    signature in constant time and the claims with PyJWT's rules and a 10 s leeway;
//!    when no refresh token has that issuer, [`UnverifiedToken::reject_unknown_issuer`]
//!    does the same work with a dummy key and always fails.
//!
//! Nothing here allocates on the path of a well-formed token: the base64 segments are
//! decoded into stack buffers; the standard header is recognised by its encoded bytes;
//! a payload laid out as Home Assistant mints it is parsed by a small exact parser and
//! any other by streaming serde_json visitors that keep only the claims checked; the
//! issuer is copied into an inline buffer (ids up to 64 bytes). The key is prepared once
//! per refresh token ([`JwtKey`]), so verification is one HMAC over the signing input.
//!
//! Deliberate differences from PyJWT, all stricter and none affecting a token Home
//! Assistant or latch mints: base64url must be canonical and unpadded (PyJWT skips stray
//! characters and ignores non-zero trailing bits); a token must have exactly three segments; the signature must be 32
//! bytes; `exp`, `iat` and `nbf` must be JSON numbers (PyJWT's `int()` also takes numeric
//! strings and booleans); any `aud` claim is refused (PyJWT ignores a falsy one);
//! a null `nbf` is refused (PyJWT raises a `TypeError`); JSON nesting deeper than 128 is
//! refused.

use std::fmt;
use std::sync::LazyLock;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use serde::Deserializer as _;
use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};

use crate::jwt::{HEADER_B64, JwtKey, SIGNATURE_LEN};

/// Longest token accepted, in characters (`MAX_TOKEN_SIZE`).
pub const MAX_TOKEN_SIZE: usize = 8192;

/// Clock leeway of the `exp`, `iat` and `nbf` checks, in seconds.
pub const LEEWAY_SECS: i64 = 10;

/// Length of a base64url-encoded HS256 signature.
const SIGNATURE_B64_LEN: usize = 43;
/// Segments up to this many characters decode into a small stack buffer.
const SMALL_SEGMENT: usize = 512;
const SMALL_BUF: usize = SMALL_SEGMENT / 4 * 3;
/// Enough for any segment of a token within [`MAX_TOKEN_SIZE`].
const LARGE_BUF: usize = MAX_TOKEN_SIZE.div_ceil(4) * 3;
/// Issuers up to this many bytes are kept inline (Home Assistant's ids have 32).
const ISS_INLINE: usize = 64;

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
    signature: [u8; SIGNATURE_LEN],
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

/// Checks the size and structure of `token` and extracts its claims without trusting
/// them (reference §3.5 steps 1–2): at most [`MAX_TOKEN_SIZE`] characters; three
/// base64url segments; a JSON-object header whose `alg` is `HS256`; a JSON-object
/// payload; a 32-byte signature.
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
/// [`ValidationError::UnencodedPayload`], [`ValidationError::PayloadNotBase64`],
/// [`ValidationError::MalformedSignature`], [`ValidationError::PayloadNotJson`] or
/// [`ValidationError::PayloadNotObject`].
pub fn decode(token: &str) -> Result<UnverifiedToken<'_>, ValidationError> {
    // `len(token)` counts characters; bytes are never fewer, so count only when needed.
    if token.len() > MAX_TOKEN_SIZE && token.chars().count() > MAX_TOKEN_SIZE {
        return Err(ValidationError::TooLong);
    }
    let (signing_input, signature_b64) =
        token.rsplit_once('.').ok_or(ValidationError::Malformed)?;
    let (header_b64, payload_b64) = signing_input
        .split_once('.')
        .ok_or(ValidationError::Malformed)?;
    if payload_b64.contains('.') {
        return Err(ValidationError::Malformed);
    }

    if header_b64 != HEADER_B64 {
        let header = with_decoded(header_b64, ValidationError::InvalidHeader, parse_header)?;
        if !header.alg_is_hs256 {
            return Err(ValidationError::AlgorithmNotAllowed);
        }
        if header.unencoded_payload {
            return Err(ValidationError::UnencodedPayload);
        }
    }

    if signature_b64.len() != SIGNATURE_B64_LEN {
        return Err(ValidationError::MalformedSignature);
    }
    let mut sig_buf = [0u8; SIGNATURE_LEN + 1];
    let n = URL_SAFE_NO_PAD
        .decode_slice(signature_b64, &mut sig_buf)
        .map_err(|_| ValidationError::MalformedSignature)?;
    let signature: [u8; SIGNATURE_LEN] = sig_buf
        .get(..n)
        .and_then(|s| s.try_into().ok())
        .ok_or(ValidationError::MalformedSignature)?;

    let claims = with_decoded(
        payload_b64,
        ValidationError::PayloadNotBase64,
        parse_payload,
    )?;
    Ok(UnverifiedToken {
        signing_input,
        signature,
        claims,
    })
}

impl UnverifiedToken<'_> {
    /// The unverified issuer: the id of the refresh token to look up. `None` if the
    /// claim is absent or not a string (then no refresh token can match).
    #[must_use]
    pub fn iss(&self) -> Option<&str> {
        self.claims.iss.as_str()
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

/// Decodes a base64url segment into a stack buffer and hands the bytes to `f`.
fn with_decoded<R>(
    segment: &str,
    err: ValidationError,
    f: impl FnOnce(&[u8]) -> Result<R, ValidationError>,
) -> Result<R, ValidationError> {
    if segment.len() <= SMALL_SEGMENT {
        let mut buf = [0u8; SMALL_BUF];
        let n = URL_SAFE_NO_PAD
            .decode_slice(segment, &mut buf)
            .map_err(|_| err)?;
        f(buf.get(..n).ok_or(err)?)
    } else {
        with_decoded_large(segment, err, f)
    }
}

#[inline(never)]
#[cold]
fn with_decoded_large<R>(
    segment: &str,
    err: ValidationError,
    f: impl FnOnce(&[u8]) -> Result<R, ValidationError>,
) -> Result<R, ValidationError> {
    let mut buf = [0u8; LARGE_BUF];
    let n = URL_SAFE_NO_PAD
        .decode_slice(segment, &mut buf)
        .map_err(|_| err)?;
    f(buf.get(..n).ok_or(err)?)
}

// ---------------------------------------------------------------------------------------
// Claims as parsed, before any check.

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

/// A string claim captured from the payload.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
enum Captured {
    #[default]
    Absent,
    NotString,
    Inline {
        len: u8,
        bytes: [u8; ISS_INLINE],
    },
    Heap(Box<str>),
}

impl Captured {
    fn from_str(s: &str) -> Self {
        match u8::try_from(s.len()) {
            Ok(len) if s.len() <= ISS_INLINE => {
                let mut bytes = [0u8; ISS_INLINE];
                bytes[..s.len()].copy_from_slice(s.as_bytes());
                Self::Inline { len, bytes }
            }
            _ => Self::Heap(s.into()),
        }
    }

    fn as_str(&self) -> Option<&str> {
        std::str::from_utf8(self.as_bytes()?).ok()
    }

    /// The captured string's bytes (always UTF-8: copied from a `&str`).
    fn as_bytes(&self) -> Option<&[u8]> {
        match self {
            Self::Absent | Self::NotString => None,
            Self::Inline { len, bytes } => bytes.get(..usize::from(*len)),
            Self::Heap(s) => Some(s.as_bytes()),
        }
    }
}

#[derive(Debug, Default, PartialEq, Eq)]
struct RawClaims {
    exp: Num,
    iat: Num,
    nbf: Num,
    iss: Captured,
    aud: bool,
    sub_invalid: bool,
    jti_invalid: bool,
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

fn saturate(v: i128) -> i64 {
    i64::try_from(v).unwrap_or(if v < 0 { i64::MIN } else { i64::MAX })
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
            Captured::Absent => return Err(ValidationError::MissingClaim(Claim::Iss)),
            iss if iss.as_bytes() != Some(expected_iss.as_bytes()) => {
                return Err(ValidationError::IssuerMismatch);
            }
            _ => {}
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

// ---------------------------------------------------------------------------------------
// JSON parsing: streaming visitors that keep only what the checks need. Later duplicate
// keys win, as with Python's `json.loads`.

#[derive(Debug, Default)]
struct Header {
    alg_is_hs256: bool,
    unencoded_payload: bool,
}

fn parse_header(bytes: &[u8]) -> Result<Header, ValidationError> {
    parse_object(bytes, HeaderVisitor).map_err(|_| ValidationError::InvalidHeader)
}

fn parse_payload(bytes: &[u8]) -> Result<RawClaims, ValidationError> {
    if let Some(claims) = parse_payload_fast(bytes) {
        return Ok(claims);
    }
    parse_payload_general(bytes)
}

fn parse_payload_general(bytes: &[u8]) -> Result<RawClaims, ValidationError> {
    parse_object(bytes, PayloadVisitor).map_err(|e| match e.classify() {
        serde_json::error::Category::Data => ValidationError::PayloadNotObject,
        _ => ValidationError::PayloadNotJson,
    })
}

/// The payload exactly as Home Assistant and latch mint it,
/// `{"iss":"<id>","iat":<int>,"exp":<int>}` with a plain id (ASCII letters, digits, `-`,
/// `_`, at most 64) and integers of at most 18 digits, parsed without serde; anything
/// else returns `None` and goes through the general parser, which gives the same result
/// for these inputs.
fn parse_payload_fast(bytes: &[u8]) -> Option<RawClaims> {
    let rest = bytes.strip_prefix(b"{\"iss\":\"")?;
    // One pass: find the closing quote, refusing anything but plain id characters.
    let mut end = 0;
    loop {
        match *rest.get(end)? {
            b'"' => break,
            b'0'..=b'9' | b'a'..=b'z' | b'A'..=b'Z' | b'-' | b'_' if end < ISS_INLINE => end += 1,
            _ => return None,
        }
    }
    let (iss, rest) = rest.split_at(end);
    let rest = rest.strip_prefix(b"\",\"iat\":")?;
    let (iat, rest) = json_small_int(rest)?;
    let rest = rest.strip_prefix(b",\"exp\":")?;
    let (exp, rest) = json_small_int(rest)?;
    if rest != b"}" {
        return None;
    }
    Some(RawClaims {
        exp: Num::Int(exp),
        iat: Num::Int(iat),
        iss: Captured::from_str(std::str::from_utf8(iss).ok()?),
        ..RawClaims::default()
    })
}

/// A JSON integer of 1 to 18 digits (no leading zero, optional `-`) at the start of `b`.
fn json_small_int(b: &[u8]) -> Option<(i64, &[u8])> {
    let (negative, digits) = match b.split_first() {
        Some((b'-', rest)) => (true, rest),
        _ => (false, b),
    };
    let n = digits.iter().take_while(|c| c.is_ascii_digit()).count();
    if n == 0 || n > 18 || (n > 1 && digits.first() == Some(&b'0')) {
        return None;
    }
    let (num, rest) = digits.split_at(n);
    let value = num
        .iter()
        .fold(0_i64, |acc, &d| acc * 10 + i64::from(d - b'0'));
    Some((if negative { -value } else { value }, rest))
}

fn parse_object<'de, V: Visitor<'de>>(
    bytes: &'de [u8],
    visitor: V,
) -> Result<V::Value, serde_json::Error> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value = (&mut de).deserialize_map(visitor)?;
    de.end()?;
    Ok(value)
}

/// The object keys the visitors care about.
enum Key {
    Alg,
    B64,
    Exp,
    Iat,
    Nbf,
    Iss,
    Aud,
    Sub,
    Jti,
    Other,
}

struct KeySeed;

impl<'de> DeserializeSeed<'de> for KeySeed {
    type Value = Key;
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Key, D::Error> {
        d.deserialize_str(self)
    }
}

impl Visitor<'_> for KeySeed {
    type Value = Key;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object key")
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Key, E> {
        Ok(match v {
            "alg" => Key::Alg,
            "b64" => Key::B64,
            "exp" => Key::Exp,
            "iat" => Key::Iat,
            "nbf" => Key::Nbf,
            "iss" => Key::Iss,
            "aud" => Key::Aud,
            "sub" => Key::Sub,
            "jti" => Key::Jti,
            _ => Key::Other,
        })
    }
}

/// Any JSON value, reduced to what the checks need.
enum Value {
    Null,
    Bool(bool),
    Int(i64),
    Str(Captured),
    Other,
}

impl Value {
    fn into_num(self) -> Num {
        match self {
            Self::Null => Num::Null,
            Self::Int(v) => Num::Int(v),
            Self::Bool(_) | Self::Str(_) | Self::Other => Num::Invalid,
        }
    }
}

/// Deserializes any value; `capture` keeps string contents.
#[derive(Clone, Copy)]
struct ValueSeed {
    capture: bool,
}

impl<'de> DeserializeSeed<'de> for ValueSeed {
    type Value = Value;
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for ValueSeed {
    type Value = Value;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_unit<E: de::Error>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_none<E: de::Error>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Value, E> {
        Ok(Value::Int(v))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Value, E> {
        Ok(Value::Int(i64::try_from(v).unwrap_or(i64::MAX)))
    }
    fn visit_i128<E: de::Error>(self, v: i128) -> Result<Value, E> {
        Ok(Value::Int(saturate(v)))
    }
    fn visit_u128<E: de::Error>(self, v: u128) -> Result<Value, E> {
        Ok(Value::Int(i64::try_from(v).unwrap_or(i64::MAX)))
    }
    #[allow(clippy::cast_possible_truncation)]
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Value, E> {
        // Python's int(float) truncates; the cast saturates. JSON has no NaN/inf.
        Ok(if v.is_finite() {
            Value::Int(v.trunc() as i64)
        } else {
            Value::Other
        })
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Value, E> {
        Ok(Value::Str(if self.capture {
            Captured::from_str(v)
        } else {
            Captured::NotString
        }))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Value::Other)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(Value::Other)
    }
}

const CAPTURE: ValueSeed = ValueSeed { capture: true };
const CLASSIFY: ValueSeed = ValueSeed { capture: false };

struct HeaderVisitor;

impl<'de> Visitor<'de> for HeaderVisitor {
    type Value = Header;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Header, A::Error> {
        let mut header = Header::default();
        while let Some(key) = map.next_key_seed(KeySeed)? {
            match key {
                Key::Alg => {
                    header.alg_is_hs256 = matches!(
                        map.next_value_seed(CAPTURE)?,
                        Value::Str(s) if s.as_str() == Some("HS256")
                    );
                }
                // PyJWT: `header.get("b64", True) is False`.
                Key::B64 => {
                    header.unencoded_payload =
                        matches!(map.next_value_seed(CLASSIFY)?, Value::Bool(false));
                }
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(header)
    }
}

struct PayloadVisitor;

impl<'de> Visitor<'de> for PayloadVisitor {
    type Value = RawClaims;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<RawClaims, A::Error> {
        let mut claims = RawClaims::default();
        while let Some(key) = map.next_key_seed(KeySeed)? {
            match key {
                Key::Exp => claims.exp = map.next_value_seed(CLASSIFY)?.into_num(),
                Key::Iat => claims.iat = map.next_value_seed(CLASSIFY)?.into_num(),
                Key::Nbf => claims.nbf = map.next_value_seed(CLASSIFY)?.into_num(),
                Key::Iss => {
                    claims.iss = match map.next_value_seed(CAPTURE)? {
                        Value::Str(s) => s,
                        _ => Captured::NotString,
                    };
                }
                Key::Aud => {
                    map.next_value::<IgnoredAny>()?;
                    claims.aud = true;
                }
                Key::Sub => {
                    claims.sub_invalid = !matches!(map.next_value_seed(CLASSIFY)?, Value::Str(_));
                }
                Key::Jti => {
                    claims.jti_invalid = !matches!(map.next_value_seed(CLASSIFY)?, Value::Str(_));
                }
                Key::Alg | Key::B64 | Key::Other => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(claims)
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn fast_path_takes_minted_payloads() {
        let p = br#"{"iss":"4f2c9a1e8b7d4c3a9e6f1b2d3c4a5e6f","iat":1700000000,"exp":1700001800}"#;
        let fast = parse_payload_fast(p).unwrap();
        assert_eq!(fast.iss.as_str(), Some("4f2c9a1e8b7d4c3a9e6f1b2d3c4a5e6f"));
        assert_eq!(
            (fast.iat, fast.exp),
            (Num::Int(1_700_000_000), Num::Int(1_700_001_800))
        );
        assert_eq!(Ok(fast), parse_payload_general(p));
    }

    #[test]
    fn fast_path_leaves_everything_else_to_serde() {
        for p in [
            r#"{"iss":"a\u0062","iat":1,"exp":2}"#,
            r#"{"iss":"a","iat":1.5,"exp":2}"#,
            r#"{"iss":"a","iat":1e3,"exp":2}"#,
            r#"{"iss":"a","iat":01,"exp":2}"#,
            r#"{"iss":"a","iat":1234567890123456789,"exp":2}"#,
            r#"{"iss":"a","iat":1,"exp":2,"aud":"x"}"#,
            r#"{"iss":"a","iat":1,"exp":2} "#,
            r#"{ "iss":"a","iat":1,"exp":2}"#,
            r#"{"iss":"a b","iat":1,"exp":2}"#,
            r#"{"iss":"a","iat":-,"exp":2}"#,
            r#"{"iss":"a","exp":2,"iat":1}"#,
        ] {
            assert_eq!(parse_payload_fast(p.as_bytes()), None, "{p}");
        }
        let long = format!(r#"{{"iss":"{}","iat":1,"exp":2}}"#, "a".repeat(65));
        assert_eq!(parse_payload_fast(long.as_bytes()), None);
        let edge = format!(
            r#"{{"iss":"{}","iat":-0,"exp":999999999999999999}}"#,
            "a".repeat(64)
        );
        assert_eq!(
            parse_payload_fast(edge.as_bytes()).map(Ok),
            Some(parse_payload_general(edge.as_bytes()))
        );
    }

    fn payload_like() -> impl Strategy<Value = String> {
        (
            "[a-zA-Z0-9_ \\\"-]{0,70}",
            prop_oneof![Just(String::new()), Just("-".to_owned())],
            "[0-9]{0,20}",
            prop_oneof![
                Just(String::new()),
                Just(".5".to_owned()),
                Just("e1".to_owned())
            ],
            any::<i64>(),
            prop_oneof![
                Just("}".to_owned()),
                Just(",\"x\":1}".to_owned()),
                Just("} ".to_owned())
            ],
        )
            .prop_map(|(iss, sign, iat, frac, exp, tail)| {
                format!(r#"{{"iss":"{iss}","iat":{sign}{iat}{frac},"exp":{exp}{tail}"#)
            })
    }

    proptest! {
        #[test]
        fn fast_path_agrees_with_the_general_parser(p in payload_like()) {
            if let Some(fast) = parse_payload_fast(p.as_bytes()) {
                prop_assert_eq!(Ok(fast), parse_payload_general(p.as_bytes()));
            }
        }

        #[test]
        fn fast_path_takes_every_plain_payload(
            iss in "[a-zA-Z0-9_-]{0,64}",
            iat in -999_999_999_999_999_999_i64..=999_999_999_999_999_999,
            exp in -999_999_999_999_999_999_i64..=999_999_999_999_999_999,
        ) {
            let p = format!(r#"{{"iss":"{iss}","iat":{iat},"exp":{exp}}}"#);
            let fast = parse_payload_fast(p.as_bytes());
            prop_assert!(fast.is_some());
            prop_assert_eq!(fast.map(Ok), Some(parse_payload_general(p.as_bytes())));
        }
    }
}
