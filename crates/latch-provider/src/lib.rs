//! latch-provider: the contract between the AuthManager and the things that prove who a
//! person is.
//!
//! It holds the traits every auth provider ([`AuthProvider`]) and second-factor module
//! ([`MfaModule`]) implements, and the login-flow vocabulary they speak: forms
//! ([`Form`], [`FormField`]), error keys as Home Assistant keys them ([`ErrorKey`]:
//! `invalid_auth`, `invalid_code`, …), abort reasons ([`AbortReason`]: `not_allowed`,
//! `login_expired`, `too_many_retry`, …) and step outcomes ([`LoginStep`]).
//!
//! Providers know nothing of the manager: they see users and credentials only through
//! the read-only [`Directory`] the manager hands them, and they never create users or
//! tokens themselves. This crate does no IO.
//!
//! ```
//! use latch_provider::{ErrorKey, Form, FormField};
//!
//! let form = Form::new("init", vec![
//!     FormField::string("username"),
//!     FormField::password("password"),
//! ])
//! .with_error(ErrorKey::InvalidAuth);
//! assert_eq!(form.errors.get("base").map(String::as_str), Some("invalid_auth"));
//! ```

mod directory;
mod flow;
mod traits;

pub use directory::Directory;
pub use flow::{
    AbortReason, ErrorKey, FieldType, FlowContext, FlowId, Form, FormField, LoginStep, SetupStep,
};
pub use traits::{AuthProvider, BoxFuture, CodeVerdict, MfaModule, MfaSetupFlow, ProviderError};
