//! HS256 access tokens as Home Assistant mints them with PyJWT (reference §3.4 step 3):
//! the signing key, the byte-exact encoder and Python's JSON string escaping.

use std::fmt::{self, Write as _};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use hmac::{Hmac, KeyInit, Mac};
use jsonwebtoken::{Algorithm, EncodingKey};
use latch_models::RefreshToken;
use sha2::Sha256;

use crate::time::whole_seconds;

/// The header every access token carries: `{"alg":"HS256","typ":"JWT"}` (PyJWT's compact
/// JSON, keys sorted), base64url without padding.
pub const HEADER_B64: &str = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9";

/// An HS256 key, prepared once: the HMAC-SHA256 state keyed with the key bytes (for
/// verifying) and `jsonwebtoken`'s [`EncodingKey`] (for minting).
///
/// Build one per refresh token (from its `jwt_key`, used as the UTF-8 bytes of the hex
/// string) and keep it next to the token, so a validation neither copies nor re-keys:
/// [`crate::UnverifiedToken::verify_with`] takes it, [`crate::UnverifiedToken::verify`]
/// builds one per call. A verification clones the keyed state (the inner and outer
/// SHA-256 states after the padded key, a fixed-size value on the stack) instead of hashing
/// the key again; see the crate docs for why this is not `jsonwebtoken::crypto::verify`.
/// `Debug` redacts; the HMAC states (`hmac`/`sha2` with their `zeroize` feature) and
/// `jsonwebtoken`'s key bytes are wiped when dropped.
#[derive(Clone)]
pub struct JwtKey {
    verifier: Option<Hmac<Sha256>>,
    encoding: EncodingKey,
    empty: bool,
}

impl JwtKey {
    /// Prepares `key`. An empty key is accepted here but never verifies anything.
    #[must_use]
    pub fn new(key: &[u8]) -> Self {
        Self {
            // HMAC takes keys of any length (a long one is hashed first), so this is
            // never `None`; if it were, the key would verify nothing.
            verifier: <Hmac<Sha256> as KeyInit>::new_from_slice(key).ok(),
            encoding: EncodingKey::from_secret(key),
            empty: key.is_empty(),
        }
    }

    /// The key of `token`'s access tokens: the UTF-8 bytes of its `jwt_key`.
    #[must_use]
    pub fn from_refresh_token(token: &RefreshToken) -> Self {
        Self::new(token.jwt_key.expose().as_bytes())
    }

    /// True if the key bytes were empty.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.empty
    }

    /// The base64url HS256 signature of `message` (`jsonwebtoken::crypto::sign`).
    /// `None` only if `jsonwebtoken` refused to sign, which it never does for an HMAC key
    /// (HMAC takes keys of any length).
    fn sign(&self, message: &[u8]) -> Option<String> {
        jsonwebtoken::crypto::sign(message, &self.encoding, Algorithm::HS256).ok()
    }

    /// Whether `signature` is this key's HMAC-SHA256 of `message`, compared in constant
    /// time (`hmac`'s `verify_slice`). The prepared state is cloned, so nothing is
    /// allocated and the key is not hashed again.
    pub(crate) fn verify(&self, message: &[u8], signature: &[u8; 32]) -> bool {
        let Some(mut mac) = self.verifier.clone() else {
            return false;
        };
        mac.update(message);
        mac.verify_slice(signature).is_ok()
    }
}

impl fmt::Debug for JwtKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("JwtKey(<redacted>)")
    }
}

/// Mints an access token from `token` at `now`, exactly as Home Assistant does:
/// `iat = int(now)`, `exp = iat + int(access_token_expiration)`, `iss = token.id`,
/// signed with `token.jwt_key`. The usage bookkeeping (`last_used_at`, sliding expiry)
/// is [`crate::record_use`]'s job, and the provider check the caller's.
///
/// ```
/// # use latch_models::{User, RefreshToken};
/// # use latch_token::{NewRefreshToken, create_refresh_token};
/// # let mut user = User::new(None); user.is_active = true;
/// # let now = chrono::DateTime::from_timestamp(1_700_000_000, 0).unwrap();
/// # let token = create_refresh_token(&user, [], NewRefreshToken::normal("https://c/", None), now, "1").unwrap();
/// let jwt = latch_token::mint_access_token(&token, now);
/// assert!(jwt.starts_with(latch_token::HEADER_B64));
/// ```
#[must_use]
pub fn mint_access_token(token: &RefreshToken, now: DateTime<Utc>) -> String {
    let iat = whole_seconds(now);
    let exp = iat.saturating_add(token.access_token_lifetime_secs());
    encode_access_token(
        token.id.as_str(),
        iat,
        exp,
        token.jwt_key.expose().as_bytes(),
    )
}

/// Encodes and signs the claims `{"iss":iss,"iat":iat,"exp":exp}` (in that order, compact,
/// `iss` escaped as Python's `json.dumps` does) under the standard header with the HMAC
/// key `jwt_key`. [`mint_access_token`] is the usual entry point.
#[must_use]
pub fn encode_access_token(iss: &str, iat: i64, exp: i64, jwt_key: &[u8]) -> String {
    encode_access_token_with(iss, iat, exp, &JwtKey::new(jwt_key))
}

/// [`encode_access_token`] with a prepared key. The JSON and its layout are written
/// here (see the crate docs for why not by `jsonwebtoken::encode`); the signature is
/// `jsonwebtoken`'s. Should `jsonwebtoken` ever refuse to sign, the token is returned
/// with an empty signature, which no verifier accepts.
#[must_use]
pub fn encode_access_token_with(iss: &str, iat: i64, exp: i64, key: &JwtKey) -> String {
    let mut payload = String::with_capacity(iss.len() + 48);
    payload.push_str("{\"iss\":");
    push_python_json_string(&mut payload, iss);
    // Writing into a String cannot fail.
    let _ = write!(payload, ",\"iat\":{iat},\"exp\":{exp}}}");

    let mut out = String::with_capacity(HEADER_B64.len() + payload.len() * 4 / 3 + 48);
    out.push_str(HEADER_B64);
    out.push('.');
    URL_SAFE_NO_PAD.encode_string(payload.as_bytes(), &mut out);
    let signature = key.sign(out.as_bytes()).unwrap_or_default();
    out.push('.');
    out.push_str(&signature);
    out
}

/// Appends `s` as a JSON string the way Python's `json.dumps` (with its default
/// `ensure_ascii=True`) writes it: `\"`, `\\`, `\b`, `\f`, `\n`, `\r`, `\t`, every other
/// character outside `0x20..=0x7e` as `\uXXXX` (lower-case hex, surrogate pairs above
/// the BMP), everything else as is.
fn push_python_json_string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{08}' => out.push_str("\\b"),
            '\u{0c}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            ' '..='~' => out.push(c),
            _ => {
                let mut units = [0u16; 2];
                for unit in c.encode_utf16(&mut units) {
                    let _ = write!(out, "\\u{unit:04x}");
                }
            }
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_constant_is_pyjwts_header() {
        assert_eq!(
            URL_SAFE_NO_PAD.encode(br#"{"alg":"HS256","typ":"JWT"}"#),
            HEADER_B64
        );
    }

    #[test]
    fn python_escaping() {
        let mut s = String::new();
        push_python_json_string(&mut s, "a\u{7f}\u{1f}é😀\"\\\u{8}\u{c}\n\r\t/");
        // Output of Python 3.11 `json.dumps` for the same string.
        assert_eq!(s, r#""a\u007f\u001f\u00e9\ud83d\ude00\"\\\b\f\n\r\t/""#);
    }

    #[test]
    fn prepared_and_raw_keys_sign_alike() {
        let key = b"k".repeat(128);
        let a = encode_access_token("id", 1, 2, &key);
        let b = encode_access_token_with("id", 1, 2, &JwtKey::new(&key));
        assert_eq!(a, b);
        assert_eq!(format!("{:?}", JwtKey::new(&key)), "JwtKey(<redacted>)");
    }
}
