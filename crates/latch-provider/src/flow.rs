//! Login-flow vocabulary: forms, fields, error keys, abort reasons and step outcomes.

use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// A login flow's id: 32 hex characters.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct FlowId(String);

impl FlowId {
    /// A fresh random id.
    #[must_use]
    pub fn random() -> Self {
        Self(latch_models::random_hex_id())
    }

    /// The id as a string slice.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl From<String> for FlowId {
    fn from(s: String) -> Self {
        Self(s)
    }
}

impl From<&str> for FlowId {
    fn from(s: &str) -> Self {
        Self(s.to_owned())
    }
}

impl fmt::Debug for FlowId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "FlowId({})", self.0)
    }
}

impl fmt::Display for FlowId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Where a login attempt comes from. Providers decide on it (trusted networks) and the
/// manager throttles by it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FlowContext {
    /// The address of the person logging in, as the calling service saw it.
    pub ip_address: Option<IpAddr>,
    /// The OAuth client the login is for.
    pub client_id: Option<String>,
    /// Where the client wants the result delivered.
    pub redirect_uri: Option<String>,
}

/// The kind of a form field (Home Assistant's serialised voluptuous types).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum FieldType {
    /// Free text.
    String,
    /// Free text that must not be echoed (serialised by Home Assistant as `string`).
    Password,
    /// One of a set of `(value, label)` options.
    Select {
        /// `(value, label)` pairs in display order.
        options: Vec<(String, String)>,
    },
}

/// One field of a form.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FormField {
    /// The input key.
    pub name: String,
    /// The field's type.
    pub field_type: FieldType,
    /// True if the step refuses input without it.
    pub required: bool,
}

impl FormField {
    /// A required text field.
    #[must_use]
    pub fn string(name: &str) -> Self {
        Self {
            name: name.to_owned(),
            field_type: FieldType::String,
            required: true,
        }
    }

    /// A required secret text field.
    #[must_use]
    pub fn password(name: &str) -> Self {
        Self {
            name: name.to_owned(),
            field_type: FieldType::Password,
            required: true,
        }
    }

    /// A required select field.
    #[must_use]
    pub fn select(name: &str, options: Vec<(String, String)>) -> Self {
        Self {
            name: name.to_owned(),
            field_type: FieldType::Select { options },
            required: true,
        }
    }

    /// Checks one input value against this field. `None` means the key was absent.
    #[must_use]
    pub fn accepts(&self, value: Option<&Value>) -> bool {
        match value {
            None => !self.required,
            Some(Value::String(s)) => match &self.field_type {
                FieldType::String | FieldType::Password => true,
                FieldType::Select { options } => options.iter().any(|(v, _)| v == s),
            },
            Some(_) => false,
        }
    }
}

/// Error keys a form can carry under `errors.base`, as Home Assistant keys them, and
/// latch's `code_already_used`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKey {
    /// Wrong username or password.
    InvalidAuth,
    /// Wrong second-factor code.
    InvalidCode,
    /// The chosen MFA module does not exist or is not set up.
    InvalidAuthModule,
    /// latch, beyond Home Assistant (which accepts a code again within its window): the
    /// second-factor code is right but its time step was used already (by an earlier
    /// login, the setup, or a concurrent login); the next code will do.
    CodeAlreadyUsed,
}

impl ErrorKey {
    /// The key string.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::InvalidAuth => "invalid_auth",
            Self::InvalidCode => "invalid_code",
            Self::InvalidAuthModule => "invalid_auth_module",
            Self::CodeAlreadyUsed => "code_already_used",
        }
    }

    /// True for the keys Home Assistant counts as a failed login.
    #[must_use]
    pub fn is_failed_login(self) -> bool {
        matches!(
            self,
            Self::InvalidAuth | Self::InvalidCode | Self::CodeAlreadyUsed
        )
    }
}

impl fmt::Display for ErrorKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a flow ended without a result.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AbortReason {
    /// The caller is not allowed to use this provider (trusted networks).
    NotAllowed,
    /// The MFA step came more than 5 minutes after the flow started.
    LoginExpired,
    /// Too many wrong second-factor codes.
    TooManyRetry,
    /// A module failed in a way the user cannot fix.
    UnknownError,
    /// latch, beyond Home Assistant: the username or source is locked out for a while
    /// after too many failures.
    TooManyAttempts,
    /// latch: the user who passed the first step may not log in (inactive, or
    /// local-only from a remote address).
    LoginBlocked,
}

impl AbortReason {
    /// The reason string.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::NotAllowed => "not_allowed",
            Self::LoginExpired => "login_expired",
            Self::TooManyRetry => "too_many_retry",
            Self::UnknownError => "unknown_error",
            Self::TooManyAttempts => "too_many_attempts",
            Self::LoginBlocked => "login_blocked",
        }
    }
}

impl fmt::Display for AbortReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A form the user must fill in to continue.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Form {
    /// The step the input will be posted to.
    pub step_id: String,
    /// The fields, in display order.
    pub fields: Vec<FormField>,
    /// Errors keyed by field name, or `base` for the whole form.
    pub errors: BTreeMap<String, String>,
    /// Values for the step's description (e.g. the MFA module's name, a TOTP URI).
    pub description_placeholders: BTreeMap<String, String>,
}

impl Form {
    /// A form for `step_id` with no errors.
    #[must_use]
    pub fn new(step_id: &str, fields: Vec<FormField>) -> Self {
        Self {
            step_id: step_id.to_owned(),
            fields,
            errors: BTreeMap::new(),
            description_placeholders: BTreeMap::new(),
        }
    }

    /// Adds `errors.base = key`.
    #[must_use]
    pub fn with_error(mut self, key: ErrorKey) -> Self {
        self.errors
            .insert("base".to_owned(), key.as_str().to_owned());
        self
    }

    /// Adds a description placeholder.
    #[must_use]
    pub fn with_placeholder(mut self, name: &str, value: impl Into<String>) -> Self {
        self.description_placeholders
            .insert(name.to_owned(), value.into());
        self
    }

    /// The `errors.base` key, if any.
    #[must_use]
    pub fn base_error(&self) -> Option<&str> {
        self.errors.get("base").map(String::as_str)
    }

    /// True if `input` satisfies every field and names no other (Home Assistant's
    /// schema check that precedes every step, a `vol.Schema` that refuses extra keys; a
    /// failure is "user input malformed", not a login failure).
    #[must_use]
    pub fn accepts(&self, input: &Map<String, Value>) -> bool {
        self.fields.iter().all(|f| f.accepts(input.get(&f.name)))
            && input
                .keys()
                .all(|k| self.fields.iter().any(|f| &f.name == k))
    }
}

/// The outcome of one step of a provider's login flow.
#[derive(Clone, Debug, PartialEq)]
pub enum LoginStep {
    /// Show this form (again).
    Form(Form),
    /// End the flow.
    Abort(AbortReason),
    /// The provider is satisfied; this is the data its credentials are built from
    /// (for example `{"username": "as typed"}`).
    Done(Map<String, Value>),
}

/// The outcome of one step of an MFA setup flow.
#[derive(Clone, Debug, PartialEq)]
pub enum SetupStep {
    /// Show this form (again).
    Form(Form),
    /// End the flow.
    Abort(AbortReason),
    /// Set up. `recovery_codes` are shown once and never again.
    Done {
        /// One-time recovery codes, if the module issues them.
        recovery_codes: Vec<String>,
    },
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn input(v: Value) -> Map<String, Value> {
        match v {
            Value::Object(m) => m,
            _ => Map::new(),
        }
    }

    #[test]
    fn form_schema_check_requires_every_required_string() {
        let form = Form::new(
            "init",
            vec![
                FormField::string("username"),
                FormField::password("password"),
            ],
        );
        assert!(form.accepts(&input(json!({"username": "a", "password": "b"}))));
        assert!(!form.accepts(&input(json!({"username": "a"}))));
        assert!(!form.accepts(&input(json!({"username": "a", "password": 5}))));
        // Extra keys are refused, as voluptuous refuses them.
        assert!(!form.accepts(&input(
            json!({"username": "a", "password": "b", "remember": "yes"})
        )));
    }

    #[test]
    fn select_accepts_only_offered_values() {
        let form = Form::new(
            "init",
            vec![FormField::select(
                "user",
                vec![("u1".into(), "One".into()), ("u2".into(), "Two".into())],
            )],
        );
        assert!(form.accepts(&input(json!({"user": "u2"}))));
        assert!(!form.accepts(&input(json!({"user": "u3"}))));
    }

    #[test]
    fn keys_are_home_assistant_strings() {
        assert_eq!(ErrorKey::InvalidAuth.as_str(), "invalid_auth");
        assert_eq!(ErrorKey::InvalidCode.as_str(), "invalid_code");
        assert_eq!(ErrorKey::InvalidAuthModule.as_str(), "invalid_auth_module");
        assert_eq!(AbortReason::NotAllowed.as_str(), "not_allowed");
        assert_eq!(AbortReason::LoginExpired.as_str(), "login_expired");
        assert_eq!(AbortReason::TooManyRetry.as_str(), "too_many_retry");
        assert!(ErrorKey::InvalidCode.is_failed_login());
        assert_eq!(ErrorKey::CodeAlreadyUsed.as_str(), "code_already_used");
        assert!(ErrorKey::CodeAlreadyUsed.is_failed_login());
        assert!(!ErrorKey::InvalidAuthModule.is_failed_login());
        assert_eq!(
            serde_json::to_string(&AbortReason::TooManyRetry).unwrap(),
            "\"too_many_retry\""
        );
    }

    #[test]
    fn flow_ids_are_random_hex() {
        let a = FlowId::random();
        assert_eq!(a.as_str().len(), 32);
        assert_ne!(a, FlowId::random());
    }
}
