//! latch-token: the tokens of latch, byte-compatible with Home Assistant's.
//!
//! One job: the token rules and cryptography. It makes refresh-token material (`token`
//! and `jwt_key`, 64 CSPRNG bytes as 128 hex characters each), applies Home Assistant's
//! refresh-token creation rules in their exact order, keeps the usage and sliding-expiry
//! bookkeeping and the cleanup schedule, mints HS256 access tokens that are identical,
//! byte for byte, to the ones Home Assistant mints with PyJWT, and validates access
//! tokens with PyJWT's rules.
//!
//! The JWT work is `jsonwebtoken`'s: it decodes the header and the claims, and it signs
//! and verifies (HMAC-SHA256, constant-time comparison) with keys prepared once per
//! refresh token ([`JwtKey`]). What stays hand-written, each for a reason a test pins
//! (`tests/jsonwebtoken_interop.rs`, `tests/pyjwt_vectors.rs`):
//! - the bytes of a minted token's header and payload. `jsonwebtoken::encode` writes the
//!   header as `{"typ":"JWT","alg":"HS256"}` (its struct's field order) where PyJWT
//!   writes `{"alg":"HS256","typ":"JWT"}`, and `serde_json` leaves non-ASCII issuers
//!   unescaped where Python's `json.dumps` writes `\uXXXX`; tokens must stay identical
//!   to Home Assistant's, so the JSON is written here and only the signature is
//!   `jsonwebtoken`'s (`crypto::sign`);
//! - PyJWT's claim rules, shape checks and header reading (see the `validate` module):
//!   `jsonwebtoken`'s `Validation` reads the system clock, skips `iat`, counts whole
//!   `u64` seconds and refuses headers PyJWT reads.
//!
//! What that costs, measured (`cargo xtask bench --only inproc`): a token's first
//! validation takes two to three times as long as with the hand-written, allocation-free
//! parser and prepared HMAC state it replaced, because `jsonwebtoken` decodes into owned
//! JSON values and keys the HMAC afresh on every verification (its `DecodingKey` holds
//! the key bytes; the verifier it builds from them cannot be kept). Through the
//! AuthManager that is 8–12× Home Assistant 2024.3's own first validation in the same
//! run, short of design.md's ≥ 15× (the replaced path measured 20–40×). Repeat
//! validations do not reach this crate: latch-auth's verified-token cache answers them.
//!
//! It must not do IO (no disk, no network), spawn, block, take locks or be async, and
//! it stores nothing (the one static is the dummy key of
//! [`UnverifiedToken::reject_unknown_issuer`], built once): callers
//! own the tokens (latch-store persists them, latch-auth composes the steps). Time is
//! always a `now` argument, never read here. It depends only on `latch-models` among
//! latch crates.
//!
//! Validation is split so the caller can look the refresh token up in between, as Home
//! Assistant does:
//!
//! ```
//! use latch_models::{User, RefreshToken};
//! use latch_token::{JwtKey, NewRefreshToken, create_refresh_token, decode, mint_access_token};
//!
//! let now = chrono::DateTime::from_timestamp(1_700_000_000, 0).unwrap();
//! let mut user = User::new(Some("Paulus".into()));
//! user.is_active = true;
//! let params = NewRefreshToken::normal("https://example.com/", None);
//! let refresh: RefreshToken = create_refresh_token(&user, [], params, now, "2025.4.4").unwrap();
//!
//! let jwt = mint_access_token(&refresh, now);
//!
//! // The hot path: decode, find the refresh token by the unverified issuer, verify.
//! let key = JwtKey::from_refresh_token(&refresh); // kept next to the refresh token
//! let unverified = decode(&jwt).unwrap();
//! let found = (unverified.iss() == Some(refresh.id.as_str())).then_some(&refresh);
//! let result = match found {
//!     Some(token) => unverified.verify_with(&key, token.id.as_str(), now),
//!     None => Err(unverified.reject_unknown_issuer(now)),
//! };
//! assert_eq!(result.unwrap().exp, 1_700_000_000 + 1800);
//! ```

#![warn(missing_docs)]

mod create;
mod expiry;
mod jwt;
mod material;
mod time;
mod validate;

pub use create::{NewRefreshToken, TokenError, create_refresh_token, long_lived_expiration};
pub use expiry::{expired_token_ids, is_expired, next_cleanup_at, record_use, set_expiry};
pub use jwt::{
    HEADER_B64, JwtKey, encode_access_token, encode_access_token_with, mint_access_token,
};
pub use material::{TOKEN_BYTES, TOKEN_HEX_LEN, random_token_hex};
pub use validate::{
    Claim, Claims, LEEWAY_SECS, MAX_TOKEN_SIZE, UnverifiedToken, ValidationError, decode,
};
