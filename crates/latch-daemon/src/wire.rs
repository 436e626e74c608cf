//! The message types the daemon plugs into `latch-ipc`'s generic connection.
//!
//! One envelope: latch-ipc's [`latch_ipc::ServerFrame`] (`Response` = 0, `Event` = 1,
//! `Lagged` = 2) carries a [`ResponsePayload`] (`{ id, result }`) or a
//! [`latch_protocol::Event`]. On the wire that is byte for byte
//! `latch_protocol::ServerFrame` (a test pins it), so a client may decode either.
//!
//! Inbound, the daemon takes each frame's payload undecoded ([`latch_ipc::Raw`],
//! `recv_raw`) and decodes it with [`latch_protocol::RequestFrame::decode`], so a request it cannot decode but whose
//! id it can read is answered (`unsupported_request` / `invalid_request`) instead of
//! ending the connection.

pub use latch_protocol::ResponsePayload;

/// What the daemon sends: latch-ipc's envelope around the protocol's payloads.
pub type DaemonFrame = latch_ipc::ServerFrame<ResponsePayload, latch_protocol::Event>;

#[cfg(test)]
mod tests {
    use latch_protocol::{ApiError, ErrorCode, Event, Response, ServerFrame};

    use super::*;

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
