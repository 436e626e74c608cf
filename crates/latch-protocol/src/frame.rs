//! The two frame types that cross the socket after the handshake, and their byte
//! encoding. Framing (length prefixes, size limits) and the socket itself belong to
//! `latch-ipc`; this module only turns one frame's payload into bytes and back.

use serde::{Deserialize, Serialize};

use crate::{ApiError, Event, Request, Response};

/// Client to daemon: a request with the id its answer will carry.
///
/// The `id` is encoded **first**, as a postcard varint, so a daemon can read it even
/// when it cannot decode the request behind it (a newer client's new variant) and
/// answer that id with `unsupported_request`: see [`RequestFrame::decode`] and
/// [`FrameError::reply`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestFrame {
    /// Chosen by the client; echoed in the response. Requests may be pipelined.
    pub id: u64,
    /// What is asked.
    pub request: Request,
}

/// The payload of a response frame: the request's id and the daemon's answer. The daemon
/// sends it (and [`Event`]s) inside latch-ipc's frame envelope, whose bytes are exactly
/// [`ServerFrame`]'s.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResponsePayload {
    /// The id of the request this answers.
    pub id: u64,
    /// The answer.
    pub result: Result<Response, ApiError>,
}

/// Daemon to client. **Its variants are frozen**: adding one needs a
/// [`PROTOCOL_VERSION`](crate::PROTOCOL_VERSION) bump, because every client receives
/// every kind of server frame.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ServerFrame {
    /// The answer to the request with this id.
    Response {
        /// The request's id.
        id: u64,
        /// The answer.
        result: Result<Response, ApiError>,
    },
    /// An event the connection subscribed to.
    Event(Event),
    /// The connection's event queue overflowed: this many events were dropped.
    /// Subscribers should re-read whatever state they mirror.
    Lagged {
        /// How many events were dropped.
        missed: u64,
    },
}

/// A frame could not be encoded (in practice never: every type here serialises).
#[derive(Debug, thiserror::Error)]
#[error("cannot encode frame: {0}")]
pub struct EncodeError(#[source] postcard::Error);

/// A frame could not be decoded.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// Not even a request id could be read: the peer does not speak this protocol.
    /// Nothing can be answered; close the connection.
    #[error("frame too short or malformed to hold a request id")]
    MissingId,
    /// The request is of a kind this daemon does not know (the client is newer).
    #[error("request {id} is of unknown kind {variant} (this side knows {known} kinds)")]
    UnsupportedRequest {
        /// The request's id.
        id: u64,
        /// Its variant number on the wire.
        variant: u32,
        /// How many variants this side knows.
        known: u32,
    },
    /// The frame does not decode as this side's types.
    #[error("malformed frame: {detail}")]
    Malformed {
        /// The request's id, if it could be read.
        id: Option<u64>,
        /// The decoder's complaint.
        detail: String,
    },
    /// The frame decoded but bytes were left over.
    #[error("frame has {extra} trailing bytes")]
    TrailingBytes {
        /// The request's id, if it is a request frame.
        id: Option<u64>,
        /// How many bytes were left.
        extra: usize,
    },
}

impl FrameError {
    /// The request id the error concerns, if it could be read.
    #[must_use]
    pub const fn id(&self) -> Option<u64> {
        match self {
            Self::MissingId => None,
            Self::UnsupportedRequest { id, .. } => Some(*id),
            Self::Malformed { id, .. } | Self::TrailingBytes { id, .. } => *id,
        }
    }

    /// The error a daemon answers a bad request frame with: `unsupported_request` for
    /// an unknown kind, `invalid_request` otherwise.
    #[must_use]
    pub fn api_error(&self) -> ApiError {
        match self {
            Self::UnsupportedRequest { variant, .. } => ApiError::unsupported_request(*variant),
            other => ApiError::invalid_request(other.to_string()),
        }
    }

    /// The frame a daemon sends back for a request frame it could not decode, keyed by
    /// the request's id; `None` when no id could be read (close the connection then).
    #[must_use]
    pub fn reply(&self) -> Option<ServerFrame> {
        self.id().map(|id| ServerFrame::Response {
            id,
            result: Err(self.api_error()),
        })
    }
}

fn decode_exact<T: for<'de> Deserialize<'de>>(
    bytes: &[u8],
    id: Option<u64>,
) -> Result<T, FrameError> {
    let (value, rest) =
        postcard::take_from_bytes::<T>(bytes).map_err(|e| FrameError::Malformed {
            id,
            detail: e.to_string(),
        })?;
    if rest.is_empty() {
        Ok(value)
    } else {
        Err(FrameError::TrailingBytes {
            id,
            extra: rest.len(),
        })
    }
}

impl RequestFrame {
    /// A request frame.
    #[must_use]
    pub const fn new(id: u64, request: Request) -> Self {
        Self { id, request }
    }

    /// The frame's payload bytes (postcard).
    ///
    /// # Errors
    ///
    /// [`EncodeError`] if postcard refuses a value (not expected for these types).
    pub fn encode(&self) -> Result<Vec<u8>, EncodeError> {
        postcard::to_stdvec(self).map_err(EncodeError)
    }

    /// Reads only the request id at the front of a request frame's payload, without
    /// decoding the request (`postcard::take_from_bytes::<u64>`).
    #[must_use]
    pub fn peek_id(bytes: &[u8]) -> Option<u64> {
        postcard::take_from_bytes::<u64>(bytes)
            .ok()
            .map(|(id, _)| id)
    }

    /// Decodes a request frame's payload, strictly: trailing bytes are an error.
    ///
    /// The id is read first, then the request's variant number; a number this version
    /// does not know gives [`FrameError::UnsupportedRequest`] with the id, which
    /// [`FrameError::reply`] turns into the answer.
    ///
    /// # Errors
    ///
    /// [`FrameError`]; see its variants.
    pub fn decode(bytes: &[u8]) -> Result<Self, FrameError> {
        let (id, rest) =
            postcard::take_from_bytes::<u64>(bytes).map_err(|_| FrameError::MissingId)?;
        let (variant, _) =
            postcard::take_from_bytes::<u32>(rest).map_err(|e| FrameError::Malformed {
                id: Some(id),
                detail: e.to_string(),
            })?;
        if variant >= Request::VARIANT_COUNT {
            return Err(FrameError::UnsupportedRequest {
                id,
                variant,
                known: Request::VARIANT_COUNT,
            });
        }
        decode_exact(bytes, Some(id))
    }
}

impl ServerFrame {
    /// A successful answer to request `id`.
    #[must_use]
    pub const fn ok(id: u64, response: Response) -> Self {
        Self::Response {
            id,
            result: Ok(response),
        }
    }

    /// An error answer to request `id`.
    #[must_use]
    pub const fn err(id: u64, error: ApiError) -> Self {
        Self::Response {
            id,
            result: Err(error),
        }
    }

    /// The frame's payload bytes (postcard).
    ///
    /// # Errors
    ///
    /// [`EncodeError`] if postcard refuses a value (not expected for these types).
    pub fn encode(&self) -> Result<Vec<u8>, EncodeError> {
        postcard::to_stdvec(self).map_err(EncodeError)
    }

    /// Decodes a server frame's payload, strictly: trailing bytes are an error.
    ///
    /// # Errors
    ///
    /// [`FrameError::Malformed`] or [`FrameError::TrailingBytes`], without an id.
    pub fn decode(bytes: &[u8]) -> Result<Self, FrameError> {
        decode_exact(bytes, None)
    }
}
