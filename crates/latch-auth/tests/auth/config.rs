//! Building a manager from configuration (reference §10; HA `test_init.py` config tests).

use std::sync::Arc;

use latch_auth::{AuthConfig, AuthError, AuthManager, ManagerOptions, MfaConfig, ProviderConfig};
use latch_mfa_totp::TotpConfig;
use latch_models::FixedClock;
use latch_provider_homeassistant::HomeAssistantConfig;
use latch_provider_trusted_networks::{TrustedNetworksConfig, TrustedUser};
use latch_store::{Store, StoreOptions};
use tempfile::TempDir;

use crate::common::{ha_config, ip, t0, totp_config};

/// Builds a manager from `config` over a fresh store; the directory lives as long as
/// the result is kept.
fn build(config: &AuthConfig) -> (TempDir, Result<AuthManager, AuthError>) {
    let home = tempfile::tempdir().unwrap();
    let store = Store::open(home.path(), StoreOptions::default()).unwrap();
    let options = ManagerOptions {
        clock: Arc::new(FixedClock::new(t0())),
        ..ManagerOptions::default()
    };
    let result = AuthManager::from_config(store, config, options);
    (home, result)
}

fn trusted(id: Option<&str>) -> ProviderConfig {
    let mut value = serde_json::json!({"trusted_networks": ["192.168.0.0/24"]});
    if let Some(id) = id {
        value["id"] = id.into();
    }
    ProviderConfig::TrustedNetworks(serde_json::from_value::<TrustedNetworksConfig>(value).unwrap())
}

fn provider_keys(manager: &AuthManager) -> Vec<(String, Option<String>)> {
    manager
        .providers()
        .iter()
        .map(|p| (p.provider_type().to_owned(), p.id().map(str::to_owned)))
        .collect()
}

fn module_ids(manager: &AuthManager) -> Vec<String> {
    manager
        .mfa_modules()
        .iter()
        .map(|m| m.id().to_owned())
        .collect()
}

#[test]
fn default_config_is_homeassistant_and_totp() {
    let config = AuthConfig::default();
    let (_home, manager) = build(&config);
    let manager = manager.unwrap();
    assert_eq!(
        provider_keys(&manager),
        [("homeassistant".to_owned(), None)]
    );
    assert_eq!(manager.providers()[0].name(), "Home Assistant Local");
    assert_eq!(module_ids(&manager), ["totp"]);
    assert_eq!(manager.mfa_modules()[0].module_type(), "totp");
    assert_eq!(manager.mfa_modules()[0].name(), "Authenticator app");
}

#[test]
fn empty_toml_gives_the_default_config() {
    let config: AuthConfig = toml::from_str("").unwrap();
    assert!(matches!(
        config.auth_providers.as_slice(),
        [ProviderConfig::Homeassistant(c)] if *c == HomeAssistantConfig::default()
    ));
    assert!(matches!(
        config.mfa_modules.as_slice(),
        [MfaConfig::Totp(c)] if *c == TotpConfig::default()
    ));
}

#[test]
fn homeassistant_provider_with_an_id_is_refused() {
    let err = toml::from_str::<AuthConfig>(
        r#"
        [[auth_providers]]
        type = "homeassistant"
        id = "second"
        "#,
    )
    .unwrap_err();
    assert!(
        err.to_string()
            .contains("ID is not allowed for the homeassistant auth provider."),
        "{err}"
    );
}

#[test]
fn unknown_provider_type_is_refused() {
    let result = toml::from_str::<AuthConfig>(
        r#"
        [[auth_providers]]
        type = "insecure_example"
        "#,
    );
    assert!(result.is_err());
}

#[test]
fn trusted_networks_provider_with_an_invalid_network_is_refused() {
    let err = toml::from_str::<AuthConfig>(
        r#"
        [[auth_providers]]
        type = "trusted_networks"
        trusted_networks = ["192.168.0.5/24"]
        "#,
    )
    .unwrap_err();
    assert!(err.to_string().contains("host bits"), "{err}");
}

#[test]
fn provider_config_built_in_code_with_a_bad_bcrypt_cost_is_refused() {
    let config = AuthConfig {
        auth_providers: vec![ProviderConfig::Homeassistant(HomeAssistantConfig {
            name: None,
            bcrypt_cost: 40,
        })],
        mfa_modules: vec![],
    };
    let (_home, result) = build(&config);
    assert!(matches!(result, Err(AuthError::Config(m)) if m.contains("bcrypt_cost")));
}

#[test]
fn invalid_mfa_module_configs_are_refused() {
    for bad in [
        "type = \"totp\"\nid = \"\"",
        "type = \"totp\"\npin = \"1234\"",
        "type = \"notify\"",
        "type = \"totp\"\nissuer = \"a:b\"",
    ] {
        let text = format!("[[mfa_modules]]\n{bad}\n");
        assert!(
            toml::from_str::<AuthConfig>(&text).is_err(),
            "accepted: {bad}"
        );
    }
}

#[test]
fn mfa_module_config_built_in_code_with_an_empty_id_is_refused() {
    let config = AuthConfig {
        auth_providers: vec![ProviderConfig::Homeassistant(ha_config())],
        mfa_modules: vec![MfaConfig::Totp(totp_config(""))],
    };
    let (_home, result) = build(&config);
    assert!(matches!(result, Err(AuthError::Config(_))));
}

#[test]
fn unknown_top_level_key_is_refused() {
    assert!(toml::from_str::<AuthConfig>("providers = []").is_err());
}

#[test]
fn providers_and_modules_keep_config_order() {
    let config = AuthConfig {
        auth_providers: vec![
            trusted(Some("lan")),
            ProviderConfig::Homeassistant(ha_config()),
            trusted(Some("vpn")),
        ],
        mfa_modules: vec![MfaConfig::Totp(totp_config("phone"))],
    };
    let (_home, manager) = build(&config);
    let manager = manager.unwrap();
    assert_eq!(
        provider_keys(&manager),
        [
            ("trusted_networks".to_owned(), Some("lan".to_owned())),
            ("homeassistant".to_owned(), None),
            ("trusted_networks".to_owned(), Some("vpn".to_owned())),
        ]
    );
    assert_eq!(module_ids(&manager), ["phone"]);
    assert!(manager.provider("trusted_networks", Some("vpn")).is_some());
    assert!(
        manager.provider("trusted_networks", None).is_none(),
        "lookup is exact on (type, id)"
    );
}

#[test]
fn mfa_module_id_defaults_to_its_type() {
    let config: AuthConfig = toml::from_str(
        r#"
        [[mfa_modules]]
        type = "totp"
        name = "Phone"
        "#,
    )
    .unwrap();
    let (_home, manager) = build(&config);
    let manager = manager.unwrap();
    assert_eq!(module_ids(&manager), ["totp"]);
    assert_eq!(manager.mfa_module("totp").unwrap().name(), "Phone");
}

#[test]
fn duplicate_provider_type_and_id_is_refused() {
    let config = AuthConfig {
        auth_providers: vec![trusted(None), trusted(None)],
        mfa_modules: vec![],
    };
    let (_home, result) = build(&config);
    assert!(
        matches!(&result, Err(AuthError::Config(m)) if m.contains("duplicate auth provider trusted_networks")),
        "{result:?}"
    );
}

#[test]
fn duplicate_homeassistant_provider_is_refused() {
    let config = AuthConfig {
        auth_providers: vec![
            ProviderConfig::Homeassistant(ha_config()),
            ProviderConfig::Homeassistant(ha_config()),
        ],
        mfa_modules: vec![],
    };
    let (_home, result) = build(&config);
    assert!(matches!(result, Err(AuthError::Config(_))));
}

#[test]
fn same_provider_type_with_distinct_ids_is_allowed() {
    let config = AuthConfig {
        auth_providers: vec![trusted(Some("a")), trusted(Some("b")), trusted(None)],
        mfa_modules: vec![],
    };
    let (_home, result) = build(&config);
    assert_eq!(result.unwrap().providers().len(), 3);
}

#[test]
fn two_totp_modules_are_refused_because_they_would_share_one_file() {
    let config = AuthConfig {
        auth_providers: vec![ProviderConfig::Homeassistant(ha_config())],
        mfa_modules: vec![
            MfaConfig::Totp(totp_config("phone")),
            MfaConfig::Totp(totp_config("backup")),
        ],
    };
    let (_home, result) = build(&config);
    assert!(
        matches!(&result, Err(AuthError::Config(m)) if m.contains("only one totp module")),
        "{result:?}"
    );
}

#[test]
fn duplicate_mfa_module_id_is_refused() {
    let config: AuthConfig = toml::from_str(
        r#"
        [[mfa_modules]]
        type = "totp"

        [[mfa_modules]]
        type = "totp"
        id = "totp"
        name = "Other"
        "#,
    )
    .unwrap();
    let (_home, result) = build(&config);
    assert!(
        matches!(&result, Err(AuthError::Config(m)) if m.contains("duplicate mfa module totp")),
        "{result:?}"
    );
}

#[test]
fn auth_config_parses_from_toml_with_a_trusted_networks_provider() {
    let config: AuthConfig = toml::from_str(
        r#"
        [[auth_providers]]
        type = "homeassistant"
        bcrypt_cost = 4

        [[auth_providers]]
        type = "trusted_networks"
        trusted_networks = ["192.168.0.0/24", "fd00::/8"]
        trusted_proxies = "192.168.0.1"
        allow_bypass_login = true

        [auth_providers.trusted_users]
        "192.168.0.10" = ["a1ab982744b64757bf80515589258924"]
        "192.168.0.0/24" = [{ group = "system-users" }]

        [[mfa_modules]]
        type = "totp"
        name = "Phone"
        issuer = "My Home"
        "#,
    )
    .unwrap();

    let [
        ProviderConfig::Homeassistant(ha),
        ProviderConfig::TrustedNetworks(tn),
    ] = config.auth_providers.as_slice()
    else {
        panic!("unexpected providers: {:?}", config.auth_providers);
    };
    assert_eq!(ha.bcrypt_cost, 4);
    assert_eq!(tn.trusted_networks.len(), 2);
    assert_eq!(tn.trusted_proxies.len(), 1);
    assert!(tn.allow_bypass_login);
    assert_eq!(tn.trusted_users.len(), 2);
    assert_eq!(
        tn.trusted_users[0].network.to_string(),
        "192.168.0.10/32",
        "trusted_users keep their order"
    );
    assert_eq!(
        tn.trusted_users[1].entries,
        [TrustedUser::Groups(vec!["system-users".into()])]
    );
    let [MfaConfig::Totp(totp)] = config.mfa_modules.as_slice() else {
        panic!("unexpected modules: {:?}", config.mfa_modules);
    };
    assert_eq!(
        (totp.id.as_str(), totp.name.as_str(), totp.issuer.as_str()),
        ("totp", "Phone", "My Home")
    );

    let (_home, manager) = build(&config);
    let manager = manager.unwrap();
    let offered = |addr: &str| -> Vec<String> {
        manager
            .login_providers(Some(ip(addr)))
            .iter()
            .map(|p| p.provider_type().to_owned())
            .collect()
    };
    assert_eq!(
        offered("192.168.0.50"),
        ["homeassistant", "trusted_networks"]
    );
    assert_eq!(offered("10.0.0.1"), ["homeassistant"]);
    assert_eq!(
        offered("192.168.0.1"),
        ["homeassistant"],
        "a proxy is not trusted"
    );
}

#[tokio::test]
async fn onboarding_without_a_homeassistant_provider_is_refused() {
    let config = AuthConfig {
        auth_providers: vec![trusted(None)],
        mfa_modules: vec![],
    };
    let (_home, manager) = build(&config);
    let manager = manager.unwrap();
    let result = manager.onboard(None, "paulus", "pw").await;
    assert!(matches!(result, Err(AuthError::NoPasswordProvider)));
    assert!(manager.users().is_empty());
}
