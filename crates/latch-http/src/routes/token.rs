//! `POST /auth/token` (the `authorization_code` and `refresh_token` grants, and the
//! legacy `action=revoke`) and `POST /auth/revoke`, form-encoded, answered as Home
//! Assistant 2024.3 answers them; PKCE's `code_verifier` as Home Assistant 2026 checks
//! it. A parameter given twice is refused (`invalid_request`), as Home Assistant 2026
//! refuses it (2024.3 took the first).

use std::collections::HashMap;

use axum::Extension;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use latch_protocol::{GrantOutcome, GrantRefusal};
use serde_json::json;

use crate::answers;
use crate::forwarded::ClientAddr;
use crate::indieauth::verify_client_id;
use crate::routes::failure;
use crate::state::AppState;

/// The form's parameters, or `None` when one is given twice.
fn form(body: &[u8]) -> Option<HashMap<String, String>> {
    let mut params = HashMap::new();
    for (k, v) in url::form_urlencoded::parse(body) {
        if params.insert(k.into_owned(), v.into_owned()).is_some() {
            return None;
        }
    }
    Some(params)
}

fn invalid_client_id() -> Response {
    answers::oauth_error(
        StatusCode::BAD_REQUEST,
        "invalid_request",
        Some("Invalid client id"),
    )
}

/// Home Assistant's answer for a refused grant.
fn refused(refusal: &GrantRefusal) -> Response {
    let bad = StatusCode::BAD_REQUEST;
    match refusal {
        GrantRefusal::InvalidCode => {
            answers::oauth_error(bad, "invalid_request", Some("Invalid code"))
        }
        GrantRefusal::CodeVerifierRequired => {
            answers::oauth_error(bad, "invalid_request", Some("Code verifier required"))
        }
        GrantRefusal::InvalidCodeVerifier => {
            answers::oauth_error(bad, "invalid_grant", Some("Invalid code verifier"))
        }
        GrantRefusal::UnexpectedCodeVerifier => answers::oauth_error(
            bad,
            "invalid_request",
            Some("Code verifier provided but no code challenge was present"),
        ),
        GrantRefusal::SignInAgain => {
            answers::oauth_error(bad, "invalid_grant", Some("Sign in again"))
        }
        GrantRefusal::UnknownToken => answers::oauth_error(bad, "invalid_grant", None),
        GrantRefusal::ClientMismatch => answers::oauth_error(bad, "invalid_request", None),
        GrantRefusal::AccessDenied(reason) => {
            answers::oauth_error(StatusCode::FORBIDDEN, "access_denied", Some(reason))
        }
    }
}

/// `POST /auth/token`.
pub(crate) async fn token(
    State(state): State<AppState>,
    Extension(client): Extension<ClientAddr>,
    body: Bytes,
) -> Response {
    let Some(params) = form(&body) else {
        return answers::oauth_error(StatusCode::BAD_REQUEST, "invalid_request", None);
    };
    if params.get("action").map(String::as_str) == Some("revoke") {
        return revoke_token(&state, params.get("token")).await;
    }
    match params.get("grant_type").map(String::as_str) {
        Some("authorization_code") => authorization_code(&state, &client, &params).await,
        Some("refresh_token") => refresh_token(&state, &client, &params).await,
        _ => answers::oauth_error(StatusCode::BAD_REQUEST, "unsupported_grant_type", None),
    }
}

async fn authorization_code(
    state: &AppState,
    client: &ClientAddr,
    params: &HashMap<String, String>,
) -> Response {
    let Some(client_id) = params.get("client_id").filter(|c| verify_client_id(c)) else {
        return invalid_client_id();
    };
    let Some(code) = params.get("code") else {
        return answers::oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            Some("Invalid code"),
        );
    };
    let outcome = state
        .daemon
        .call(state.daemon.client().exchange_code(
            client_id,
            code,
            params.get("code_verifier").map(String::as_str),
            Some(client.ip),
        ))
        .await;
    match outcome {
        Ok(GrantOutcome::Issued(t)) => answers::tokens(&json!({
            "access_token": t.access_token.expose(),
            "token_type": t.token_type(),
            "refresh_token": t.refresh_token.expose(),
            "expires_in": t.expires_in,
            "ha_auth_provider": t.provider_type,
        })),
        Ok(GrantOutcome::Refused(refusal)) => refused(&refusal),
        Ok(GrantOutcome::Refreshed(_)) => {
            tracing::error!("latchd answered a code exchange with a refresh");
            answers::internal()
        }
        Err(e) => failure(&e),
    }
}

async fn refresh_token(
    state: &AppState,
    client: &ClientAddr,
    params: &HashMap<String, String>,
) -> Response {
    let client_id = params.get("client_id");
    if client_id.is_some_and(|c| !verify_client_id(c)) {
        return invalid_client_id();
    }
    let Some(refresh_token) = params.get("refresh_token") else {
        return answers::oauth_error(StatusCode::BAD_REQUEST, "invalid_request", None);
    };
    let outcome = state
        .daemon
        .call(state.daemon.client().refresh_grant(
            refresh_token,
            client_id.map(String::as_str),
            Some(client.ip),
        ))
        .await;
    match outcome {
        Ok(GrantOutcome::Refreshed(t)) => answers::tokens(&json!({
            "access_token": t.access_token.expose(),
            "token_type": t.token_type(),
            "expires_in": t.expires_in,
        })),
        Ok(GrantOutcome::Refused(refusal)) => refused(&refusal),
        Ok(GrantOutcome::Issued(_)) => {
            tracing::error!("latchd answered a refresh with new tokens");
            answers::internal()
        }
        Err(e) => failure(&e),
    }
}

/// Revokes a refresh token by its value: 200 whether it existed or not (RFC 7009).
async fn revoke_token(state: &AppState, token: Option<&String>) -> Response {
    if let Some(token) = token {
        let revoked = state.daemon.call(state.daemon.client().revoke(token)).await;
        if let Err(e) = revoked {
            return failure(&e);
        }
    }
    answers::empty(StatusCode::OK)
}

/// `POST /auth/revoke`.
pub(crate) async fn revoke(State(state): State<AppState>, body: Bytes) -> Response {
    let Some(params) = form(&body) else {
        return answers::oauth_error(StatusCode::BAD_REQUEST, "invalid_request", None);
    };
    revoke_token(&state, params.get("token")).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forms_decode_and_refuse_repeated_parameters() {
        let params =
            form(b"grant_type=refresh_token&client_id=https%3A%2F%2Fa.example%2F&x=a+b").unwrap();
        assert_eq!(params["client_id"], "https://a.example/");
        assert_eq!(params["x"], "a b");
        assert!(form(b"code=1&code=2").is_none());
        assert!(form(b"").unwrap().is_empty());
    }
}
