//! The requests of the HTTP door (`latch-http`): authorization-code login flows, the
//! token endpoint's grants and the providers page, each mapped onto one AuthManager
//! call and its result onto the protocol's typed answer. Refusals that the token
//! endpoint shows a client are answers ([`GrantOutcome::Refused`]), not errors.

use std::net::IpAddr;

use latch_auth::{AuthError, AuthManager, CodeRefusal, FlowOutcome};
use latch_models::is_local_address;
use latch_protocol::{
    AccessToken, ApiError, FlowRefusal, FormInput, GrantOutcome, GrantRefusal, Handler, HttpFlow,
    HttpFlowStep, InputRejection, IssuedTokens, LoginProviders, ProviderInfo, Response, Sensitive,
};
use latch_provider::{FlowContext, ProviderError};

use crate::convert;
use crate::handler::{Answer, api_error, form_input};

/// `HttpProviders`.
pub(crate) fn providers(m: &AuthManager, ip_address: Option<IpAddr>) -> Answer {
    let onboarded = m.store().read(|d| d.users().any(|u| u.is_owner));
    Ok(Response::LoginProviders(LoginProviders {
        onboarded,
        local: ip_address.is_some_and(is_local_address),
        providers: m
            .login_providers(ip_address)
            .iter()
            .map(|p| ProviderInfo {
                handler: Handler {
                    provider_type: p.provider_type().to_owned(),
                    provider_id: p.id().map(str::to_owned),
                },
                name: p.name().to_owned(),
            })
            .collect(),
    }))
}

/// `HttpLoginStart`.
pub(crate) async fn start(
    m: &AuthManager,
    handler: Handler,
    client_id: String,
    redirect_uri: String,
    ip_address: Option<IpAddr>,
    code_challenge: Option<String>,
) -> Answer {
    let ctx = FlowContext {
        ip_address,
        client_id: Some(client_id),
        redirect_uri: Some(redirect_uri),
    };
    let outcome = m
        .start_code_flow(
            &handler.provider_type,
            handler.provider_id.as_deref(),
            ctx,
            code_challenge,
        )
        .await
        .map_err(|e| api_error(&e))?;
    http_flow(outcome)
}

/// `HttpLoginContinue`.
pub(crate) async fn continue_flow(
    m: &AuthManager,
    flow_id: &str,
    input: FormInput,
    ip_address: Option<IpAddr>,
) -> Answer {
    match m
        .continue_code_flow(flow_id, form_input(input), ip_address)
        .await
    {
        Ok(outcome) => http_flow(outcome),
        Err(e) => rejected(flow_id, e),
    }
}

/// `HttpLoginAuthorize`.
pub(crate) async fn authorize(m: &AuthManager, flow_id: &str, allowed: bool) -> Answer {
    match m.authorize_code_flow(flow_id, allowed).await {
        Ok(outcome) => http_flow(outcome),
        Err(e) => rejected(flow_id, e),
    }
}

/// The answer for input a flow did not take: a typed rejection, or the error.
fn rejected(flow_id: &str, e: AuthError) -> Answer {
    let rejection = match e {
        AuthError::InputMalformed => InputRejection::Malformed,
        AuthError::IpChanged => InputRejection::IpChanged,
        AuthError::FlowBusy => InputRejection::Busy,
        AuthError::InvalidRequest(_) => InputRejection::WrongStep,
        other => return Err(api_error(&other)),
    };
    // The handler is not known without the flow; the HTTP door does not show it.
    Ok(Response::HttpFlow(HttpFlow {
        flow_id: flow_id.to_owned(),
        handler: Handler::new(""),
        step: HttpFlowStep::Rejected(rejection),
    }))
}

/// `ExchangeCode`.
pub(crate) async fn exchange(
    m: &AuthManager,
    client_id: &str,
    code: &Sensitive,
    code_verifier: Option<&Sensitive>,
    remote_ip: Option<IpAddr>,
) -> Answer {
    let refusal = match m
        .exchange_code(
            client_id,
            code.expose(),
            code_verifier.map(Sensitive::expose),
            remote_ip,
        )
        .await
    {
        Ok(issued) => {
            tracing::info!(user_id = %issued.tokens.user_id, refresh_token_id = %issued.tokens.refresh_token_id, "authorization code exchanged");
            return Ok(Response::Grant(GrantOutcome::Issued(IssuedTokens {
                user_id: issued.tokens.user_id.as_str().to_owned(),
                refresh_token_id: issued.tokens.refresh_token_id.as_str().to_owned(),
                refresh_token: Sensitive::from(issued.tokens.refresh_token.expose()),
                expires_in: u64::try_from(issued.tokens.access_token.expires_in).unwrap_or(0),
                access_token: Sensitive::new(issued.tokens.access_token.token),
                provider_type: issued.provider_type,
            })));
        }
        Err(AuthError::InvalidCode) => GrantRefusal::InvalidCode,
        Err(AuthError::CodeVerifierRequired) => GrantRefusal::CodeVerifierRequired,
        Err(AuthError::InvalidCodeVerifier) => GrantRefusal::InvalidCodeVerifier,
        Err(AuthError::UnexpectedCodeVerifier) => GrantRefusal::UnexpectedCodeVerifier,
        Err(AuthError::DuplicateCredentials) => GrantRefusal::SignInAgain,
        Err(AuthError::AccessDenied(reason)) => GrantRefusal::AccessDenied(reason),
        Err(e) => return Err(api_error(&e)),
    };
    Ok(Response::Grant(GrantOutcome::Refused(refusal)))
}

/// `RefreshGrant`.
pub(crate) fn refresh(
    m: &AuthManager,
    refresh_token: &Sensitive,
    client_id: Option<&str>,
    remote_ip: Option<IpAddr>,
) -> Answer {
    let refusal = match m.refresh(refresh_token.expose(), client_id, remote_ip) {
        Ok(token) => {
            return Ok(Response::Grant(GrantOutcome::Refreshed(AccessToken {
                expires_in: u64::try_from(token.expires_in).unwrap_or(0),
                access_token: token.token.into(),
            })));
        }
        Err(AuthError::InvalidGrant) => GrantRefusal::UnknownToken,
        Err(AuthError::InvalidRequest(_)) => GrantRefusal::ClientMismatch,
        Err(AuthError::AccessDenied(reason)) => GrantRefusal::AccessDenied(reason),
        Err(AuthError::Provider(ProviderError::InvalidAuth(reason))) => {
            GrantRefusal::AccessDenied(reason)
        }
        Err(e) => return Err(api_error(&e)),
    };
    Ok(Response::Grant(GrantOutcome::Refused(refusal)))
}

/// The answer for a code flow's outcome.
fn http_flow(outcome: FlowOutcome) -> Answer {
    let (flow_id, handler, step) = match outcome {
        FlowOutcome::Form {
            flow_id,
            handler,
            form,
        } => {
            let form = convert::flow_form(&flow_id, form);
            (flow_id, handler, HttpFlowStep::Form(form))
        }
        FlowOutcome::Abort {
            flow_id,
            handler,
            reason,
        } => (
            flow_id,
            handler,
            HttpFlowStep::Abort {
                reason: reason.as_str().to_owned(),
            },
        ),
        FlowOutcome::CheckRedirect {
            flow_id,
            handler,
            client_id,
            redirect_uri,
        } => (
            flow_id,
            handler,
            HttpFlowStep::CheckRedirect {
                client_id,
                redirect_uri,
            },
        ),
        FlowOutcome::Code {
            flow_id,
            handler,
            code,
        } => (
            flow_id,
            handler,
            HttpFlowStep::Code(Sensitive::from(code.expose())),
        ),
        FlowOutcome::Refused {
            flow_id,
            handler,
            refusal,
        } => (
            flow_id,
            handler,
            HttpFlowStep::Refused(match refusal {
                CodeRefusal::InvalidRedirectUri => FlowRefusal::InvalidRedirectUri,
                CodeRefusal::LoginBlocked(reason) => FlowRefusal::LoginBlocked(reason.to_owned()),
            }),
        ),
        // A code flow never issues tokens directly.
        FlowOutcome::Done { .. } => {
            return Err(ApiError::new(
                latch_protocol::ErrorCode::Internal,
                "a code flow finished with tokens",
            ));
        }
    };
    Ok(Response::HttpFlow(HttpFlow {
        flow_id: flow_id.as_str().to_owned(),
        handler: Handler {
            provider_type: handler.provider_type,
            provider_id: handler.provider_id,
        },
        step,
    }))
}
