//! Login flows (reference §4) and MFA setup flows, as the manager runs them.
//!
//! A login flow starts at a provider's `init` step. When the provider is satisfied its
//! data becomes credentials; a user with enabled MFA modules then picks one
//! (`select_mfa_module`, only with more than one) and answers its `mfa` step within
//! 5 minutes of the flow's creation and within the module's retry limit. The finished
//! flow issues a refresh token and an access token for the flow's client id.

use std::collections::HashMap;
use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;

use chrono::{DateTime, TimeDelta, Utc};
use latch_models::limits::{self, MAX_FORM_VALUE_BYTES, MAX_ID_BYTES, MAX_URL_BYTES};
use latch_models::{Credentials, RefreshTokenId, Secret, User, UserId};
use latch_provider::{
    AbortReason, AuthProvider, CodeVerdict, ErrorKey, FlowContext, FlowId, Form, FormField,
    LoginStep, MfaModule, MfaSetupFlow, SetupStep,
};
use latch_token::NewRefreshToken;
use parking_lot::Mutex;
use serde_json::{Map, Value};

use crate::error::AuthError;
use crate::events::AuthEvent;
use crate::manager::{AccessToken, AuthManager};
use crate::throttle::username_key;

/// MFA must be answered within this long of the flow's creation.
pub const MFA_SESSION_EXPIRATION: TimeDelta = TimeDelta::minutes(5);

/// Which provider runs a flow: `(type, id)`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FlowHandler {
    /// Provider type.
    pub provider_type: String,
    /// Provider id (`None` for the default instance).
    pub provider_id: Option<String>,
}

/// Tokens issued by a finished login flow.
#[derive(Clone, PartialEq)]
pub struct IssuedTokens {
    /// Who logged in.
    pub user_id: UserId,
    /// The new refresh token's id.
    pub refresh_token_id: RefreshTokenId,
    /// The new refresh token string (shown once to the client).
    pub refresh_token: Secret,
    /// The first access token.
    pub access_token: AccessToken,
}

impl fmt::Debug for IssuedTokens {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IssuedTokens")
            .field("user_id", &self.user_id)
            .field("refresh_token_id", &self.refresh_token_id)
            .finish_non_exhaustive()
    }
}

/// Where a login flow stands after a step.
#[derive(Clone, Debug, PartialEq)]
pub enum FlowOutcome {
    /// Show this form and continue the flow with its input.
    Form {
        /// The flow.
        flow_id: FlowId,
        /// Its provider.
        handler: FlowHandler,
        /// The form.
        form: Form,
    },
    /// The flow ended without a login.
    Abort {
        /// The flow.
        flow_id: FlowId,
        /// Its provider.
        handler: FlowHandler,
        /// Why.
        reason: AbortReason,
    },
    /// The flow ended with a login.
    Done {
        /// The flow.
        flow_id: FlowId,
        /// Its provider.
        handler: FlowHandler,
        /// The tokens.
        tokens: IssuedTokens,
    },
    /// An authorization-code flow (see [`AuthManager::start_code_flow`]) authenticated
    /// the person. No code is issued before the caller says whether `redirect_uri` may
    /// receive one for `client_id` ([`AuthManager::authorize_code_flow`]).
    CheckRedirect {
        /// The flow.
        flow_id: FlowId,
        /// Its provider.
        handler: FlowHandler,
        /// The flow's client.
        client_id: String,
        /// Where the client wants the code.
        redirect_uri: String,
    },
    /// An authorization-code flow ended with a code (single use, for the flow's client,
    /// valid for [`crate::AUTH_CODE_LIFETIME`]).
    Code {
        /// The flow.
        flow_id: FlowId,
        /// Its provider.
        handler: FlowHandler,
        /// The authorization code.
        code: Secret,
    },
    /// An authorization-code flow ended without a code after authenticating.
    Refused {
        /// The flow.
        flow_id: FlowId,
        /// Its provider.
        handler: FlowHandler,
        /// Why.
        refusal: CodeRefusal,
    },
}

/// Why an authorization-code flow issued no code after the person authenticated
/// (Home Assistant's 403 answers of `POST /auth/login_flow/{flow_id}`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CodeRefusal {
    /// The redirect URI is not allowed for the client.
    InvalidRedirectUri,
    /// The user may not log in from here: Home Assistant's reason.
    LoginBlocked(&'static str),
}

/// How a finished login flow delivers its result.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Delivery {
    /// Tokens, at once (latch's socket API).
    Tokens,
    /// An authorization code, after a redirect check (Home Assistant's HTTP API).
    Code {
        /// A PKCE S256 challenge the code is bound to.
        code_challenge: Option<String>,
    },
}

/// Where an MFA setup flow stands after a step.
#[derive(Clone, Debug, PartialEq)]
pub enum SetupOutcome {
    /// Show this form and continue with its input.
    Form {
        /// The flow.
        flow_id: FlowId,
        /// The form (for TOTP: the secret, URI and QR code as placeholders).
        form: Form,
    },
    /// The flow ended without a setup.
    Abort {
        /// The flow.
        flow_id: FlowId,
        /// Why.
        reason: AbortReason,
    },
    /// Set up. Recovery codes are shown this once.
    Done {
        /// The flow.
        flow_id: FlowId,
        /// The module now set up.
        module_id: String,
        /// One-time recovery codes.
        recovery_codes: Vec<String>,
    },
}

pub(crate) enum Stage {
    Provider {
        step_id: String,
    },
    SelectMfa {
        user: User,
        credentials: Credentials,
    },
    Mfa {
        user: User,
        credentials: Credentials,
        module: Arc<dyn MfaModule>,
        invalid: u32,
    },
    /// An authorization-code flow whose person is authenticated, waiting for the
    /// caller's redirect check.
    AwaitRedirect {
        credentials: Credentials,
    },
}

pub(crate) struct LoginFlow {
    pub(crate) provider: Arc<dyn AuthProvider>,
    pub(crate) ctx: FlowContext,
    pub(crate) created_at: DateTime<Utc>,
    pub(crate) stage: Stage,
    pub(crate) form: Form,
    /// The username as typed, [echoed](limits::echo): what events show.
    pub(crate) username: Option<String>,
    /// The throttle's key name for that username.
    pub(crate) throttle_name: Option<String>,
    pub(crate) delivery: Delivery,
}

pub(crate) struct SetupFlowEntry {
    user_id: UserId,
    module_id: String,
    flow: Box<dyn MfaSetupFlow>,
}

pub(crate) struct Slot<T> {
    created_at: DateTime<Utc>,
    value: Arc<tokio::sync::Mutex<T>>,
}

/// The flows in progress, bounded in age and number.
pub(crate) struct FlowTable {
    pub(crate) ttl: TimeDelta,
    max: usize,
    pub(crate) login: Mutex<HashMap<FlowId, Slot<LoginFlow>>>,
    setup: Mutex<HashMap<FlowId, Slot<SetupFlowEntry>>>,
}

/// Makes room for one more entry in a bounded table of short-lived entries: drops the
/// ones no longer `live`, then the oldest until fewer than `max` remain.
pub(crate) fn make_room<K: Clone + Eq + std::hash::Hash, V>(
    map: &mut HashMap<K, V>,
    max: usize,
    created_at: impl Fn(&V) -> DateTime<Utc>,
    live: impl Fn(&V) -> bool,
) {
    map.retain(|_, v| live(v));
    while map.len() >= max {
        let oldest = map
            .iter()
            .min_by_key(|(_, v)| created_at(v))
            .map(|(k, _)| k.clone());
        match oldest {
            Some(k) => map.remove(&k),
            None => break,
        };
    }
}

impl FlowTable {
    pub(crate) fn new(ttl: TimeDelta, max: usize) -> Self {
        Self {
            ttl,
            max: max.max(1),
            login: Mutex::new(HashMap::new()),
            setup: Mutex::new(HashMap::new()),
        }
    }

    pub(crate) fn insert<T>(
        map: &Mutex<HashMap<FlowId, Slot<T>>>,
        ttl: TimeDelta,
        max: usize,
        now: DateTime<Utc>,
        value: T,
    ) -> (FlowId, Arc<tokio::sync::Mutex<T>>) {
        let mut map = map.lock();
        make_room(
            &mut map,
            max,
            |s| s.created_at,
            |s| s.created_at + ttl > now,
        );
        let id = FlowId::random();
        let value = Arc::new(tokio::sync::Mutex::new(value));
        map.insert(
            id.clone(),
            Slot {
                created_at: now,
                value: Arc::clone(&value),
            },
        );
        (id, value)
    }

    pub(crate) fn get<T>(
        map: &Mutex<HashMap<FlowId, Slot<T>>>,
        ttl: TimeDelta,
        now: DateTime<Utc>,
        id: &str,
    ) -> Option<Arc<tokio::sync::Mutex<T>>> {
        let mut map = map.lock();
        let id = FlowId::from(id);
        let expired = map.get(&id).is_some_and(|s| s.created_at + ttl <= now);
        if expired {
            map.remove(&id);
            return None;
        }
        map.get(&id).map(|s| Arc::clone(&s.value))
    }

    /// Number of login flows in progress.
    pub(crate) fn login_count(&self) -> usize {
        self.login.lock().len()
    }
}

pub(crate) fn handler_of(provider: &dyn AuthProvider) -> FlowHandler {
    FlowHandler {
        provider_type: provider.provider_type().to_owned(),
        provider_id: provider.id().map(str::to_owned),
    }
}

fn mfa_form(module: &dyn MfaModule) -> Form {
    Form::new("mfa", module.input_fields())
        .with_placeholder("mfa_module_name", module.name())
        .with_placeholder("mfa_module_id", module.id())
}

/// The MFA choice. Its field is not required, as Home Assistant's schema (a plain key)
/// has it: without a choice the form comes back with `invalid_auth_module`.
fn select_form(modules: &[Arc<dyn MfaModule>]) -> Form {
    let choice = FormField {
        required: false,
        ..FormField::select(
            "multi_factor_auth_module",
            modules
                .iter()
                .map(|m| (m.id().to_owned(), m.name().to_owned()))
                .collect(),
        )
    };
    Form::new("select_mfa_module", vec![choice])
}

impl AuthManager {
    /// Number of login flows in progress.
    #[must_use]
    pub fn login_flows_in_progress(&self) -> usize {
        self.inner.flows.login_count()
    }

    /// The MFA modules `user_id` has set up, in configuration order.
    #[must_use]
    pub fn enabled_mfa(&self, user_id: &UserId) -> Vec<Arc<dyn MfaModule>> {
        self.inner
            .mfa_modules
            .iter()
            .filter(|m| m.is_user_setup(user_id))
            .cloned()
            .collect()
    }

    /// Starts a login flow with the provider `(provider_type, provider_id)` and runs its
    /// first step. `ctx.client_id` is required: the finished flow issues tokens for it.
    ///
    /// # Errors
    /// [`AuthError::InvalidHandler`] for an unknown provider or one that refuses to start
    /// here (one answer for both); [`AuthError::InvalidRequest`] without a client id;
    /// [`AuthError::Limit`] for a client id or redirect URI longer than 2,048 bytes.
    pub async fn start_login_flow(
        &self,
        provider_type: &str,
        provider_id: Option<&str>,
        ctx: FlowContext,
    ) -> Result<FlowOutcome, AuthError> {
        self.start_flow(provider_type, provider_id, ctx, Delivery::Tokens)
            .await
    }

    /// Starts a flow of either delivery. A token flow starts only with a provider that
    /// can serve the context's address; a code flow starts with any provider, whose
    /// first step then refuses (Home Assistant 2024.3's answer).
    pub(crate) async fn start_flow(
        &self,
        provider_type: &str,
        provider_id: Option<&str>,
        ctx: FlowContext,
        delivery: Delivery,
    ) -> Result<FlowOutcome, AuthError> {
        if ctx.client_id.as_deref().is_none_or(str::is_empty) {
            return Err(AuthError::InvalidRequest("a client id is required".into()));
        }
        if let Some(client_id) = &ctx.client_id {
            limits::check_len("client id", client_id, MAX_URL_BYTES)?;
        }
        if let Some(redirect_uri) = &ctx.redirect_uri {
            limits::check_len("redirect uri", redirect_uri, MAX_URL_BYTES)?;
        }
        let provider = self
            .provider(provider_type, provider_id)
            .filter(|p| delivery != Delivery::Tokens || p.can_start_login(&ctx))
            .ok_or(AuthError::InvalidHandler)?;
        let step = provider
            .login_step("init", None, &ctx, &self.inner.dir)
            .await?;
        let now = self.now();
        let flow = LoginFlow {
            provider: Arc::clone(&provider),
            ctx,
            created_at: now,
            stage: Stage::Provider {
                step_id: "init".into(),
            },
            form: Form::default(),
            username: None,
            throttle_name: None,
            delivery,
        };
        let (flow_id, slot) = FlowTable::insert(
            &self.inner.flows.login,
            self.inner.flows.ttl,
            self.inner.flows.max,
            now,
            flow,
        );
        let mut flow = slot.lock().await;
        let outcome = self.after_provider_step(&flow_id, &mut flow, step).await;
        self.finish_outcome(&flow_id, outcome)
    }

    /// Continues a login flow with the input for its current form. `remote_ip` must be
    /// the address the flow started from.
    ///
    /// # Errors
    /// [`AuthError::FlowNotFound`], [`AuthError::FlowBusy`], [`AuthError::IpChanged`],
    /// [`AuthError::InputMalformed`], [`AuthError::Limit`] for a value longer than
    /// 1,024 bytes (the flow stays as it was; nothing is checked or counted).
    pub async fn continue_login_flow(
        &self,
        flow_id: &str,
        input: Map<String, Value>,
        remote_ip: Option<IpAddr>,
    ) -> Result<FlowOutcome, AuthError> {
        self.continue_flow(flow_id, input, remote_ip, false).await
    }

    /// Continues a flow of the delivery asked for (`code`): a flow of the other kind is
    /// not found, so neither API can finish the other's flows.
    pub(crate) async fn continue_flow(
        &self,
        flow_id: &str,
        input: Map<String, Value>,
        remote_ip: Option<IpAddr>,
        code: bool,
    ) -> Result<FlowOutcome, AuthError> {
        limits::check_len("flow id", flow_id, MAX_ID_BYTES)?;
        let now = self.now();
        let slot = FlowTable::get(&self.inner.flows.login, self.inner.flows.ttl, now, flow_id)
            .ok_or(AuthError::FlowNotFound)?;
        let mut flow = slot.try_lock().map_err(|_| AuthError::FlowBusy)?;
        if matches!(flow.delivery, Delivery::Code { .. }) != code {
            return Err(AuthError::FlowNotFound);
        }
        let flow_id = FlowId::from(flow_id);
        if flow.ctx.ip_address != remote_ip {
            return Err(AuthError::IpChanged);
        }
        if matches!(flow.stage, Stage::AwaitRedirect { .. }) {
            return Err(AuthError::InvalidRequest(
                "the flow is waiting for its redirect check".into(),
            ));
        }
        if !flow.form.accepts(&input) {
            return Err(AuthError::InputMalformed);
        }
        check_form_values(&input)?;
        let outcome = self.run_step(&flow_id, &mut flow, input).await;
        self.finish_outcome(&flow_id, outcome)
    }

    /// Aborts a login flow.
    ///
    /// # Errors
    /// [`AuthError::FlowNotFound`].
    pub fn abort_login_flow(&self, flow_id: &str) -> Result<(), AuthError> {
        self.inner
            .flows
            .login
            .lock()
            .remove(&FlowId::from(flow_id))
            .map(|_| ())
            .ok_or(AuthError::FlowNotFound)
    }

    /// Removes a finished or aborted flow from the table.
    pub(crate) fn finish_outcome(
        &self,
        flow_id: &FlowId,
        outcome: Result<FlowOutcome, AuthError>,
    ) -> Result<FlowOutcome, AuthError> {
        let terminal = !matches!(
            outcome,
            Ok(FlowOutcome::Form { .. } | FlowOutcome::CheckRedirect { .. })
        ) && !matches!(
            outcome,
            Err(AuthError::InputMalformed | AuthError::IpChanged | AuthError::Limit(_))
        );
        if terminal {
            self.inner.flows.login.lock().remove(flow_id);
        }
        outcome
    }

    async fn run_step(
        &self,
        flow_id: &FlowId,
        flow: &mut LoginFlow,
        input: Map<String, Value>,
    ) -> Result<FlowOutcome, AuthError> {
        let handler = handler_of(flow.provider.as_ref());
        let source = flow.ctx.ip_address;
        if let Stage::Provider { .. } = flow.stage {
            let typed = input.get("username").and_then(Value::as_str);
            flow.username = typed.map(limits::echo);
            flow.throttle_name = typed.map(username_key);
        }
        // Throttle every attempt that checks a secret.
        if !matches!(flow.stage, Stage::SelectMfa { .. })
            && self
                .throttle_attempt(
                    flow.throttle_name.as_deref(),
                    flow.username.clone(),
                    source,
                    &handler.provider_type,
                )
                .await
                .is_err()
        {
            return Ok(FlowOutcome::Abort {
                flow_id: flow_id.clone(),
                handler,
                reason: AbortReason::TooManyAttempts,
            });
        }
        match std::mem::replace(
            &mut flow.stage,
            Stage::Provider {
                step_id: String::new(),
            },
        ) {
            Stage::Provider { step_id } => {
                flow.stage = Stage::Provider {
                    step_id: step_id.clone(),
                };
                let provider = Arc::clone(&flow.provider);
                let step = provider
                    .login_step(&step_id, Some(&input), &flow.ctx, &self.inner.dir)
                    .await?;
                self.after_provider_step(flow_id, flow, step).await
            }
            Stage::SelectMfa { user, credentials } => {
                let modules = self.enabled_mfa(&user.id);
                let chosen = input
                    .get("multi_factor_auth_module")
                    .and_then(Value::as_str)
                    .and_then(|id| modules.iter().find(|m| m.id() == id).cloned());
                if let Some(module) = chosen {
                    flow.form = mfa_form(module.as_ref());
                    flow.stage = Stage::Mfa {
                        user,
                        credentials,
                        module,
                        invalid: 0,
                    };
                } else {
                    flow.form = select_form(&modules).with_error(ErrorKey::InvalidAuthModule);
                    flow.stage = Stage::SelectMfa { user, credentials };
                }
                Ok(FlowOutcome::Form {
                    flow_id: flow_id.clone(),
                    handler,
                    form: flow.form.clone(),
                })
            }
            Stage::Mfa {
                user,
                credentials,
                module,
                invalid,
            } => {
                self.mfa_step(flow_id, flow, user, credentials, module, invalid, input)
                    .await
            }
            // `continue_flow` refuses input for such a flow before it gets here.
            stage @ Stage::AwaitRedirect { .. } => {
                flow.stage = stage;
                Err(AuthError::InvalidRequest(
                    "the flow is waiting for its redirect check".into(),
                ))
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    async fn mfa_step(
        &self,
        flow_id: &FlowId,
        flow: &mut LoginFlow,
        user: User,
        credentials: Credentials,
        module: Arc<dyn MfaModule>,
        mut invalid: u32,
        input: Map<String, Value>,
    ) -> Result<FlowOutcome, AuthError> {
        let handler = handler_of(flow.provider.as_ref());
        let source = flow.ctx.ip_address;
        if self.now() > flow.created_at + MFA_SESSION_EXPIRATION {
            self.fire(AuthEvent::LoginFailed {
                username: flow.username.clone(),
                provider_type: handler.provider_type.clone(),
                source,
                reason: "login_expired".into(),
            });
            return Ok(FlowOutcome::Abort {
                flow_id: flow_id.clone(),
                handler,
                reason: AbortReason::LoginExpired,
            });
        }
        if !self.mfa_module_still_enabled(&module, &user) {
            let modules = self.enabled_mfa(&user.id);
            flow.form = select_form(&modules).with_error(ErrorKey::InvalidAuthModule);
            flow.stage = Stage::SelectMfa { user, credentials };
            return Ok(FlowOutcome::Form {
                flow_id: flow_id.clone(),
                handler,
                form: flow.form.clone(),
            });
        }
        let error = match module.check(&user.id, &input).await? {
            CodeVerdict::Accepted => return self.finish_login(flow_id, flow, credentials).await,
            CodeVerdict::Invalid => ErrorKey::InvalidCode,
            CodeVerdict::AlreadyUsed => ErrorKey::CodeAlreadyUsed,
        };
        invalid += 1;
        self.record_login_failure(flow, error.as_str());
        if invalid >= module.max_retry() && module.max_retry() > 0 {
            self.fire(AuthEvent::LoginFailed {
                username: flow.username.clone(),
                provider_type: handler.provider_type.clone(),
                source,
                reason: "too_many_retry".into(),
            });
            return Ok(FlowOutcome::Abort {
                flow_id: flow_id.clone(),
                handler,
                reason: AbortReason::TooManyRetry,
            });
        }
        flow.form = mfa_form(module.as_ref()).with_error(error);
        flow.stage = Stage::Mfa {
            user,
            credentials,
            module,
            invalid,
        };
        Ok(FlowOutcome::Form {
            flow_id: flow_id.clone(),
            handler,
            form: flow.form.clone(),
        })
    }

    fn mfa_module_still_enabled(&self, module: &Arc<dyn MfaModule>, user: &User) -> bool {
        self.mfa_module(module.id()).is_some() && module.is_user_setup(&user.id)
    }

    /// Counts a failed secret against the flow's username and source, firing
    /// `login_failed` and any `lockout_started`.
    pub(crate) fn record_login_failure(&self, flow: &LoginFlow, reason: &str) {
        self.record_failed_attempt(
            flow.throttle_name.as_deref(),
            flow.username.clone(),
            flow.ctx.ip_address,
            flow.provider.provider_type(),
            reason,
        );
    }

    async fn after_provider_step(
        &self,
        flow_id: &FlowId,
        flow: &mut LoginFlow,
        step: LoginStep,
    ) -> Result<FlowOutcome, AuthError> {
        let handler = handler_of(flow.provider.as_ref());
        match step {
            LoginStep::Form(form) => {
                if let Some(key) = form.base_error()
                    && (key == ErrorKey::InvalidAuth.as_str()
                        || key == ErrorKey::InvalidCode.as_str())
                {
                    self.record_login_failure(flow, key);
                }
                flow.stage = Stage::Provider {
                    step_id: form.step_id.clone(),
                };
                flow.form = form.clone();
                Ok(FlowOutcome::Form {
                    flow_id: flow_id.clone(),
                    handler,
                    form,
                })
            }
            LoginStep::Abort(reason) => Ok(FlowOutcome::Abort {
                flow_id: flow_id.clone(),
                handler,
                reason,
            }),
            LoginStep::Done(data) => {
                let credentials = flow
                    .provider
                    .get_or_create_credentials(&data, &self.inner.dir)?;
                if flow.provider.supports_mfa()
                    && !credentials.is_new
                    && let Some(user) = credentials
                        .user_id
                        .as_ref()
                        .and_then(|id| self.user(id.as_str()))
                {
                    let modules = self.enabled_mfa(&user.id);
                    match modules.as_slice() {
                        [] => {}
                        [only] => {
                            flow.form = mfa_form(only.as_ref());
                            flow.stage = Stage::Mfa {
                                user,
                                credentials,
                                module: Arc::clone(only),
                                invalid: 0,
                            };
                            return Ok(FlowOutcome::Form {
                                flow_id: flow_id.clone(),
                                handler,
                                form: flow.form.clone(),
                            });
                        }
                        several => {
                            flow.form = select_form(several);
                            flow.stage = Stage::SelectMfa { user, credentials };
                            return Ok(FlowOutcome::Form {
                                flow_id: flow_id.clone(),
                                handler,
                                form: flow.form.clone(),
                            });
                        }
                    }
                }
                self.finish_login(flow_id, flow, credentials).await
            }
        }
    }

    async fn finish_login(
        &self,
        flow_id: &FlowId,
        flow: &mut LoginFlow,
        credentials: Credentials,
    ) -> Result<FlowOutcome, AuthError> {
        let handler = handler_of(flow.provider.as_ref());
        if let Delivery::Code { .. } = flow.delivery {
            // The code waits for the caller's redirect check (code_flow.rs).
            flow.stage = Stage::AwaitRedirect { credentials };
            return Ok(FlowOutcome::CheckRedirect {
                flow_id: flow_id.clone(),
                handler,
                client_id: flow.ctx.client_id.clone().unwrap_or_default(),
                redirect_uri: flow.ctx.redirect_uri.clone().unwrap_or_default(),
            });
        }
        let source = flow.ctx.ip_address;
        let (user, credentials) = self
            .get_or_create_user(flow.provider.as_ref(), credentials)
            .await?;
        if let Some(reason) = Self::user_not_allowed(&user, source) {
            tracing::warn!(user_id = %user.id, source = ?source, reason, "login blocked");
            self.fire(AuthEvent::LoginFailed {
                username: flow.username.clone(),
                provider_type: handler.provider_type.clone(),
                source,
                reason: AbortReason::LoginBlocked.as_str().to_owned(),
            });
            return Ok(FlowOutcome::Abort {
                flow_id: flow_id.clone(),
                handler,
                reason: AbortReason::LoginBlocked,
            });
        }
        let client_id = flow.ctx.client_id.clone().unwrap_or_default();
        let refresh = self
            .create_refresh_token(
                user.id.as_str(),
                NewRefreshToken {
                    // Whole seconds well below 2^53: exact as f64.
                    #[allow(clippy::cast_precision_loss)]
                    access_token_expiration: self.inner.access_token_lifetime_secs as f64,
                    ..NewRefreshToken::normal(client_id, Some(credentials.id.clone()))
                },
            )
            .await?;
        let access = match self.create_access_token(refresh.id.as_str(), source) {
            Ok(access) => access,
            Err(e) => {
                // Leave no refresh token behind that nobody received.
                let _ = self.remove_refresh_token(refresh.id.as_str()).await;
                return Err(e);
            }
        };
        self.inner
            .throttle
            .lock()
            .record_success(flow.throttle_name.as_deref());
        tracing::info!(user_id = %user.id, provider = %handler.provider_type, source = ?source, "login succeeded");
        self.fire(AuthEvent::LoginSucceeded {
            user_id: user.id.clone(),
            provider_type: handler.provider_type.clone(),
            source,
        });
        Ok(FlowOutcome::Done {
            flow_id: flow_id.clone(),
            handler,
            tokens: IssuedTokens {
                user_id: user.id,
                refresh_token_id: refresh.id.clone(),
                refresh_token: refresh.token.clone(),
                access_token: access,
            },
        })
    }

    // ----- MFA setup -----

    /// Starts setting up MFA module `module_id` for `user_id` and runs its first step.
    ///
    /// # Errors
    /// [`AuthError::UserNotFound`], [`AuthError::SystemUser`],
    /// [`AuthError::MfaModuleNotFound`], the module's refusal.
    pub async fn start_mfa_setup(
        &self,
        user_id: &str,
        module_id: &str,
    ) -> Result<SetupOutcome, AuthError> {
        let user = self.user(user_id).ok_or(AuthError::UserNotFound)?;
        if user.system_generated {
            return Err(AuthError::SystemUser("system users cannot set up mfa"));
        }
        let module = self.require_mfa_module(module_id)?;
        let flow = module.setup_flow(&user)?;
        let (flow_id, slot) = FlowTable::insert(
            &self.inner.flows.setup,
            self.inner.flows.ttl,
            self.inner.flows.max,
            self.now(),
            SetupFlowEntry {
                user_id: user.id.clone(),
                module_id: module.id().to_owned(),
                flow,
            },
        );
        let mut entry = slot.lock().await;
        let step = entry.flow.step(None).await;
        drop(entry);
        self.setup_outcome(flow_id, module.id(), step)
    }

    /// Continues an MFA setup flow. With `user_id`, the flow must have been started for
    /// that user (unlike Home Assistant, which does not check).
    ///
    /// # Errors
    /// [`AuthError::FlowNotFound`] (also for another user's flow), [`AuthError::FlowBusy`].
    pub async fn continue_mfa_setup(
        &self,
        flow_id: &str,
        user_id: Option<&str>,
        input: Map<String, Value>,
    ) -> Result<SetupOutcome, AuthError> {
        limits::check_len("flow id", flow_id, MAX_ID_BYTES)?;
        check_form_values(&input)?;
        let slot = FlowTable::get(
            &self.inner.flows.setup,
            self.inner.flows.ttl,
            self.now(),
            flow_id,
        )
        .ok_or(AuthError::FlowNotFound)?;
        let mut entry = slot.try_lock().map_err(|_| AuthError::FlowBusy)?;
        if user_id.is_some_and(|u| entry.user_id.as_str() != u) {
            return Err(AuthError::FlowNotFound);
        }
        let step = entry.flow.step(Some(&input)).await;
        let module_id = entry.module_id.clone();
        let flow_user = entry.user_id.clone();
        drop(entry);
        if matches!(step, Ok(SetupStep::Done { .. })) {
            tracing::info!(user_id = %flow_user, module_id, "mfa enabled");
            self.fire(AuthEvent::MfaEnabled {
                user_id: flow_user,
                module_id: module_id.clone(),
            });
        }
        self.setup_outcome(FlowId::from(flow_id), &module_id, step)
    }

    fn setup_outcome(
        &self,
        flow_id: FlowId,
        module_id: &str,
        step: Result<SetupStep, latch_provider::ProviderError>,
    ) -> Result<SetupOutcome, AuthError> {
        let outcome = match step {
            Ok(SetupStep::Form(form)) => {
                return Ok(SetupOutcome::Form { flow_id, form });
            }
            Ok(SetupStep::Abort(reason)) => Ok(SetupOutcome::Abort {
                flow_id: flow_id.clone(),
                reason,
            }),
            Ok(SetupStep::Done { recovery_codes }) => Ok(SetupOutcome::Done {
                flow_id: flow_id.clone(),
                module_id: module_id.to_owned(),
                recovery_codes,
            }),
            Err(e) => Err(e.into()),
        };
        self.inner.flows.setup.lock().remove(&flow_id);
        outcome
    }

    /// Aborts an MFA setup flow.
    ///
    /// # Errors
    /// [`AuthError::FlowNotFound`].
    pub fn abort_mfa_setup(&self, flow_id: &str) -> Result<(), AuthError> {
        self.inner
            .flows
            .setup
            .lock()
            .remove(&FlowId::from(flow_id))
            .map(|_| ())
            .ok_or(AuthError::FlowNotFound)
    }

    /// Disables MFA module `module_id` for `user_id`. Disabling a module the user never
    /// set up succeeds.
    ///
    /// # Errors
    /// [`AuthError::UserNotFound`], [`AuthError::SystemUser`],
    /// [`AuthError::MfaModuleNotFound`].
    pub async fn disable_mfa(&self, user_id: &str, module_id: &str) -> Result<(), AuthError> {
        let user = self.user(user_id).ok_or(AuthError::UserNotFound)?;
        if user.system_generated {
            return Err(AuthError::SystemUser("system users cannot disable mfa"));
        }
        let module = self.require_mfa_module(module_id)?;
        let was_set_up = module.is_user_setup(&user.id);
        module.depose_user(&user.id).await?;
        if was_set_up {
            tracing::info!(user_id, module_id, "mfa disabled");
            self.fire(AuthEvent::MfaDisabled {
                user_id: user.id,
                module_id: module.id().to_owned(),
            });
        }
        Ok(())
    }

    /// The MFA module with this id, or an error naming it (echoed).
    fn require_mfa_module(&self, module_id: &str) -> Result<Arc<dyn MfaModule>, AuthError> {
        self.mfa_module(module_id)
            .ok_or_else(|| AuthError::MfaModuleNotFound(limits::echo(module_id)))
    }

    /// Issues a new set of recovery codes for `user_id` with `module_id`, invalidating
    /// the old set.
    ///
    /// # Errors
    /// As [`AuthManager::disable_mfa`]; [`AuthError::InvalidRequest`] if the user has
    /// not set the module up or it has no recovery codes.
    pub async fn regenerate_recovery_codes(
        &self,
        user_id: &str,
        module_id: &str,
    ) -> Result<Vec<String>, AuthError> {
        let user = self.user(user_id).ok_or(AuthError::UserNotFound)?;
        let module = self.require_mfa_module(module_id)?;
        let module_id = module.id().to_owned();
        if !module.is_user_setup(&user.id) {
            return Err(AuthError::InvalidRequest(format!(
                "mfa module {module_id} is not set up for this user"
            )));
        }
        let codes = module
            .regenerate_recovery_codes(&user.id)
            .await?
            .ok_or_else(|| {
                AuthError::InvalidRequest(format!("mfa module {module_id} has no recovery codes"))
            })?;
        tracing::info!(user_id, module_id, "recovery codes regenerated");
        self.fire(AuthEvent::RecoveryCodesRegenerated {
            user_id: user.id,
            module_id,
        });
        Ok(codes)
    }
}

/// Every value of a form at most [`MAX_FORM_VALUE_BYTES`], every field name at most
/// [`MAX_ID_BYTES`].
fn check_form_values(input: &Map<String, Value>) -> Result<(), AuthError> {
    for (field, value) in input {
        limits::check_len("form field name", field, MAX_ID_BYTES)?;
        if let Value::String(value) = value {
            limits::check_len("form value", value, MAX_FORM_VALUE_BYTES)?;
        }
    }
    Ok(())
}
