//! `/auth/authorize`: latch-http's own sign-in page, the one an app's OAuth
//! authorization request opens (as Home Assistant's frontend serves its own).
//!
//! `GET /auth/authorize?response_type=code&client_id=…&redirect_uri=…&state=…` checks
//! the client id, starts a login flow for it with the first provider that may serve the
//! address (`&provider=TYPE` or `TYPE:ID` picks another), and shows the flow's form.
//! Each `POST` answers one step: the password, then the second factor (a TOTP code or a
//! recovery code, the module chosen first when a user has several), errors shown in
//! place. When latchd issues the code the browser is sent to
//! `redirect_uri?code=…&state=…`; nothing ever redirects to a redirect URI that was not
//! checked (IndieAuth). Pages are server-rendered from compile-time templates, work
//! without JavaScript, label every field, fit a phone's width, and are sent with a
//! content security policy that allows no script and no framing, and with
//! `Cache-Control: no-store`.
//!
//! The page's `POST` carries the flow id (128 random bits, bound by latchd to the
//! address that started the flow) and the authorization request's parameters; form
//! fields travel as `f_<name>`.

use std::collections::HashMap;

use askama::Template;
use axum::Extension;
use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use latch_client::CodeFlowStart;
use latch_protocol::{
    ErrorCode, FieldKind, FlowForm, FlowRefusal, Handler, HttpFlow, HttpFlowStep, InputRejection,
    LoginProviders, Sensitive,
};

use crate::answers;
use crate::daemon::Failure;
use crate::flows::StepFailure;
use crate::forwarded::ClientAddr;
use crate::indieauth::{MAX_URL_LEN, parse_url, verify_client_id};
use crate::state::AppState;

/// The page's stylesheet (the only other thing the page loads).
pub(crate) const STYLESHEET: &str = include_str!("../../assets/latch.css");

/// The longest `state` carried back to the app.
const MAX_STATE_LEN: usize = 2048;

/// Prefix of a flow field's name in the page's form.
pub(crate) const FIELD_PREFIX: &str = "f_";

/// An OAuth authorization request: what the app asked for, carried through the steps.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct AuthRequest {
    client_id: String,
    redirect_uri: String,
    state: Option<String>,
    code_challenge: Option<String>,
    code_challenge_method: Option<String>,
    response_type: Option<String>,
    provider: Option<String>,
}

impl AuthRequest {
    /// From query or form parameters.
    fn from_params(params: &HashMap<String, String>) -> Self {
        let get = |k: &str| params.get(k).cloned();
        Self {
            client_id: get("client_id").unwrap_or_default(),
            redirect_uri: get("redirect_uri").unwrap_or_default(),
            state: get("state"),
            code_challenge: get("code_challenge"),
            code_challenge_method: get("code_challenge_method"),
            response_type: get("response_type"),
            provider: get("provider"),
        }
    }

    /// What is wrong with the request, if anything: shown instead of a form, never
    /// redirected to the app.
    fn problem(&self) -> Option<&'static str> {
        if !verify_client_id(&self.client_id) {
            return Some("The app did not identify itself with a valid client_id.");
        }
        if self.redirect_uri.is_empty() || self.redirect_uri.len() > MAX_URL_LEN {
            return Some("The app did not say where to return (redirect_uri).");
        }
        if self.response_type.as_deref().is_some_and(|t| t != "code") {
            return Some("The app asked for a response type other than code.");
        }
        if self.state.as_ref().is_some_and(|s| s.len() > MAX_STATE_LEN) {
            return Some("The app's state parameter is too long.");
        }
        match (&self.code_challenge, self.code_challenge_method.as_deref()) {
            (None, Some(_)) => {
                Some("The app gave a code_challenge_method without a code_challenge.")
            }
            (Some(c), Some("S256"))
                if c.len() == 43
                    && c.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') =>
            {
                None
            }
            (Some(_), _) => Some("The app's PKCE code challenge is not S256 or not well formed."),
            (None, None) => None,
        }
    }

    /// The parameters to carry in the page's form (and in "start again" links).
    fn carried(&self) -> Vec<(String, String)> {
        let mut out = vec![
            ("client_id".to_owned(), self.client_id.clone()),
            ("redirect_uri".to_owned(), self.redirect_uri.clone()),
        ];
        for (k, v) in [
            ("response_type", &self.response_type),
            ("state", &self.state),
            ("code_challenge", &self.code_challenge),
            ("code_challenge_method", &self.code_challenge_method),
            ("provider", &self.provider),
        ] {
            if let Some(v) = v {
                out.push((k.to_owned(), v.clone()));
            }
        }
        out
    }

    /// `/auth/authorize?…` for this request, with another provider if given.
    fn url(&self, provider: Option<&str>) -> String {
        let mut query = url::form_urlencoded::Serializer::new(String::new());
        for (k, v) in self.carried() {
            if k != "provider" {
                query.append_pair(&k, &v);
            }
        }
        if let Some(p) = provider.or(self.provider.as_deref()) {
            query.append_pair("provider", p);
        }
        format!("/auth/authorize?{}", query.finish())
    }

    /// The host the app is on, to name it on the page.
    fn client_name(&self) -> String {
        parse_url(&self.client_id)
            .map(|p| p.netloc)
            .unwrap_or_else(|_| self.client_id.clone())
    }

    /// Where the browser goes with the code: `redirect_uri?code=…&state=…`.
    fn return_url(&self, code: &str) -> Option<String> {
        let mut url = url::Url::parse(&self.redirect_uri).ok()?;
        {
            let mut pairs = url.query_pairs_mut();
            pairs.append_pair("code", code);
            if let Some(state) = &self.state {
                pairs.append_pair("state", state);
            }
        }
        Some(url.into())
    }

    /// The CSP `form-action` source of the redirect URI, so the final redirect of the
    /// form's answer is allowed.
    fn redirect_source(&self) -> Option<String> {
        let url = url::Url::parse(&self.redirect_uri).ok()?;
        match url.scheme() {
            "http" | "https" => Some(url.origin().ascii_serialization()),
            scheme => Some(format!("{scheme}:")),
        }
    }
}

/// `provider` as `TYPE` or `TYPE:ID`.
pub(crate) fn provider_key(h: &Handler) -> String {
    match &h.provider_id {
        Some(id) => format!("{}:{id}", h.provider_type),
        None => h.provider_type.clone(),
    }
}

/// How a field is shown.
#[derive(Debug)]
pub(crate) enum Widget {
    /// A text input.
    Input {
        kind: &'static str,
        autocomplete: &'static str,
        inputmode: Option<&'static str>,
    },
    /// One of several options, as radio buttons.
    Choice(Vec<(String, String)>),
}

#[derive(Debug)]
pub(crate) struct FieldView {
    input_name: String,
    label: String,
    hint: Option<&'static str>,
    value: String,
    widget: Widget,
}

#[derive(Template)]
#[template(path = "signin.html")]
pub(crate) struct SignInPage {
    pub(crate) title: String,
    pub(crate) intro: Option<String>,
    pub(crate) client_name: String,
    pub(crate) error: Option<&'static str>,
    pub(crate) action: &'static str,
    pub(crate) flow_id: String,
    pub(crate) carried: Vec<(String, String)>,
    pub(crate) fields: Vec<FieldView>,
    pub(crate) submit: &'static str,
    pub(crate) others: Vec<(String, String)>,
}

#[derive(Template)]
#[template(path = "message.html")]
pub(crate) struct MessagePage<'a> {
    pub(crate) title: &'a str,
    pub(crate) text: &'a str,
    pub(crate) again: Option<String>,
}

pub(crate) fn field_view(name: &str, kind: &FieldKind, value: Option<&str>) -> FieldView {
    let (label, hint, widget) = match (name, kind) {
        (_, FieldKind::Select(options)) => (
            match name {
                "user" => "Who are you?",
                "multi_factor_auth_module" => "Second factor",
                other => other,
            }
            .to_owned(),
            None,
            Widget::Choice(options.clone()),
        ),
        ("username", _) => (
            "Username".to_owned(),
            None,
            Widget::Input {
                kind: "text",
                autocomplete: "username",
                inputmode: None,
            },
        ),
        ("code", _) => (
            "Code".to_owned(),
            Some("The 6 digits your authenticator app shows, or one of your recovery codes."),
            Widget::Input {
                kind: "text",
                autocomplete: "one-time-code",
                inputmode: None,
            },
        ),
        (other, FieldKind::Secret) | (other @ "password", _) => (
            if other == "password" {
                "Password".to_owned()
            } else {
                other.to_owned()
            },
            None,
            Widget::Input {
                kind: "password",
                autocomplete: "current-password",
                inputmode: None,
            },
        ),
        (other, FieldKind::Text) => (
            other.to_owned(),
            None,
            Widget::Input {
                kind: "text",
                autocomplete: "off",
                inputmode: None,
            },
        ),
    };
    FieldView {
        input_name: format!("{FIELD_PREFIX}{name}"),
        label,
        hint,
        // Only a username is shown again after an error; never a secret.
        value: if name == "username" {
            value.unwrap_or_default().to_owned()
        } else {
            String::new()
        },
        widget,
    }
}

/// The sentence for a form's error key.
pub(crate) fn error_text(key: &str) -> &'static str {
    match key {
        "invalid_auth" => "Wrong username or password.",
        "invalid_code" => "That code is not valid. Try the current one, or a recovery code.",
        "invalid_auth_module" => "Choose one of the offered methods.",
        _ => "That did not work. Try again.",
    }
}

/// The sentence for an abort reason.
pub(crate) fn abort_text(reason: &str) -> &'static str {
    match reason {
        "not_allowed" => "Signing in this way is not allowed from your network.",
        "login_expired" => "The sign-in took too long.",
        "too_many_retry" => "Too many wrong codes.",
        "too_many_attempts" => "Too many failed attempts. Wait a while before you try again.",
        _ => "Something went wrong with the sign-in.",
    }
}

/// Security headers of every page.
pub(crate) fn with_page_headers(mut response: Response, form_target: Option<String>) -> Response {
    let form_action = form_target.map_or_else(|| "'self'".to_owned(), |s| format!("'self' {s}"));
    let csp = format!(
        "default-src 'none'; style-src 'self'; img-src 'self'; form-action {form_action}; \
         frame-ancestors 'none'; base-uri 'none'"
    );
    let headers = response.headers_mut();
    if let Ok(value) = HeaderValue::from_str(&csp) {
        headers.insert(header::CONTENT_SECURITY_POLICY, value);
    }
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    response
}

pub(crate) fn html(
    status: StatusCode,
    template: &impl Template,
    form_target: Option<String>,
) -> Response {
    match template.render() {
        Ok(body) => {
            let mut response = (status, body).into_response();
            response.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/html; charset=utf-8"),
            );
            with_page_headers(response, form_target)
        }
        Err(e) => {
            tracing::error!(error = %e, "cannot render the sign-in page");
            answers::internal()
        }
    }
}

pub(crate) fn message(
    status: StatusCode,
    title: &str,
    text: &str,
    again: Option<String>,
) -> Response {
    html(status, &MessagePage { title, text, again }, None)
}

fn failure_page(failure: &Failure, request: &AuthRequest) -> Response {
    match failure {
        Failure::Unavailable => message(
            StatusCode::SERVICE_UNAVAILABLE,
            "Try again shortly",
            "The sign-in service is not reachable right now.",
            Some(request.url(None)),
        ),
        Failure::Api {
            code: ErrorCode::TooManyAttempts,
            ..
        } => message(
            StatusCode::TOO_MANY_REQUESTS,
            "Too many attempts",
            abort_text("too_many_attempts"),
            Some(request.url(None)),
        ),
        Failure::Api { code, message: m } => {
            tracing::error!(%code, message = m, "latchd refused a sign-in page request");
            message(
                StatusCode::INTERNAL_SERVER_ERROR,
                "Something went wrong",
                "The sign-in could not go on.",
                Some(request.url(None)),
            )
        }
        Failure::Broken => message(
            StatusCode::INTERNAL_SERVER_ERROR,
            "Something went wrong",
            "The sign-in could not go on.",
            Some(request.url(None)),
        ),
    }
}

/// The page for a settled flow.
fn flow_page(
    flow: &HttpFlow,
    request: &AuthRequest,
    providers: &[(Handler, String)],
    username: Option<&str>,
) -> Response {
    match &flow.step {
        HttpFlowStep::Form(form) => form_page(flow, form, request, providers, username),
        HttpFlowStep::Code(code) => match request.return_url(code.expose()) {
            Some(url) => {
                let mut response = StatusCode::SEE_OTHER.into_response();
                if let Ok(location) = HeaderValue::from_str(&url) {
                    response.headers_mut().insert(header::LOCATION, location);
                    with_page_headers(response, request.redirect_source())
                } else {
                    answers::internal()
                }
            }
            None => message(
                StatusCode::BAD_REQUEST,
                "Cannot return to the app",
                "The app's redirect_uri is not a URL the browser can go to.",
                None,
            ),
        },
        HttpFlowStep::Abort { reason } => message(
            StatusCode::OK,
            "Not signed in",
            abort_text(reason),
            Some(request.url(None)),
        ),
        HttpFlowStep::Refused(FlowRefusal::InvalidRedirectUri) => message(
            StatusCode::FORBIDDEN,
            "Not signed in",
            "This app may not receive a sign-in at the address it gave (redirect_uri).",
            None,
        ),
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
        HttpFlowStep::Rejected(InputRejection::Malformed) => message(
            StatusCode::BAD_REQUEST,
            "Not signed in",
            "The form was not filled in as expected.",
            Some(request.url(None)),
        ),
        HttpFlowStep::Rejected(InputRejection::IpChanged) => message(
            StatusCode::BAD_REQUEST,
            "Not signed in",
            "Your network address changed during the sign-in.",
            Some(request.url(None)),
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

/// A step's title, introduction and button.
pub(crate) fn step_text(form: &FlowForm) -> (String, Option<String>, &'static str) {
    let placeholder = |name: &str| form.placeholder(name).map(|v| v.expose().to_owned());
    match form.step_id.as_str() {
        "mfa" => (
            "Two-step verification".to_owned(),
            Some(format!(
                "Enter the code from {}.",
                placeholder("mfa_module_name").unwrap_or_else(|| "your authenticator".into())
            )),
            "Verify",
        ),
        "select_mfa_module" => (
            "Two-step verification".to_owned(),
            Some("Choose how to confirm it is you.".to_owned()),
            "Continue",
        ),
        _ => ("Sign in".to_owned(), None, "Sign in"),
    }
}

fn form_page(
    flow: &HttpFlow,
    form: &FlowForm,
    request: &AuthRequest,
    providers: &[(Handler, String)],
    username: Option<&str>,
) -> Response {
    let (title, intro, submit) = step_text(form);
    let others = if form.step_id == "init" {
        providers
            .iter()
            .filter(|(h, _)| *h != flow.handler)
            .map(|(h, name)| (name.clone(), request.url(Some(&provider_key(h)))))
            .collect()
    } else {
        Vec::new()
    };
    let page = SignInPage {
        title,
        intro,
        client_name: request.client_name(),
        error: form.error("base").map(error_text),
        action: "/auth/authorize",
        flow_id: flow.flow_id.clone(),
        carried: request.carried(),
        fields: form
            .fields
            .iter()
            .map(|f| field_view(&f.name, &f.kind, username))
            .collect(),
        submit,
        others,
    };
    html(StatusCode::OK, &page, request.redirect_source())
}

pub(crate) fn query_params(query: Option<&str>) -> HashMap<String, String> {
    url::form_urlencoded::parse(query.unwrap_or_default().as_bytes())
        .into_owned()
        .collect()
}

/// The providers for the address, as `(handler, name)`.
pub(crate) fn provider_list(providers: &LoginProviders) -> Vec<(Handler, String)> {
    providers
        .providers
        .iter()
        .map(|p| (p.handler.clone(), p.name.clone()))
        .collect()
}

/// `GET /auth/authorize`: starts a sign-in and shows its first step.
pub(crate) async fn page(
    State(state): State<AppState>,
    Extension(client): Extension<ClientAddr>,
    RawQuery(query): RawQuery,
) -> Response {
    let request = AuthRequest::from_params(&query_params(query.as_deref()));
    if let Some(problem) = request.problem() {
        return message(StatusCode::BAD_REQUEST, "Cannot sign in", problem, None);
    }
    let providers = match state
        .daemon
        .call(state.daemon.client().http_providers(Some(client.ip)))
        .await
    {
        Ok(p) => p,
        Err(e) => return failure_page(&e, &request),
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
    let chosen = match &request.provider {
        Some(key) => list.iter().find(|(h, _)| provider_key(h) == *key),
        None => list.first(),
    };
    let Some((handler, _)) = chosen else {
        let text = if request.provider.is_some() {
            "That way of signing in is not available from your network."
        } else {
            "No way of signing in is available from your network."
        };
        return message(StatusCode::BAD_REQUEST, "Cannot sign in", text, None);
    };
    let Some((reservation, evicted)) = state.flows.reserve_evicting(client.ip) else {
        return message(
            StatusCode::TOO_MANY_REQUESTS,
            "Too many sign-ins",
            "Too many sign-ins are starting from your address. Try again in a moment.",
            Some(request.url(None)),
        );
    };
    if let Some(old) = evicted {
        // Its place goes to this sign-in; latchd drops the old flow too.
        let _ = state
            .daemon
            .call(state.daemon.client().login_abort(&old))
            .await;
    }
    let started = state
        .daemon
        .call(state.daemon.client().http_login_start(CodeFlowStart {
            handler: handler.clone(),
            client_id: request.client_id.clone(),
            redirect_uri: request.redirect_uri.clone(),
            ip_address: Some(client.ip),
            code_challenge: request.code_challenge.clone(),
        }))
        .await;
    let flow = match started {
        Ok(flow) => flow,
        Err(e) => return failure_page(&e, &request),
    };
    match state.settle(flow, Some(reservation)).await {
        Ok(flow) => flow_page(&flow, &request, &list, None),
        Err(e) => failure_page(&e, &request),
    }
}

/// `POST /auth/authorize`: answers the step the page showed.
pub(crate) async fn submit(
    State(state): State<AppState>,
    Extension(client): Extension<ClientAddr>,
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
    let request = AuthRequest::from_params(&params);
    if let Some(problem) = request.problem() {
        return message(StatusCode::BAD_REQUEST, "Cannot sign in", problem, None);
    }
    let flow_id = params.get("flow_id").cloned().unwrap_or_default();
    if flow_id.is_empty() || flow_id.len() > 64 {
        return message(
            StatusCode::BAD_REQUEST,
            "Cannot sign in",
            "The form is incomplete.",
            Some(request.url(None)),
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
                Some(request.url(None)),
            );
        }
        Err(StepFailure::Failed(e)) => return failure_page(&e, &request),
    };
    match state.settle(flow, None).await {
        Ok(flow) => flow_page(&flow, &request, &[], username.as_deref()),
        Err(e) => failure_page(&e, &request),
    }
}

/// The page's stylesheet.
pub(crate) async fn stylesheet() -> Response {
    let mut response = STYLESHEET.into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/css; charset=utf-8"),
    );
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=3600"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request() -> AuthRequest {
        AuthRequest {
            client_id: "https://app.example/".into(),
            redirect_uri: "https://app.example/cb?x=1".into(),
            state: Some("s t&=".into()),
            ..AuthRequest::default()
        }
    }

    #[test]
    fn the_return_url_keeps_the_redirect_query_and_adds_code_and_state() {
        assert_eq!(
            request().return_url("abc").as_deref(),
            Some("https://app.example/cb?x=1&code=abc&state=s+t%26%3D")
        );
        let app = AuthRequest {
            redirect_uri: "homeassistant://auth-callback".into(),
            state: None,
            ..request()
        };
        assert_eq!(
            app.return_url("abc").as_deref(),
            Some("homeassistant://auth-callback?code=abc")
        );
        assert_eq!(app.redirect_source().as_deref(), Some("homeassistant:"));
        assert_eq!(
            request().redirect_source().as_deref(),
            Some("https://app.example")
        );
    }

    #[test]
    fn bad_requests_are_named_and_never_redirected() {
        assert_eq!(request().problem(), None);
        let bad = AuthRequest {
            client_id: "ftp://x".into(),
            ..request()
        };
        assert!(bad.problem().is_some());
        let no_redirect = AuthRequest {
            redirect_uri: String::new(),
            ..request()
        };
        assert!(no_redirect.problem().is_some());
        let plain = AuthRequest {
            code_challenge: Some("x".repeat(43)),
            code_challenge_method: Some("plain".into()),
            ..request()
        };
        assert!(plain.problem().is_some());
    }

    #[test]
    fn the_page_escapes_what_the_app_sent() {
        let page = SignInPage {
            title: "Sign in".into(),
            intro: None,
            client_name: "<script>".into(),
            error: None,
            action: "/auth/authorize",
            flow_id: "f\"><b>".into(),
            carried: vec![("state".into(), "\"><script>alert(1)</script>".into())],
            fields: vec![field_view("username", &FieldKind::Text, Some("<i>"))],
            submit: "Sign in",
            others: vec![],
        };
        let html = page.render().unwrap();
        assert!(!html.contains("<script>"), "{html}");
        assert!(!html.contains("<b>"), "{html}");
        assert!(!html.contains("<i>"), "{html}");
        assert!(
            html.contains("&#60;script&#62;") || html.contains("&lt;script&gt;"),
            "{html}"
        );
        assert!(
            html.contains(r#"<label for="f_username">Username</label>"#),
            "{html}"
        );
    }

    #[test]
    fn secrets_are_never_written_back_into_the_page() {
        let field = field_view("password", &FieldKind::Secret, Some("hunter2"));
        assert_eq!(field.value, "");
        assert!(matches!(
            field.widget,
            Widget::Input {
                kind: "password",
                ..
            }
        ));
        let code = field_view("code", &FieldKind::Secret, Some("123456"));
        assert_eq!(code.value, "");
    }
}
