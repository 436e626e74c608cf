//! The message types the daemon plugs into `latch-ipc`'s generic connection.
//!
//! One envelope: latch-ipc's [`latch_ipc::ServerFrame`] (`Response` = 0, `Event` = 1,
//! `Lagged` = 2) carries a [`ResponsePayload`] (`{ id, result }`) or a
//! [`latch_protocol::Event`]. On the wire that is byte for byte
//! `latch_protocol::ServerFrame` (a test pins it), so a client may decode either.
//!
//! Inbound, the daemon takes each frame's payload whole ([`RawRequest`]) and decodes it
//! with [`latch_protocol::RequestFrame::decode`], so a request it cannot decode but whose
//! id it can read is answered (`unsupported_request` / `invalid_request`) instead of
//! ending the connection.

use std::fmt;

pub use latch_protocol::ResponsePayload;
use serde::Deserialize;
use serde::de::{Deserializer, SeqAccess, Visitor};
use zeroize::Zeroize;

/// What the daemon sends: latch-ipc's envelope around the protocol's payloads.
pub type DaemonFrame = latch_ipc::ServerFrame<ResponsePayload, latch_protocol::Event>;

/// One inbound frame's payload, undecoded.
///
/// latch-ipc's receiver only hands out decoded messages and closes the connection on a
/// payload that does not decode, so this type "decodes" every payload by taking all of
/// its bytes: postcard serves a tuple of unbounded length one `u8` at a time, and the
/// visitor stops at the end of the input. The real decoding is then
/// [`latch_protocol::RequestFrame::decode`]'s.
#[derive(Clone, PartialEq, Eq)]
pub struct RawRequest(pub Vec<u8>);

impl fmt::Debug for RawRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Payloads may hold secrets: only the length.
        write!(f, "RawRequest({} bytes)", self.0.len())
    }
}

impl Drop for RawRequest {
    fn drop(&mut self) {
        // Payloads carry passwords and tokens.
        self.0.zeroize();
    }
}

impl<'de> Deserialize<'de> for RawRequest {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct AllBytes;

        impl<'de> Visitor<'de> for AllBytes {
            type Value = RawRequest;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("the bytes of a request frame")
            }

            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<RawRequest, A::Error> {
                let mut bytes = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(4096));
                // The end of the input is the only error a `u8` can raise.
                while let Ok(Some(byte)) = seq.next_element::<u8>() {
                    bytes.push(byte);
                }
                Ok(RawRequest(bytes))
            }
        }

        deserializer.deserialize_tuple(usize::MAX, AllBytes)
    }
}

#[cfg(test)]
mod tests {
    use latch_protocol::{
        ApiError, ErrorCode, Event, Request, RequestFrame, Response, ServerFrame,
    };

    use super::*;

    #[test]
    fn raw_request_takes_every_byte() {
        let frame = RequestFrame::new(300, Request::Ping).encode().unwrap();
        let raw: RawRequest = latch_ipc::frame::decode(&frame).unwrap();
        assert_eq!(raw.0, frame);
        let empty: RawRequest = latch_ipc::frame::decode(&[]).unwrap();
        assert!(empty.0.is_empty());
        assert_eq!(
            format!("{raw:?}"),
            format!("RawRequest({} bytes)", frame.len())
        );
    }

    #[test]
    fn envelope_is_the_protocol_server_frame_on_the_wire() {
        let cases = [
            (
                DaemonFrame::Response(ResponsePayload {
                    id: 7,
                    result: Ok(Response::Pong),
                }),
                ServerFrame::ok(7, Response::Pong),
            ),
            (
                DaemonFrame::Response(ResponsePayload {
                    id: 1 << 40,
                    result: Err(ApiError::new(ErrorCode::UserNotFound, "user not found")),
                }),
                ServerFrame::err(
                    1 << 40,
                    ApiError::new(ErrorCode::UserNotFound, "user not found"),
                ),
            ),
            (
                DaemonFrame::Event(Event::UserAdded {
                    user_id: "u".into(),
                }),
                ServerFrame::Event(Event::UserAdded {
                    user_id: "u".into(),
                }),
            ),
            (DaemonFrame::Lagged(9), ServerFrame::Lagged { missed: 9 }),
        ];
        for (ours, protocol) in cases {
            assert_eq!(
                postcard_bytes(&ours),
                protocol.encode().unwrap(),
                "{protocol:?}"
            );
        }
    }

    fn postcard_bytes(frame: &DaemonFrame) -> Vec<u8> {
        latch_ipc::frame::encode(frame, latch_ipc::frame::MAX_FRAME)
            .unwrap()
            .to_vec()
    }
}
