//! `/auth/login_flow` and `/auth/login_flow/{flow_id}`: Home Assistant's login-flow API,
//! answered as Home Assistant 2024.3 answers it, with Home Assistant 2026's PKCE
//! parameters (`code_challenge`, `code_challenge_method`, `response_type`).

use axum::Extension;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use latch_client::CodeFlowStart;
use latch_protocol::{
    ErrorCode, FlowRefusal, Handler, HttpFlow, HttpFlowStep, InputRejection, Sensitive,
};
use serde_json::{Map, Value};

use crate::answers;
use crate::daemon::Failure;
use crate::flows::StepFailure;
use crate::forwarded::ClientAddr;
use crate::ha_json;
use crate::indieauth::{MAX_URL_LEN, verify_client_id};
use crate::routes::failure;
use crate::state::AppState;

/// Flow ids are 32 hex characters; anything much longer is not looked up.
const MAX_FLOW_ID_LEN: usize = 64;

/// A key as Python's `repr` shows it in voluptuous messages: `'client_id'`.
pub(crate) fn py_repr(s: &str) -> String {
    let quote = if s.contains('\'') && !s.contains('"') {
        '"'
    } else {
        '\''
    };
    let mut out = String::with_capacity(s.len() + 2);
    out.push(quote);
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c == quote => {
                out.push('\\');
                out.push(c);
            }
            c if c.is_control() => out.push_str(&format!("\\x{:02x}", u32::from(c))),
            c => out.push(c),
        }
    }
    out.push(quote);
    out
}

/// `400 {"message": "Message format incorrect: …"}`.
fn format_incorrect(detail: &str) -> Response {
    answers::message(
        StatusCode::BAD_REQUEST,
        &format!("Message format incorrect: {detail}"),
    )
}

/// The body of `POST /auth/login_flow`, checked as Home Assistant's schema checks it.
struct StartBody {
    client_id: String,
    handler: Value,
    redirect_uri: String,
    code_challenge: Option<String>,
    code_challenge_method: Option<String>,
    response_type: Option<String>,
}

fn is_pkce_challenge(s: &str) -> bool {
    s.len() == 43
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// voluptuous's first complaint: problems of the keys present, in the body's order,
/// then the first missing required key.
fn start_body(value: &Value) -> Result<StartBody, String> {
    let Value::Object(map) = value else {
        return Err("expected a dictionary".to_owned());
    };
    let at = |key: &str| format!("@ data[{}]", py_repr(key));
    for (key, v) in map {
        match key.as_str() {
            "client_id"
            | "redirect_uri"
            | "type"
            | "code_challenge"
            | "code_challenge_method"
            | "response_type" => {
                let Some(s) = v.as_str() else {
                    return Err(format!("expected str for dictionary value {}", at(key)));
                };
                if matches!(key.as_str(), "client_id" | "redirect_uri") && s.len() > MAX_URL_LEN {
                    return Err(format!(
                        "length of value must be at most {MAX_URL_LEN} for dictionary value {}",
                        at(key)
                    ));
                }
                if key == "code_challenge" && !is_pkce_challenge(s) {
                    return Err(format!(
                        "does not match regular expression ^[A-Za-z0-9_-]{{43}}$ for dictionary value {}",
                        at(key)
                    ));
                }
            }
            "handler" => {
                if !(v.is_string() || v.is_array()) {
                    return Err(format!("expected str for dictionary value {}", at(key)));
                }
            }
            _ => return Err(format!("extra keys not allowed {}", at(key))),
        }
    }
    for key in ["client_id", "handler", "redirect_uri"] {
        if !map.contains_key(key) {
            return Err(format!("required key not provided {}", at(key)));
        }
    }
    let text = |key: &str| map.get(key).and_then(Value::as_str).map(str::to_owned);
    Ok(StartBody {
        client_id: text("client_id").unwrap_or_default(),
        handler: map.get("handler").cloned().unwrap_or(Value::Null),
        redirect_uri: text("redirect_uri").unwrap_or_default(),
        code_challenge: text("code_challenge"),
        code_challenge_method: text("code_challenge_method"),
        response_type: text("response_type"),
    })
}

/// `[type, id]` with a text type and a text or null id.
fn handler_of(value: &Value) -> Option<Handler> {
    match value.as_array()?.as_slice() {
        [Value::String(t), Value::Null] => Some(Handler::new(t.as_str())),
        [Value::String(t), Value::String(id)] => Some(Handler::with_id(t.as_str(), id.as_str())),
        _ => None,
    }
}

fn invalid_handler() -> Response {
    answers::message(StatusCode::NOT_FOUND, "Invalid handler specified")
}

fn invalid_flow() -> Response {
    answers::message(StatusCode::NOT_FOUND, "Invalid flow specified")
}

/// `GET /auth/login_flow`: flows in progress are not listed.
pub(crate) async fn index_get() -> Response {
    answers::empty(StatusCode::METHOD_NOT_ALLOWED)
}

/// `GET /auth/login_flow/{flow_id}`: flows are not shown (Home Assistant 2024.3 meant
/// this answer and fails with a 500 instead).
pub(crate) async fn resource_get() -> Response {
    invalid_flow()
}

/// `POST /auth/login_flow`: starts a flow and answers its first step.
pub(crate) async fn start(
    State(state): State<AppState>,
    Extension(client): Extension<ClientAddr>,
    body: Bytes,
) -> Response {
    let Ok(value) = serde_json::from_slice::<Value>(&body) else {
        return answers::message(StatusCode::BAD_REQUEST, "Invalid JSON.");
    };
    let data = match start_body(&value) {
        Ok(data) => data,
        Err(detail) => return format_incorrect(&detail),
    };
    if !verify_client_id(&data.client_id) {
        return answers::message(StatusCode::BAD_REQUEST, "Invalid client id");
    }
    if data.response_type.as_deref().is_some_and(|t| t != "code") {
        return answers::message(StatusCode::BAD_REQUEST, "Response type not supported");
    }
    if data.code_challenge_method.is_some() && data.code_challenge.is_none() {
        return answers::message(
            StatusCode::BAD_REQUEST,
            "code_challenge required when code_challenge_method is provided",
        );
    }
    if data.code_challenge.is_some() && data.code_challenge_method.as_deref() != Some("S256") {
        return answers::message(StatusCode::BAD_REQUEST, "Transform algorithm not supported");
    }
    let Some(handler) = handler_of(&data.handler) else {
        return invalid_handler();
    };
    let Some(reservation) = state.flows.reserve(client.ip) else {
        tracing::warn!(client = %client.ip, "too many login flows from one address");
        return answers::too_many_flows();
    };
    let started = state
        .daemon
        .call(state.daemon.client().http_login_start(CodeFlowStart {
            handler,
            client_id: data.client_id,
            redirect_uri: data.redirect_uri,
            ip_address: Some(client.ip),
            code_challenge: data.code_challenge,
        }))
        .await;
    let flow = match started {
        Ok(flow) => flow,
        Err(Failure::Api {
            code: ErrorCode::ProviderNotFound,
            ..
        }) => return invalid_handler(),
        Err(e) => return failure(&e),
    };
    match state.settle(flow, Some(reservation)).await {
        Ok(flow) => flow_answer(&flow),
        Err(e) => failure(&e),
    }
}

/// `POST /auth/login_flow/{flow_id}`: answers the flow's current step.
pub(crate) async fn step(
    State(state): State<AppState>,
    Extension(client): Extension<ClientAddr>,
    Path(flow_id): Path<String>,
    body: Bytes,
) -> Response {
    let Ok(value) = serde_json::from_slice::<Value>(&body) else {
        return answers::message(StatusCode::BAD_REQUEST, "Invalid JSON.");
    };
    let Value::Object(mut map) = value else {
        return format_incorrect("expected a dictionary");
    };
    let client_id = match map.remove("client_id") {
        Some(Value::String(s)) => s,
        Some(_) => {
            return format_incorrect("expected str for dictionary value @ data['client_id']");
        }
        None => return format_incorrect("required key not provided @ data['client_id']"),
    };
    if !verify_client_id(&client_id) {
        return answers::message(StatusCode::BAD_REQUEST, "Invalid client id");
    }
    if flow_id.len() > MAX_FLOW_ID_LEN {
        return invalid_flow();
    }
    // Form values are text; anything else is malformed input (Home Assistant finds
    // that after the flow and address checks).
    let Some(input) = form_input(map) else {
        return answers::message(StatusCode::BAD_REQUEST, "User input malformed");
    };
    let flow = match state.continue_flow(&flow_id, input, client.ip).await {
        Ok(flow) => flow,
        Err(StepFailure::Gone) => {
            return invalid_flow();
        }
        Err(StepFailure::Failed(e)) => return failure(&e),
    };
    match state.settle(flow, None).await {
        Ok(flow) => flow_answer(&flow),
        Err(e) => failure(&e),
    }
}

/// `DELETE /auth/login_flow/{flow_id}`: abandons the flow.
pub(crate) async fn delete(State(state): State<AppState>, Path(flow_id): Path<String>) -> Response {
    if flow_id.len() > MAX_FLOW_ID_LEN {
        return invalid_flow();
    }
    let answer = state
        .daemon
        .call(state.daemon.client().login_abort(&flow_id))
        .await;
    match answer {
        Ok(()) => {
            state.flows.release(&flow_id);
            answers::message(StatusCode::OK, "Flow aborted")
        }
        Err(Failure::Api {
            code: ErrorCode::FlowNotFound,
            ..
        }) => {
            state.flows.release(&flow_id);
            invalid_flow()
        }
        Err(e) => failure(&e),
    }
}

/// The step's fields as text, or `None` if a value is not text.
fn form_input(map: Map<String, Value>) -> Option<Vec<(String, Sensitive)>> {
    map.into_iter()
        .map(|(k, v)| match v {
            Value::String(s) => Some((k, Sensitive::new(s))),
            _ => None,
        })
        .collect()
}

/// Home Assistant's answer for a settled flow.
fn flow_answer(flow: &HttpFlow) -> Response {
    let h = &flow.handler;
    match &flow.step {
        HttpFlowStep::Form(form) => answers::json(StatusCode::OK, &ha_json::form(h, form)),
        HttpFlowStep::Abort { reason } => {
            answers::json(StatusCode::OK, &ha_json::abort(&flow.flow_id, h, reason))
        }
        HttpFlowStep::Code(code) => answers::json(
            StatusCode::OK,
            &ha_json::create_entry(&flow.flow_id, h, code.expose()),
        ),
        HttpFlowStep::Refused(FlowRefusal::InvalidRedirectUri) => {
            answers::message(StatusCode::FORBIDDEN, "Invalid redirect URI")
        }
        HttpFlowStep::Refused(FlowRefusal::LoginBlocked(reason)) => {
            answers::message(StatusCode::FORBIDDEN, &format!("Login blocked: {reason}"))
        }
        HttpFlowStep::Rejected(InputRejection::Malformed) => {
            answers::message(StatusCode::BAD_REQUEST, "User input malformed")
        }
        HttpFlowStep::Rejected(InputRejection::IpChanged) => {
            answers::message(StatusCode::BAD_REQUEST, "IP address changed")
        }
        HttpFlowStep::Rejected(InputRejection::Busy | InputRejection::WrongStep) => {
            answers::message(StatusCode::CONFLICT, "Flow request already in progress")
        }
        HttpFlowStep::CheckRedirect { .. } => answers::internal(),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[allow(clippy::needless_pass_by_value)] // called with json! literals
    fn err(v: Value) -> String {
        match start_body(&v) {
            Err(e) => e,
            Ok(_) => panic!("accepted {v}"),
        }
    }

    #[test]
    fn schema_messages_are_voluptuous_messages() {
        let ok = json!({"client_id": "https://a.example/", "handler": ["homeassistant", null], "redirect_uri": "https://a.example/cb"});
        assert!(start_body(&ok).is_ok());
        assert_eq!(err(json!([1])), "expected a dictionary");
        assert_eq!(
            err(json!({"handler": ["x", null]})),
            "required key not provided @ data['client_id']"
        );
        assert_eq!(
            err(json!({"client_id": 5, "handler": ["x", null], "redirect_uri": "r"})),
            "expected str for dictionary value @ data['client_id']"
        );
        assert_eq!(
            err(
                json!({"client_id": "c", "handler": ["x", null], "redirect_uri": "r", "remember": true})
            ),
            "extra keys not allowed @ data['remember']"
        );
        assert_eq!(
            err(
                json!({"client_id": "c", "handler": ["x", null], "redirect_uri": "r", "code_challenge": "short"})
            ),
            "does not match regular expression ^[A-Za-z0-9_-]{43}$ for dictionary value @ data['code_challenge']"
        );
        let long = "a".repeat(MAX_URL_LEN + 1);
        assert_eq!(
            err(json!({"client_id": long, "handler": ["x", null], "redirect_uri": "r"})),
            "length of value must be at most 2048 for dictionary value @ data['client_id']"
        );
    }

    #[test]
    fn keys_are_quoted_as_python_quotes_them() {
        assert_eq!(py_repr("client_id"), "'client_id'");
        assert_eq!(py_repr("it's"), "\"it's\"");
        assert_eq!(py_repr("a'\"b"), "'a\\'\"b'");
        assert_eq!(py_repr("x\ny"), "'x\\ny'");
    }

    #[test]
    fn handlers_are_pairs_of_type_and_id() {
        assert_eq!(
            handler_of(&json!(["homeassistant", null])),
            Some(Handler::new("homeassistant"))
        );
        assert_eq!(
            handler_of(&json!(["trusted_networks", "lan"])),
            Some(Handler::with_id("trusted_networks", "lan"))
        );
        for bad in [
            json!("homeassistant"),
            json!(["a"]),
            json!([1, null]),
            json!(["a", null, null]),
        ] {
            assert_eq!(handler_of(&bad), None, "{bad}");
        }
    }
}
