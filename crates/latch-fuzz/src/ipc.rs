//! The socket's byte stream: the frame decoder and the daemon side of the handshake.

use std::cell::RefCell;
use std::io;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};

use latch_daemon::DaemonFrame;
use latch_ipc::frame::{
    self, FrameError, FrameReader, FrameWriter, LENGTH_PREFIX_LEN, MAX_FRAME, PRE_AUTH_MAX_FRAME,
};
use latch_ipc::handshake::{
    Auth, AuthResult, ClientHandshake, HandshakeError, Hello, MAGIC, RejectCode, ServerHandshake,
    ServerParams, VersionRule, client_proof, same_version, server_handshake, server_proof,
};
use latch_ipc::token::SessionToken;
use latch_protocol::{RequestFrame, ServerFrame};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::{must, run_ready};

/// How a well-behaved decoder must end a stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum End {
    Clean,
    TooLarge,
    /// Bytes of the unfinished frame after its header (all of them if the header is short).
    Truncated(usize),
}

/// The frames of `wire` under `max`, decoded the obvious way: what `FrameReader` must agree
/// with, however the bytes arrive.
fn reference_frames(wire: &[u8], max: usize) -> (Vec<&[u8]>, End) {
    let mut frames = Vec::new();
    let mut rest = wire;
    loop {
        if rest.is_empty() {
            return (frames, End::Clean);
        }
        let Some((header, body)) = rest.split_first_chunk::<LENGTH_PREFIX_LEN>() else {
            return (frames, End::Truncated(rest.len()));
        };
        let len = u32::from_be_bytes(*header) as usize;
        if len > max {
            return (frames, End::TooLarge);
        }
        let Some((payload, after)) = body.split_at_checked(len) else {
            return (frames, End::Truncated(body.len()));
        };
        frames.push(payload);
        rest = after;
    }
}

/// A byte stream that hands out at most `chunk` bytes per read (all of them for 0).
struct Chunked<'a> {
    data: &'a [u8],
    chunk: usize,
}

impl AsyncRead for Chunked<'_> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let limit = if self.chunk == 0 {
            usize::MAX
        } else {
            self.chunk
        };
        let n = self.data.len().min(buf.remaining()).min(limit);
        let (now, later) = self.data.split_at(n);
        buf.put_slice(now);
        self.data = later;
        Poll::Ready(Ok(()))
    }
}

/// Frame decoder: `data[0]` picks the limit (bits 0–1: 256 B, 1 MiB, 16 B, 0 B) and how
/// many bytes each read returns (bits 2–7, 0 for all); the rest is the byte stream.
///
/// The frames and the way the stream ends must match a plain reference decoder, every frame
/// must be within the limit, writing the frames back must give the same bytes, and
/// every payload is tried as each message type that crosses the socket: whatever
/// decodes must survive an encode/decode round trip.
pub fn frame_decoder(data: &[u8]) {
    let Some((&control, wire)) = data.split_first() else {
        return;
    };
    let max = match control & 3 {
        0 => PRE_AUTH_MAX_FRAME,
        1 => MAX_FRAME,
        2 => 16,
        _ => 0,
    };
    let chunk = usize::from(control >> 2);
    let (expected, expected_end) = reference_frames(wire, max);

    let mut reader = FrameReader::new(Chunked { data: wire, chunk }, max);
    let mut frames = Vec::new();
    let end = run_ready(async {
        loop {
            match reader.next_frame().await {
                Ok(Some(frame)) => frames.push(frame),
                Ok(None) => return End::Clean,
                Err(FrameError::TooLarge { max: m }) => {
                    assert_eq!(m, max, "the error names another limit");
                    return End::TooLarge;
                }
                Err(FrameError::Truncated { buffered }) => return End::Truncated(buffered),
                Err(other) => panic!("unexpected decoder error: {other}"),
            }
        }
    });
    assert_eq!(end, expected_end, "the stream ended differently");
    assert_eq!(frames.len(), expected.len(), "a different number of frames");
    for (got, want) in frames.iter().zip(&expected) {
        assert!(got.len() <= max, "a frame over the limit");
        assert_eq!(&got[..], *want, "a frame's payload differs");
    }

    // Writing the frames back gives the bytes they came from.
    let mut out = Vec::new();
    let mut writer = FrameWriter::new(&mut out, max);
    for frame in &frames {
        must(writer.queue(frame), "queue a frame that was read");
    }
    must(run_ready(writer.flush()), "write to memory");
    assert_eq!(out, wire[..out.len()], "re-framed bytes differ");

    for payload in &expected {
        check_payload(payload);
    }
}

/// Every message type a frame can carry: decode, and round-trip what decodes.
fn check_payload(payload: &[u8]) {
    if let Ok(message) = frame::decode::<ClientHandshake>(payload) {
        let bytes = must(frame::encode(&message, MAX_FRAME), "encode ClientHandshake");
        assert!(
            must(
                frame::decode::<ClientHandshake>(&bytes),
                "decode ClientHandshake"
            ) == message,
            "ClientHandshake round trip"
        );
    }
    if let Ok(message) = frame::decode::<ServerHandshake>(payload) {
        let bytes = must(frame::encode(&message, MAX_FRAME), "encode ServerHandshake");
        assert!(
            must(
                frame::decode::<ServerHandshake>(&bytes),
                "decode ServerHandshake"
            ) == message,
            "ServerHandshake round trip"
        );
    }
    match RequestFrame::decode(payload) {
        Ok(request) => {
            let bytes = must(request.encode(), "encode RequestFrame");
            assert_eq!(
                must(RequestFrame::decode(&bytes), "decode RequestFrame"),
                request,
                "RequestFrame round trip"
            );
            assert_eq!(RequestFrame::peek_id(payload), Some(request.id));
        }
        Err(e) => {
            // An answerable error answers with a frame that decodes.
            if let Some(reply) = e.reply() {
                let bytes = must(reply.encode(), "encode a reply");
                assert_eq!(
                    must(ServerFrame::decode(&bytes), "decode a reply"),
                    reply,
                    "reply round trip"
                );
            }
            let _ = e.api_error();
        }
    }
    // The daemon's envelope and the protocol's server frame are the same bytes.
    let protocol = ServerFrame::decode(payload);
    let daemon = frame::decode::<DaemonFrame>(payload);
    assert_eq!(
        protocol.is_ok(),
        daemon.is_ok(),
        "the daemon's envelope and the protocol's server frame disagree: {protocol:?}"
    );
    if let (Ok(protocol), Ok(daemon)) = (protocol, daemon) {
        let a = must(protocol.encode(), "encode ServerFrame");
        let b = must(frame::encode(&daemon, usize::MAX), "encode DaemonFrame");
        assert_eq!(a, b, "the two server frames encode differently");
        assert_eq!(
            must(ServerFrame::decode(&a), "decode ServerFrame"),
            protocol,
            "ServerFrame round trip"
        );
    }
}

/// The daemon's session token in the handshake target.
pub(crate) const TOKEN: [u8; 32] = [0x5a; 32];
/// The daemon's protocol version in the handshake target.
const VERSION: u32 = 1;

/// What the server writes, shared with the scripted client that reads it.
#[derive(Clone, Default)]
struct Wire(Rc<RefCell<Vec<u8>>>);

impl AsyncWrite for Wire {
    fn poll_write(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.0.borrow_mut().extend_from_slice(buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

/// The client side of the handshake target: sends the fuzzer's bytes, then, if told to
/// and the bytes were exactly one `Hello` frame, answers the server's challenge with the
/// right proof (as a client holding the token would), then ends the stream.
struct Script<'a> {
    input: &'a [u8],
    answer_with: Option<Hello>,
    server_out: Wire,
    token: SessionToken,
    pending: Vec<u8>,
    answered: bool,
}

impl AsyncRead for Script<'_> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if !self.input.is_empty() {
            let n = self.input.len().min(buf.remaining());
            let (now, later) = self.input.split_at(n);
            buf.put_slice(now);
            self.input = later;
            return Poll::Ready(Ok(()));
        }
        let challenge = if self.answered {
            None
        } else {
            let written = self.server_out.0.borrow().clone();
            challenges(&written).next()
        };
        if let Some(hello) = self.answer_with.clone()
            && let Some(challenge) = challenge
        {
            let proof = client_proof(&self.token, &challenge.server_nonce, &hello.client_nonce);
            let auth = ClientHandshake::Auth(Auth {
                client_proof: proof,
            });
            let payload = must(frame::encode(&auth, PRE_AUTH_MAX_FRAME), "encode Auth");
            let len = must(u32::try_from(payload.len()), "Auth length");
            self.pending.extend_from_slice(&len.to_be_bytes());
            self.pending.extend_from_slice(&payload);
            self.answered = true;
        }
        let n = self.pending.len().min(buf.remaining());
        buf.put_slice(&self.pending[..n]);
        self.pending.drain(..n);
        Poll::Ready(Ok(()))
    }
}

/// The server's handshake messages in `wire`; panics on anything else.
fn server_messages(wire: &[u8]) -> Vec<ServerHandshake> {
    let (frames, end) = reference_frames(wire, PRE_AUTH_MAX_FRAME);
    assert_eq!(
        end,
        End::Clean,
        "the server wrote a broken or oversized frame"
    );
    frames
        .into_iter()
        .map(|f| must(frame::decode::<ServerHandshake>(f), "decode a server frame"))
        .collect()
}

fn challenges(wire: &[u8]) -> impl Iterator<Item = latch_ipc::handshake::Challenge> {
    server_messages(wire).into_iter().filter_map(|m| match m {
        ServerHandshake::Challenge(c) => Some(c),
        ServerHandshake::AuthResult(_) => None,
    })
}

fn any_version(_client: u32, _daemon: u32) -> bool {
    true
}

/// The daemon side of the handshake: `data[0]` bit 0 accepts any client version (else
/// only the daemon's), bit 1 has the scripted client answer the challenge correctly;
/// the rest is what the client sends.
///
/// Whatever arrives, the server returns (no hang, no panic), writes only well-formed
/// pre-authentication frames, proves the token correctly in its challenge, and
/// authenticates exactly when the client proved the token.
pub fn handshake_server(data: &[u8]) {
    let _ = handshake_outcome(data);
}

/// [`handshake_server`], returning what the server's handshake returned.
fn handshake_outcome(data: &[u8]) -> Option<Result<u32, HandshakeError>> {
    let (&control, input) = data.split_first()?;
    let rule: VersionRule = if control & 1 == 0 {
        same_version
    } else {
        any_version
    };
    let token = SessionToken::from_bytes(TOKEN);
    // The Hello the server will read, if the input is exactly one frame holding one.
    let (frames, end) = reference_frames(input, PRE_AUTH_MAX_FRAME);
    let only_hello = match (frames.as_slice(), end) {
        ([one], End::Clean) => match frame::decode::<ClientHandshake>(one) {
            Ok(ClientHandshake::Hello(hello)) => Some(hello),
            _ => None,
        },
        _ => None,
    };
    let first_hello = frames
        .first()
        .and_then(|f| match frame::decode::<ClientHandshake>(f) {
            Ok(ClientHandshake::Hello(hello)) => Some(hello),
            _ => None,
        });

    let server_out = Wire::default();
    let script = Script {
        input,
        answer_with: if control & 2 == 0 {
            None
        } else {
            only_hello.clone()
        },
        server_out: server_out.clone(),
        token: SessionToken::from_bytes(TOKEN),
        pending: Vec::new(),
        answered: false,
    };
    let mut reader = FrameReader::new(script, PRE_AUTH_MAX_FRAME);
    let mut writer = FrameWriter::new(server_out.clone(), PRE_AUTH_MAX_FRAME);
    let params = ServerParams {
        token: &token,
        version: VERSION,
        version_rule: rule,
    };
    let result = run_ready(server_handshake(&mut reader, &mut writer, &params));
    let (script, _) = reader.into_parts();
    let written = server_out.0.borrow().clone();
    let messages = server_messages(&written);

    assert!(messages.len() <= 2, "more than two handshake frames");
    for message in &messages {
        match message {
            ServerHandshake::Challenge(challenge) => {
                let hello = first_hello
                    .as_ref()
                    .unwrap_or_else(|| panic!("a challenge without a Hello"));
                assert_eq!(challenge.version, VERSION);
                assert!(
                    challenge.server_proof
                        == server_proof(&token, &hello.client_nonce, &challenge.server_nonce),
                    "the server's proof is wrong"
                );
            }
            ServerHandshake::AuthResult(AuthResult::Ok) => {
                panic!("server_handshake sends the verdict Ok itself")
            }
            ServerHandshake::AuthResult(AuthResult::Err(failure)) => {
                assert!(failure.message.len() <= 160, "an over-long reason");
            }
        }
    }

    let accepted = only_hello
        .as_ref()
        .is_some_and(|h| h.magic == MAGIC && rule(h.version, VERSION));
    match &result {
        Ok(version) => {
            assert!(script.answered, "authenticated without the token");
            let hello = first_hello
                .as_ref()
                .unwrap_or_else(|| panic!("authenticated without a Hello"));
            assert_eq!(*version, hello.version);
        }
        Err(e) => {
            assert!(
                !script.answered,
                "the right proof was refused: {e} (server wrote {messages:?})"
            );
            assert!(
                !(accepted && control & 2 != 0),
                "a valid Hello got no challenge: {e}"
            );
            if let HandshakeError::IncompatibleVersion { .. } | HandshakeError::BadProof = e {
                let code = match messages.last() {
                    Some(ServerHandshake::AuthResult(AuthResult::Err(f))) => f.code,
                    other => panic!("a refusal without its verdict: {other:?}"),
                };
                assert!(matches!(
                    code,
                    RejectCode::IncompatibleVersion | RejectCode::BadProof
                ));
            }
        }
    }
    Some(result)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::seeds::seeds;

    fn seed(name: &str) -> Vec<u8> {
        seeds()
            .into_iter()
            .find(|(t, n, _)| *t == "handshake_server" && *n == name)
            .map(|(_, _, bytes)| bytes)
            .unwrap_or_else(|| panic!("no seed {name}"))
    }

    #[test]
    fn the_seeds_reach_every_verdict() {
        assert!(matches!(
            handshake_outcome(&seed("hello-answered")),
            Some(Ok(1))
        ));
        assert!(matches!(
            handshake_outcome(&seed("hello-any-version-answered")),
            Some(Ok(7))
        ));
        assert!(matches!(
            handshake_outcome(&seed("hello-wrong-proof")),
            Some(Err(HandshakeError::BadProof))
        ));
        assert!(matches!(
            handshake_outcome(&seed("hello-new-version")),
            Some(Err(HandshakeError::IncompatibleVersion {
                client: 2,
                daemon: 1
            }))
        ));
        assert!(matches!(
            handshake_outcome(&seed("bad-magic")),
            Some(Err(HandshakeError::BadMagic))
        ));
        assert!(matches!(
            handshake_outcome(&seed("auth-first")),
            Some(Err(HandshakeError::Unexpected { .. }))
        ));
    }

    #[test]
    fn the_reference_decoder_matches_the_documented_cases() {
        assert_eq!(
            reference_frames(&[0, 0, 0, 9, 1, 2], 256).1,
            End::Truncated(2)
        );
        assert_eq!(reference_frames(&[0, 0, 0, 9], 256).1, End::Truncated(0));
        assert_eq!(reference_frames(&[0, 0], 256).1, End::Truncated(2));
        assert_eq!(reference_frames(&[0, 0, 1, 1], 256).1, End::TooLarge);
        let (frames, end) = reference_frames(&[0, 0, 0, 1, 7, 0, 0, 0, 0], 256);
        assert_eq!((frames, end), (vec![&[7u8][..], &[][..]], End::Clean));
    }
}
