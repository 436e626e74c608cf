//! A second MFA module for the manager's module-selection tests: Home Assistant's
//! `insecure_example` module (a per-user PIN kept in memory, input `{pin}`, the default
//! retry limit of 3).
//!
//! A second `TotpModule` under another id is no substitute: TOTP modules share the
//! store's one `auth_module.totp` file, so a user set up in one is set up in all.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use latch_models::{User, UserId};
use latch_provider::{
    BoxFuture, ErrorKey, Form, FormField, MfaModule, MfaSetupFlow, ProviderError, SetupStep,
};
use serde_json::{Map, Value};

pub(crate) const PIN_MODULE_ID: &str = "insecure_example";
pub(crate) const PIN_MODULE_NAME: &str = "Insecure Personal Identify Number";

type Pins = Arc<Mutex<HashMap<UserId, String>>>;

/// The module.
#[derive(Debug, Default)]
pub(crate) struct PinModule {
    pins: Pins,
}

impl PinModule {
    /// Sets `user_id`'s PIN (Home Assistant's `async_setup_user`).
    pub(crate) fn set_pin(&self, user_id: &UserId, pin: &str) {
        self.pins
            .lock()
            .unwrap()
            .insert(user_id.clone(), pin.to_owned());
    }
}

fn pin_of(input: &Map<String, Value>) -> Option<&str> {
    input.get("pin").and_then(Value::as_str)
}

impl MfaModule for PinModule {
    fn module_type(&self) -> &str {
        PIN_MODULE_ID
    }

    fn id(&self) -> &str {
        PIN_MODULE_ID
    }

    fn name(&self) -> &str {
        PIN_MODULE_NAME
    }

    fn input_fields(&self) -> Vec<FormField> {
        vec![FormField::string("pin")]
    }

    fn is_user_setup(&self, user_id: &UserId) -> bool {
        self.pins.lock().unwrap().contains_key(user_id)
    }

    fn validate<'a>(
        &'a self,
        user_id: &'a UserId,
        input: &'a Map<String, Value>,
    ) -> BoxFuture<'a, Result<bool, ProviderError>> {
        let ok = self
            .pins
            .lock()
            .unwrap()
            .get(user_id)
            .is_some_and(|p| Some(p.as_str()) == pin_of(input));
        Box::pin(async move { Ok(ok) })
    }

    fn setup_flow(&self, user: &User) -> Result<Box<dyn MfaSetupFlow>, ProviderError> {
        Ok(Box::new(PinSetup {
            pins: Arc::clone(&self.pins),
            user_id: user.id.clone(),
        }))
    }

    fn depose_user<'a>(&'a self, user_id: &'a UserId) -> BoxFuture<'a, Result<(), ProviderError>> {
        self.pins.lock().unwrap().remove(user_id);
        Box::pin(async { Ok(()) })
    }
}

#[derive(Debug)]
struct PinSetup {
    pins: Pins,
    user_id: UserId,
}

impl MfaSetupFlow for PinSetup {
    fn step<'a>(
        &'a mut self,
        input: Option<&'a Map<String, Value>>,
    ) -> BoxFuture<'a, Result<SetupStep, ProviderError>> {
        let form = Form::new("init", vec![FormField::string("pin")]);
        let step = match input.and_then(pin_of) {
            Some(pin) if !pin.is_empty() => {
                self.pins
                    .lock()
                    .unwrap()
                    .insert(self.user_id.clone(), pin.to_owned());
                SetupStep::Done {
                    recovery_codes: vec![],
                }
            }
            Some(_) => SetupStep::Form(form.with_error(ErrorKey::InvalidCode)),
            None => SetupStep::Form(form),
        };
        Box::pin(async move { Ok(step) })
    }
}
