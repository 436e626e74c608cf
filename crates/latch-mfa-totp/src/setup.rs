//! [`TotpSetupFlow`]: enrolling an authenticator app.

use std::fmt;
use std::sync::Arc;

use base64::Engine as _;
use latch_models::{Secret, User, UserId};
use latch_provider::{
    BoxFuture, ErrorKey, Form, FormField, MfaSetupFlow, ProviderError, SetupStep,
};
use latch_store::Change;
use serde_json::{Map, Value};
use zeroize::Zeroizing;

use crate::module::{INPUT_FIELD_CODE, Inner, hash_all, input_code};
use crate::otp::{decode_secret, generate_secret, matching_step, step_at};
use crate::{TotpError, provisioning_uri, qr_png, qr_svg, qr_terminal, recovery};

/// Steps either side of the current one a setup code may come from. Home Assistant
/// 2025.4 and 2026.11 call `TOTP(secret).verify(code)`, which accepts the current step
/// only, and so does latch. (A newer Home Assistant test expects ±1 here, as at login;
/// that would forgive a phone clock 30 s off during enrolment, at the price of a
/// three-times-larger guess space, and is not what the released versions do.)
pub const SETUP_WINDOW: u64 = 0;

/// The state of one TOTP setup flow: the secret being confirmed, which is stored only
/// once the user proves their app has it.
///
/// Step `init` without input generates a secret and shows a form with one field,
/// `code`, and the placeholders `code` (the secret), `url` (the provisioning URI),
/// `qr_code` (its QR code as Home Assistant's SVG) and, for latch's CLI,
/// `qr_terminal` (the QR code in Unicode half blocks, see [`qr_terminal`]) and `qr_png`
/// (the QR code as a PNG image, standard base64). A wrong code shows the same
/// form, with the same secret, and `errors.base = invalid_code`. The right code stores
/// the secret, marks its time step used (so the code just typed cannot be replayed at
/// login), issues a new set of recovery codes (invalidating any old set) and ends with
/// [`SetupStep::Done`] carrying them, in plain text, this once.
pub struct TotpSetupFlow {
    inner: Arc<Inner>,
    user_id: UserId,
    user_name: Option<String>,
    secret: Option<Secret>,
    /// The provisioning URI of the current secret (it holds the secret).
    uri: Secret,
    /// Its QR code as SVG, for terminals, and as base64 PNG.
    qr: (String, String, String),
    finished: bool,
}

impl fmt::Debug for TotpSetupFlow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TotpSetupFlow")
            .field("user_id", &self.user_id)
            .field("secret", &self.secret)
            .field("finished", &self.finished)
            .finish_non_exhaustive()
    }
}

impl TotpSetupFlow {
    pub(crate) fn new(inner: Arc<Inner>, user: &User) -> Self {
        Self {
            inner,
            user_id: user.id.clone(),
            user_name: user.name.clone(),
            secret: None,
            uri: Secret::default(),
            qr: (String::new(), String::new(), String::new()),
            finished: false,
        }
    }

    /// The secret being confirmed, once the form has been shown.
    #[must_use]
    pub fn secret(&self) -> Option<&Secret> {
        self.secret.as_ref()
    }

    /// Runs the flow's next step (`None`, or an empty map, when the form is first
    /// shown, as Home Assistant's `if user_input:`).
    ///
    /// # Errors
    /// [`TotpError::FlowFinished`] after the flow has ended; [`TotpError::UnknownUser`]
    /// or [`TotpError::Storage`] when storing the secret fails (the flow can be retried
    /// with the same secret).
    pub async fn step_input(
        &mut self,
        input: Option<&Map<String, Value>>,
    ) -> Result<SetupStep, TotpError> {
        if self.finished {
            return Err(TotpError::FlowFinished);
        }
        let code = match input {
            Some(map) if !map.is_empty() => input_code(map),
            _ => {
                self.new_secret();
                return Ok(SetupStep::Form(self.form()));
            }
        };
        let Some(secret) = self.secret.clone() else {
            // Code posted before any secret was shown: Home Assistant would verify it
            // against an empty secret; latch shows a fresh secret instead.
            self.new_secret();
            return Ok(SetupStep::Form(
                self.form().with_error(ErrorKey::InvalidCode),
            ));
        };
        let key = Zeroizing::new(decode_secret(secret.expose()).unwrap_or_default());
        let inner = Arc::clone(&self.inner);
        let Some(step) =
            step_at(inner.now_unix()).and_then(|t| matching_step(&key, code, t, SETUP_WINDOW))
        else {
            return Ok(SetupStep::Form(
                self.form().with_error(ErrorKey::InvalidCode),
            ));
        };

        let codes = recovery::generate(inner.config.recovery_codes);
        let hashes = hash_all(&self.user_id, &codes);
        {
            let _lock = inner.lock_user(&self.user_id).await;
            inner
                .commit(vec![
                    Change::PutTotpSecret {
                        user_id: self.user_id.clone(),
                        secret,
                    },
                    Change::PutTotpState {
                        user_id: self.user_id.clone(),
                        last_step: Some(step),
                        recovery_codes: hashes,
                    },
                ])
                .await?;
        }
        self.finished = true;
        tracing::info!(user_id = %self.user_id, "totp set up through the setup flow");
        Ok(SetupStep::Done {
            recovery_codes: codes,
        })
    }

    fn new_secret(&mut self) {
        let secret = generate_secret();
        let uri = provisioning_uri(
            secret.expose(),
            self.user_name.as_deref(),
            &self.inner.config.issuer,
        );
        let svg = qr_svg(&uri).unwrap_or_else(|e| {
            tracing::warn!(user_id = %self.user_id, error = %e, "no qr code for the totp setup form");
            String::new()
        });
        let terminal = qr_terminal(&uri).unwrap_or_default();
        let png = qr_png(&uri)
            .map(|png| base64::engine::general_purpose::STANDARD.encode(png))
            .unwrap_or_default();
        self.uri = Secret::new(uri);
        self.qr = (svg, terminal, png);
        self.secret = Some(secret);
    }

    fn form(&self) -> Form {
        Form::new("init", vec![FormField::string(INPUT_FIELD_CODE)])
            .with_placeholder(
                "code",
                self.secret.as_ref().map(Secret::expose).unwrap_or_default(),
            )
            .with_placeholder("url", self.uri.expose())
            .with_placeholder("qr_code", self.qr.0.as_str())
            .with_placeholder("qr_terminal", self.qr.1.as_str())
            .with_placeholder("qr_png", self.qr.2.as_str())
    }
}

impl MfaSetupFlow for TotpSetupFlow {
    fn step<'a>(
        &'a mut self,
        input: Option<&'a Map<String, Value>>,
    ) -> BoxFuture<'a, Result<SetupStep, ProviderError>> {
        Box::pin(async move { self.step_input(input).await.map_err(ProviderError::from) })
    }
}
