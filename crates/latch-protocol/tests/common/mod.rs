//! Sample values of every request, response, event and server frame, shared by the
//! wire tests and the fuzz-style property tests. Every secret in them contains
//! [`SECRET`], so a test can check that `Debug` never shows one.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use latch_protocol::{
    AccessToken, ApiError, CredentialInfo, DaemonStatus, ErrorCode, Event, EventKind, Field,
    FieldKind, FlowForm, FlowRefusal, FlowState, GrantOutcome, GrantRefusal, GroupInfo, Handler,
    HttpFlow, HttpFlowStep, InputRejection, IssuedTokens, LockoutInfo, LockoutKey, LoginProviders,
    LongLivedToken, MfaModuleInfo, Page, PermissionKey, ProviderInfo, Request, Response, Sensitive,
    ServerFrame, SetupFlowState, StoreBackendKind, StoreStatus, Subject, ThrottleState, Timestamp,
    TokenInfo, TokenType, UserInfo, UserSummary, ValidatedToken,
};

/// The marker every sample secret contains.
pub(crate) const SECRET: &str = "s3cr3t";

fn secret(what: &str) -> Sensitive {
    Sensitive::new(format!("{what}-{SECRET}-value"))
}

fn ip4() -> Option<IpAddr> {
    Some(IpAddr::V4(Ipv4Addr::new(192, 168, 1, 20)))
}

fn ip6() -> Option<IpAddr> {
    Some(IpAddr::V6(Ipv6Addr::LOCALHOST))
}

fn s(v: &str) -> String {
    v.to_owned()
}

/// One sample of every `Request` variant (some twice, with other optional values).
pub(crate) fn requests() -> Vec<Request> {
    vec![
        Request::Ping,
        Request::Status,
        Request::ListProviders { ip_address: ip4() },
        Request::ListProviders { ip_address: None },
        Request::LoginStart {
            handler: Handler::new("homeassistant"),
            client_id: s("http://localhost:8123/"),
            redirect_uri: Some(s("http://localhost:8123/?auth_callback=1")),
            ip_address: ip4(),
        },
        Request::LoginStart {
            handler: Handler::with_id("trusted_networks", "lan"),
            client_id: s("https://example.com/"),
            redirect_uri: None,
            ip_address: ip6(),
        },
        Request::LoginContinue {
            flow_id: s("f0f0"),
            input: vec![
                (s("username"), Sensitive::from("paulus")),
                (s("password"), secret("password")),
            ],
            ip_address: ip4(),
        },
        Request::LoginAbort { flow_id: s("f0f0") },
        Request::ValidateToken {
            access_token: secret("jwt"),
            remote_ip: ip4(),
        },
        Request::RefreshToken {
            refresh_token: secret("refresh"),
            client_id: Some(s("http://localhost:8123/")),
            remote_ip: None,
        },
        Request::RevokeToken {
            refresh_token: secret("refresh"),
        },
        Request::RevokeTokenById {
            refresh_token_id: s("rt1"),
        },
        Request::RevokeAllTokens {
            user_id: s("u1"),
            token_type: Some(TokenType::Normal),
        },
        Request::RevokeAllTokens {
            user_id: s("u1"),
            token_type: None,
        },
        Request::ListTokens { user_id: s("u1") },
        Request::CreateLongLivedToken {
            user_id: s("u1"),
            client_name: s("grafana"),
            client_icon: Some(s("mdi:chart")),
            lifespan_days: 3650,
        },
        Request::SetTokenExpiry {
            refresh_token_id: s("rt1"),
            enable: true,
        },
        Request::ListUsers,
        Request::GetUser { user_id: s("u1") },
        Request::CreateUser {
            name: s("Kitchen tablet"),
            group_ids: Some(vec![s("system-users")]),
            local_only: true,
            system_generated: false,
        },
        Request::Onboard {
            name: s("Paulus"),
            username: s("paulus"),
            password: secret("password"),
        },
        Request::UpdateUser {
            user_id: s("u1"),
            name: Some(s("Paulus S")),
            is_active: Some(false),
            group_ids: None,
            local_only: Some(true),
        },
        Request::RemoveUser { user_id: s("u2") },
        Request::ActivateUser { user_id: s("u2") },
        Request::DeactivateUser { user_id: s("u2") },
        Request::SetUserGroups {
            user_id: s("u2"),
            group_ids: vec![s("system-read-only"), s("custom")],
        },
        Request::ListGroups,
        Request::AddPassword {
            user_id: s("u2"),
            username: s("anne"),
            password: secret("password"),
        },
        Request::ChangePassword {
            user_id: s("u2"),
            new_password: secret("new-password"),
        },
        Request::ChangeOwnPassword {
            access_token: secret("jwt"),
            current_password: secret("old-password"),
            new_password: secret("new-password"),
        },
        Request::ChangeUsername {
            user_id: s("u2"),
            username: s("anne.b"),
        },
        Request::RemoveCredential {
            credential_id: s("c1"),
        },
        Request::ListMfaModules { user_id: s("u1") },
        Request::MfaSetupStart {
            user_id: s("u1"),
            module_id: s("totp"),
        },
        Request::MfaSetupContinue {
            flow_id: s("f1"),
            input: vec![(s("code"), secret("totp-code"))],
        },
        Request::MfaSetupAbort { flow_id: s("f1") },
        Request::MfaDisable {
            user_id: s("u1"),
            module_id: s("totp"),
        },
        Request::RegenerateRecoveryCodes {
            user_id: s("u1"),
            module_id: s("totp"),
        },
        Request::CheckPermission {
            subject: Subject::User(s("u1")),
            entity_id: s("light.kitchen"),
            key: PermissionKey::Control,
        },
        Request::CheckPermission {
            subject: Subject::AccessToken(secret("jwt")),
            entity_id: s("lock.front_door"),
            key: PermissionKey::Edit,
        },
        Request::ListLockouts,
        Request::ClearLockout {
            key: LockoutKey::Username(s("paulus")),
        },
        Request::ClearLockout {
            key: LockoutKey::Source(IpAddr::V4(Ipv4Addr::new(203, 0, 113, 9))),
        },
        Request::Subscribe {
            kinds: vec![EventKind::UserAdded, EventKind::LoginFailed],
        },
        Request::subscribe_all(),
        Request::Unsubscribe,
        Request::ChangeOwnPasswordFrom {
            access_token: secret("jwt"),
            current_password: secret("old-password"),
            new_password: secret("new-password"),
            remote_ip: Some(IpAddr::V4(Ipv4Addr::new(192, 168, 1, 20))),
        },
        Request::ListUsersPage {
            after: None,
            limit: 500,
        },
        Request::ListUsersPage {
            after: Some(s("0f3a")),
            limit: 20,
        },
        Request::GetUserByUsername {
            username: s(" Paulus "),
        },
        Request::FindUsersByName {
            name: s("Paulus"),
            limit: 2,
        },
        Request::ListTokensPage {
            user_id: s("u1"),
            after: Some(s("rt1")),
            limit: 100,
        },
        Request::ListLockoutsPage {
            after: None,
            limit: 50,
        },
        Request::LoginThrottle {
            username: Some(s("paulus")),
            ip_address: ip4(),
        },
        Request::HttpProviders { ip_address: ip4() },
        Request::HttpLoginStart {
            handler: Handler::new("homeassistant"),
            client_id: s("https://example.com/app"),
            redirect_uri: s("https://example.com/app/callback"),
            ip_address: ip6(),
            code_challenge: Some(s("E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM")),
        },
        Request::HttpLoginContinue {
            flow_id: s("f0f0"),
            input: vec![(s("code"), secret("totp"))],
            ip_address: None,
        },
        Request::HttpLoginAuthorize {
            flow_id: s("f0f0"),
            redirect_uri_allowed: true,
        },
        Request::ExchangeCode {
            client_id: s("https://example.com/app"),
            code: secret("code"),
            code_verifier: Some(secret("verifier")),
            remote_ip: ip4(),
        },
        Request::RefreshGrant {
            refresh_token: secret("refresh"),
            client_id: None,
            remote_ip: ip6(),
        },
        Request::StoreStatus,
    ]
}

fn form() -> FlowForm {
    FlowForm {
        flow_id: s("f0f0"),
        step_id: s("init"),
        fields: vec![
            Field {
                name: s("username"),
                kind: FieldKind::Text,
                required: true,
            },
            Field {
                name: s("password"),
                kind: FieldKind::Secret,
                required: true,
            },
            Field {
                name: s("user"),
                kind: FieldKind::Select(vec![(s("u1"), s("Paulus")), (s("u2"), s("Anne"))]),
                required: false,
            },
        ],
        errors: vec![(s("base"), s("invalid_auth"))],
        placeholders: vec![
            (s("code"), secret("totp-secret")),
            (s("url"), secret("otpauth-url")),
        ],
    }
}

fn user() -> UserInfo {
    UserInfo {
        id: s("u1"),
        name: Some(s("Paulus")),
        username: Some(s("paulus")),
        is_owner: true,
        is_active: true,
        is_admin: true,
        local_only: false,
        system_generated: false,
        group_ids: vec![s("system-admin")],
        credentials: vec![CredentialInfo {
            id: s("c1"),
            provider_type: s("homeassistant"),
            provider_id: None,
        }],
        mfa_modules: vec![s("totp")],
    }
}

fn summary() -> UserSummary {
    UserSummary {
        id: s("u1"),
        name: Some(s("Paulus")),
        is_owner: true,
        is_admin: true,
        is_active: true,
        local_only: false,
        system_generated: false,
        group_ids: vec![s("system-admin")],
    }
}

/// One sample of every `Response` variant (flow states each once).
pub(crate) fn responses() -> Vec<Response> {
    vec![
        Response::Pong,
        Response::Status(DaemonStatus {
            version: s("0.1.0"),
            protocol_version: 1,
            pid: 4242,
            uptime_secs: 86_400,
            home: s("/home/op/.latch"),
            onboarded: true,
            user_count: 3,
            refresh_token_count: 17,
        }),
        Response::Providers(vec![
            ProviderInfo {
                handler: Handler::new("homeassistant"),
                name: s("Home Assistant Local"),
            },
            ProviderInfo {
                handler: Handler::with_id("trusted_networks", "lan"),
                name: s("Trusted Networks"),
            },
        ]),
        Response::Flow(FlowState::Form(form())),
        Response::Flow(FlowState::Abort {
            flow_id: s("f0f0"),
            reason: s("login_expired"),
        }),
        Response::Flow(FlowState::Done {
            flow_id: s("f0f0"),
            tokens: IssuedTokens {
                user_id: s("u1"),
                refresh_token_id: s("rt1"),
                refresh_token: secret("refresh"),
                access_token: secret("jwt"),
                expires_in: 1800,
                provider_type: s("homeassistant"),
            },
        }),
        Response::Validated(ValidatedToken {
            user: summary(),
            refresh_token_id: s("rt1"),
            token_type: TokenType::Normal,
        }),
        Response::AccessToken(AccessToken {
            access_token: secret("jwt"),
            expires_in: 1800,
        }),
        Response::Tokens(vec![
            TokenInfo {
                id: s("rt1"),
                user_id: s("u1"),
                client_id: Some(s("http://localhost:8123/")),
                client_name: None,
                client_icon: None,
                token_type: TokenType::Normal,
                created_at: Timestamp(1_700_000_000_123_456),
                last_used_at: Some(Timestamp(1_700_000_100_000_000)),
                last_used_ip: Some(s("192.168.1.20")),
                expire_at: Some(Timestamp(1_707_776_100_000_000)),
                auth_provider_type: Some(s("homeassistant")),
            },
            TokenInfo {
                id: s("rt2"),
                user_id: s("u1"),
                client_id: None,
                client_name: Some(s("grafana")),
                client_icon: Some(s("mdi:chart")),
                token_type: TokenType::LongLivedAccessToken,
                created_at: Timestamp(-5),
                last_used_at: None,
                last_used_ip: None,
                expire_at: None,
                auth_provider_type: None,
            },
        ]),
        Response::LongLivedToken(LongLivedToken {
            refresh_token_id: s("rt2"),
            access_token: secret("jwt"),
            expires_in: 315_360_000,
        }),
        Response::Revoked { count: 4 },
        Response::Users(vec![user(), user()]),
        Response::User(user()),
        Response::Groups(vec![GroupInfo {
            id: s("system-read-only"),
            name: Some(s("Read Only")),
            system_generated: true,
            policy_json: s(r#"{"entities":{"all":{"read":true}}}"#),
        }]),
        Response::MfaModules(vec![MfaModuleInfo {
            id: s("totp"),
            name: s("Authenticator app"),
            enabled: true,
        }]),
        Response::SetupFlow(SetupFlowState::Form(form())),
        Response::SetupFlow(SetupFlowState::Abort {
            flow_id: s("f1"),
            reason: s("no_available_service"),
        }),
        Response::SetupFlow(SetupFlowState::Done {
            flow_id: s("f1"),
            module_id: s("totp"),
            recovery_codes: vec![secret("recovery-1"), secret("recovery-2")],
        }),
        Response::RecoveryCodes(vec![secret("recovery-3")]),
        Response::Permission { allowed: true },
        Response::Lockouts(vec![
            LockoutInfo {
                key: LockoutKey::Username(s("paulus")),
                failures: 5,
                locked_until: Some(Timestamp(1_700_000_900_000_000)),
            },
            LockoutInfo {
                key: LockoutKey::Source(IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1))),
                failures: 2,
                locked_until: None,
            },
        ]),
        Response::Done,
        Response::Subscribed,
        Response::Unsubscribed,
        Response::UserPage(Page {
            items: vec![user()],
            next: Some(s("u1")),
        }),
        Response::TokenPage(Page {
            items: vec![],
            next: None,
        }),
        Response::LockoutPage(Page {
            items: vec![LockoutInfo {
                key: LockoutKey::Username(s("paulus")),
                failures: 3,
                locked_until: None,
            }],
            next: None,
        }),
        Response::Throttle(ThrottleState {
            delay_ms: 4_000,
            locked_out: Some((
                LockoutKey::Username(s("paulus")),
                Timestamp(1_700_000_900_000_000),
            )),
        }),
        Response::LoginProviders(LoginProviders {
            onboarded: true,
            local: false,
            providers: vec![ProviderInfo {
                handler: Handler::new("homeassistant"),
                name: s("Home Assistant Local"),
            }],
        }),
        Response::HttpFlow(HttpFlow {
            flow_id: s("f0f0"),
            handler: Handler::new("homeassistant"),
            step: HttpFlowStep::Form(form()),
        }),
        Response::HttpFlow(HttpFlow {
            flow_id: s("f0f0"),
            handler: Handler::with_id("trusted_networks", "lan"),
            step: HttpFlowStep::Abort {
                reason: s("not_allowed"),
            },
        }),
        Response::HttpFlow(HttpFlow {
            flow_id: s("f0f0"),
            handler: Handler::new("homeassistant"),
            step: HttpFlowStep::CheckRedirect {
                client_id: s("https://example.com/app"),
                redirect_uri: s("https://other.example/cb"),
            },
        }),
        Response::HttpFlow(HttpFlow {
            flow_id: s("f0f0"),
            handler: Handler::new("homeassistant"),
            step: HttpFlowStep::Code(secret("code")),
        }),
        Response::HttpFlow(HttpFlow {
            flow_id: s("f0f0"),
            handler: Handler::new("homeassistant"),
            step: HttpFlowStep::Refused(FlowRefusal::LoginBlocked(s("User is not active"))),
        }),
        Response::HttpFlow(HttpFlow {
            flow_id: s("f0f0"),
            handler: Handler::new("homeassistant"),
            step: HttpFlowStep::Refused(FlowRefusal::InvalidRedirectUri),
        }),
        Response::HttpFlow(HttpFlow {
            flow_id: s("f0f0"),
            handler: Handler::new("homeassistant"),
            step: HttpFlowStep::Rejected(InputRejection::IpChanged),
        }),
        Response::Grant(GrantOutcome::Issued(IssuedTokens {
            user_id: s("u1"),
            refresh_token_id: s("rt1"),
            refresh_token: secret("refresh"),
            access_token: secret("access"),
            expires_in: 1800,
            provider_type: s("homeassistant"),
        })),
        Response::Grant(GrantOutcome::Refreshed(AccessToken {
            access_token: secret("access"),
            expires_in: 1800,
        })),
        Response::Grant(GrantOutcome::Refused(GrantRefusal::InvalidCode)),
        Response::Grant(GrantOutcome::Refused(GrantRefusal::AccessDenied(s(
            "Not in trusted_networks",
        )))),
        Response::StoreStatus(StoreStatus {
            backend: StoreBackendKind::Files,
            last_applied: 12,
            log_head: 12,
            connected: true,
            since_contact_ms: None,
            max_staleness_secs: None,
            last_error: None,
        }),
        Response::StoreStatus(StoreStatus {
            backend: StoreBackendKind::Postgres,
            last_applied: 1_000_001,
            log_head: 1_000_004,
            connected: false,
            since_contact_ms: Some(31_000),
            max_staleness_secs: Some(30),
            last_error: Some(s("the database did not answer within 3s")),
        }),
    ]
}

/// One sample of every `Event` variant.
pub(crate) fn events() -> Vec<Event> {
    vec![
        Event::UserAdded { user_id: s("u1") },
        Event::UserUpdated { user_id: s("u1") },
        Event::UserRemoved { user_id: s("u2") },
        Event::RefreshTokenCreated {
            user_id: s("u1"),
            refresh_token_id: s("rt1"),
            token_type: TokenType::LongLivedAccessToken,
            client_id: None,
            client_name: Some(s("grafana")),
        },
        Event::RefreshTokenRevoked {
            user_id: s("u1"),
            refresh_token_id: s("rt1"),
        },
        Event::LoginSucceeded {
            user_id: s("u1"),
            provider_type: s("homeassistant"),
            source: ip4(),
        },
        Event::LoginFailed {
            username: Some(s("paulus")),
            provider_type: s("homeassistant"),
            source: None,
            reason: s("invalid_auth"),
        },
        Event::LockoutStarted {
            key: LockoutKey::Username(s("paulus")),
            until: Timestamp(1_700_000_900_000_000),
        },
        Event::LockoutCleared {
            key: LockoutKey::Source(IpAddr::V4(Ipv4Addr::new(203, 0, 113, 9))),
        },
    ]
}

/// Every response (as `Ok`), a few errors, every event, and a `Lagged`, as frames.
pub(crate) fn server_frames() -> Vec<ServerFrame> {
    let mut frames: Vec<ServerFrame> = responses()
        .into_iter()
        .zip(1_u64..)
        .map(|(r, id)| ServerFrame::ok(id, r))
        .collect();
    for (code, id) in ErrorCode::ALL.iter().zip(1000_u64..) {
        frames.push(ServerFrame::err(
            id,
            ApiError::new(*code, format!("{code} happened")),
        ));
    }
    frames.extend(events().into_iter().map(ServerFrame::Event));
    frames.push(ServerFrame::Lagged { missed: 12_345 });
    frames.push(ServerFrame::Response {
        id: u64::MAX,
        result: Ok(Response::Done),
    });
    frames
}
