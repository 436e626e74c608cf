//! Forward-auth: `GET /auth/verify` for nginx `auth_request`, Traefik `forwardAuth` and
//! Caddy `forward_auth`, and the browser session behind it: `/auth/signin` (the
//! sign-in page of `/auth/authorize`, its templates shared, ending in a session cookie
//! instead of an app's code) and `/auth/signout`.
//!
//! `/auth/verify` reads the original request from `X-Original-URL`, else from
//! `X-Forwarded-Proto` / `-Host` / `-Uri` (at most 2048 bytes), and the credential from
//! `Authorization: Bearer` (an access token, long-lived ones included) or the session
//! cookie (at most 4096 bytes of cookie-safe characters). It answers 200 with
//! `Remote-User` (the username), `Remote-Name` and `Remote-Groups` (group ids,
//! comma-separated); 401 when there is no valid credential, with `Location` naming the
//! sign-in page (`?rd=` the original URL) for nginx's `auth_request_set`, or that 302
//! itself with `?redirect=1`; 403 when the access rules refuse.
//!
//! The session cookie holds the session and nothing else: a refresh token issued to
//! latch-http's own client id, `HttpOnly`, `SameSite=Lax`, `Secure` unless
//! `public_url` is plain http on a loopback host with no cookie domain beyond it and
//! latch-http listens on loopback. Every `POST` form carries a CSRF token (an HMAC,
//! under a key drawn at start, of the flow id or of the session). A sign-in returns only
//! to an allowed domain (no open redirect); attempts go through latchd's throttle with
//! the client's real address.

use std::collections::HashMap;

use askama::Template;
use axum::Extension;
use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use hmac::{Hmac, KeyInit as _, Mac as _};
use latch_client::CodeFlowStart;
use latch_protocol::{
    ErrorCode, FlowRefusal, GrantOutcome, HttpFlow, HttpFlowStep, InputRejection, Sensitive,
};
use sha2::Sha256;

use crate::access::{Decision, Subject, bare_host};
use crate::answers;
use crate::daemon::Failure;
use crate::flows::StepFailure;
use crate::forwarded::ClientAddr;
use crate::indieauth::MAX_URL_LEN;
use crate::routes::authorize::{
    FIELD_PREFIX, MessagePage, SignInPage, abort_text, error_text, field_view, html, message,
    provider_key, provider_list, query_params, step_text,
};
use crate::routes::failure;
use crate::state::AppState;
use crate::verify::{Identity, Kind, Refused};

/// The session cookie's name.
pub(crate) const COOKIE: &str = "latch_session";

/// The longest credential read from a cookie or an `Authorization` header.
pub(crate) const MAX_CREDENTIAL: usize = 4096;

/// A session cookie lives this long in the browser (latchd ends the session sooner
/// when the refresh token expires or is revoked).
const COOKIE_MAX_AGE_SECS: u64 = 90 * 24 * 3600;

/// The original request a proxy asks about.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Original {
    /// The whole URL.
    url: url::Url,
    /// The host, without port, lower case.
    host: String,
}

impl Original {
    /// `scheme://host[:port]`.
    fn origin(&self) -> String {
        self.url.origin().ascii_serialization()
    }
}

fn header_text<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// The original request from the proxy's headers.
fn original(headers: &HeaderMap) -> Result<Original, &'static str> {
    let text = if let Some(url) = header_text(headers, "x-original-url") {
        url.to_owned()
    } else {
        let proto = header_text(headers, "x-forwarded-proto").unwrap_or("https");
        let Some(host) = header_text(headers, "x-forwarded-host") else {
            return Err("the proxy sent neither X-Original-URL nor X-Forwarded-Host");
        };
        let uri = header_text(headers, "x-forwarded-uri").unwrap_or("/");
        if !uri.starts_with('/') {
            return Err("X-Forwarded-Uri must start with /");
        }
        format!("{}://{host}{uri}", proto.trim())
    };
    if text.len() > MAX_URL_LEN {
        return Err("the original URL is longer than 2048 bytes");
    }
    let url = url::Url::parse(&text).map_err(|_| "the original URL does not parse")?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err("the original URL is not http or https");
    }
    let Some(host) = url.host_str() else {
        return Err("the original URL has no host");
    };
    let host = bare_host(host.trim_start_matches('[').trim_end_matches(']'));
    Ok(Original { url, host })
}

/// A credential's characters: visible ASCII except what a cookie value cannot hold.
fn credential_ok(value: &str) -> bool {
    !value.is_empty()
        && value.len() <= MAX_CREDENTIAL
        && value
            .bytes()
            .all(|b| b.is_ascii_graphic() && !matches!(b, b'"' | b',' | b';' | b'\\'))
}

/// The session cookie's value, if the request carries one.
fn session_cookie(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .map(|(_, value)| value.trim().to_owned())
        .filter(|value| credential_ok(value))
}

/// The credential: `Authorization: Bearer`, else the session cookie.
fn credential(headers: &HeaderMap) -> Option<(Kind, String)> {
    if let Some(auth) = header_text(headers, "authorization") {
        let (scheme, token) = auth.trim().split_once(' ')?;
        let token = token.trim();
        return (scheme.eq_ignore_ascii_case("bearer") && credential_ok(token))
            .then(|| (Kind::Bearer, token.to_owned()));
    }
    session_cookie(headers).map(|c| (Kind::Session, c))
}

/// Where a browser signs in: `public_url`, else the protected site's own origin.
fn signin_base(state: &AppState, original: &Original) -> String {
    state
        .config
        .public_url
        .as_deref()
        .map_or_else(|| original.origin(), |u| u.trim_end_matches('/').to_owned())
}

fn signin_url(state: &AppState, original: &Original) -> String {
    let rd: String =
        url::form_urlencoded::byte_serialize(original.url.as_str().as_bytes()).collect();
    format!("{}/auth/signin?rd={rd}", signin_base(state, original))
}

/// 401 (with `Location` for nginx), or the 302 when asked to redirect.
fn unauthenticated(state: &AppState, original: &Original, redirect: bool) -> Response {
    let target = signin_url(state, original);
    let mut response = if redirect {
        StatusCode::FOUND.into_response()
    } else {
        answers::message_code(StatusCode::UNAUTHORIZED, "Sign in first", "unauthenticated")
    };
    if let Ok(location) = HeaderValue::from_str(&target) {
        response.headers_mut().insert(header::LOCATION, location);
    }
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

fn remote_value(text: &str, fallback: &str) -> HeaderValue {
    HeaderValue::from_bytes(text.as_bytes())
        .or_else(|_| HeaderValue::from_bytes(fallback.as_bytes()))
        .unwrap_or_else(|_| HeaderValue::from_static(""))
}

fn allowed(identity: &Identity) -> Response {
    let mut response = StatusCode::OK.into_response();
    let headers = response.headers_mut();
    headers.insert(
        HeaderName::from_static("remote-user"),
        remote_value(&identity.username, &identity.user_id),
    );
    headers.insert(
        HeaderName::from_static("remote-name"),
        remote_value(&identity.name, &identity.username),
    );
    headers.insert(
        HeaderName::from_static("remote-groups"),
        remote_value(&identity.groups.join(","), ""),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// `GET /auth/verify`.
pub(crate) async fn verify(
    State(state): State<AppState>,
    Extension(client): Extension<ClientAddr>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Response {
    let redirect = query_params(query.as_deref())
        .get("redirect")
        .is_some_and(|v| matches!(v.as_str(), "1" | "true" | "yes"));
    let original = match original(&headers) {
        Ok(original) => original,
        Err(reason) => {
            return answers::message_code(StatusCode::BAD_REQUEST, reason, "bad_forwarded_request");
        }
    };
    let Some((kind, credential)) = credential(&headers) else {
        return unauthenticated(&state, &original, redirect);
    };
    let identity = match state
        .verify
        .identify(&state.daemon, kind, &credential, client.ip)
        .await
    {
        Ok(identity) => identity,
        Err(Refused::Invalid) => return unauthenticated(&state, &original, redirect),
        Err(Refused::Failed(e)) => return failure(&e),
    };
    let subject = Subject {
        username: &identity.username,
        groups: &identity.groups,
        second_factor: identity.second_factor,
    };
    match state
        .access
        .decide(&original.host, original.url.path(), &subject)
    {
        Decision::Allow => allowed(&identity),
        Decision::Deny { .. } => answers::message_code(
            StatusCode::FORBIDDEN,
            "You may not open this page",
            "access_denied",
        ),
        Decision::SecondFactorRequired { .. } => answers::message_code(
            StatusCode::FORBIDDEN,
            "This page needs a sign-in with a second factor",
            "second_factor_required",
        ),
    }
}

// ---- the browser session ----------------------------------------------------------

/// The CSRF token of a form about `subject` (a flow id, or a session's hash).
fn csrf_token(state: &AppState, purpose: &str, subject: &[u8]) -> String {
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(&state.csrf_key) else {
        return String::new();
    };
    mac.update(purpose.as_bytes());
    mac.update(&[0]);
    mac.update(subject);
    hex::encode(mac.finalize().into_bytes())
}

fn csrf_ok(state: &AppState, purpose: &str, subject: &[u8], presented: Option<&String>) -> bool {
    let Some(presented) = presented else {
        return false;
    };
    let Ok(bytes) = hex::decode(presented) else {
        return false;
    };
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(&state.csrf_key) else {
        return false;
    };
    mac.update(purpose.as_bytes());
    mac.update(&[0]);
    mac.update(subject);
    mac.verify_slice(&bytes).is_ok()
}

/// `Set-Cookie` for the session (`None`: remove it).
fn set_cookie(state: &AppState, value: Option<&str>) -> Option<HeaderValue> {
    let mut cookie = match value {
        Some(v) => format!("{COOKIE}={v}; Max-Age={COOKIE_MAX_AGE_SECS}"),
        None => format!("{COOKIE}=; Max-Age=0"),
    };
    cookie.push_str("; Path=/; HttpOnly; SameSite=Lax");
    if state.cookie_secure {
        cookie.push_str("; Secure");
    }
    if let Some(domain) = &state.config.cookie_domain {
        cookie.push_str("; Domain=");
        cookie.push_str(domain);
    }
    HeaderValue::from_str(&cookie).ok()
}

/// Whether `host` is `domain` or below it.
fn within(host: &str, domain: &str) -> bool {
    host == domain
        || host
            .strip_suffix(domain)
            .is_some_and(|rest| rest.ends_with('.'))
}

/// The return address, checked: `Ok(None)` when none was given.
fn return_target(
    state: &AppState,
    headers: &HeaderMap,
    rd: Option<&String>,
) -> Result<Option<url::Url>, ()> {
    let Some(rd) = rd.filter(|rd| !rd.is_empty()) else {
        return Ok(None);
    };
    if rd.len() > MAX_URL_LEN || rd.contains('\\') || rd.chars().any(char::is_control) {
        return Err(());
    }
    let page_host = header_text(headers, "host").map(bare_host);
    let url = if rd.starts_with('/') && !rd.starts_with("//") {
        let base = match (&state.config.public_url, &page_host) {
            (Some(public), _) => public.clone(),
            (None, Some(host)) => format!("https://{host}"),
            (None, None) => return Err(()),
        };
        url::Url::parse(&base)
            .and_then(|b| b.join(rd))
            .map_err(|_| ())?
    } else {
        url::Url::parse(rd).map_err(|_| ())?
    };
    if !matches!(url.scheme(), "http" | "https")
        || !url.username().is_empty()
        || url.password().is_some()
    {
        return Err(());
    }
    let host = bare_host(url.host_str().ok_or(())?);
    let public_host = state
        .config
        .public_url
        .as_deref()
        .and_then(|u| url::Url::parse(u).ok())
        .and_then(|u| u.host_str().map(bare_host));
    let mut domains = state
        .config
        .cookie_domain
        .iter()
        .chain(&state.config.return_domains)
        .cloned()
        .chain(public_host)
        .chain(page_host);
    if domains.any(|d| within(&host, &d)) {
        Ok(Some(url))
    } else {
        Err(())
    }
}

fn bad_return() -> Response {
    message(
        StatusCode::BAD_REQUEST,
        "Cannot sign in",
        "The address to return to after signing in is not one of this site's.",
        None,
    )
}

/// `/auth/signin?rd=…` for starting again.
fn signin_again(rd: Option<&url::Url>, provider: Option<&str>) -> String {
    let mut query = url::form_urlencoded::Serializer::new(String::new());
    if let Some(rd) = rd {
        query.append_pair("rd", rd.as_str());
    }
    if let Some(provider) = provider {
        query.append_pair("provider", provider);
    }
    format!("/auth/signin?{}", query.finish())
}

/// The CSP `form-action` source that lets the final redirect go to `rd`.
fn rd_source(rd: Option<&url::Url>) -> Option<String> {
    rd.map(|u| u.origin().ascii_serialization())
}

fn signin_failure(failure: &Failure, rd: Option<&url::Url>) -> Response {
    let again = Some(signin_again(rd, None));
    match failure {
        Failure::Unavailable => message(
            StatusCode::SERVICE_UNAVAILABLE,
            "Try again shortly",
            "The sign-in service is not reachable right now.",
            again,
        ),
        Failure::Api {
            code: ErrorCode::TooManyAttempts,
            ..
        } => message(
            StatusCode::TOO_MANY_REQUESTS,
            "Too many attempts",
            abort_text("too_many_attempts"),
            again,
        ),
        Failure::Api { code, message: m } => {
            tracing::error!(%code, message = m, "latchd refused a sign-in page request");
            message(
                StatusCode::INTERNAL_SERVER_ERROR,
                "Something went wrong",
                "The sign-in could not go on.",
                again,
            )
        }
        Failure::Broken => message(
            StatusCode::INTERNAL_SERVER_ERROR,
            "Something went wrong",
            "The sign-in could not go on.",
            again,
        ),
    }
}

/// The redirect URI latch-http's own sign-ins name (never visited: the code is
/// exchanged here).
fn own_redirect_uri(client_id: &str) -> String {
    format!("{client_id}signin")
}

/// `GET /auth/signin`: starts a sign-in and shows its first step.
pub(crate) async fn signin_page(
    State(state): State<AppState>,
    Extension(client): Extension<ClientAddr>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Response {
    let params = query_params(query.as_deref());
    let Ok(rd) = return_target(&state, &headers, params.get("rd")) else {
        return bad_return();
    };
    let providers = match state
        .daemon
        .call(state.daemon.client().http_providers(Some(client.ip)))
        .await
    {
        Ok(p) => p,
        Err(e) => return signin_failure(&e, rd.as_ref()),
    };
    if !providers.onboarded {
        return message(
            StatusCode::BAD_REQUEST,
            "Not set up yet",
            "latch has no owner yet: run `latch onboard` first.",
            None,
        );
    }
    let list = provider_list(&providers);
    let wanted = params.get("provider");
    let chosen = match wanted {
        Some(key) => list.iter().find(|(h, _)| provider_key(h) == *key),
        None => list.first(),
    };
    let Some((handler, _)) = chosen else {
        return message(
            StatusCode::BAD_REQUEST,
            "Cannot sign in",
            "No way of signing in is available from your network.",
            None,
        );
    };
    let Some((reservation, evicted)) = state.flows.reserve_evicting(client.ip) else {
        return message(
            StatusCode::TOO_MANY_REQUESTS,
            "Too many sign-ins",
            "Too many sign-ins are starting from your address. Try again in a moment.",
            Some(signin_again(rd.as_ref(), None)),
        );
    };
    if let Some(old) = evicted {
        let _ = state
            .daemon
            .call(state.daemon.client().login_abort(&old))
            .await;
    }
    let client_id = state.verify.client_id().to_owned();
    let started = state
        .daemon
        .call(state.daemon.client().http_login_start(CodeFlowStart {
            handler: handler.clone(),
            redirect_uri: own_redirect_uri(&client_id),
            client_id,
            ip_address: Some(client.ip),
            code_challenge: None,
        }))
        .await;
    let flow = match started {
        Ok(flow) => flow,
        Err(e) => return signin_failure(&e, rd.as_ref()),
    };
    let flow = match state.settle(flow, Some(reservation)).await {
        Ok(flow) => flow,
        Err(e) => return signin_failure(&e, rd.as_ref()),
    };
    let others: Vec<(String, String)> = list
        .iter()
        .filter(|(h, _)| *h != flow.handler)
        .map(|(h, name)| {
            (
                name.clone(),
                signin_again(rd.as_ref(), Some(&provider_key(h))),
            )
        })
        .collect();
    signin_step(&state, &client, &headers, &flow, rd.as_ref(), &others, None).await
}

/// `POST /auth/signin`: answers the step the page showed.
pub(crate) async fn signin_submit(
    State(state): State<AppState>,
    Extension(client): Extension<ClientAddr>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let mut params = HashMap::new();
    let mut input = Vec::new();
    for (k, v) in url::form_urlencoded::parse(&body) {
        if let Some(field) = k.strip_prefix(FIELD_PREFIX) {
            input.push((field.to_owned(), Sensitive::new(v.into_owned())));
        } else {
            params.insert(k.into_owned(), v.into_owned());
        }
    }
    let Ok(rd) = return_target(&state, &headers, params.get("rd")) else {
        return bad_return();
    };
    let flow_id = params.get("flow_id").cloned().unwrap_or_default();
    if flow_id.is_empty()
        || flow_id.len() > 64
        || !csrf_ok(&state, "signin", flow_id.as_bytes(), params.get("csrf"))
    {
        return message(
            StatusCode::BAD_REQUEST,
            "Cannot sign in",
            "The form is incomplete or out of date.",
            Some(signin_again(rd.as_ref(), None)),
        );
    }
    let username = input
        .iter()
        .find(|(k, _)| k == "username")
        .map(|(_, v)| v.expose().to_owned());
    let flow = match state.continue_flow(&flow_id, input, client.ip).await {
        Ok(flow) => flow,
        Err(StepFailure::Gone) => {
            return message(
                StatusCode::NOT_FOUND,
                "Sign-in expired",
                "This sign-in has ended or expired.",
                Some(signin_again(rd.as_ref(), None)),
            );
        }
        Err(StepFailure::Failed(e)) => return signin_failure(&e, rd.as_ref()),
    };
    let flow = match state.settle(flow, None).await {
        Ok(flow) => flow,
        Err(e) => return signin_failure(&e, rd.as_ref()),
    };
    signin_step(
        &state,
        &client,
        &headers,
        &flow,
        rd.as_ref(),
        &[],
        username.as_deref(),
    )
    .await
}

/// The page for a settled flow of latch-http's own sign-in.
async fn signin_step(
    state: &AppState,
    client: &ClientAddr,
    headers: &HeaderMap,
    flow: &HttpFlow,
    rd: Option<&url::Url>,
    others: &[(String, String)],
    username: Option<&str>,
) -> Response {
    let again = || Some(signin_again(rd, None));
    match &flow.step {
        HttpFlowStep::Form(form) => {
            let (title, intro, submit) = step_text(form);
            let mut carried = vec![(
                "csrf".to_owned(),
                csrf_token(state, "signin", flow.flow_id.as_bytes()),
            )];
            if let Some(rd) = rd {
                carried.push(("rd".to_owned(), rd.as_str().to_owned()));
            }
            let page = SignInPage {
                title,
                intro,
                client_name: rd
                    .and_then(url::Url::host_str)
                    .unwrap_or_default()
                    .to_owned(),
                error: form.error("base").map(error_text),
                action: "/auth/signin",
                flow_id: flow.flow_id.clone(),
                carried,
                fields: form
                    .fields
                    .iter()
                    .map(|f| field_view(&f.name, &f.kind, username))
                    .collect(),
                submit,
                others: if form.step_id == "init" {
                    others.to_vec()
                } else {
                    Vec::new()
                },
            };
            html(StatusCode::OK, &page, rd_source(rd))
        }
        HttpFlowStep::Code(code) => signed_in(state, client, headers, code.expose(), rd).await,
        HttpFlowStep::Abort { reason } => {
            message(StatusCode::OK, "Not signed in", abort_text(reason), again())
        }
        HttpFlowStep::Refused(FlowRefusal::LoginBlocked(reason)) => message(
            StatusCode::FORBIDDEN,
            "Not signed in",
            match reason.as_str() {
                "User is not active" => "This account is deactivated.",
                "User cannot authenticate remotely" => {
                    "This account may only sign in from the local network."
                }
                _ => "This account may not sign in from here.",
            },
            None,
        ),
        HttpFlowStep::Refused(FlowRefusal::InvalidRedirectUri) => {
            tracing::error!("latchd refused latch-http's own sign-in redirect");
            answers::internal()
        }
        HttpFlowStep::Rejected(InputRejection::Malformed) => message(
            StatusCode::BAD_REQUEST,
            "Not signed in",
            "The form was not filled in as expected.",
            again(),
        ),
        HttpFlowStep::Rejected(InputRejection::IpChanged) => message(
            StatusCode::BAD_REQUEST,
            "Not signed in",
            "Your network address changed during the sign-in.",
            again(),
        ),
        HttpFlowStep::Rejected(InputRejection::Busy | InputRejection::WrongStep) => message(
            StatusCode::CONFLICT,
            "Please wait",
            "This sign-in is already being processed.",
            None,
        ),
        HttpFlowStep::CheckRedirect { .. } => answers::internal(),
    }
}

/// The flow issued a code: exchange it for the session, set the cookie, go back.
async fn signed_in(
    state: &AppState,
    client: &ClientAddr,
    headers: &HeaderMap,
    code: &str,
    rd: Option<&url::Url>,
) -> Response {
    let outcome = state
        .daemon
        .call(state.daemon.client().exchange_code(
            state.verify.client_id(),
            code,
            None,
            Some(client.ip),
        ))
        .await;
    let tokens = match outcome {
        Ok(GrantOutcome::Issued(tokens)) => tokens,
        Ok(GrantOutcome::Refused(refusal)) => {
            tracing::warn!(?refusal, "latchd refused latch-http's own code");
            return message(
                StatusCode::FORBIDDEN,
                "Not signed in",
                "The sign-in could not be completed.",
                Some(signin_again(rd, None)),
            );
        }
        Ok(GrantOutcome::Refreshed(_)) => return answers::internal(),
        Err(e) => return signin_failure(&e, rd),
    };
    // A sign-in replaces the session the browser had.
    if let Some(old) = session_cookie(headers) {
        state.verify.forget(&old);
        let _ = state.daemon.call(state.daemon.client().revoke(&old)).await;
    }
    let mut response = match rd {
        Some(rd) => {
            let mut response = StatusCode::SEE_OTHER.into_response();
            match HeaderValue::from_str(rd.as_str()) {
                Ok(location) => {
                    response.headers_mut().insert(header::LOCATION, location);
                }
                Err(_) => return answers::internal(),
            }
            crate::routes::authorize::with_page_headers(response, rd_source(Some(rd)))
        }
        None => message(
            StatusCode::OK,
            "Signed in",
            "You are signed in. You can close this page or open the site you wanted.",
            None,
        ),
    };
    if let Some(cookie) = set_cookie(state, Some(tokens.refresh_token.expose())) {
        response.headers_mut().append(header::SET_COOKIE, cookie);
    }
    response
}

#[derive(Template)]
#[template(path = "signout.html")]
struct SignOutPage<'a> {
    name: &'a str,
    csrf: String,
}

/// `GET /auth/signout`: a page with the sign-out button.
pub(crate) async fn signout_page(
    State(state): State<AppState>,
    Extension(client): Extension<ClientAddr>,
    headers: HeaderMap,
) -> Response {
    let Some(session) = session_cookie(&headers) else {
        return message(StatusCode::OK, "Signed out", "You are not signed in.", None);
    };
    let identity = state
        .verify
        .identify(&state.daemon, Kind::Session, &session, client.ip)
        .await;
    let name = match &identity {
        Ok(identity) => identity.name.clone(),
        Err(Refused::Invalid) => {
            let mut response =
                message(StatusCode::OK, "Signed out", "You are not signed in.", None);
            if let Some(cookie) = set_cookie(&state, None) {
                response.headers_mut().append(header::SET_COOKIE, cookie);
            }
            return response;
        }
        Err(Refused::Failed(e)) => return signin_failure(e, None),
    };
    let page = SignOutPage {
        name: &name,
        csrf: csrf_token(&state, "signout", &crate::verify::key_of(&session)),
    };
    html(StatusCode::OK, &page, None)
}

/// `POST /auth/signout`: revokes the session and removes the cookie.
pub(crate) async fn signout(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let params: HashMap<String, String> = url::form_urlencoded::parse(&body).into_owned().collect();
    let Some(session) = session_cookie(&headers) else {
        return message(StatusCode::OK, "Signed out", "You are not signed in.", None);
    };
    if !csrf_ok(
        &state,
        "signout",
        &crate::verify::key_of(&session),
        params.get("csrf"),
    ) {
        return message(
            StatusCode::BAD_REQUEST,
            "Not signed out",
            "The form is out of date. Open the sign-out page again.",
            Some("/auth/signout".to_owned()),
        );
    }
    state.verify.forget(&session);
    if let Err(e) = state
        .daemon
        .call(state.daemon.client().revoke(&session))
        .await
    {
        return signin_failure(&e, None);
    }
    let mut response = html(
        StatusCode::OK,
        &MessagePage {
            title: "Signed out",
            text: "You are signed out.",
            again: None,
        },
        None,
    );
    if let Some(cookie) = set_cookie(&state, None) {
        response.headers_mut().append(header::SET_COOKIE, cookie);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (k, v) in pairs {
            map.append(*k, HeaderValue::from_str(v).unwrap());
        }
        map
    }

    #[test]
    fn the_original_request_comes_from_either_header_style() {
        let nginx = original(&headers(&[(
            "x-original-url",
            "https://App.Home.Example:8443/admin/x?y=1",
        )]))
        .unwrap();
        assert_eq!(nginx.host, "app.home.example");
        assert_eq!(nginx.url.path(), "/admin/x");
        assert_eq!(nginx.origin(), "https://app.home.example:8443");
        let traefik = original(&headers(&[
            ("x-forwarded-proto", "http"),
            ("x-forwarded-host", "grafana.home.example"),
            ("x-forwarded-uri", "/d/abc"),
        ]))
        .unwrap();
        assert_eq!(traefik.url.as_str(), "http://grafana.home.example/d/abc");
        assert!(original(&headers(&[])).is_err());
        assert!(original(&headers(&[("x-original-url", "ftp://x/")])).is_err());
        assert!(
            original(&headers(&[
                ("x-forwarded-host", "a"),
                ("x-forwarded-uri", "nope")
            ]))
            .is_err()
        );
        let long = format!("https://a/{}", "x".repeat(3000));
        assert!(original(&headers(&[("x-original-url", &long)])).is_err());
    }

    #[test]
    fn the_credential_is_a_bearer_token_or_the_session_cookie() {
        assert_eq!(
            credential(&headers(&[("authorization", "Bearer abc.def")])),
            Some((Kind::Bearer, "abc.def".into()))
        );
        assert_eq!(
            credential(&headers(&[("cookie", "a=b; latch_session=0123abcd; c=d")])),
            Some((Kind::Session, "0123abcd".into()))
        );
        assert_eq!(
            credential(&headers(&[("authorization", "Basic eA==")])),
            None
        );
        assert_eq!(credential(&headers(&[("cookie", "latch_session=")])), None);
        let huge = format!("latch_session={}", "a".repeat(MAX_CREDENTIAL + 1));
        assert_eq!(credential(&headers(&[("cookie", &huge)])), None);
    }

    proptest::proptest! {
        /// Whatever a client or a proxy puts in the headers is answered, never a panic.
        #[test]
        fn any_header_text_is_read_without_panic(
            url in "\\PC{0,300}",
            host in "\\PC{0,40}",
            uri in "\\PC{0,60}",
            cookie in "\\PC{0,120}",
            auth in "\\PC{0,120}",
        ) {
            let mut map = HeaderMap::new();
            for (name, value) in [
                ("x-original-url", &url),
                ("x-forwarded-host", &host),
                ("x-forwarded-uri", &uri),
                ("cookie", &cookie),
                ("authorization", &auth),
            ] {
                if let Ok(v) = HeaderValue::from_str(value) {
                    map.insert(name, v);
                }
            }
            let _ = original(&map);
            map.remove("x-original-url");
            let _ = original(&map);
            let _ = credential(&map);
            let _ = bare_host(&host);
        }
    }

    #[test]
    fn domains_match_themselves_and_their_subdomains_only() {
        assert!(within("home.example", "home.example"));
        assert!(within("app.home.example", "home.example"));
        assert!(!within("evilhome.example", "home.example"));
        assert!(!within("home.example.evil", "home.example"));
    }
}
