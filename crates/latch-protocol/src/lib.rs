//! latch-protocol: the language spoken over latch's local socket.
//!
//! One job: the types of the whole daemon API after the handshake — what a client may
//! ask ([`Request`], in a [`RequestFrame`] with an id), what the daemon answers
//! ([`Response`] or an [`ApiError`] with a stable [`ErrorCode`], in a
//! [`ServerFrame`]), what it pushes to subscribers ([`Event`]), and the
//! [`PROTOCOL_VERSION`] with the rule ([`compatible`]) that decides who may talk.
//!
//! This crate does **no IO**: no sockets, no files, no async. It turns one frame's
//! payload into bytes and back (postcard); length prefixes, limits, the handshake and
//! the connection loop live in `latch-ipc`, `latch-daemon` and `latch-client`. It knows
//! nothing of how the daemon stores things: the types here are their own serialisable
//! mirrors (ids are plain strings, times are [`Timestamp`]s), never `latch-models`
//! values. Every secret travels as [`Sensitive`], whose `Debug` is redacted, so any
//! request or response can be logged with `{:?}`.
//!
//! # The wire format
//!
//! [postcard](https://docs.rs/postcard): compact and *not self-describing*. A field
//! cannot be skipped and a variant is only its position, so these types use no
//! untagged, internally tagged or flattened enums, no `skip_serializing_if`, and no
//! JSON values (a group policy travels as JSON *text*).
//!
//! # The compatibility rule
//!
//! A client and a daemon talk only if [`compatible`]`(client, daemon)`; today that
//! means equal [`PROTOCOL_VERSION`]s, and [`incompatible_message`] tells the operator
//! which side to upgrade. Within one version:
//!
//! 1. **Enums are append-only.** A variant's position is its number on the wire:
//!    variants are never reordered, removed or renamed into another meaning.
//! 2. **Changing the fields of an existing variant or struct** (adding, removing,
//!    reordering or retyping one) **bumps [`PROTOCOL_VERSION`].** So does adding a
//!    [`ServerFrame`] variant, which every client receives.
//! 3. **A variant may be appended without a bump only if an older peer never receives
//!    it unasked**, that is, only where the old peer either never sees it or can
//!    answer it cleanly:
//!    - a new [`Request`] variant: an older daemon cannot decode it, and postcard
//!      fails the whole frame — but [`RequestFrame`] puts the request `id` first, so
//!      the daemon reads the id (`postcard::take_from_bytes::<u64>`, see
//!      [`RequestFrame::peek_id`]) and the variant number, and answers that id with
//!      [`ErrorCode::UnsupportedRequest`] ([`RequestFrame::decode`],
//!      [`FrameError::reply`]). The connection carries on;
//!    - a new [`Response`] variant answers only a new request, which an older client
//!      cannot send;
//!    - a new [`Event`] (with its [`EventKind`]) reaches only connections that named
//!      that kind in [`Request::Subscribe`]; there is no "all kinds" wildcard;
//!    - a new [`ErrorCode`] travels as its number and an older reader decodes an
//!      unknown number as [`ErrorCode::Unknown`], keeping the message. Codes never
//!      change meaning.
//!
//! The tests pin every variant's wire number and a few whole frames byte for byte,
//! so a reorder or a field change fails them.
//!
//! # Answers that outgrow a frame
//!
//! Every answer must fit one frame ([`MAX_FRAME_LEN`], 1 MiB). Listings that grow with
//! the store (users, a user's tokens, lockouts) are read a [`Page`] at a time, in a
//! stable order with a cursor (`ListUsersPage`, `ListTokensPage`, `ListLockoutsPage`);
//! a page holds at most [`MAX_PAGE_SIZE`] items and is cut short at
//! [`PAGE_BYTE_BUDGET`] bytes, so it fits whatever its items hold. A user is looked up
//! directly by id or username (`GetUser`, `GetUserByUsername`). The unpaged listings
//! answer [`ErrorCode::AnswerTooLarge`] once they would not fit.
//!
//! # Example
//!
//! ```
//! use latch_protocol::{
//!     ApiError, ErrorCode, FrameError, PROTOCOL_VERSION, Request, RequestFrame, Response,
//!     Sensitive, ServerFrame, compatible,
//! };
//!
//! assert!(compatible(PROTOCOL_VERSION, PROTOCOL_VERSION));
//!
//! // The client encodes a request…
//! let frame = RequestFrame::new(7, Request::ValidateToken {
//!     access_token: Sensitive::from("eyJhbGciOi.fake.jwt"),
//!     remote_ip: Some("192.168.1.20".parse()?),
//! });
//! assert!(!format!("{frame:?}").contains("eyJhbGciOi")); // safe to log
//! let bytes = frame.encode()?;
//!
//! // …the daemon decodes it and answers with the same id.
//! let request = RequestFrame::decode(&bytes)?;
//! assert_eq!(request, frame);
//! let answer = ServerFrame::err(
//!     request.id,
//!     ApiError::new(ErrorCode::InvalidToken, "invalid access token"),
//! );
//! let decoded = ServerFrame::decode(&answer.encode()?)?;
//! assert_eq!(decoded, answer);
//!
//! // A request kind from a newer client is answered, not fatal.
//! let future = [9, 200, 1]; // id 9, variant 200, some payload
//! let err = RequestFrame::decode(&future).unwrap_err();
//! assert!(matches!(err, FrameError::UnsupportedRequest { id: 9, variant: 200, .. }));
//! assert!(matches!(
//!     err.reply(),
//!     Some(ServerFrame::Response { id: 9, result: Err(ApiError { code: ErrorCode::UnsupportedRequest, .. }) })
//! ));
//! # let _ = Response::Pong;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

#![warn(missing_docs)]

mod error;
mod event;
mod frame;
mod http;
mod page;
mod request;
mod response;
mod sensitive;
mod time;
mod types;
mod version;

pub use error::{ApiError, ErrorCode, UnknownErrorCode};
pub use event::{Event, EventKind, UnknownEventKind};
pub use frame::{EncodeError, FrameError, RequestFrame, ResponsePayload, ServerFrame};
pub use http::{
    FlowRefusal, GrantOutcome, GrantRefusal, HttpFlow, HttpFlowStep, InputRejection, LoginProviders,
};
pub use page::{MAX_FRAME_LEN, MAX_PAGE_SIZE, PAGE_BYTE_BUDGET, Page, clamp_limit};
pub use request::{FormInput, Request};
pub use response::{
    AccessToken, BEARER, CredentialInfo, DaemonStatus, Field, FieldKind, FlowForm, FlowState,
    GroupInfo, IssuedTokens, LockoutInfo, LongLivedToken, MfaModuleInfo, ProviderInfo, Response,
    SetupFlowState, StoreBackendKind, StoreStatus, ThrottleState, TokenInfo, UserInfo, UserSummary,
    ValidatedToken,
};
pub use sensitive::Sensitive;
pub use time::Timestamp;
pub use types::{
    Handler, LockoutKey, PermissionKey, Subject, TokenType, UnknownPermissionKey, UnknownTokenType,
};
pub use version::{
    IncompatibleVersion, PROTOCOL_VERSION, check_compatible, compatible, incompatible_message,
};
