//! Home Assistant's `tests/auth/providers/test_trusted_networks.py`, scenario by
//! scenario, plus the trusted-network cases of `tests/components/auth/test_login_flow.py`
//! and latch's deliberate fixes (string groups, IPv4-mapped addresses).

// Fixture helpers outside #[test] fns panic on purpose when a fixture is wrong.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::IpAddr;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use chrono::Utc;
use latch_models::{
    Credentials, GROUP_ID_USER, Group, GroupId, RefreshToken, RefreshTokenId, Secret, TokenType,
    User, UserId, system_groups,
};
use latch_provider::{
    AbortReason, AuthProvider, BoxFuture, Directory, FieldType, FlowContext, Form, LoginStep,
    ProviderError,
};
use latch_provider_trusted_networks::{
    AccessDenied, ConfigError, TrustedNetworksConfig, TrustedNetworksProvider, TrustedUser,
};
use serde_json::{Map, Value, json};

// ---------------------------------------------------------------------------------------
// Fixtures
// ---------------------------------------------------------------------------------------

/// A directory over plain vectors, standing in for the manager's store.
#[derive(Default)]
struct Dir {
    users: Vec<User>,
    groups: Vec<Group>,
    credentials: Vec<Credentials>,
}

impl Dir {
    fn new() -> Self {
        Self {
            groups: system_groups(),
            ..Self::default()
        }
    }

    /// `async_create_user(name)`: active, not system-generated.
    fn add_user(&mut self, name: &str) -> User {
        let mut user = User::new(Some(name.to_owned()));
        user.is_active = true;
        self.users.push(user.clone());
        user
    }

    /// `async_create_system_user(name)`.
    fn add_system_user(&mut self, name: &str) -> User {
        let mut user = User::new(Some(name.to_owned()));
        user.is_active = true;
        user.system_generated = true;
        self.users.push(user.clone());
        user
    }

    fn set_groups(&mut self, id: &UserId, groups: &[&str]) {
        for u in &mut self.users {
            if u.id == *id {
                u.group_ids = groups.iter().map(|g| GroupId::from(*g)).collect();
            }
        }
    }

    fn deactivate(&mut self, id: &UserId) {
        for u in &mut self.users {
            if u.id == *id {
                u.is_active = false;
            }
        }
    }

    /// What the manager does with a credential the provider returned.
    fn store(&mut self, cred: &Credentials) {
        if !self.credentials.iter().any(|c| c.id == cred.id) {
            self.credentials.push(cred.clone());
        }
    }
}

impl Directory for Dir {
    fn users(&self) -> Vec<User> {
        self.users.clone()
    }

    fn user(&self, id: &str) -> Option<User> {
        self.users.iter().find(|u| u.id.as_str() == id).cloned()
    }

    fn groups(&self) -> Vec<Group> {
        self.groups.clone()
    }

    fn credentials_of_provider(
        &self,
        provider_type: &str,
        provider_id: Option<&str>,
    ) -> Vec<Credentials> {
        self.credentials
            .iter()
            .filter(|c| {
                c.auth_provider_type == provider_type
                    && c.auth_provider_id.as_deref() == provider_id
            })
            .cloned()
            .collect()
    }
}

/// The networks of every Home Assistant fixture.
fn ha_networks() -> Value {
    json!(["192.168.0.1", "192.168.128.0/24", "::1", "fd00::/8"])
}

fn provider_from(config: Value) -> TrustedNetworksProvider {
    TrustedNetworksProvider::new(TrustedNetworksConfig::from_value(config).unwrap())
}

/// The `provider` fixture.
fn ha_provider() -> TrustedNetworksProvider {
    provider_from(json!({"type": "trusted_networks", "trusted_networks": ha_networks()}))
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn ctx(addr: &str) -> FlowContext {
    FlowContext {
        ip_address: Some(ip(addr)),
        ..FlowContext::default()
    }
}

/// Polls a step future once: this provider's steps never wait on anything.
fn ready<T>(fut: BoxFuture<'_, T>) -> T {
    let mut fut = pin!(fut);
    match fut.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(v) => v,
        Poll::Pending => panic!("a trusted_networks step must complete at once"),
    }
}

fn step(
    provider: &TrustedNetworksProvider,
    dir: &Dir,
    addr: &str,
    input: Option<Value>,
) -> LoginStep {
    let input = input.map(|v| match v {
        Value::Object(m) => m,
        other => panic!("input must be an object, got {other}"),
    });
    let ctx = ctx(addr);
    ready(provider.login_step("init", input.as_ref(), &ctx, dir)).unwrap()
}

fn form(step: LoginStep) -> Form {
    match step {
        LoginStep::Form(form) => form,
        other => panic!("expected a form, got {other:?}"),
    }
}

/// The `(value, label)` options of the form's single select field `user`.
fn options(form: &Form) -> Vec<(String, String)> {
    assert_eq!(form.step_id, "init");
    assert_eq!(form.fields.len(), 1);
    assert_eq!(form.fields[0].name, "user");
    assert!(form.fields[0].required);
    match &form.fields[0].field_type {
        FieldType::Select { options } => options.clone(),
        other => panic!("expected a select, got {other:?}"),
    }
}

/// The user ids the login form offers from `addr`.
fn offered(provider: &TrustedNetworksProvider, dir: &Dir, addr: &str) -> Vec<UserId> {
    options(&form(step(provider, dir, addr, None)))
        .into_iter()
        .map(|(id, _)| UserId::from(id))
        .collect()
}

fn user_input(id: &UserId) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("user".to_owned(), Value::from(id.as_str()));
    m
}

fn done_with(id: &UserId) -> LoginStep {
    LoginStep::Done(user_input(id))
}

fn refresh_token(user: &UserId) -> RefreshToken {
    RefreshToken {
        id: RefreshTokenId::random(),
        user_id: user.clone(),
        client_id: Some("https://example.com/app".to_owned()),
        client_name: None,
        client_icon: None,
        token_type: TokenType::Normal,
        created_at: Utc::now(),
        access_token_expiration: 1800.0,
        token: Secret::new("r".repeat(128)),
        jwt_key: Secret::new("k".repeat(128)),
        last_used_at: None,
        last_used_ip: None,
        expire_at: None,
        credential_id: None,
        version: None,
    }
}

fn denied(provider: &TrustedNetworksProvider, addr: &str) -> AccessDenied {
    provider
        .validate_access(ip(addr))
        .expect_err(&format!("{addr} must be refused"))
}

// ---------------------------------------------------------------------------------------
// test_config_schema
// ---------------------------------------------------------------------------------------

#[test]
fn config_schema_accepts_uuid4_user_ids_and_group_dicts() {
    let config = TrustedNetworksConfig::from_value(json!({
        "type": "trusted_networks",
        "trusted_networks": ["192.168.0.1"],
        "trusted_users": {
            "192.168.0.1": ["a1ab982744b64757bf80515589258924", {"group": "system-group"}],
        },
    }))
    .unwrap();
    assert_eq!(
        config.trusted_users[0].entries,
        vec![
            TrustedUser::User(UserId::from("a1ab982744b64757bf80515589258924")),
            TrustedUser::Groups(vec![GroupId::from("system-group")]),
        ]
    );
    assert!(
        !config.allow_bypass_login,
        "allow_bypass_login defaults to false"
    );
}

#[test]
fn config_schema_refuses_a_user_id_that_is_not_uuid4_hex() {
    for bad in [
        "abcde",
        "a1ab982744b61757bf80515589258924",
        "a1ab982744b64757cf80515589258924",
        "a1ab9827-44b6-4757-bf80-515589258924",
    ] {
        let err = TrustedNetworksConfig::from_value(json!({
            "type": "trusted_networks",
            "trusted_networks": ["192.168.0.1"],
            "trusted_users": {"192.168.0.1": [bad]},
        }))
        .unwrap_err();
        assert!(
            matches!(&err, ConfigError::InvalidUserId { value, .. } if value == bad),
            "{bad}: {err:?}"
        );
        assert!(
            err.to_string()
                .contains(&format!("\"{bad}\" is not a valid user id")),
            "{err}"
        );
    }
}

#[test]
fn config_schema_normalises_an_uppercase_user_id_as_home_assistant_does() {
    let config = TrustedNetworksConfig::from_value(json!({
        "trusted_networks": ["192.168.0.1"],
        "trusted_users": {"192.168.0.1": "A1AB982744B64757BF80515589258924"},
    }))
    .unwrap();
    assert_eq!(
        config.trusted_users[0].entries,
        vec![TrustedUser::User(UserId::from(
            "a1ab982744b64757bf80515589258924"
        ))]
    );
}

#[test]
fn config_is_read_from_toml_with_coerced_booleans_and_in_order() {
    let config: TrustedNetworksConfig = toml::from_str(
        r#"
        type = "trusted_networks"
        name = "Home LAN"
        id = "lan"
        trusted_networks = ["192.168.0.0/24", "fd00::/8"]
        trusted_proxies = "192.168.0.1"
        allow_bypass_login = "on"

        [trusted_users]
        "192.168.0.20" = ["a1ab982744b64757bf80515589258924"]
        "192.168.0.0/24" = [{ group = ["system-users", "family"] }]
        "fd00::/8" = []
        "#,
    )
    .unwrap();
    assert_eq!(config.name.as_deref(), Some("Home LAN"));
    assert_eq!(config.id.as_deref(), Some("lan"));
    assert!(config.allow_bypass_login);
    assert_eq!(
        config.trusted_proxies,
        vec!["192.168.0.1/32".parse().unwrap()]
    );
    let networks: Vec<String> = config
        .trusted_users
        .iter()
        .map(|r| r.network.to_string())
        .collect();
    assert_eq!(networks, ["192.168.0.20/32", "192.168.0.0/24", "fd00::/8"]);

    let err = toml::from_str::<TrustedNetworksConfig>(
        "trusted_networks = [\"10.0.0.0/8\"]\nallow_bypass_login = \"perhaps\"\n",
    )
    .unwrap_err();
    assert!(
        err.to_string()
            .contains("allow_bypass_login: invalid boolean value \"perhaps\""),
        "{err}"
    );
    let err = toml::from_str::<TrustedNetworksConfig>(
        "trusted_networks = [\"10.0.0.0/8\"]\nuse_x_forwarded_for = true\n",
    )
    .unwrap_err();
    assert!(err.to_string().contains("unknown field"), "{err}");
}

// ---------------------------------------------------------------------------------------
// test_trusted_networks_credentials
// ---------------------------------------------------------------------------------------

#[test]
fn credentials_are_created_already_linked_and_not_new() {
    let provider = ha_provider();
    let mut dir = Dir::new();
    let owner = dir.add_user("test-owner");
    let user = dir.add_user("test-user");

    let owner_cred = provider
        .get_or_create_credentials(&user_input(&owner.id), &dir)
        .unwrap();
    assert!(!owner_cred.is_new);
    assert_eq!(owner_cred.user_id.as_ref(), Some(&owner.id));
    assert_eq!(owner_cred.auth_provider_type, "trusted_networks");
    assert_eq!(owner_cred.auth_provider_id, None);
    assert_eq!(owner_cred.data_str("user_id"), Some(owner.id.as_str()));
    assert_eq!(owner_cred.data.len(), 1);
    dir.store(&owner_cred);

    let user_cred = provider
        .get_or_create_credentials(&user_input(&user.id), &dir)
        .unwrap();
    assert_ne!(user_cred.id, owner_cred.id);
    assert!(!user_cred.is_new);
    assert_eq!(user_cred.user_id.as_ref(), Some(&user.id));
}

#[test]
fn credentials_are_reused_for_the_same_user() {
    let provider = provider_from(json!({"trusted_networks": ha_networks(), "id": "lan"}));
    let mut dir = Dir::new();
    let user = dir.add_user("test-user");

    let first = provider
        .get_or_create_credentials(&user_input(&user.id), &dir)
        .unwrap();
    assert_eq!(first.auth_provider_id.as_deref(), Some("lan"));
    dir.store(&first);
    let again = provider
        .get_or_create_credentials(&user_input(&user.id), &dir)
        .unwrap();
    assert_eq!(again.id, first.id);
    assert!(!again.is_new);
    assert_eq!(again.user_id.as_ref(), Some(&user.id));

    // A credential of another instance of the provider is not this one's.
    let other = provider_from(json!({"trusted_networks": ha_networks()}));
    let fresh = other
        .get_or_create_credentials(&user_input(&user.id), &dir)
        .unwrap();
    assert_ne!(fresh.id, first.id);
}

#[test]
fn credentials_are_refused_for_unknown_system_and_inactive_users() {
    let provider = ha_provider();
    let mut dir = Dir::new();
    let system = dir.add_system_user("test-sys-user");
    let inactive = dir.add_user("gone");
    dir.deactivate(&inactive.id);

    assert_eq!(
        provider.get_or_create_credentials(&user_input(&UserId::from("invalid-user")), &dir),
        Err(ProviderError::UserNotFound)
    );
    for id in [&system.id, &inactive.id] {
        assert!(matches!(
            provider.get_or_create_credentials(&user_input(id), &dir),
            Err(ProviderError::InvalidAuth(_))
        ));
    }
    assert!(matches!(
        provider.get_or_create_credentials(&Map::new(), &dir),
        Err(ProviderError::InvalidAuth(_))
    ));
}

#[test]
fn a_stored_credential_linked_to_another_user_is_not_used_to_log_in() {
    let provider = ha_provider();
    let mut dir = Dir::new();
    let alice = dir.add_user("alice");
    let bob = dir.add_user("bob");
    let mut data = Map::new();
    data.insert("user_id".to_owned(), Value::from(alice.id.as_str()));
    let mut corrupt = Credentials::new("trusted_networks", None, data);
    corrupt.user_id = Some(bob.id.clone());
    corrupt.is_new = false;
    dir.store(&corrupt);

    assert!(matches!(
        provider.get_or_create_credentials(&user_input(&alice.id), &dir),
        Err(ProviderError::Internal(_))
    ));
}

#[test]
fn user_meta_is_not_supported_because_no_user_is_ever_created() {
    let provider = ha_provider();
    let cred = Credentials::new("trusted_networks", None, Map::new());
    assert!(matches!(
        provider.user_meta(&cred),
        Err(ProviderError::NotSupported(_))
    ));
}

// ---------------------------------------------------------------------------------------
// test_validate_access, test_validate_access_proxy
// ---------------------------------------------------------------------------------------

#[test]
fn validate_access_allows_only_trusted_networks() {
    let provider = ha_provider();
    for addr in [
        "192.168.0.1",
        "192.168.128.10",
        "::1",
        "fd01:db8::ff00:42:8329",
    ] {
        assert_eq!(provider.validate_access(ip(addr)), Ok(()), "{addr}");
    }
    for addr in ["192.168.0.2", "127.0.0.1", "2001:db8::ff00:42:8329"] {
        assert_eq!(denied(&provider, addr), AccessDenied::NotInTrustedNetworks);
        assert_eq!(
            denied(&provider, addr).to_string(),
            "Not in trusted_networks"
        );
    }
}

#[test]
fn validate_access_refuses_trusted_proxies() {
    let provider = provider_from(json!({
        "trusted_networks": ha_networks(),
        "trusted_proxies": ["192.168.128.0/31", "fd00::1"],
    }));
    provider.validate_access(ip("192.168.128.2")).unwrap();
    provider.validate_access(ip("fd00::2")).unwrap();
    for addr in ["192.168.128.0", "192.168.128.1", "fd00::1"] {
        assert_eq!(denied(&provider, addr), AccessDenied::FromProxy);
        assert_eq!(
            ProviderError::from(denied(&provider, addr)),
            ProviderError::InvalidAuth("Can't allow access from a proxy server".to_owned())
        );
    }
}

#[test]
fn validate_access_with_no_networks_is_not_configured() {
    let provider = provider_from(json!({"trusted_networks": []}));
    let err = denied(&provider, "192.168.0.1");
    assert_eq!(err, AccessDenied::NotConfigured);
    assert_eq!(err.to_string(), "trusted_networks is not configured");
    assert!(!provider.can_start_login(&ctx("192.168.0.1")));
}

#[test]
fn validate_access_reports_outside_before_proxy() {
    // A proxy outside the trusted networks is "not in trusted_networks" first.
    let provider = provider_from(json!({
        "trusted_networks": ["192.168.0.0/24"],
        "trusted_proxies": ["10.0.0.1"],
    }));
    assert_eq!(
        denied(&provider, "10.0.0.1"),
        AccessDenied::NotInTrustedNetworks
    );
}

// ---------------------------------------------------------------------------------------
// test_validate_refresh_token
// ---------------------------------------------------------------------------------------

#[test]
fn refresh_token_hook_requires_a_trusted_remote_ip() {
    let provider = provider_from(json!({
        "trusted_networks": ha_networks(),
        "trusted_proxies": ["192.168.128.1"],
    }));
    let token = refresh_token(&UserId::random());

    assert_eq!(
        provider.validate_refresh_token(&token, None),
        Err(ProviderError::InvalidAuth(
            "Unknown remote ip can't be used for trusted network provider.".to_owned()
        ))
    );
    assert_eq!(
        provider.validate_refresh_token(&token, Some(ip("127.0.0.1"))),
        Err(ProviderError::InvalidAuth(
            "Not in trusted_networks".to_owned()
        ))
    );
    assert_eq!(
        provider.validate_refresh_token(&token, Some(ip("192.168.128.1"))),
        Err(ProviderError::InvalidAuth(
            "Can't allow access from a proxy server".to_owned()
        ))
    );
    assert_eq!(
        provider.validate_refresh_token(&token, Some(ip("192.168.128.10"))),
        Ok(())
    );
    assert_eq!(
        provider.validate_refresh_token(&token, Some(ip("::ffff:192.168.128.10"))),
        Ok(())
    );
}

// ---------------------------------------------------------------------------------------
// test_login_flow
// ---------------------------------------------------------------------------------------

#[test]
fn login_flow_aborts_not_allowed_outside_trusted_networks() {
    let provider = ha_provider();
    let mut dir = Dir::new();
    let user = dir.add_user("test-user");
    assert_eq!(
        step(&provider, &dir, "127.0.0.1", None),
        LoginStep::Abort(AbortReason::NotAllowed)
    );
    // Posting a user from outside is refused the same way.
    assert_eq!(
        step(
            &provider,
            &dir,
            "127.0.0.1",
            Some(json!({"user": user.id.as_str()}))
        ),
        LoginStep::Abort(AbortReason::NotAllowed)
    );
    // So is a flow without an address.
    let no_ip = FlowContext::default();
    assert_eq!(
        ready(provider.login_step("init", None, &no_ip, &dir)),
        Ok(LoginStep::Abort(AbortReason::NotAllowed))
    );
}

#[test]
fn login_flow_offers_users_and_finishes_with_the_chosen_one() {
    let provider = ha_provider();
    let mut dir = Dir::new();
    let owner = dir.add_user("test-owner");
    let user = dir.add_user("test-user");

    let form = form(step(&provider, &dir, "192.168.0.1", None));
    assert_eq!(
        options(&form),
        vec![
            (owner.id.to_string(), "test-owner".to_owned()),
            (user.id.to_string(), "test-user".to_owned()),
        ]
    );
    assert!(form.errors.is_empty());
    // The manager's schema check: the select accepts an offered id only.
    assert!(form.accepts(&user_input(&owner.id)));
    assert!(!form.accepts(&user_input(&UserId::from("invalid-user"))));

    assert_eq!(
        step(
            &provider,
            &dir,
            "192.168.0.1",
            Some(json!({"user": user.id.as_str()}))
        ),
        done_with(&user.id)
    );
}

#[test]
fn login_flow_re_shows_the_form_for_a_user_not_offered() {
    let provider = provider_from(json!({
        "trusted_networks": ha_networks(),
        "allow_bypass_login": true,
    }));
    let mut dir = Dir::new();
    let only = dir.add_user("only");
    let system = dir.add_system_user("sys");

    for input in [
        json!({"user": system.id.as_str()}),
        json!({"user": "invalid-user"}),
        json!({"user": 5}),
        json!({}),
    ] {
        let form = form(step(&provider, &dir, "192.168.0.1", Some(input.clone())));
        assert_eq!(
            options(&form),
            vec![(only.id.to_string(), "only".to_owned())],
            "{input}: the form again, and no bypass login as somebody else"
        );
    }
}

#[test]
fn login_flow_labels_a_nameless_user_with_the_id() {
    let provider = ha_provider();
    let mut dir = Dir::new();
    let mut nameless = User::new(None);
    nameless.is_active = true;
    dir.users.push(nameless.clone());
    assert_eq!(
        options(&form(step(&provider, &dir, "192.168.0.1", None))),
        vec![(nameless.id.to_string(), nameless.id.to_string())]
    );
}

#[test]
fn login_flow_has_only_the_init_step() {
    let provider = ha_provider();
    let dir = Dir::new();
    let ctx = ctx("192.168.0.1");
    assert!(matches!(
        ready(provider.login_step("mfa", None, &ctx, &dir)),
        Err(ProviderError::Internal(_))
    ));
}

#[test]
fn inactive_users_are_never_offered() {
    let provider = ha_provider();
    let mut dir = Dir::new();
    let active = dir.add_user("active");
    let gone = dir.add_user("gone");
    dir.deactivate(&gone.id);
    assert_eq!(offered(&provider, &dir, "192.168.0.1"), vec![active.id]);
}

// ---------------------------------------------------------------------------------------
// test_trusted_users_login
// ---------------------------------------------------------------------------------------

#[test]
fn trusted_users_filter_the_list_per_network() {
    let mut dir = Dir::new();
    let owner = dir.add_user("test-owner");
    let sys_user = dir.add_system_user("test-sys-user");
    let user = dir.add_user("test-user");
    let provider = provider_from(json!({
        "type": "trusted_networks",
        "trusted_networks": ha_networks(),
        "trusted_users": {
            "192.168.0.1": [owner.id.as_str()],
            "192.168.128.0/24": [sys_user.id.as_str(), user.id.as_str()],
            "fd00::/8": [],
        },
    }));

    assert_eq!(
        step(&provider, &dir, "127.0.0.1", None),
        LoginStep::Abort(AbortReason::NotAllowed)
    );
    // Only the owner.
    assert_eq!(
        offered(&provider, &dir, "192.168.0.1"),
        vec![owner.id.clone()]
    );
    // Only the user: the system user is listed but never offered.
    assert_eq!(
        offered(&provider, &dir, "192.168.128.1"),
        vec![user.id.clone()]
    );
    // No rule for ::1: both, still without the system user.
    assert_eq!(
        offered(&provider, &dir, "::1"),
        vec![owner.id.clone(), user.id.clone()]
    );
    // An empty list: nobody, shown as an empty select.
    assert_eq!(offered(&provider, &dir, "fd00::1"), Vec::<UserId>::new());
    assert_eq!(
        step(
            &provider,
            &dir,
            "fd00::1",
            Some(json!({"user": owner.id.as_str()}))
        ),
        LoginStep::Form(form(step(&provider, &dir, "fd00::1", None)))
    );
}

#[test]
fn the_first_matching_trusted_users_network_wins() {
    let mut dir = Dir::new();
    let alice = dir.add_user("alice");
    let bob = dir.add_user("bob");
    let provider = provider_from(json!({
        "trusted_networks": ["192.168.0.0/16"],
        "trusted_users": {
            "192.168.1.0/24": [alice.id.as_str()],
            "192.168.0.0/16": [bob.id.as_str()],
            "192.168.1.7": [alice.id.as_str(), bob.id.as_str()],
        },
    }));
    assert_eq!(
        offered(&provider, &dir, "192.168.1.7"),
        vec![alice.id.clone()]
    );
    assert_eq!(
        offered(&provider, &dir, "192.168.2.7"),
        vec![bob.id.clone()]
    );
}

// ---------------------------------------------------------------------------------------
// test_trusted_group_login
// ---------------------------------------------------------------------------------------

#[test]
fn trusted_groups_given_as_lists_select_their_members() {
    let mut dir = Dir::new();
    let owner = dir.add_user("test-owner");
    let user = dir.add_user("test-user");
    dir.set_groups(&user.id, &[GROUP_ID_USER]);
    let provider = provider_from(json!({
        "trusted_networks": ha_networks(),
        "trusted_users": {
            "192.168.0.1": [{"group": [GROUP_ID_USER]}],
            "192.168.128.0/24": [owner.id.as_str(), {"group": [GROUP_ID_USER]}],
            "fd00::/8": [],
        },
    }));

    assert_eq!(
        step(&provider, &dir, "127.0.0.1", None),
        LoginStep::Abort(AbortReason::NotAllowed)
    );
    assert_eq!(
        offered(&provider, &dir, "192.168.0.1"),
        vec![user.id.clone()]
    );
    assert_eq!(
        offered(&provider, &dir, "192.168.128.1"),
        vec![owner.id.clone(), user.id.clone()]
    );
}

#[test]
fn a_trusted_group_given_as_a_string_is_one_group_not_its_characters() {
    let mut dir = Dir::new();
    let owner = dir.add_user("test-owner");
    let user = dir.add_user("test-user");
    dir.set_groups(&user.id, &[GROUP_ID_USER]);
    // A user in a one-letter group: Home Assistant's per-character iteration of
    // "system-users" would have matched "s".
    let letter = dir.add_user("letter");
    dir.set_groups(&letter.id, &["s"]);
    let provider = provider_from(json!({
        "trusted_networks": ha_networks(),
        "trusted_users": {"192.168.0.1": [{"group": GROUP_ID_USER}]},
    }));
    assert_eq!(
        offered(&provider, &dir, "192.168.0.1"),
        vec![user.id.clone()]
    );
    assert!(!offered(&provider, &dir, "192.168.0.1").contains(&owner.id));
}

#[test]
fn a_member_of_any_listed_group_is_offered() {
    let mut dir = Dir::new();
    let admin = dir.add_user("admin");
    dir.set_groups(&admin.id, &["system-admin"]);
    let family = dir.add_user("family");
    dir.set_groups(&family.id, &["x", "family"]);
    let guest = dir.add_user("guest");
    dir.set_groups(&guest.id, &["system-read-only"]);
    let provider = provider_from(json!({
        "trusted_networks": ["192.168.0.0/24"],
        "trusted_users": {"192.168.0.0/24": [{"group": ["family", "system-admin"]}]},
    }));
    assert_eq!(
        offered(&provider, &dir, "192.168.0.9"),
        vec![admin.id, family.id]
    );
}

// ---------------------------------------------------------------------------------------
// test_bypass_login_flow
// ---------------------------------------------------------------------------------------

#[test]
fn bypass_login_finishes_at_once_with_a_single_user_but_not_with_two() {
    let provider = provider_from(json!({
        "type": "trusted_networks",
        "trusted_networks": ha_networks(),
        "allow_bypass_login": true,
    }));
    let mut dir = Dir::new();
    let owner = dir.add_user("test-owner");
    dir.add_system_user("not counted");

    assert_eq!(
        step(&provider, &dir, "127.0.0.1", None),
        LoginStep::Abort(AbortReason::NotAllowed)
    );
    assert_eq!(
        step(&provider, &dir, "192.168.0.1", None),
        done_with(&owner.id)
    );

    let user = dir.add_user("test-user");
    assert_eq!(
        offered(&provider, &dir, "192.168.0.1"),
        vec![owner.id.clone(), user.id.clone()]
    );
}

#[test]
fn bypass_login_counts_the_users_left_after_trusted_users() {
    let mut dir = Dir::new();
    let owner = dir.add_user("test-owner");
    dir.add_user("test-user");
    let provider = provider_from(json!({
        "trusted_networks": ha_networks(),
        "trusted_users": {"192.168.0.1": [owner.id.as_str()], "fd00::/8": []},
        "allow_bypass_login": "yes",
    }));
    assert_eq!(
        step(&provider, &dir, "192.168.0.1", None),
        done_with(&owner.id)
    );
    // Nobody offered: no bypass, an empty form.
    assert_eq!(offered(&provider, &dir, "fd00::1"), Vec::<UserId>::new());
}

#[test]
fn without_bypass_a_single_user_still_gets_the_form() {
    let provider = ha_provider();
    let mut dir = Dir::new();
    let owner = dir.add_user("test-owner");
    assert_eq!(offered(&provider, &dir, "192.168.0.1"), vec![owner.id]);
}

// ---------------------------------------------------------------------------------------
// IPv4-mapped IPv6 (latch's fix; Home Assistant never matches these)
// ---------------------------------------------------------------------------------------

#[test]
fn a_mapped_ipv6_client_is_matched_as_its_ipv4_address() {
    let mut dir = Dir::new();
    let owner = dir.add_user("test-owner");
    let user = dir.add_user("test-user");
    let provider = provider_from(json!({
        "trusted_networks": ha_networks(),
        "trusted_users": {"192.168.0.1": [owner.id.as_str()]},
    }));
    provider.validate_access(ip("::ffff:192.168.0.1")).unwrap();
    provider
        .validate_access(ip("::ffff:192.168.128.10"))
        .unwrap();
    assert_eq!(
        denied(&provider, "::ffff:192.168.0.10"),
        AccessDenied::NotInTrustedNetworks
    );
    // IPv4-compatible (not mapped) addresses are not unwrapped.
    assert_eq!(
        denied(&provider, "::192.168.0.1"),
        AccessDenied::NotInTrustedNetworks
    );
    // trusted_users networks match the IPv4 form too.
    assert_eq!(
        offered(&provider, &dir, "::ffff:192.168.0.1"),
        vec![owner.id]
    );
    assert_eq!(
        step(
            &provider,
            &dir,
            "::ffff:192.168.128.10",
            Some(json!({"user": user.id.as_str()}))
        ),
        done_with(&user.id)
    );
}

#[test]
fn a_mapped_proxy_address_is_still_refused() {
    let provider = provider_from(json!({
        "trusted_networks": ha_networks(),
        "trusted_proxies": ["192.168.128.0/31", "fd00::1"],
    }));
    for addr in ["::ffff:192.168.128.0", "::ffff:192.168.128.1"] {
        assert_eq!(denied(&provider, addr), AccessDenied::FromProxy, "{addr}");
        assert!(!provider.can_start_login(&ctx(addr)));
    }
    provider
        .validate_access(ip("::ffff:192.168.128.2"))
        .unwrap();

    // A proxy written in mapped form refuses the plain IPv4 address, and the other way.
    let provider = provider_from(json!({
        "trusted_networks": ["192.168.0.0/24"],
        "trusted_proxies": ["::ffff:192.168.0.1"],
    }));
    assert_eq!(denied(&provider, "192.168.0.1"), AccessDenied::FromProxy);
    assert_eq!(
        denied(&provider, "::ffff:192.168.0.1"),
        AccessDenied::FromProxy
    );
}

#[test]
fn a_wide_ipv6_proxy_network_refuses_mapped_addresses_as_written() {
    let provider = provider_from(json!({
        "trusted_networks": ["192.168.0.0/24"],
        "trusted_proxies": ["::/0"],
    }));
    assert_eq!(
        denied(&provider, "::ffff:192.168.0.5"),
        AccessDenied::FromProxy
    );
    provider.validate_access(ip("192.168.0.5")).unwrap();
}

#[test]
fn networks_built_in_code_are_matched_like_parsed_ones() {
    let config = TrustedNetworksConfig {
        trusted_networks: vec!["::ffff:192.168.0.0/120".parse().unwrap()],
        trusted_proxies: vec!["::ffff:192.168.0.1/128".parse().unwrap()],
        ..TrustedNetworksConfig::default()
    };
    let provider = TrustedNetworksProvider::new(config);
    provider.validate_access(ip("192.168.0.9")).unwrap();
    assert_eq!(denied(&provider, "192.168.0.1"), AccessDenied::FromProxy);
}

// ---------------------------------------------------------------------------------------
// async_can_start_login, /auth/providers (test_login_flow.py) and identity
// ---------------------------------------------------------------------------------------

#[test]
fn can_start_login_only_from_a_trusted_address() {
    let provider = provider_from(json!({
        "trusted_networks": ha_networks(),
        "trusted_proxies": ["192.168.128.1"],
    }));
    assert!(provider.can_start_login(&ctx("192.168.0.1")));
    assert!(provider.can_start_login(&ctx("fd00::1")));
    assert!(provider.can_start_login(&ctx("::ffff:192.168.0.1")));
    assert!(!provider.can_start_login(&ctx("192.168.0.10")));
    assert!(!provider.can_start_login(&ctx("::ffff:192.168.0.10")));
    assert!(!provider.can_start_login(&ctx("192.168.128.1")));
    assert!(!provider.can_start_login(&FlowContext::default()));
}

#[test]
fn provider_identity_and_no_mfa() {
    let provider = ha_provider();
    assert_eq!(provider.provider_type(), "trusted_networks");
    assert_eq!(provider.name(), "Trusted Networks");
    assert_eq!(provider.id(), None);
    assert!(!provider.supports_mfa());

    let named = provider_from(json!({
        "trusted_networks": ha_networks(),
        "name": "LAN",
        "id": "lan",
    }));
    assert_eq!(named.name(), "LAN");
    assert_eq!(named.id(), Some("lan"));
}
