//! latch-token: the tokens of latch, byte-compatible with Home Assistant's.
//!
//! One job: the token rules and cryptography. It makes refresh-token material (`token`
//! and `jwt_key`, 64 CSPRNG bytes as 128 hex characters each), applies Home Assistant's
//! refresh-token creation rules in their exact order, keeps the usage and sliding-expiry
//! bookkeeping and the cleanup schedule, mints HS256 access tokens that are identical,
//! byte for byte, to the ones Home Assistant mints with PyJWT, and validates access
//! tokens with PyJWT's rules.
//!
//! The JWT work is `jsonwebtoken`'s where nothing measured stands against it: it decodes
//! the header and the claims (`decode_header`, `dangerous::insecure_decode_claims`) and
//! it signs what latch mints (`crypto::sign`). What stays hand-written, each for a reason
//! a test pins (`tests/jsonwebtoken_interop.rs`, `tests/pyjwt_vectors.rs`) or a
//! measurement shows (`cargo run --release -p latch-token --example validate_bench`):
//! - the bytes of a minted token's header and payload. `jsonwebtoken::encode` writes the
//!   header as `{"typ":"JWT","alg":"HS256"}` (its struct's field order) where PyJWT
//!   writes `{"alg":"HS256","typ":"JWT"}`, and `serde_json` leaves non-ASCII issuers
//!   unescaped where Python's `json.dumps` writes `\uXXXX`; tokens must stay identical
//!   to Home Assistant's, so the JSON is written here and only the signature is
//!   `jsonwebtoken`'s;
//! - PyJWT's claim rules, shape checks and header reading (see the `validate` module):
//!   `jsonwebtoken`'s `Validation` reads the system clock, skips `iat`, counts whole
//!   `u64` seconds and refuses headers PyJWT reads;
//! - what the claims are decoded into: `insecure_decode_claims` hands the payload to a
//!   `Deserialize` of this crate's own that keeps what PyJWT's rules read (`exp`, `iat`,
//!   `nbf` as Python's `int()` reads them, `iss`, and whether `aud`, `sub` and `jti` are
//!   there and strings) and reads every other value through, validated but not built.
//!   Decoding into a `serde_json::Map` instead allocates every key and value: measured,
//!   that alone takes 1.1–1.2 µs, more than the whole of [`decode`] now (0.7–0.9 µs, two
//!   allocations: the payload buffer and the issuer; `tests/allocations.rs` counts them);
//! - the signature check: HMAC-SHA256 (`hmac`, `sha2`) from a state keyed once per
//!   refresh token and kept in its [`JwtKey`], cloned per verification and compared in
//!   constant time (`verify_slice`). `jsonwebtoken::crypto::verify` takes a
//!   `DecodingKey`, which holds only the key bytes, so every call builds a boxed verifier
//!   and keys it again (the 128-byte key is hashed, then both padded key blocks: five
//!   SHA-256 compressions, more than the message's four) and decodes the signature into
//!   a fresh `Vec`. Its verifier cannot be built once and kept instead: the HMAC one is
//!   private to `jsonwebtoken`, and the `Box<dyn JwtVerifier>` its crypto provider
//!   returns is neither `Send` nor `Sync`, which latch-auth's key cache, shared by every
//!   thread, needs. Measured: 0.76–0.95 µs per `crypto::verify` against 0.38–0.49 µs
//!   for a verification with a prepared [`JwtKey`], claim checks included (the HMAC
//!   itself 0.30–0.37 µs).
//!
//! (The figures of `validate_bench` are from two runs on the 2-core development VM
//! while other builds ran, 2026-12-03; the ranges are the spread between them.)
//!
//! What that buys, measured (`cargo xtask bench --only inproc --peer home-assistant`, the
//! 2-core development VM under other builds, 2026-12-03): a token's first validation
//! through the AuthManager went from 2.54 µs (11.7× Home Assistant 2024.3's own first
//! validation in the same run) to 2.06 µs and 1.69 µs in two runs after it (19.0× and
//! 19.8×), design.md asking for ≥ 15×. Repeat validations do not reach this crate:
//! latch-auth's verified-token cache answers them (49.0× Home Assistant's repeat before,
//! 50.6× and 53.7× after; ≥ 50× asked).
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
