//! latch-mfa-totp: the `totp` MFA module, Home Assistant's authenticator-app second
//! factor, re-implemented exactly and hardened.
//!
//! Its one job is to decide whether a code typed at login belongs to a user's
//! authenticator app, and to enrol that app. It implements
//! [`latch_provider::MfaModule`] and keeps everything in the [`latch_store::Store`]:
//!
//! - **Secrets** in `.storage/auth_module.totp`, exactly as Home Assistant keeps them
//!   (`{"users": {<user id>: <base32 secret>}}`; a new secret is 32 characters of
//!   `A–Z2–7`, 160 bits from a CSPRNG). A Home Assistant file loads unchanged and Home
//!   Assistant can read what latch writes.
//! - **Codes** as pyotp makes them: RFC 6238, HMAC-SHA-1, 6 digits, 30 s steps,
//!   counter `floor(unix / 30)`, the secret decoded as base32 with padding added and
//!   case folded; a typed code is NFKC-normalised and compared in constant time. Login
//!   accepts steps T-1, T and T+1; the setup flow the current step only. Time comes from
//!   an injected [`latch_models::Clock`].
//! - **Provisioning URIs** byte for byte as pyotp's `provisioning_uri`
//!   ([`provisioning_uri`]), their QR code as Home Assistant's SVG ([`qr_svg`]), for
//!   terminals ([`qr_terminal`]: half blocks at the lowest error-correction level that
//!   keeps a typical URI within 24 lines) and as PNG ([`qr_png`]); `otpauth://` URIs
//!   from other systems can be imported ([`parse_otpauth_uri`]).
//!
//! # Beyond Home Assistant
//!
//! - **Replay refusal** (RFC 6238 §5.2): the highest time step a code matched is
//!   recorded durably before the login passes, and a code whose step is at or below the
//!   recorded one is refused. Operations on one user are serialised, so two concurrent
//!   logins with the same code cannot both pass. The code typed during setup is marked
//!   used too.
//! - **Recovery codes**: a set of one-time codes (10 by default, `xxxxx-xxxxx` from an
//!   alphabet without look-alikes) is issued when the setup flow finishes and by
//!   [`TotpModule::regenerate_recovery_codes`], shown once, and stored only as SHA-256
//!   hashes salted with the user id. One is accepted at login in place of a TOTP code
//!   (case, dashes and surrounding space do not matter) and is removed durably when
//!   used; a new set invalidates the old one.
//! - latch's state (last step, recovery-code hashes) lives in the separate
//!   `latch.auth_module.totp`, so Home Assistant's file stays exactly Home Assistant's.
//! - An explicit secret given to [`TotpModule::setup_user`] must decode; a code posted to
//!   the setup flow before any secret was shown gets a fresh secret rather than a check
//!   against an empty one.
//!
//! What it must not do: create, change or remove users or tokens (the manager does);
//! log or show a secret anywhere but the setup form; read the system clock directly;
//! do IO other than through the store.
//!
//! ```
//! use std::sync::Arc;
//! use latch_mfa_totp::{code_at, TotpConfig, TotpModule};
//! use latch_models::{Clock, FixedClock, User};
//! use latch_store::{Change, Store, StoreOptions};
//!
//! # tokio::runtime::Runtime::new()?.block_on(async {
//! let home = tempfile::tempdir()?;
//! let store = Store::open(home.path(), StoreOptions::default())?;
//! let user = User::new(Some("Paulus".into()));
//! store.commit(vec![Change::PutUser(user.clone())]).await?;
//!
//! let clock = Arc::new(FixedClock::new(chrono::DateTime::from_timestamp(1_700_000_000, 0).unwrap()));
//! let totp = TotpModule::new(TotpConfig::default(), store, clock.clone())?;
//! let secret = totp.setup_user(&user.id, None).await?;
//!
//! let code = code_at(secret.expose(), clock.now().timestamp())?;
//! assert!(totp.validate_code(&user.id, &code).await?);
//! assert!(!totp.validate_code(&user.id, &code).await?, "a code works once");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! # })?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod config;
mod error;
mod module;
mod otp;
mod qr;
mod recovery;
mod setup;
mod uri;

pub use config::{
    ConfigError, DEFAULT_ID, DEFAULT_ISSUER, DEFAULT_NAME, DEFAULT_RECOVERY_CODES, DEFAULT_TITLE,
    MAX_RECOVERY_CODES, TotpConfig,
};
pub use error::{OtpAuthError, QrError, SecretError, TotpError};
pub use module::{INPUT_FIELD_CODE, LOGIN_WINDOW, MAX_RETRY, MODULE_TYPE, TotpModule};
pub use otp::{
    DIGITS, DUMMY_SECRET, STEP_SECONDS, code_at, code_at_step, codes_equal, decode_secret,
    encode_base32, generate_secret, step_at,
};
pub use qr::{QUIET_ZONE, TERMINAL_LINES, qr_png, qr_svg, qr_terminal, terminal_size};
pub use recovery::{RECOVERY_ALPHABET, RECOVERY_CODE_LEN, normalize_recovery_code};
pub use setup::{SETUP_WINDOW, TotpSetupFlow};
pub use uri::{OtpAuth, parse_otpauth_uri, provisioning_uri, python_quote};
