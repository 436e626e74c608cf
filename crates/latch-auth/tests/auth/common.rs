//! The test harness: a manager over a real store in a temporary directory, a fixed clock,
//! and helpers that drive flows the way a caller would.

use std::net::IpAddr;
use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, TimeDelta, Utc};
use latch_auth::{
    AuthConfig, AuthEvent, AuthManager, FlowOutcome, IssuedTokens, ManagerOptions, MfaConfig,
    ProviderConfig, SetupOutcome, ThrottleConfig,
};
use latch_mfa_totp::{TotpConfig, TotpModule};
use latch_models::{Clock, FixedClock, GROUP_ID_USER, GroupId, User, UserId};
use latch_provider::{AbortReason, AuthProvider, FlowContext, Form, MfaModule};
use latch_provider_homeassistant::{HashPool, HomeAssistantConfig, HomeAssistantProvider};
use latch_provider_trusted_networks::TrustedNetworksConfig;
use latch_store::{Store, StoreOptions};
use serde_json::{Map, Value};
use tempfile::TempDir;
use tokio::sync::broadcast;

use crate::pin::PinModule;

/// The OAuth client every login in these tests is for.
pub(crate) const CLIENT_ID: &str = "https://example.com/app";

/// 2025-01-01T00:00:00Z: the start of a TOTP step.
pub(crate) const T0: i64 = 1_735_689_600;

/// The owner's password.
pub(crate) const OWNER_PASSWORD: &str = "owner-Passw0rd!";

/// A LAN address the tests log in from.
pub(crate) const LAN: &str = "192.168.1.20";

pub(crate) fn t0() -> DateTime<Utc> {
    DateTime::from_timestamp(T0, 0).unwrap()
}

pub(crate) fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

pub(crate) fn lan() -> Option<IpAddr> {
    Some(ip(LAN))
}

/// The `homeassistant` provider with a cheap bcrypt cost.
pub(crate) fn ha_config() -> HomeAssistantConfig {
    HomeAssistantConfig {
        name: None,
        bcrypt_cost: 4,
    }
}

/// A TOTP module with this id.
pub(crate) fn totp_config(id: &str) -> TotpConfig {
    TotpConfig {
        id: id.to_owned(),
        ..TotpConfig::default()
    }
}

/// Home Assistant's default configuration, with a cheap bcrypt cost.
pub(crate) fn default_config() -> AuthConfig {
    AuthConfig {
        auth_providers: vec![ProviderConfig::Homeassistant(ha_config())],
        mfa_modules: vec![MfaConfig::Totp(TotpConfig::default())],
    }
}

/// `homeassistant` and a `trusted_networks` provider trusting 192.168.0.0/24.
pub(crate) fn trusted_networks_config() -> AuthConfig {
    let tn: TrustedNetworksConfig = serde_json::from_value(serde_json::json!({
        "trusted_networks": ["192.168.0.0/24"],
    }))
    .unwrap();
    AuthConfig {
        auth_providers: vec![
            ProviderConfig::Homeassistant(ha_config()),
            ProviderConfig::TrustedNetworks(tn),
        ],
        mfa_modules: vec![MfaConfig::Totp(TotpConfig::default())],
    }
}

/// What a finished TOTP setup flow showed.
pub(crate) struct Enrolment {
    /// The base32 secret from the form's `code` placeholder.
    pub(crate) secret: String,
    /// The recovery codes of the finished flow.
    pub(crate) recovery_codes: Vec<String>,
}

/// A manager over a real store in a temporary directory, with a fixed clock.
pub(crate) struct Harness {
    pub(crate) home: TempDir,
    pub(crate) clock: Arc<FixedClock>,
    pub(crate) manager: AuthManager,
}

impl Harness {
    /// The default configuration and throttle.
    pub(crate) fn new() -> Self {
        Self::build(&default_config(), ThrottleConfig::default())
    }

    /// This configuration and the default throttle.
    pub(crate) fn with_config(config: &AuthConfig) -> Self {
        Self::build(config, ThrottleConfig::default())
    }

    /// The default configuration and this throttle.
    pub(crate) fn with_throttle(throttle: ThrottleConfig) -> Self {
        Self::build(&default_config(), throttle)
    }

    pub(crate) fn build(config: &AuthConfig, throttle: ThrottleConfig) -> Self {
        let home = tempfile::tempdir().unwrap();
        let clock = Arc::new(FixedClock::new(t0()));
        let manager = open_manager(&home, config, &clock, throttle);
        Self {
            home,
            clock,
            manager,
        }
    }

    /// The default configuration, with `edit` applied to the manager's options.
    pub(crate) fn with_options(edit: impl FnOnce(&mut ManagerOptions)) -> Self {
        let home = tempfile::tempdir().unwrap();
        let clock = Arc::new(FixedClock::new(t0()));
        let mut opts = options(&clock, ThrottleConfig::default());
        edit(&mut opts);
        let store = Store::open(home.path(), StoreOptions::default()).unwrap();
        let manager = AuthManager::from_config(store, &default_config(), opts).unwrap();
        Self {
            home,
            clock,
            manager,
        }
    }

    /// `homeassistant`, then the modules `totp` and [`PinModule`], built with
    /// [`AuthManager::new`]; returns the PIN module to set PINs with.
    pub(crate) fn with_pin_module() -> (Self, Arc<PinModule>) {
        let home = tempfile::tempdir().unwrap();
        let clock = Arc::new(FixedClock::new(t0()));
        let store = Store::open(home.path(), StoreOptions::default()).unwrap();
        let ha = Arc::new(
            HomeAssistantProvider::with_pool(ha_config(), store.clone(), HashPool::new(2)).unwrap(),
        );
        let totp = Arc::new(
            TotpModule::new(
                TotpConfig::default(),
                store.clone(),
                Arc::clone(&clock) as Arc<dyn Clock>,
            )
            .unwrap(),
        );
        let pin = Arc::new(PinModule::default());
        let modules: Vec<Arc<dyn MfaModule>> = vec![totp, Arc::clone(&pin) as Arc<dyn MfaModule>];
        let manager = AuthManager::new(
            store,
            vec![Arc::clone(&ha) as Arc<dyn AuthProvider>],
            Some(ha),
            modules,
            options(&clock, ThrottleConfig::default()),
        )
        .unwrap();
        let h = Self {
            home,
            clock,
            manager,
        };
        (h, pin)
    }

    pub(crate) fn now(&self) -> DateTime<Utc> {
        self.manager.now()
    }

    pub(crate) fn advance(&self, by: TimeDelta) {
        self.clock.advance(by);
    }

    pub(crate) fn subscribe(&self) -> broadcast::Receiver<AuthEvent> {
        self.manager.subscribe()
    }

    /// Onboards the owner "Paulus" with username `paulus`.
    pub(crate) async fn onboard(&self) -> User {
        self.manager
            .onboard(Some("Paulus".into()), "paulus", OWNER_PASSWORD)
            .await
            .unwrap()
    }

    /// A user in `system-users` with a password login.
    pub(crate) async fn user_with_password(
        &self,
        name: &str,
        username: &str,
        password: &str,
    ) -> User {
        let user = self
            .manager
            .create_user(
                Some(name.to_owned()),
                Some(vec![GroupId::from(GROUP_ID_USER)]),
                false,
            )
            .await
            .unwrap();
        self.manager
            .add_password_login(user.id.as_str(), username, password)
            .await
            .unwrap();
        user
    }

    /// A `homeassistant` password entry with no credential and no user, as an entry
    /// added to the provider's file outside the manager would be.
    pub(crate) async fn bare_password_entry(&self, username: &str, password: &str) {
        let provider = HomeAssistantProvider::with_pool(
            ha_config(),
            self.manager.store().clone(),
            HashPool::new(1),
        )
        .unwrap();
        provider.add_auth(username, password).await.unwrap();
    }

    /// Starts a `homeassistant` login flow from `source` and returns its flow id.
    pub(crate) async fn start(&self, source: Option<IpAddr>) -> String {
        let outcome = self
            .manager
            .start_login_flow("homeassistant", None, ctx(source))
            .await
            .unwrap();
        let (flow_id, form) = expect_form(outcome);
        assert_eq!(form.step_id, "init");
        flow_id
    }

    /// Posts `input` to a flow from `source`.
    pub(crate) async fn post(
        &self,
        flow_id: &str,
        input: &[(&str, &str)],
        source: Option<IpAddr>,
    ) -> FlowOutcome {
        self.manager
            .continue_login_flow(flow_id, form_input(input), source)
            .await
            .unwrap()
    }

    /// Starts a flow and posts a username and password to it.
    pub(crate) async fn login(
        &self,
        username: &str,
        password: &str,
        source: Option<IpAddr>,
    ) -> FlowOutcome {
        let flow_id = self.start(source).await;
        self.post(
            &flow_id,
            &[("username", username), ("password", password)],
            source,
        )
        .await
    }

    /// A password login for a user without MFA; panics unless it issues tokens.
    pub(crate) async fn login_tokens(
        &self,
        username: &str,
        password: &str,
        source: Option<IpAddr>,
    ) -> IssuedTokens {
        expect_done(self.login(username, password, source).await)
    }

    /// Runs the TOTP setup flow of `module_id` for `user_id` with an independently
    /// computed code, then moves the clock one TOTP step on (the step of the setup code
    /// is marked used, so a login in the same step would be a replay).
    pub(crate) async fn enrol_totp(&self, user_id: &UserId, module_id: &str) -> Enrolment {
        let outcome = self
            .manager
            .start_mfa_setup(user_id.as_str(), module_id)
            .await
            .unwrap();
        let SetupOutcome::Form { flow_id, form } = outcome else {
            panic!("expected the setup form, got {outcome:?}");
        };
        let secret = form.description_placeholders["code"].clone();
        let code = totp_code(&secret, self.now());
        let outcome = self
            .manager
            .continue_mfa_setup(
                flow_id.as_str(),
                Some(user_id.as_str()),
                form_input(&[("code", &code)]),
            )
            .await
            .unwrap();
        let SetupOutcome::Done { recovery_codes, .. } = outcome else {
            panic!("expected the setup to finish, got {outcome:?}");
        };
        self.advance(TimeDelta::seconds(30));
        Enrolment {
            secret,
            recovery_codes,
        }
    }

    /// True if the `homeassistant` provider's file has an entry of this exact name.
    pub(crate) fn has_password_entry(&self, username: &str) -> bool {
        self.manager.store().ha_user(username).is_some()
    }
}

/// Opens a store in `home` and builds a manager over it from `config`.
pub(crate) fn open_manager(
    home: &TempDir,
    config: &AuthConfig,
    clock: &Arc<FixedClock>,
    throttle: ThrottleConfig,
) -> AuthManager {
    let store = Store::open(home.path(), StoreOptions::default()).unwrap();
    AuthManager::from_config(store, config, options(clock, throttle)).unwrap()
}

pub(crate) fn options(clock: &Arc<FixedClock>, throttle: ThrottleConfig) -> ManagerOptions {
    ManagerOptions {
        clock: Arc::clone(clock) as Arc<dyn Clock>,
        throttle,
        ..ManagerOptions::default()
    }
}

/// A flow context from `source` for [`CLIENT_ID`].
pub(crate) fn ctx(source: Option<IpAddr>) -> FlowContext {
    FlowContext {
        ip_address: source,
        client_id: Some(CLIENT_ID.to_owned()),
        redirect_uri: Some(format!("{CLIENT_ID}/callback")),
    }
}

/// Form input from string pairs.
pub(crate) fn form_input(pairs: &[(&str, &str)]) -> Map<String, Value> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), Value::String((*v).to_owned())))
        .collect()
}

/// The form of a `Form` outcome, with its flow id.
pub(crate) fn expect_form(outcome: FlowOutcome) -> (String, Form) {
    match outcome {
        FlowOutcome::Form { flow_id, form, .. } => (flow_id.as_str().to_owned(), form),
        other => panic!("expected a form, got {other:?}"),
    }
}

/// The tokens of a `Done` outcome.
pub(crate) fn expect_done(outcome: FlowOutcome) -> IssuedTokens {
    match outcome {
        FlowOutcome::Done { tokens, .. } => tokens,
        other => panic!("expected the flow to finish with tokens, got {other:?}"),
    }
}

/// The reason of an `Abort` outcome.
pub(crate) fn expect_abort(outcome: FlowOutcome) -> AbortReason {
    match outcome {
        FlowOutcome::Abort { reason, .. } => reason,
        other => panic!("expected the flow to abort, got {other:?}"),
    }
}

/// The TOTP code of `secret` at `at`, computed with `totp-rs` (RFC 6238: SHA-1, six
/// digits, 30 s steps), independently of latch-mfa-totp.
pub(crate) fn totp_code(secret: &str, at: DateTime<Utc>) -> String {
    let key = totp_rs::Secret::try_from_base32(secret).unwrap();
    let totp = totp_rs::Builder::new().with_secret(key).build().unwrap();
    totp.generate(u64::try_from(at.timestamp()).unwrap())
        .to_string()
}

/// A six-digit code that is none of the codes accepted at `at` (steps T-1, T, T+1).
pub(crate) fn wrong_code(secret: &str, at: DateTime<Utc>) -> String {
    let accepted: Vec<String> = [-30, 0, 30]
        .iter()
        .map(|d| totp_code(secret, at + TimeDelta::seconds(*d)))
        .collect();
    (0..10u32)
        .map(|i| format!("{:06}", (123_456 + i * 111_111) % 1_000_000))
        .find(|c| !accepted.contains(c))
        .unwrap()
}

/// Every event received so far.
pub(crate) fn drain(rx: &mut broadcast::Receiver<AuthEvent>) -> Vec<AuthEvent> {
    let mut events = Vec::new();
    while let Ok(e) = rx.try_recv() {
        events.push(e);
    }
    events
}

/// The claims of a JWT, decoded without latch-token.
pub(crate) fn jwt_claims(token: &str) -> Value {
    let payload = token.split('.').nth(1).unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap()
}
