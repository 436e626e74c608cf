//! Typed calls for the HTTP door (`latch-http`): Home Assistant's providers page,
//! login flows that end in an authorization code, and the token endpoint's grants.

use std::net::IpAddr;

use latch_protocol::{
    FormInput, GrantOutcome, Handler, HttpFlow, LoginProviders, Request, Response, Sensitive,
};

use crate::client::unexpected;
use crate::{Client, ClientError};

/// Sends `$request` and maps the matching response variant to a value.
macro_rules! call {
    ($client:expr, $request:expr, $pattern:pat => $value:expr) => {{
        let request: Request = $request;
        let name = request.name();
        match $client.request(request).await? {
            $pattern => Ok($value),
            other => Err(unexpected(name, &other)),
        }
    }};
}

/// The start of an authorization-code login flow ([`Client::http_login_start`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CodeFlowStart {
    /// The provider to log in with.
    pub handler: Handler,
    /// The OAuth client (a valid IndieAuth client id).
    pub client_id: String,
    /// Where the client wants the code.
    pub redirect_uri: String,
    /// The person's address.
    pub ip_address: Option<IpAddr>,
    /// A PKCE S256 challenge to bind the code to.
    pub code_challenge: Option<String>,
}

impl Client {
    /// The providers, onboarding state and locality Home Assistant's
    /// `GET /auth/providers` shows a person at `ip_address`.
    ///
    /// # Errors
    ///
    /// As [`Client::request`].
    pub async fn http_providers(
        &self,
        ip_address: Option<IpAddr>,
    ) -> Result<LoginProviders, ClientError> {
        call!(self, Request::HttpProviders { ip_address }, Response::LoginProviders(p) => p)
    }

    /// Starts a login flow that ends in an authorization code.
    ///
    /// # Errors
    ///
    /// As [`Client::request`]; `provider_not_found`, `invalid_request`.
    pub async fn http_login_start(&self, start: CodeFlowStart) -> Result<HttpFlow, ClientError> {
        call!(self, Request::HttpLoginStart {
            handler: start.handler,
            client_id: start.client_id,
            redirect_uri: start.redirect_uri,
            ip_address: start.ip_address,
            code_challenge: start.code_challenge,
        }, Response::HttpFlow(flow) => flow)
    }

    /// Answers the current step of an authorization-code flow.
    ///
    /// # Errors
    ///
    /// As [`Client::request`]; `flow_not_found`, `invalid_request`, `too_many_attempts`.
    pub async fn http_login_continue(
        &self,
        flow_id: &str,
        input: FormInput,
        ip_address: Option<IpAddr>,
    ) -> Result<HttpFlow, ClientError> {
        call!(self, Request::HttpLoginContinue {
            flow_id: flow_id.to_owned(),
            input,
            ip_address,
        }, Response::HttpFlow(flow) => flow)
    }

    /// Says whether the redirect URI of a flow waiting at `CheckRedirect` is allowed;
    /// the flow then issues its code or refuses.
    ///
    /// # Errors
    ///
    /// As [`Client::request`]; `flow_not_found`, `invalid_request`.
    pub async fn http_login_authorize(
        &self,
        flow_id: &str,
        redirect_uri_allowed: bool,
    ) -> Result<HttpFlow, ClientError> {
        call!(self, Request::HttpLoginAuthorize {
            flow_id: flow_id.to_owned(),
            redirect_uri_allowed,
        }, Response::HttpFlow(flow) => flow)
    }

    /// The `authorization_code` grant. A refusal is `Ok(GrantOutcome::Refused(_))`.
    ///
    /// # Errors
    ///
    /// As [`Client::request`].
    pub async fn exchange_code(
        &self,
        client_id: &str,
        code: &str,
        code_verifier: Option<&str>,
        remote_ip: Option<IpAddr>,
    ) -> Result<GrantOutcome, ClientError> {
        call!(self, Request::ExchangeCode {
            client_id: client_id.to_owned(),
            code: Sensitive::from(code),
            code_verifier: code_verifier.map(Sensitive::from),
            remote_ip,
        }, Response::Grant(g) => g)
    }

    /// The `refresh_token` grant. A refusal is `Ok(GrantOutcome::Refused(_))`.
    ///
    /// # Errors
    ///
    /// As [`Client::request`].
    pub async fn refresh_grant(
        &self,
        refresh_token: &str,
        client_id: Option<&str>,
        remote_ip: Option<IpAddr>,
    ) -> Result<GrantOutcome, ClientError> {
        call!(self, Request::RefreshGrant {
            refresh_token: Sensitive::from(refresh_token),
            client_id: client_id.map(str::to_owned),
            remote_ip,
        }, Response::Grant(g) => g)
    }
}
