//! latch-auth: the AuthManager, the one place where latch's auth logic is composed.
//!
//! It joins the store (`latch-store`), the token rules (`latch-token`), the providers
//! (`latch-provider-homeassistant`, `latch-provider-trusted-networks`) and the MFA modules
//! (`latch-mfa-totp`) into Home Assistant's behaviour: login flows with their steps, MFA
//! selection, expiry and retry limits; users and groups with the owner, admin, system and
//! local-only rules; refresh and access tokens with revocation and cleanup; events; and,
//! beyond Home Assistant, brute-force throttling by username and by source.
//!
//! Every string a caller passes is held to the caps of [`latch_models::limits`] (a value
//! past its cap is [`AuthError::Limit`]); what is echoed from input into events and
//! throttle keys is escaped and cut at 255 bytes. A person's own password change is
//! throttled and audited like a login. Events ([`AuthEvent`]) serialise flat, so the
//! daemon's audit log records every field of every kind.
//!
//! It does no socket IO and knows nothing of the protocol: the daemon maps requests onto
//! these methods. Time comes from an injected [`latch_models::Clock`].
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use latch_auth::{AuthConfig, AuthManager};
//!
//! let store = latch_store::Store::open("/tmp/latch-home", Default::default())?;
//! let manager = AuthManager::from_config(store, &AuthConfig::default(), Default::default())?;
//! let owner = manager.onboard(Some("Paulus".into()), "paulus", "a long passphrase").await?;
//! assert!(owner.is_owner);
//! # Ok(()) }
//! ```

mod code_flow;
mod config;
mod directory;
mod error;
mod events;
mod flow;
mod manager;
mod permissions;
pub mod throttle;

pub use code_flow::{AUTH_CODE_LIFETIME, CodeTokens};
pub use config::{AuthConfig, MfaConfig, ProviderConfig};
pub use error::AuthError;
pub use events::AuthEvent;
pub use flow::{
    CodeRefusal, FlowHandler, FlowOutcome, IssuedTokens, MFA_SESSION_EXPIRATION, SetupOutcome,
};
pub use manager::{
    AccessToken, AuthManager, ManagerOptions, RevokeCallback, UserUpdate, VERIFIED_CACHE_DEFAULT,
    ValidatedToken,
};
pub use permissions::SharedLookup;
pub use throttle::{Lockout, ThrottleConfig, ThrottleKey};
