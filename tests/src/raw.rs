//! Raw bytes on the socket, for tests that play a client that does not follow the
//! protocol: frames as latch-ipc writes them, the handshake's frames in their frozen
//! postcard encoding, and recognisers for what the daemon answers before authentication.
//!
//! Written from the protocol's description, not with latch-ipc's codec, so the tests
//! do not trust the code they test.

use latch_client::protocol::PROTOCOL_VERSION;

/// A frame as latch-ipc writes it: a 4-byte big-endian length, then the payload.
///
/// # Panics
///
/// When the payload is longer than a frame can say (4 GiB).
#[must_use]
pub fn frame(payload: &[u8]) -> Vec<u8> {
    let Ok(len) = u32::try_from(payload.len()) else {
        panic!("a {}-byte payload does not fit a frame", payload.len());
    };
    let mut out = len.to_be_bytes().to_vec();
    out.extend_from_slice(payload);
    out
}

/// A postcard varint.
#[must_use]
pub fn varint(mut n: u32) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let byte = (n & 0x7f).to_le_bytes()[0];
        n >>= 7;
        if n == 0 {
            out.push(byte);
            return out;
        }
        out.push(byte | 0x80);
    }
}

/// The handshake's first frame, `ClientHandshake::Hello { magic, version, nonce }`.
#[must_use]
pub fn hello() -> Vec<u8> {
    let mut payload = vec![0]; // ClientHandshake::Hello
    payload.extend_from_slice(b"LTCH");
    payload.extend(varint(PROTOCOL_VERSION));
    payload.extend_from_slice(&[7; 32]);
    frame(&payload)
}

/// `ClientHandshake::Auth` with a proof made without the session token.
#[must_use]
pub fn wrong_proof() -> Vec<u8> {
    let mut payload = vec![1]; // ClientHandshake::Auth
    payload.extend_from_slice(&[0; 32]);
    frame(&payload)
}

/// Splits what a connection received into frame payloads.
///
/// # Panics
///
/// When the bytes end inside a frame.
#[must_use]
pub fn split_frames(mut bytes: &[u8]) -> Vec<Vec<u8>> {
    let mut frames = Vec::new();
    while !bytes.is_empty() {
        assert!(bytes.len() >= 4, "a partial frame header: {bytes:?}");
        let len = u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]) as usize;
        assert!(bytes.len() >= 4 + len, "a partial frame: {bytes:?}");
        frames.push(bytes[4..4 + len].to_vec());
        bytes = &bytes[4 + len..];
    }
    frames
}

/// `ServerHandshake::Challenge { version, server_nonce, server_proof }`.
#[must_use]
pub fn is_challenge(payload: &[u8]) -> bool {
    payload.first() == Some(&0) && payload.len() == 1 + varint(PROTOCOL_VERSION).len() + 64
}

/// `ServerHandshake::AuthResult(AuthResult::Err(AuthFailure { code: BadProof, .. }))`.
#[must_use]
pub fn is_bad_proof_rejection(payload: &[u8]) -> bool {
    payload.starts_with(&[1, 1, 0])
}
