//! The answers of the requests that serve Home Assistant's HTTP auth API (`latch-http`):
//! login flows that end in an authorization code, and the token endpoint's grants.
//!
//! These carry *what happened*, typed; the HTTP door turns each into Home Assistant's
//! exact status, JSON and error strings.

use serde::{Deserialize, Serialize};

use crate::{AccessToken, FlowForm, Handler, IssuedTokens, ProviderInfo, Sensitive};

/// Answer to `HttpProviders` (Home Assistant's `GET /auth/providers`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoginProviders {
    /// True once an owner exists (Home Assistant's "user onboarded").
    pub onboarded: bool,
    /// True if the address is local (loopback, private or link-local; Home
    /// Assistant's `is_local`), which preselects "remember me".
    pub local: bool,
    /// The providers a login may start with from the address, in configuration order.
    pub providers: Vec<ProviderInfo>,
}

/// Where an authorization-code login flow stands (answer to `HttpLoginStart`,
/// `HttpLoginContinue` and `HttpLoginAuthorize`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HttpFlow {
    /// The flow.
    pub flow_id: String,
    /// The provider it runs (empty for [`HttpFlowStep::Rejected`], which answers without
    /// looking at the flow's state).
    pub handler: Handler,
    /// Its step.
    pub step: HttpFlowStep,
}

/// The step an authorization-code flow is at.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum HttpFlowStep {
    /// Waiting for input (Home Assistant's `form`).
    Form(FlowForm),
    /// Ended without a login; the flow is gone (Home Assistant's `abort`).
    Abort {
        /// Why, as Home Assistant keys it (`not_allowed`, `login_expired`,
        /// `too_many_retry`, …) or latch's `too_many_attempts`.
        reason: String,
    },
    /// The person proved who they are. Before a code is issued the caller must say,
    /// with `HttpLoginAuthorize`, whether `redirect_uri` may receive a code for
    /// `client_id` (IndieAuth; fetching the client's page is the caller's network IO).
    CheckRedirect {
        /// The flow's client.
        client_id: String,
        /// Where the client wants the code.
        redirect_uri: String,
    },
    /// Finished: a single-use authorization code for the flow's client, valid for
    /// 10 minutes (Home Assistant's `create_entry` with the code in `result`); the flow
    /// is gone.
    Code(Sensitive),
    /// Finished without a code after the person proved who they are; the flow is gone.
    Refused(FlowRefusal),
    /// The input was not taken; the flow is as it was.
    Rejected(InputRejection),
}

/// Why a step's input was not taken (the flow is unchanged).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum InputRejection {
    /// The input does not fit the current form (a missing, extra or non-text field).
    Malformed,
    /// It came from another address than the one that started the flow.
    IpChanged,
    /// Another request for the same flow is still running.
    Busy,
    /// The flow waits for its redirect check (`HttpLoginAuthorize`), or is not waiting
    /// for one.
    WrongStep,
}

/// Why a finished authorization-code flow issued no code.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum FlowRefusal {
    /// The redirect URI is not allowed for the client.
    InvalidRedirectUri,
    /// The user may not log in from here, with Home Assistant's reason (`User is not
    /// active`, `User cannot authenticate remotely`).
    LoginBlocked(String),
}

/// What the token endpoint's grant came to (answer to `ExchangeCode` and
/// `RefreshGrant`). A refusal is an answer, not an error: it is the OAuth error the
/// client receives.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum GrantOutcome {
    /// `authorization_code`: a new refresh token and its first access token.
    Issued(IssuedTokens),
    /// `refresh_token`: a new access token.
    Refreshed(AccessToken),
    /// Refused.
    Refused(GrantRefusal),
}

/// Why a grant was refused, each one an OAuth error of Home Assistant's token endpoint.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum GrantRefusal {
    /// The code is unknown, used, expired or bound to another client
    /// (`invalid_request`, "Invalid code").
    InvalidCode,
    /// The code was issued with a PKCE challenge and no verifier came
    /// (`invalid_request`, "Code verifier required").
    CodeVerifierRequired,
    /// The verifier is malformed or does not match the challenge (`invalid_grant`,
    /// "Invalid code verifier").
    InvalidCodeVerifier,
    /// A verifier came for a code issued without a challenge (`invalid_request`, "Code
    /// verifier provided but no code challenge was present").
    UnexpectedCodeVerifier,
    /// A new credential duplicates a stored one (`invalid_grant`, "Sign in again").
    SignInAgain,
    /// The refresh token is unknown (`invalid_grant`).
    UnknownToken,
    /// The refresh token belongs to another client (`invalid_request`).
    ClientMismatch,
    /// The user may not authenticate from here, or the provider refuses
    /// (`access_denied`, with this description).
    AccessDenied(String),
}
