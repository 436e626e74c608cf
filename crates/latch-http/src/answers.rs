//! Answers in Home Assistant's shapes: `self.json(...)`, `self.json_message(...)`, the
//! empty answers aiohttp sends with `application/octet-stream`, aiohttp's plain-text
//! errors; and latch-http's own JSON errors (`{"message", "code"}` with a stable code).

use axum::body::Body;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

/// A JSON answer (`application/json`), as Home Assistant's `self.json`.
pub(crate) fn json(status: StatusCode, value: &Value) -> Response {
    let mut response = (status, value.to_string()).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

/// `{"message": …}`, as Home Assistant's `self.json_message`.
pub(crate) fn message(status: StatusCode, message: &str) -> Response {
    json(status, &json!({ "message": message }))
}

/// `{"message": …, "code": …}`: Home Assistant's `json_message` with a code, and the
/// shape of every error latch-http adds (its codes are stable).
pub(crate) fn message_code(status: StatusCode, message: &str, code: &str) -> Response {
    json(status, &json!({ "message": message, "code": code }))
}

/// An empty answer, which aiohttp types `application/octet-stream`.
pub(crate) fn empty(status: StatusCode) -> Response {
    let mut response = (status, Body::empty()).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    response
}

/// aiohttp's plain-text error page, e.g. `400: Bad Request`.
pub(crate) fn text_error(status: StatusCode) -> Response {
    let text = format!(
        "{}: {}",
        status.as_u16(),
        status.canonical_reason().unwrap_or("Error")
    );
    let mut response = (status, text).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

/// 503: latchd cannot be reached (it is stopped or restarting).
pub(crate) fn daemon_unavailable() -> Response {
    message_code(
        StatusCode::SERVICE_UNAVAILABLE,
        "The latch daemon is not reachable; try again shortly",
        "daemon_unavailable",
    )
}

/// 500: something latch-http did not expect (logged where it happened).
pub(crate) fn internal() -> Response {
    message_code(
        StatusCode::INTERNAL_SERVER_ERROR,
        "Internal error",
        "internal_error",
    )
}

/// 429: too many login flows in progress from the client's address.
pub(crate) fn too_many_flows() -> Response {
    message_code(
        StatusCode::TOO_MANY_REQUESTS,
        "Too many login flows in progress from this address",
        "too_many_login_flows",
    )
}

/// An OAuth error of the token endpoint: `{"error"}` or `{"error",
/// "error_description"}`.
pub(crate) fn oauth_error(status: StatusCode, error: &str, description: Option<&str>) -> Response {
    let body = match description {
        Some(d) => json!({ "error": error, "error_description": d }),
        None => json!({ "error": error }),
    };
    json(status, &body)
}

/// A token answer, with the headers RFC 6749 §5.1 asks for.
pub(crate) fn tokens(value: &Value) -> Response {
    let mut response = json(StatusCode::OK, value);
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    response
}
