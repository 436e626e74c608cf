//! Arbitrary bytes never make the frame decoder or either side of the handshake panic,
//! and never authenticate.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use latch_ipc::ServerFrame;
use latch_ipc::frame::{FrameReader, FrameWriter, MAX_FRAME, PRE_AUTH_MAX_FRAME, decode};
use latch_ipc::handshake::{
    ClientHandshake, ClientParams, Hello, MAGIC, ServerHandshake, ServerParams, client_handshake,
    same_version, server_handshake,
};
use latch_ipc::token::SessionToken;
use proptest::prelude::*;

fn block_on<F: std::future::Future>(future: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(future)
}

fn token() -> SessionToken {
    SessionToken::from_bytes([0x11; 32])
}

/// Bytes that often look like frames: a plausible length prefix, then arbitrary bytes.
fn framed_bytes() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(prop::collection::vec(any::<u8>(), 0..80), 0..4).prop_map(|payloads| {
        let mut wire = Vec::new();
        for payload in payloads {
            let len = u32::try_from(payload.len()).unwrap();
            wire.extend_from_slice(&len.to_be_bytes());
            wire.extend_from_slice(&payload);
        }
        wire
    })
}

fn any_input() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![prop::collection::vec(any::<u8>(), 0..600), framed_bytes()]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn the_frame_decoder_never_panics(input in any_input()) {
        block_on(async {
            let mut reader = FrameReader::new(&input[..], PRE_AUTH_MAX_FRAME);
            // Every frame is bounded by the limit; the stream ends or errors, it never hangs.
            while let Ok(Some(frame)) = reader.next_frame().await {
                assert!(frame.len() <= PRE_AUTH_MAX_FRAME);
                let _ = decode::<ClientHandshake>(&frame);
                let _ = decode::<ServerHandshake>(&frame);
                let _ = decode::<ServerFrame<(u64, String), Vec<u8>>>(&frame);
            }
        });
    }

    #[test]
    fn the_server_handshake_never_panics_nor_accepts_noise(input in any_input()) {
        let token = token();
        let params = ServerParams { token: &token, version: 1, version_rule: same_version };
        let result = block_on(async {
            let mut reader = FrameReader::new(&input[..], PRE_AUTH_MAX_FRAME);
            let mut writer = FrameWriter::new(tokio::io::sink(), PRE_AUTH_MAX_FRAME);
            server_handshake(&mut reader, &mut writer, &params).await
        });
        prop_assert!(result.is_err());
    }

    #[test]
    fn the_server_handshake_refuses_a_good_hello_followed_by_noise(
        version in any::<u32>(),
        nonce in any::<[u8; 32]>(),
        rest in any_input(),
    ) {
        let hello = ClientHandshake::Hello(Hello { magic: MAGIC, version, client_nonce: nonce });
        let payload = postcard::to_stdvec(&hello).unwrap();
        let mut input = u32::try_from(payload.len()).unwrap().to_be_bytes().to_vec();
        input.extend_from_slice(&payload);
        input.extend_from_slice(&rest);
        let token = token();
        let params = ServerParams { token: &token, version: 1, version_rule: same_version };
        let result = block_on(async {
            let mut reader = FrameReader::new(&input[..], PRE_AUTH_MAX_FRAME);
            let mut writer = FrameWriter::new(tokio::io::sink(), PRE_AUTH_MAX_FRAME);
            server_handshake(&mut reader, &mut writer, &params).await
        });
        prop_assert!(result.is_err());
    }

    #[test]
    fn the_client_handshake_never_panics_nor_trusts_noise(input in any_input()) {
        let token = token();
        let params = ClientParams { token: &token, version: 1, version_rule: same_version };
        let result = block_on(async {
            let mut reader = FrameReader::new(&input[..], PRE_AUTH_MAX_FRAME);
            let mut writer = FrameWriter::new(tokio::io::sink(), PRE_AUTH_MAX_FRAME);
            client_handshake(&mut reader, &mut writer, &params).await
        });
        prop_assert!(result.is_err());
    }

    #[test]
    fn post_auth_frames_never_panic(input in prop::collection::vec(any::<u8>(), 0..2048)) {
        block_on(async {
            let mut reader = FrameReader::new(&input[..], MAX_FRAME);
            while let Ok(Some(frame)) = reader.next_frame().await {
                let _ = decode::<ServerFrame<(u64, String), (u8, Vec<u8>)>>(&frame);
            }
        });
    }
}
