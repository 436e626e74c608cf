//! `GET /auth/providers` and `GET /.well-known/oauth-authorization-server`.

use axum::Extension;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use serde_json::{Value, json};

use crate::answers;
use crate::forwarded::ClientAddr;
use crate::routes::failure;
use crate::state::AppState;

/// The providers a person at the client's address may sign in with, and whether to
/// preselect "remember me" (a local address).
pub(crate) async fn providers(
    State(state): State<AppState>,
    Extension(client): Extension<ClientAddr>,
) -> Response {
    let answer = state
        .daemon
        .call(state.daemon.client().http_providers(Some(client.ip)))
        .await;
    let providers = match answer {
        Ok(providers) => providers,
        Err(e) => return failure(&e),
    };
    if !providers.onboarded {
        return answers::message_code(
            StatusCode::BAD_REQUEST,
            "Onboarding not finished",
            "onboarding_required",
        );
    }
    let list: Vec<Value> = providers
        .providers
        .iter()
        .map(|p| {
            json!({
                "name": p.name,
                "id": p.handler.provider_id,
                "type": p.handler.provider_type,
            })
        })
        .collect();
    answers::json(
        StatusCode::OK,
        &json!({ "providers": list, "preselect_remember_me": providers.local }),
    )
}

/// RFC 8414 metadata, as Home Assistant 2024.3 serves it (relative URLs), plus the
/// PKCE method latch supports.
pub(crate) async fn well_known() -> Response {
    answers::json(
        StatusCode::OK,
        &json!({
            "authorization_endpoint": "/auth/authorize",
            "token_endpoint": "/auth/token",
            "revocation_endpoint": "/auth/revoke",
            "response_types_supported": ["code"],
            "service_documentation": "https://developers.home-assistant.io/docs/auth_api",
            "code_challenge_methods_supported": ["S256"],
        }),
    )
}
