//! Building a manager from configuration: providers and MFA modules in configuration
//! order, ids defaulting as Home Assistant's do.

use std::sync::Arc;

use latch_mfa_totp::{TotpConfig, TotpModule};
use latch_provider::{AuthProvider, MfaModule};
use latch_provider_homeassistant::{HashPool, HomeAssistantConfig, HomeAssistantProvider};
use latch_provider_trusted_networks::{TrustedNetworksConfig, TrustedNetworksProvider};
use latch_store::Store;
use serde::Deserialize;

use crate::error::AuthError;
use crate::manager::{AuthManager, ManagerOptions};

/// One auth provider's configuration, tagged by `type`.
#[derive(Clone, Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ProviderConfig {
    /// Usernames and bcrypt passwords in `.storage/auth_provider.homeassistant`.
    Homeassistant(HomeAssistantConfig),
    /// Login without a password from trusted networks.
    TrustedNetworks(TrustedNetworksConfig),
}

/// One MFA module's configuration, tagged by `type`.
#[derive(Clone, Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum MfaConfig {
    /// Time-based one-time passwords.
    Totp(TotpConfig),
}

/// The manager's providers and modules. The default is Home Assistant's: the
/// `homeassistant` provider and the TOTP module with id `totp`, named "Authenticator app".
#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthConfig {
    /// Auth providers, in the order they are offered.
    pub auth_providers: Vec<ProviderConfig>,
    /// MFA modules, in the order they are offered.
    pub mfa_modules: Vec<MfaConfig>,
}

impl Default for AuthConfig {
    fn default() -> Self {
        Self {
            auth_providers: vec![ProviderConfig::Homeassistant(HomeAssistantConfig::default())],
            mfa_modules: vec![MfaConfig::Totp(TotpConfig::default())],
        }
    }
}

impl AuthManager {
    /// Builds a manager from configuration over `store`.
    ///
    /// # Errors
    /// [`AuthError::Config`] for an invalid provider or module configuration or
    /// duplicate `(type, id)` pairs.
    pub fn from_config(
        store: Store,
        config: &AuthConfig,
        options: ManagerOptions,
    ) -> Result<Self, AuthError> {
        let mut providers: Vec<Arc<dyn AuthProvider>> = Vec::new();
        let mut password_provider = None;
        for p in &config.auth_providers {
            match p {
                ProviderConfig::Homeassistant(cfg) => {
                    let provider = match options.hash_pool_size {
                        Some(slots) => HomeAssistantProvider::with_pool(
                            cfg.clone(),
                            store.clone(),
                            HashPool::new(slots),
                        ),
                        None => HomeAssistantProvider::new(cfg.clone(), store.clone()),
                    };
                    let provider =
                        Arc::new(provider.map_err(|e| AuthError::Config(e.to_string()))?);
                    if password_provider.is_none() {
                        password_provider = Some(Arc::clone(&provider));
                    }
                    providers.push(provider);
                }
                ProviderConfig::TrustedNetworks(cfg) => {
                    providers.push(Arc::new(TrustedNetworksProvider::new(cfg.clone())));
                }
            }
        }
        let mut modules: Vec<Arc<dyn MfaModule>> = Vec::new();
        for m in &config.mfa_modules {
            match m {
                MfaConfig::Totp(cfg) => {
                    modules.push(Arc::new(
                        TotpModule::new(cfg.clone(), store.clone(), Arc::clone(&options.clock))
                            .map_err(|e| AuthError::Config(e.to_string()))?,
                    ));
                }
            }
        }
        let totp_modules = modules.iter().filter(|m| m.module_type() == "totp").count();
        let manager = Self::new(store, providers, password_provider, modules, options)?;
        if totp_modules > 1 {
            // `auth_module.totp` holds one secret per user, as in Home Assistant: two TOTP
            // modules would silently share (and overwrite) each other's enrolments.
            return Err(AuthError::Config(
                "only one totp module can be configured: they would share \
                 .storage/auth_module.totp"
                    .into(),
            ));
        }
        Ok(manager)
    }
}
