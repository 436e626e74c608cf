//! A secret string on the wire: passwords, refresh and access tokens, TOTP codes and
//! secrets, recovery codes.

use std::fmt;

use serde::{Deserialize, Serialize};
use zeroize::{Zeroize, ZeroizeOnDrop};

/// A secret carried by a request, response or form.
///
/// On the wire it is a plain string. `Debug` prints `Sensitive(<redacted>)`, so a whole
/// request or response can be logged with `{:?}`; there is deliberately no `Display`.
/// The memory is zeroed when the value is dropped.
///
/// Equality compares the contents and is **not** constant-time: it exists for tests and
/// bookkeeping. Authentication decisions compare secrets elsewhere, in constant time.
///
/// ```
/// use latch_protocol::Sensitive;
///
/// let password = Sensitive::from("hunter2");
/// assert_eq!(format!("{password:?}"), "Sensitive(<redacted>)");
/// assert_eq!(password.expose(), "hunter2");
/// ```
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize, Zeroize, ZeroizeOnDrop)]
#[serde(transparent)]
pub struct Sensitive(String);

impl Sensitive {
    /// Wraps a secret value.
    #[must_use]
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The secret value. Callers must not log it.
    #[must_use]
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Takes the secret out, leaving an empty value behind to be dropped.
    #[must_use]
    pub fn into_inner(mut self) -> String {
        std::mem::take(&mut self.0)
    }

    /// True if the secret is the empty string.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Sensitive {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Sensitive(<redacted>)")
    }
}

impl From<String> for Sensitive {
    fn from(value: String) -> Self {
        Self(value)
    }
}

impl From<&str> for Sensitive {
    fn from(value: &str) -> Self {
        Self(value.to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_redacts_and_expose_reveals() {
        let s = Sensitive::new("correct horse battery staple");
        let debug = format!("{s:?}");
        assert_eq!(debug, "Sensitive(<redacted>)");
        assert!(!debug.contains("horse"));
        assert!(!format!("{:#?}", vec![s.clone()]).contains("horse"));
        assert_eq!(s.expose(), "correct horse battery staple");
        assert!(!s.is_empty());
        assert!(Sensitive::default().is_empty());
        assert_eq!(s.into_inner(), "correct horse battery staple");
    }

    #[test]
    fn wire_form_is_a_plain_string() {
        let s = Sensitive::from(String::from("abc"));
        let bytes = postcard::to_stdvec(&s).unwrap();
        assert_eq!(bytes, postcard::to_stdvec("abc").unwrap());
        let back: Sensitive = postcard::from_bytes(&bytes).unwrap();
        assert_eq!(back, s);
    }
}
