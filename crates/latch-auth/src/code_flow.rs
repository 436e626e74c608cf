//! Login flows that end in an OAuth authorization code (Home Assistant's HTTP API,
//! reference §4.2 and §4.5), and the `authorization_code` grant that exchanges a code.
//!
//! A code flow runs the same steps as any login flow. When the person has proved who
//! they are, the flow waits at [`FlowOutcome::CheckRedirect`]: the caller (the HTTP door,
//! which does the IndieAuth network IO) says whether the redirect URI may receive a code
//! for the client. Then, in Home Assistant's order, a refused redirect URI ends the flow,
//! a user who may not log in from here ends it, and otherwise the credentials are kept
//! under a fresh code, in memory only: single use, bound to the client id, valid for
//! less than [`AUTH_CODE_LIFETIME`], and bound to a PKCE S256 challenge when the flow
//! started with one. The user of a credential that is new is created at the exchange,
//! as Home Assistant does.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;

use base64::Engine as _;
use chrono::{DateTime, TimeDelta, Utc};
use latch_models::{Credentials, Secret, random_hex_id};
use latch_provider::{AuthProvider, FlowContext, FlowId, ProviderError};
use latch_token::NewRefreshToken;
use parking_lot::Mutex;
use serde_json::{Map, Value};
use sha2::{Digest as _, Sha256};
use subtle::ConstantTimeEq as _;

use crate::error::AuthError;
use crate::events::AuthEvent;
use crate::flow::{
    CodeRefusal, Delivery, FlowOutcome, FlowTable, IssuedTokens, Stage, handler_of, make_room,
};
use crate::manager::AuthManager;

/// An authorization code is valid for less than this long (Home Assistant's 10 minutes).
pub const AUTH_CODE_LIFETIME: TimeDelta = TimeDelta::minutes(10);

/// Codes kept at most; past this the oldest goes first (a flood of unexchanged codes
/// cannot grow memory without bound).
const MAX_CODES: usize = 10_000;

/// What a code stands for until it is exchanged.
struct CodeEntry {
    created_at: DateTime<Utc>,
    provider: Arc<dyn AuthProvider>,
    credentials: Credentials,
    code_challenge: Option<String>,
    username: Option<String>,
}

/// The codes issued and not yet exchanged, keyed by `(client_id, code)` as Home
/// Assistant keys them.
#[derive(Default)]
pub(crate) struct CodeStore {
    entries: Mutex<HashMap<(String, String), CodeEntry>>,
}

impl CodeStore {
    /// Keeps `entry` under a fresh code for `client_id`; expired codes are dropped first.
    fn insert(&self, client_id: &str, entry: CodeEntry, now: DateTime<Utc>) -> String {
        let mut entries = self.entries.lock();
        make_room(
            &mut entries,
            MAX_CODES,
            |e| e.created_at,
            |e| now - e.created_at < AUTH_CODE_LIFETIME,
        );
        let code = random_hex_id();
        entries.insert((client_id.to_owned(), code.clone()), entry);
        code
    }

    /// Removes the code for `client_id` and returns it if it is still valid. A code is
    /// gone after its first lookup, valid or not.
    fn take(&self, client_id: &str, code: &str, now: DateTime<Utc>) -> Option<CodeEntry> {
        let entry = self
            .entries
            .lock()
            .remove(&(client_id.to_owned(), code.to_owned()))?;
        (now - entry.created_at < AUTH_CODE_LIFETIME).then_some(entry)
    }

    /// How many codes wait to be exchanged.
    pub(crate) fn len(&self) -> usize {
        self.entries.lock().len()
    }
}

/// Tokens from an exchanged code, with the provider type the person signed in with
/// (`ha_auth_provider`).
#[derive(Clone, Debug, PartialEq)]
pub struct CodeTokens {
    /// The tokens.
    pub tokens: IssuedTokens,
    /// The provider type of the credential.
    pub provider_type: String,
}

/// A PKCE code verifier: 43 to 128 unreserved characters (RFC 7636 §4.1).
fn verifier_is_well_formed(verifier: &str) -> bool {
    (43..=128).contains(&verifier.len())
        && verifier
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'~' | b'-'))
}

/// True if `base64url_nopad(sha256(verifier))` equals `challenge` (compared in constant
/// time).
fn s256_matches(verifier: &str, challenge: &str) -> bool {
    let digest = Sha256::digest(verifier.as_bytes());
    let computed = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(digest);
    computed.as_bytes().ct_eq(challenge.as_bytes()).into()
}

impl AuthManager {
    /// Starts a login flow that ends in an authorization code for `ctx.client_id`
    /// (which must be set) instead of tokens. Unlike [`AuthManager::start_login_flow`]
    /// it starts with a provider that cannot serve the address, whose first step then
    /// aborts (`not_allowed`), as Home Assistant 2024.3 answers.
    ///
    /// # Errors
    /// As [`AuthManager::start_login_flow`].
    pub async fn start_code_flow(
        &self,
        provider_type: &str,
        provider_id: Option<&str>,
        ctx: FlowContext,
        code_challenge: Option<String>,
    ) -> Result<FlowOutcome, AuthError> {
        self.start_flow(
            provider_type,
            provider_id,
            ctx,
            Delivery::Code { code_challenge },
        )
        .await
    }

    /// Continues a code flow with the input for its current form.
    ///
    /// # Errors
    /// As [`AuthManager::continue_login_flow`]; [`AuthError::FlowNotFound`] for a flow
    /// started with [`AuthManager::start_login_flow`]; [`AuthError::InvalidRequest`]
    /// while the flow waits for its redirect check.
    pub async fn continue_code_flow(
        &self,
        flow_id: &str,
        input: Map<String, Value>,
        remote_ip: Option<IpAddr>,
    ) -> Result<FlowOutcome, AuthError> {
        self.continue_flow(flow_id, input, remote_ip, true).await
    }

    /// Finishes a code flow that reached [`FlowOutcome::CheckRedirect`]: a refused
    /// redirect URI ends it ([`CodeRefusal::InvalidRedirectUri`], counted as a failed
    /// login as Home Assistant counts its 403), then a known user who may not log in
    /// from the flow's address ends it ([`CodeRefusal::LoginBlocked`]); otherwise the
    /// credentials are kept under a new code ([`FlowOutcome::Code`]).
    ///
    /// # Errors
    /// [`AuthError::FlowNotFound`] (also for a token flow), [`AuthError::FlowBusy`],
    /// [`AuthError::InvalidRequest`] when the flow is not waiting for this.
    pub async fn authorize_code_flow(
        &self,
        flow_id: &str,
        redirect_uri_allowed: bool,
    ) -> Result<FlowOutcome, AuthError> {
        let now = self.now();
        let slot = FlowTable::get(&self.inner.flows.login, self.inner.flows.ttl, now, flow_id)
            .ok_or(AuthError::FlowNotFound)?;
        let mut flow = slot.try_lock().map_err(|_| AuthError::FlowBusy)?;
        let Delivery::Code { code_challenge } = flow.delivery.clone() else {
            return Err(AuthError::FlowNotFound);
        };
        let credentials = match std::mem::replace(
            &mut flow.stage,
            Stage::Provider {
                step_id: String::new(),
            },
        ) {
            Stage::AwaitRedirect { credentials } => credentials,
            other => {
                flow.stage = other;
                return Err(AuthError::InvalidRequest(
                    "the flow is not waiting for a redirect check".into(),
                ));
            }
        };
        let flow_id = FlowId::from(flow_id);
        let handler = handler_of(flow.provider.as_ref());
        let source = flow.ctx.ip_address;
        let outcome = if redirect_uri_allowed {
            let user = credentials
                .user_id
                .as_ref()
                .and_then(|id| self.user(id.as_str()));
            let blocked = user
                .as_ref()
                .and_then(|u| Self::user_not_allowed(u, source));
            if let Some(reason) = blocked {
                self.record_login_failure(&flow, "login_blocked");
                FlowOutcome::Refused {
                    flow_id: flow_id.clone(),
                    handler,
                    refusal: CodeRefusal::LoginBlocked(reason),
                }
            } else {
                self.inner
                    .throttle
                    .lock()
                    .record_success(flow.username.as_deref());
                if let Some(user) = &user {
                    tracing::info!(user_id = %user.id, provider = %handler.provider_type, source = ?source, "login succeeded (authorization code issued)");
                    self.fire(AuthEvent::LoginSucceeded {
                        user_id: user.id.clone(),
                        provider_type: handler.provider_type.clone(),
                        source,
                    });
                }
                let client_id = flow.ctx.client_id.clone().unwrap_or_default();
                let code = self.inner.codes.insert(
                    &client_id,
                    CodeEntry {
                        created_at: now,
                        provider: Arc::clone(&flow.provider),
                        credentials,
                        code_challenge,
                        username: flow.username.clone(),
                    },
                    now,
                );
                FlowOutcome::Code {
                    flow_id: flow_id.clone(),
                    handler,
                    code: Secret::new(code),
                }
            }
        } else {
            self.record_login_failure(&flow, "invalid_redirect_uri");
            FlowOutcome::Refused {
                flow_id: flow_id.clone(),
                handler,
                refusal: CodeRefusal::InvalidRedirectUri,
            }
        };
        drop(flow);
        self.finish_outcome(&flow_id, Ok(outcome))
    }

    /// How many authorization codes wait to be exchanged.
    #[must_use]
    pub fn pending_codes(&self) -> usize {
        self.inner.codes.len()
    }

    /// The `authorization_code` grant (reference §3.8): takes the code issued to
    /// `client_id` (gone after this call whatever the outcome), checks PKCE, finds or
    /// creates the credential's user, refuses a user who may not authenticate from
    /// `remote_ip`, then creates a normal refresh token for the client and mints its
    /// first access token with `remote_ip` (the provider may refuse: trusted networks
    /// from outside them).
    ///
    /// # Errors
    /// [`AuthError::InvalidCode`], [`AuthError::CodeVerifierRequired`],
    /// [`AuthError::InvalidCodeVerifier`], [`AuthError::UnexpectedCodeVerifier`],
    /// [`AuthError::DuplicateCredentials`], [`AuthError::AccessDenied`] with Home
    /// Assistant's reason, a store failure.
    pub async fn exchange_code(
        &self,
        client_id: &str,
        code: &str,
        code_verifier: Option<&str>,
        remote_ip: Option<IpAddr>,
    ) -> Result<CodeTokens, AuthError> {
        let entry = self
            .inner
            .codes
            .take(client_id, code, self.now())
            .ok_or(AuthError::InvalidCode)?;
        match (&entry.code_challenge, code_verifier) {
            (Some(_), None) => return Err(AuthError::CodeVerifierRequired),
            (Some(challenge), Some(verifier)) => {
                if !verifier_is_well_formed(verifier) || !s256_matches(verifier, challenge) {
                    return Err(AuthError::InvalidCodeVerifier);
                }
            }
            (None, Some(_)) => return Err(AuthError::UnexpectedCodeVerifier),
            (None, None) => {}
        }
        let provider_type = entry.provider.provider_type().to_owned();
        let was_new = entry.credentials.is_new;
        let (user, credentials) = self
            .get_or_create_user(entry.provider.as_ref(), entry.credentials)
            .await?;
        if let Some(reason) = Self::user_not_allowed(&user, remote_ip) {
            return Err(AuthError::AccessDenied(reason.to_owned()));
        }
        if was_new {
            tracing::info!(user_id = %user.id, provider = %provider_type, source = ?remote_ip, "login succeeded (new credential exchanged)");
            self.fire(AuthEvent::LoginSucceeded {
                user_id: user.id.clone(),
                provider_type: provider_type.clone(),
                source: remote_ip,
            });
        }
        let refresh = self
            .create_refresh_token(
                user.id.as_str(),
                NewRefreshToken {
                    // Whole seconds well below 2^53: exact as f64.
                    #[allow(clippy::cast_precision_loss)]
                    access_token_expiration: self.inner.access_token_lifetime_secs as f64,
                    ..NewRefreshToken::normal(client_id.to_owned(), Some(credentials.id.clone()))
                },
            )
            .await?;
        let access = match self.create_access_token(refresh.id.as_str(), remote_ip) {
            Ok(access) => access,
            Err(e) => {
                // Leave no refresh token behind that nobody received.
                let _ = self.remove_refresh_token(refresh.id.as_str()).await;
                return Err(match e {
                    AuthError::Provider(ProviderError::InvalidAuth(m)) => {
                        AuthError::AccessDenied(m)
                    }
                    other => other,
                });
            }
        };
        tracing::debug!(user_id = %user.id, username = ?entry.username, "authorization code exchanged");
        Ok(CodeTokens {
            tokens: IssuedTokens {
                user_id: user.id,
                refresh_token_id: refresh.id.clone(),
                refresh_token: refresh.token.clone(),
                access_token: access,
            },
            provider_type,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn s256_matches_the_rfc_7636_example() {
        // RFC 7636 appendix B.
        let verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
        assert!(verifier_is_well_formed(verifier));
        assert!(s256_matches(
            verifier,
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        ));
        assert!(!s256_matches(
            verifier,
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cN"
        ));
    }

    #[test]
    fn verifier_shape() {
        assert!(!verifier_is_well_formed(&"a".repeat(42)));
        assert!(verifier_is_well_formed(&"a".repeat(43)));
        assert!(verifier_is_well_formed(&"a".repeat(128)));
        assert!(!verifier_is_well_formed(&"a".repeat(129)));
        assert!(!verifier_is_well_formed(&format!("{}+", "a".repeat(42))));
        assert!(verifier_is_well_formed(&format!("{}.~_-", "a".repeat(40))));
    }
}
