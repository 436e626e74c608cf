//! The table from manager errors to protocol error codes.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io;
use std::sync::Arc;

use chrono::{TimeZone, Utc};
use latch_auth::AuthError;
use latch_daemon::handler::{api_error, error_code};
use latch_models::limits::LimitError;
use latch_protocol::ErrorCode;
use latch_provider::ProviderError;
use latch_store::StoreError;
use latch_token::TokenError;

#[test]
fn every_manager_error_has_its_code() {
    use ErrorCode as C;
    let store_io = StoreError::Io {
        action: "write",
        path: "/h/.storage/latch.journal".into(),
        source: Arc::new(io::Error::other("disk full")),
    };
    let table: Vec<(AuthError, ErrorCode)> = vec![
        (AuthError::InvalidHandler, C::ProviderNotFound),
        (AuthError::FlowNotFound, C::FlowNotFound),
        (AuthError::FlowBusy, C::InvalidRequest),
        (AuthError::IpChanged, C::InvalidRequest),
        (AuthError::InputMalformed, C::InvalidRequest),
        (
            AuthError::InvalidRequest("a client id is required".into()),
            C::InvalidRequest,
        ),
        (AuthError::UserNotFound, C::UserNotFound),
        (AuthError::CredentialNotFound, C::CredentialNotFound),
        (AuthError::TokenNotFound, C::TokenNotFound),
        (AuthError::InvalidGrant, C::InvalidToken),
        (AuthError::InvalidAccessToken, C::InvalidToken),
        (
            AuthError::AccessDenied("User is not active".into()),
            C::Forbidden,
        ),
        (
            AuthError::OwnerProtected("unable to remove the owner"),
            C::OwnerProtected,
        ),
        (
            AuthError::SystemUser("cannot modify system generated users"),
            C::SystemUser,
        ),
        (AuthError::InvalidGroup("nope".into()), C::GroupNotFound),
        (AuthError::CredentialsExist, C::AlreadyExists),
        (AuthError::DuplicateCredentials, C::AlreadyExists),
        (AuthError::CredentialLinkedElsewhere, C::AlreadyExists),
        (AuthError::AlreadyOnboarded, C::AlreadyOnboarded),
        (AuthError::NoPasswordProvider, C::ProviderNotFound),
        (
            AuthError::MfaModuleNotFound("sms".into()),
            C::MfaModuleNotFound,
        ),
        (
            AuthError::InvalidProvider("trusted_networks".into()),
            C::Forbidden,
        ),
        (
            AuthError::TooManyAttempts {
                until: Utc.with_ymd_and_hms(2030, 1, 1, 0, 0, 0).unwrap(),
            },
            C::TooManyAttempts,
        ),
        (
            AuthError::Limit(LimitError::TooLong {
                field: "name",
                len: 256,
                max: 255,
            }),
            C::InvalidRequest,
        ),
        (
            AuthError::Provider(ProviderError::Limit(LimitError::TooLong {
                field: "password",
                len: 1_025,
                max: 1_024,
            })),
            C::InvalidRequest,
        ),
        (AuthError::Token(TokenError::UserNotActive), C::Forbidden),
        (
            AuthError::Token(TokenError::SystemUserWithClient),
            C::SystemUser,
        ),
        (
            AuthError::Token(TokenError::SystemTypeMismatch),
            C::SystemUser,
        ),
        (
            AuthError::Token(TokenError::ClientRequired),
            C::InvalidRequest,
        ),
        (
            AuthError::Token(TokenError::ClientNameRequired),
            C::InvalidRequest,
        ),
        (
            AuthError::Token(TokenError::DuplicateClientName {
                client_name: "script".into(),
            }),
            C::AlreadyExists,
        ),
        (
            AuthError::Provider(ProviderError::InvalidAuth(
                "Invalid username or password".into(),
            )),
            C::InvalidAuth,
        ),
        (
            AuthError::Provider(ProviderError::UserNotFound),
            C::CredentialNotFound,
        ),
        (
            AuthError::Provider(ProviderError::InvalidUsername {
                key: "username_already_exists",
                message: "Username \"paulus\" already exists".into(),
            }),
            C::AlreadyExists,
        ),
        (
            AuthError::Provider(ProviderError::InvalidUsername {
                key: "username_not_normalized",
                message: "Username \"Paulus\" is not normalized".into(),
            }),
            C::InvalidUsername,
        ),
        (
            AuthError::Provider(ProviderError::WeakPassword("the password is empty")),
            C::WeakPassword,
        ),
        (
            AuthError::Provider(ProviderError::NotSupported("user_meta")),
            C::InvalidRequest,
        ),
        (
            AuthError::Provider(ProviderError::Storage("disk full".into())),
            C::StorageFailed,
        ),
        (
            AuthError::Provider(ProviderError::Internal("hash job failed".into())),
            C::Internal,
        ),
        (AuthError::Store(store_io), C::StorageFailed),
        (AuthError::Store(StoreError::Closed), C::StorageFailed),
        (AuthError::Config("bad".into()), C::Internal),
    ];
    for (err, code) in &table {
        assert_eq!(error_code(err), *code, "{err:?}");
        let api = api_error(err);
        assert_eq!(api.code, *code);
        assert_eq!(
            api.message,
            err.to_string(),
            "the message is the error's own"
        );
    }
}

#[test]
fn messages_keep_context_but_no_trailing_period() {
    let api = api_error(&AuthError::MfaModuleNotFound("sms".into()));
    assert_eq!(api.message, "mfa module sms is not found");
    assert_eq!(
        api.to_string(),
        "mfa module sms is not found (mfa_module_not_found)"
    );
}
