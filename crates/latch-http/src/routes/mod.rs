//! The routes, one module per family, and the layers every answer passes through.

pub(crate) mod authorize;
pub(crate) mod forward;
pub(crate) mod login_flow;
pub(crate) mod providers;
pub(crate) mod token;

use axum::Router;
use axum::http::{HeaderName, HeaderValue, Method, StatusCode, header};
use axum::middleware;
use axum::response::Response;
use axum::routing::{get, post};
use latch_protocol::ErrorCode;
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::set_header::SetResponseHeaderLayer;
use tower_http::timeout::TimeoutLayer;

use crate::answers;
use crate::daemon::Failure;
use crate::state::{AppState, client_addr};

/// The answer for a call to latchd that gave none the route expected.
pub(crate) fn failure(failure: &Failure) -> Response {
    match failure {
        Failure::Unavailable => answers::daemon_unavailable(),
        Failure::Api {
            code: ErrorCode::TooManyAttempts,
            message,
        } => answers::message_code(StatusCode::TOO_MANY_REQUESTS, message, "too_many_attempts"),
        Failure::Api { code, message } => {
            tracing::error!(%code, message, "latchd refused a request latch-http did not expect it to refuse");
            answers::internal()
        }
        Failure::Broken => answers::internal(),
    }
}

/// aiohttp's 404 for a path nothing serves.
async fn not_found() -> Response {
    answers::text_error(StatusCode::NOT_FOUND)
}

/// aiohttp's 405 for a method a path does not serve.
async fn method_not_allowed() -> Response {
    answers::text_error(StatusCode::METHOD_NOT_ALLOWED)
}

/// Every route with its layers. From the outside in: the client's address (refused
/// forwarded headers get their 400 before anything else, as in Home Assistant), Home
/// Assistant's security headers, the request deadline, the body cap.
pub(crate) fn router(state: AppState) -> Router {
    let config = &state.config;
    let origins: Vec<HeaderValue> = config
        .cors_allowed_origins
        .iter()
        .filter_map(|o| HeaderValue::from_str(o).ok())
        .collect();
    // Home Assistant's CORS for the token endpoints: its allowed headers, any method.
    let cors = CorsLayer::new()
        .allow_origin(AllowOrigin::list(origins))
        .allow_methods([Method::POST, Method::OPTIONS])
        .allow_headers([
            header::ORIGIN,
            header::ACCEPT,
            HeaderName::from_static("x-requested-with"),
            header::CONTENT_TYPE,
            header::AUTHORIZATION,
        ]);
    // A preflight is answered by the CORS layer; the route's OPTIONS only gives it a
    // method to reach.
    let preflight = || async { StatusCode::OK };
    let tokens = Router::new()
        .route("/auth/token", post(token::token).options(preflight))
        .route("/auth/revoke", post(token::revoke).options(preflight))
        .layer(cors);
    let mut app = Router::new()
        .route("/auth/providers", get(providers::providers))
        .route(
            "/.well-known/oauth-authorization-server",
            get(providers::well_known),
        )
        .route(
            "/auth/login_flow",
            get(login_flow::index_get).post(login_flow::start),
        )
        .route(
            "/auth/login_flow/{flow_id}",
            get(login_flow::resource_get)
                .post(login_flow::step)
                .delete(login_flow::delete),
        )
        .route(
            "/auth/authorize",
            get(authorize::page).post(authorize::submit),
        )
        .route("/auth/authorize/latch.css", get(authorize::stylesheet))
        .route("/auth/verify", get(forward::verify))
        .route(
            "/auth/signin",
            get(forward::signin_page).post(forward::signin_submit),
        )
        .route(
            "/auth/signout",
            get(forward::signout_page).post(forward::signout),
        )
        .merge(tokens)
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(RequestBodyLimitLayer::new(config.max_body_bytes))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            config.request_timeout(),
        ))
        .layer(SetResponseHeaderLayer::if_not_present(
            header::REFERRER_POLICY,
            HeaderValue::from_static("no-referrer"),
        ))
        .layer(SetResponseHeaderLayer::if_not_present(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ));
    if config.use_x_frame_options {
        app = app.layer(SetResponseHeaderLayer::if_not_present(
            header::X_FRAME_OPTIONS,
            HeaderValue::from_static("SAMEORIGIN"),
        ));
    }
    app.layer(middleware::from_fn_with_state(state.clone(), client_addr))
        .with_state(state)
}
