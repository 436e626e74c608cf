//! The wire contract: every variant round-trips through postcard, every variant keeps
//! its wire number (append-only), a few whole frames are pinned byte for byte, the
//! request id is readable before the body, and `Debug` never shows a secret.

// Test helpers outside `#[test]` functions unwrap too; `allow-unwrap-in-tests` does not
// reach them.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeSet;

use latch_protocol::{
    ApiError, ErrorCode, Event, EventKind, FrameError, PROTOCOL_VERSION, Request, RequestFrame,
    Response, ServerFrame, compatible, incompatible_message,
};

use common::{SECRET, events, requests, responses, server_frames};

/// The wire number of every request variant. Exhaustive on purpose: a new variant does
/// not compile until it is numbered here, and a reordered one fails
/// `every_variant_keeps_its_wire_number`.
fn request_number(r: &Request) -> u32 {
    match r {
        Request::Ping => 0,
        Request::Status => 1,
        Request::ListProviders { .. } => 2,
        Request::LoginStart { .. } => 3,
        Request::LoginContinue { .. } => 4,
        Request::LoginAbort { .. } => 5,
        Request::ValidateToken { .. } => 6,
        Request::RefreshToken { .. } => 7,
        Request::RevokeToken { .. } => 8,
        Request::RevokeTokenById { .. } => 9,
        Request::RevokeAllTokens { .. } => 10,
        Request::ListTokens { .. } => 11,
        Request::CreateLongLivedToken { .. } => 12,
        Request::SetTokenExpiry { .. } => 13,
        Request::ListUsers => 14,
        Request::GetUser { .. } => 15,
        Request::CreateUser { .. } => 16,
        Request::Onboard { .. } => 17,
        Request::UpdateUser { .. } => 18,
        Request::RemoveUser { .. } => 19,
        Request::ActivateUser { .. } => 20,
        Request::DeactivateUser { .. } => 21,
        Request::SetUserGroups { .. } => 22,
        Request::ListGroups => 23,
        Request::AddPassword { .. } => 24,
        Request::ChangePassword { .. } => 25,
        Request::ChangeOwnPassword { .. } => 26,
        Request::ChangeUsername { .. } => 27,
        Request::RemoveCredential { .. } => 28,
        Request::ListMfaModules { .. } => 29,
        Request::MfaSetupStart { .. } => 30,
        Request::MfaSetupContinue { .. } => 31,
        Request::MfaSetupAbort { .. } => 32,
        Request::MfaDisable { .. } => 33,
        Request::RegenerateRecoveryCodes { .. } => 34,
        Request::CheckPermission { .. } => 35,
        Request::ListLockouts => 36,
        Request::ClearLockout { .. } => 37,
        Request::Subscribe { .. } => 38,
        Request::Unsubscribe => 39,
        Request::ChangeOwnPasswordFrom { .. } => 40,
        Request::ListUsersPage { .. } => 41,
        Request::GetUserByUsername { .. } => 42,
        Request::FindUsersByName { .. } => 43,
        Request::ListTokensPage { .. } => 44,
        Request::ListLockoutsPage { .. } => 45,
        Request::LoginThrottle { .. } => 46,
        Request::HttpProviders { .. } => 47,
        Request::HttpLoginStart { .. } => 48,
        Request::HttpLoginContinue { .. } => 49,
        Request::HttpLoginAuthorize { .. } => 50,
        Request::ExchangeCode { .. } => 51,
        Request::RefreshGrant { .. } => 52,
        Request::StoreStatus => 53,
    }
}

fn response_number(r: &Response) -> u32 {
    match r {
        Response::Pong => 0,
        Response::Status(_) => 1,
        Response::Providers(_) => 2,
        Response::Flow(_) => 3,
        Response::Validated(_) => 4,
        Response::AccessToken(_) => 5,
        Response::Tokens(_) => 6,
        Response::LongLivedToken(_) => 7,
        Response::Revoked { .. } => 8,
        Response::Users(_) => 9,
        Response::User(_) => 10,
        Response::Groups(_) => 11,
        Response::MfaModules(_) => 12,
        Response::SetupFlow(_) => 13,
        Response::RecoveryCodes(_) => 14,
        Response::Permission { .. } => 15,
        Response::Lockouts(_) => 16,
        Response::Done => 17,
        Response::Subscribed => 18,
        Response::Unsubscribed => 19,
        Response::UserPage(_) => 20,
        Response::TokenPage(_) => 21,
        Response::LockoutPage(_) => 22,
        Response::Throttle(_) => 23,
        Response::LoginProviders(_) => 24,
        Response::HttpFlow(_) => 25,
        Response::Grant(_) => 26,
        Response::StoreStatus(_) => 27,
    }
}

const RESPONSE_VARIANTS: u32 = 28;

fn event_number(e: &Event) -> u32 {
    match e {
        Event::UserAdded { .. } => 0,
        Event::UserUpdated { .. } => 1,
        Event::UserRemoved { .. } => 2,
        Event::RefreshTokenCreated { .. } => 3,
        Event::RefreshTokenRevoked { .. } => 4,
        Event::LoginSucceeded { .. } => 5,
        Event::LoginFailed { .. } => 6,
        Event::LockoutStarted { .. } => 7,
        Event::LockoutCleared { .. } => 8,
    }
}

fn server_frame_number(f: &ServerFrame) -> u32 {
    match f {
        ServerFrame::Response { .. } => 0,
        ServerFrame::Event(_) => 1,
        ServerFrame::Lagged { .. } => 2,
    }
}

/// The variant number at the front of a value's encoding.
fn wire_number<T: serde::Serialize>(value: &T) -> u32 {
    let bytes = postcard::to_stdvec(value).unwrap();
    postcard::take_from_bytes::<u32>(&bytes).unwrap().0
}

fn round_trip<T>(value: &T) -> T
where
    T: serde::Serialize + for<'de> serde::Deserialize<'de>,
{
    let bytes = postcard::to_stdvec(value).unwrap();
    let (back, rest) = postcard::take_from_bytes::<T>(&bytes).unwrap();
    assert!(rest.is_empty());
    back
}

#[test]
fn every_request_round_trips_in_a_frame() {
    for (request, id) in requests()
        .into_iter()
        .zip([0, 1, 127, 128, 300, u64::MAX].into_iter().cycle())
    {
        let frame = RequestFrame::new(id, request);
        let bytes = frame.encode().unwrap();
        assert_eq!(
            RequestFrame::decode(&bytes).unwrap(),
            frame,
            "{}",
            frame.request.name()
        );
        assert_eq!(round_trip(&frame), frame);
    }
}

#[test]
fn every_response_event_and_server_frame_round_trips() {
    for response in responses() {
        assert_eq!(round_trip(&response), response);
    }
    for event in events() {
        assert_eq!(round_trip(&event), event);
    }
    for frame in server_frames() {
        let bytes = frame.encode().unwrap();
        assert_eq!(ServerFrame::decode(&bytes).unwrap(), frame);
    }
}

#[test]
fn every_variant_keeps_its_wire_number() {
    let mut seen = BTreeSet::new();
    for r in requests() {
        assert_eq!(wire_number(&r), request_number(&r), "{}", r.name());
        seen.insert(request_number(&r));
    }
    let all: BTreeSet<u32> = (0..Request::VARIANT_COUNT).collect();
    assert_eq!(seen, all, "the samples cover every request variant");

    let mut seen = BTreeSet::new();
    for r in responses() {
        assert_eq!(wire_number(&r), response_number(&r), "{r:?}");
        seen.insert(response_number(&r));
    }
    assert_eq!(seen, (0..RESPONSE_VARIANTS).collect::<BTreeSet<_>>());

    let mut seen = BTreeSet::new();
    for e in events() {
        assert_eq!(wire_number(&e), event_number(&e), "{e:?}");
        // Each event's kind has the same number, so the two enums stay in step.
        assert_eq!(wire_number(&e.kind()), event_number(&e));
        seen.insert(event_number(&e));
    }
    assert_eq!(seen.len(), EventKind::ALL.len());
    assert_eq!(
        seen,
        (0..u32::try_from(EventKind::ALL.len()).unwrap()).collect::<BTreeSet<_>>()
    );

    let mut seen = BTreeSet::new();
    for f in server_frames() {
        assert_eq!(wire_number(&f), server_frame_number(&f));
        seen.insert(server_frame_number(&f));
    }
    assert_eq!(seen, BTreeSet::from([0, 1, 2]));
}

#[test]
fn request_names_are_unique_snake_case() {
    let mut names = BTreeSet::new();
    let mut numbers = BTreeSet::new();
    for r in requests() {
        if numbers.insert(request_number(&r)) {
            assert!(names.insert(r.name()), "duplicate name {}", r.name());
        }
        assert!(r.name().chars().all(|c| c.is_ascii_lowercase() || c == '_'));
    }
    assert_eq!(
        names.len(),
        usize::try_from(Request::VARIANT_COUNT).unwrap()
    );
}

/// Whole frames pinned byte for byte: a changed field, type or order fails here.
#[test]
fn golden_frames() {
    let ping = RequestFrame::new(1, Request::Ping).encode().unwrap();
    assert_eq!(ping, [1, 0]);

    // id 300 is the varint [0xAC, 0x02].
    let status = RequestFrame::new(300, Request::Status).encode().unwrap();
    assert_eq!(status, [0xAC, 0x02, 1]);

    let start = RequestFrame::new(
        2,
        Request::LoginStart {
            handler: latch_protocol::Handler::new("ha"),
            client_id: "http://x/".into(),
            redirect_uri: None,
            ip_address: Some("127.0.0.1".parse().unwrap()),
        },
    )
    .encode()
    .unwrap();
    let mut expected = vec![2, 3, 2, b'h', b'a', 0, 9];
    expected.extend_from_slice(b"http://x/");
    expected.extend_from_slice(&[0, 1, 0, 127, 0, 0, 1]);
    assert_eq!(start, expected);

    let validate = RequestFrame::new(
        5,
        Request::ValidateToken {
            access_token: "t".into(),
            remote_ip: None,
        },
    )
    .encode()
    .unwrap();
    assert_eq!(validate, [5, 6, 1, b't', 0]);

    let allowed = ServerFrame::ok(5, Response::Permission { allowed: true });
    assert_eq!(allowed.encode().unwrap(), [0, 5, 0, 15, 1]);

    let not_found = ServerFrame::err(5, ApiError::new(ErrorCode::UserNotFound, "x"));
    assert_eq!(not_found.encode().unwrap(), [0, 5, 1, 4, 1, b'x']);

    let event = ServerFrame::Event(Event::UserAdded {
        user_id: "u".into(),
    });
    assert_eq!(event.encode().unwrap(), [1, 0, 1, b'u']);

    let lagged = ServerFrame::Lagged { missed: 3 };
    assert_eq!(lagged.encode().unwrap(), [2, 3]);
}

#[test]
fn request_id_is_readable_before_the_body() {
    for (request, id) in requests().into_iter().zip((0_u64..).map(|i| i * 7_919 + 1)) {
        let bytes = RequestFrame::new(id, request).encode().unwrap();
        assert_eq!(RequestFrame::peek_id(&bytes), Some(id));
        // Equivalently, with postcard directly, as a daemon may do.
        let (peeked, _) = postcard::take_from_bytes::<u64>(&bytes).unwrap();
        assert_eq!(peeked, id);
    }
    assert_eq!(RequestFrame::peek_id(&[]), None);
    // A varint that never ends is no id.
    assert_eq!(RequestFrame::peek_id(&[0xFF; 11]), None);
}

#[test]
fn a_newer_clients_request_is_answered_unsupported_by_id() {
    // What a newer client sends for a variant appended after ours, carrying a string:
    // varint id, varint variant number, then the payload.
    let future_variant = Request::VARIANT_COUNT;
    let bytes = postcard::to_stdvec(&(4_242_u64, future_variant, "payload")).unwrap();

    let err = RequestFrame::decode(&bytes).unwrap_err();
    assert_eq!(
        err,
        FrameError::UnsupportedRequest {
            id: 4_242,
            variant: future_variant,
            known: Request::VARIANT_COUNT,
        }
    );
    assert_eq!(err.id(), Some(4_242));

    // The daemon's answer decodes on the client, keyed by the same id.
    let reply = err.reply().unwrap();
    let decoded = ServerFrame::decode(&reply.encode().unwrap()).unwrap();
    match decoded {
        ServerFrame::Response {
            id,
            result: Err(api),
        } => {
            assert_eq!(id, 4_242);
            assert_eq!(api.code, ErrorCode::UnsupportedRequest);
        }
        other => panic!("unexpected reply {other:?}"),
    }

    // A huge variant number is unsupported too, not a panic.
    let bytes = postcard::to_stdvec(&(1_u64, u32::MAX)).unwrap();
    assert!(matches!(
        RequestFrame::decode(&bytes),
        Err(FrameError::UnsupportedRequest {
            id: 1,
            variant: u32::MAX,
            ..
        })
    ));
}

#[test]
fn a_malformed_known_request_is_answered_invalid_by_id() {
    // ValidateToken (6) whose string length runs past the end.
    let bytes = [9, 6, 50, b'a'];
    let err = RequestFrame::decode(&bytes).unwrap_err();
    assert!(
        matches!(err, FrameError::Malformed { id: Some(9), .. }),
        "{err:?}"
    );
    match err.reply() {
        Some(ServerFrame::Response {
            id: 9,
            result: Err(api),
        }) => assert_eq!(api.code, ErrorCode::InvalidRequest),
        other => panic!("unexpected reply {other:?}"),
    }

    // A frame with only an id: known to be a request, but no kind.
    assert!(matches!(
        RequestFrame::decode(&[9]),
        Err(FrameError::Malformed { id: Some(9), .. })
    ));

    // No id at all: nothing to answer.
    let err = RequestFrame::decode(&[]).unwrap_err();
    assert_eq!(err, FrameError::MissingId);
    assert_eq!(err.reply(), None);
}

#[test]
fn trailing_bytes_are_refused() {
    let mut bytes = RequestFrame::new(3, Request::Ping).encode().unwrap();
    bytes.push(0);
    let err = RequestFrame::decode(&bytes).unwrap_err();
    assert_eq!(
        err,
        FrameError::TrailingBytes {
            id: Some(3),
            extra: 1
        }
    );
    assert_eq!(
        err.reply()
            .map(|f| matches!(f, ServerFrame::Response { id: 3, .. })),
        Some(true)
    );

    let mut bytes = ServerFrame::Lagged { missed: 1 }.encode().unwrap();
    bytes.extend_from_slice(&[1, 2]);
    assert_eq!(
        ServerFrame::decode(&bytes),
        Err(FrameError::TrailingBytes { id: None, extra: 2 })
    );
}

#[test]
fn every_strict_prefix_of_a_frame_fails_to_decode() {
    for request in requests() {
        let bytes = RequestFrame::new(77, request).encode().unwrap();
        for len in 0..bytes.len() {
            assert!(RequestFrame::decode(&bytes[..len]).is_err());
        }
    }
    for frame in server_frames() {
        let bytes = frame.encode().unwrap();
        for len in 0..bytes.len() {
            assert!(ServerFrame::decode(&bytes[..len]).is_err());
        }
    }
}

#[test]
fn debug_never_shows_a_secret() {
    let mut checked = 0;
    for request in requests() {
        let frame = RequestFrame::new(1, request);
        let bytes = frame.encode().unwrap();
        let carries_secret = bytes.windows(SECRET.len()).any(|w| w == SECRET.as_bytes());
        for debug in [format!("{frame:?}"), format!("{frame:#?}")] {
            assert!(!debug.contains(SECRET), "secret in {debug}");
        }
        if carries_secret {
            checked += 1;
        }
    }
    // The check is not vacuous: these requests really carry secrets.
    assert!(checked >= 9, "only {checked} requests carried a secret");

    let mut checked = 0;
    for frame in server_frames() {
        let bytes = frame.encode().unwrap();
        if bytes.windows(SECRET.len()).any(|w| w == SECRET.as_bytes()) {
            checked += 1;
        }
        for debug in [format!("{frame:?}"), format!("{frame:#?}")] {
            assert!(!debug.contains(SECRET), "secret in {debug}");
        }
    }
    assert!(checked >= 7, "only {checked} frames carried a secret");

    // Events carry no secrets at all.
    for event in events() {
        let bytes = postcard::to_stdvec(&event).unwrap();
        assert!(!bytes.windows(SECRET.len()).any(|w| w == SECRET.as_bytes()));
    }
}

#[test]
fn compatibility_rule_and_message() {
    assert!(compatible(PROTOCOL_VERSION, PROTOCOL_VERSION));
    assert!(!compatible(PROTOCOL_VERSION, PROTOCOL_VERSION + 1));
    assert!(!compatible(PROTOCOL_VERSION + 1, PROTOCOL_VERSION));
    let message = incompatible_message(PROTOCOL_VERSION + 1, PROTOCOL_VERSION);
    assert!(message.contains(&format!("version {}", PROTOCOL_VERSION + 1)));
    assert!(message.contains(&format!("version {PROTOCOL_VERSION}")));
    assert_eq!(
        PROTOCOL_VERSION, 1,
        "bump deliberately, with the golden frames"
    );
}

#[test]
fn unknown_error_code_from_a_newer_daemon_still_decodes() {
    // A whole response frame carrying error number 999, as a newer daemon would send.
    let bytes = postcard::to_stdvec(&(0_u8, 8_u64, 1_u8, 999_u16, "quota exceeded")).unwrap();
    match ServerFrame::decode(&bytes).unwrap() {
        ServerFrame::Response {
            id: 8,
            result: Err(api),
        } => {
            assert_eq!(api.code, ErrorCode::Unknown);
            assert_eq!(api.message, "quota exceeded");
        }
        other => panic!("unexpected frame {other:?}"),
    }
}
