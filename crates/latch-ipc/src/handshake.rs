//! The mutual handshake, and its wire messages.
//!
//! ```text
//! C→S  Hello     { magic, version, client_nonce }
//! S→C  Challenge { version, server_nonce, server_proof }
//!        server_proof = HMAC-SHA256(token, "latch/1/server" ‖ client_nonce ‖ server_nonce)
//!      the client checks server_proof before it sends anything else
//! C→S  Auth      { client_proof }
//!        client_proof = HMAC-SHA256(token, "latch/1/client" ‖ server_nonce ‖ client_nonce)
//!      the daemon compares it in constant time
//! S→C  AuthResult::Ok | AuthResult::Err { code, message }
//! ```
//!
//! A daemon that does not accept the client's protocol version answers `Hello` with
//! `AuthResult::Err` (code [`RejectCode::IncompatibleVersion`]) instead of a challenge.
//! The token never crosses the socket, and both nonces are fresh, so a replayed or
//! relayed handshake fails.
//!
//! # Wire format: frozen
//!
//! [`ClientHandshake`], [`ServerHandshake`] and everything inside them are postcard-encoded
//! and **frozen**: their fields, variants and order never change, whatever the protocol
//! version, so that any client and any daemon can always read each other's handshake and
//! report a version mismatch. A change here is a new magic, not a new version.

use std::fmt;
use std::time::Duration;

use hmac::{Hmac, KeyInit, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use subtle::ConstantTimeEq;
use tokio::io::{AsyncRead, AsyncWrite};
use zeroize::Zeroizing;

use crate::frame::{FrameError, FrameReader, FrameWriter};
use crate::token::{SessionToken, fill_random};

/// The first four bytes of every `Hello`.
pub const MAGIC: [u8; 4] = *b"LTCH";
/// Domain-separation prefix of the daemon's proof.
pub const SERVER_DOMAIN: &[u8] = b"latch/1/server";
/// Domain-separation prefix of the client's proof.
pub const CLIENT_DOMAIN: &[u8] = b"latch/1/client";
/// Deadline for the whole handshake unless configured otherwise.
pub const DEFAULT_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);
/// Longest `AuthResult` message a daemon sends (it must fit a pre-auth frame).
const MAX_REASON_LEN: usize = 160;

/// A 32-byte nonce.
pub type Nonce = [u8; 32];
/// A 32-byte HMAC-SHA256 proof.
pub type Proof = [u8; 32];

/// Decides whether a client's protocol version and the daemon's can talk:
/// `rule(client_version, daemon_version)`.
pub type VersionRule = fn(u32, u32) -> bool;

/// The default [`VersionRule`]: the versions must be equal.
pub fn same_version(client: u32, daemon: u32) -> bool {
    client == daemon
}

/// Frames a client sends during the handshake. Frozen wire format.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ClientHandshake {
    /// The first frame.
    Hello(Hello),
    /// The answer to a [`Challenge`].
    Auth(Auth),
}

/// The client's first frame. Frozen wire format.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hello {
    /// Always [`MAGIC`].
    pub magic: [u8; 4],
    /// The client's protocol version.
    pub version: u32,
    /// A fresh random nonce.
    pub client_nonce: Nonce,
}

/// The client's proof. Frozen wire format.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Auth {
    /// `HMAC-SHA256(token, "latch/1/client" ‖ server_nonce ‖ client_nonce)`.
    pub client_proof: Proof,
}

/// Frames a daemon sends during the handshake. Frozen wire format.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ServerHandshake {
    /// The answer to a [`Hello`].
    Challenge(Challenge),
    /// The verdict.
    AuthResult(AuthResult),
}

/// The daemon's challenge and proof. Frozen wire format.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Challenge {
    /// The daemon's protocol version.
    pub version: u32,
    /// A fresh random nonce.
    pub server_nonce: Nonce,
    /// `HMAC-SHA256(token, "latch/1/server" ‖ client_nonce ‖ server_nonce)`.
    pub server_proof: Proof,
}

/// The handshake's verdict. Frozen wire format.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum AuthResult {
    /// Authenticated: what follows are the caller's message frames.
    Ok,
    /// Refused; the daemon closes the connection after sending this.
    Err(AuthFailure),
}

/// Why the daemon refused a handshake. Frozen wire format.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuthFailure {
    /// The reason, for programs.
    pub code: RejectCode,
    /// The reason, for people.
    pub message: String,
}

/// Reason codes of [`AuthFailure`]. Frozen wire format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum RejectCode {
    /// The client's proof is wrong: it does not hold this daemon's session token.
    BadProof,
    /// The client's protocol version is not accepted; the message names both versions.
    IncompatibleVersion,
    /// The daemon holds as many authenticated connections as it allows.
    Busy,
}

impl fmt::Debug for ClientHandshake {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Hello(hello) => f.debug_tuple("Hello").field(hello).finish(),
            Self::Auth(auth) => f.debug_tuple("Auth").field(auth).finish(),
        }
    }
}

impl fmt::Debug for Hello {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Hello")
            .field("magic", &self.magic)
            .field("version", &self.version)
            .field("client_nonce", &"<32 bytes>")
            .finish()
    }
}

impl fmt::Debug for Auth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Auth")
            .field("client_proof", &"<redacted>")
            .finish()
    }
}

impl fmt::Debug for ServerHandshake {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Challenge(challenge) => f.debug_tuple("Challenge").field(challenge).finish(),
            Self::AuthResult(result) => f.debug_tuple("AuthResult").field(result).finish(),
        }
    }
}

impl fmt::Debug for Challenge {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Challenge")
            .field("version", &self.version)
            .field("server_nonce", &"<32 bytes>")
            .field("server_proof", &"<redacted>")
            .finish()
    }
}

/// Why a handshake failed, on either side. The messages carry no token, nonce, proof or
/// payload byte: only reasons and lengths.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HandshakeError {
    /// The whole handshake did not finish within its deadline.
    #[error("the handshake did not finish within {0:?}")]
    Timeout(Duration),
    /// The peer closed the connection before the handshake finished.
    #[error("the peer closed the connection during the handshake")]
    Closed,
    /// A handshake frame was too long, truncated, undecodable, or the socket failed.
    #[error("bad handshake frame: {0}")]
    Frame(#[from] FrameError),
    /// A frame decoded, but is not the message expected at this step.
    #[error("expected {expected} during the handshake, got another message")]
    Unexpected {
        /// The message that was expected.
        expected: &'static str,
    },
    /// The `Hello` does not start with [`MAGIC`]: the peer does not speak latch.
    #[error("the first frame does not carry the latch magic")]
    BadMagic,
    /// The versions are incompatible under the rule in force.
    #[error("client speaks protocol {client}, daemon speaks {daemon}")]
    IncompatibleVersion {
        /// The client's protocol version.
        client: u32,
        /// The daemon's protocol version.
        daemon: u32,
    },
    /// (Daemon side.) The client's proof is wrong.
    #[error("the client's proof does not match the session token")]
    BadProof,
    /// (Daemon side.) Every pre-authentication slot was taken and this was the oldest
    /// handshake: it was closed to make room for a newer connection.
    #[error("closed to make room: the oldest of too many connections in their handshake")]
    Evicted,
    /// (Daemon side.) No authenticated slot is free.
    #[error("no authenticated connection slot is free (limit {limit})")]
    Busy {
        /// The limit on authenticated connections.
        limit: usize,
    },
    /// (Client side.) The daemon's proof is wrong.
    #[error("the daemon could not prove it holds the session token: impostor or stale daemon")]
    ServerImpostor,
    /// (Client side.) The daemon refused the handshake.
    #[error("the daemon refused the handshake: {message}")]
    Rejected {
        /// The daemon's reason code.
        code: RejectCode,
        /// The daemon's reason.
        message: String,
    },
    /// The OS random source failed.
    #[error("cannot get random bytes from the OS: {0}")]
    Random(#[source] rand::rngs::SysError),
}

/// `HMAC-SHA256(token, "latch/1/server" ‖ client_nonce ‖ server_nonce)`.
pub fn server_proof(token: &SessionToken, client_nonce: &Nonce, server_nonce: &Nonce) -> Proof {
    hmac_sha256(token, SERVER_DOMAIN, client_nonce, server_nonce)
}

/// `HMAC-SHA256(token, "latch/1/client" ‖ server_nonce ‖ client_nonce)`.
pub fn client_proof(token: &SessionToken, server_nonce: &Nonce, client_nonce: &Nonce) -> Proof {
    hmac_sha256(token, CLIENT_DOMAIN, server_nonce, client_nonce)
}

fn hmac_sha256(token: &SessionToken, domain: &[u8], first: &Nonce, second: &Nonce) -> Proof {
    // HMAC pads a key shorter than the hash's block (64 bytes) with zeros, so the padded
    // key gives the same MAC as the 32-byte token, through the infallible constructor.
    let mut key = Zeroizing::new([0u8; 64]);
    key[..SessionToken::LEN].copy_from_slice(token.as_bytes());
    let mut mac = <Hmac<Sha256> as KeyInit>::new(&(*key).into());
    mac.update(domain);
    mac.update(first);
    mac.update(second);
    mac.finalize().into_bytes().into()
}

fn proofs_match(expected: &Proof, received: &Proof) -> bool {
    expected.ct_eq(received).into()
}

fn random_nonce() -> Result<Nonce, HandshakeError> {
    let mut nonce = [0u8; 32];
    fill_random(&mut nonce).map_err(HandshakeError::Random)?;
    Ok(nonce)
}

/// What the daemon side of the handshake needs.
#[derive(Debug, Clone, Copy)]
pub struct ServerParams<'a> {
    /// The session token.
    pub token: &'a SessionToken,
    /// The daemon's protocol version.
    pub version: u32,
    /// Which client versions are accepted.
    pub version_rule: VersionRule,
}

/// What the client side of the handshake needs.
#[derive(Debug, Clone, Copy)]
pub struct ClientParams<'a> {
    /// The session token read from the token file.
    pub token: &'a SessionToken,
    /// The client's protocol version.
    pub version: u32,
    /// Which daemon versions are accepted.
    pub version_rule: VersionRule,
}

async fn read_message<R, T>(reader: &mut FrameReader<R>) -> Result<T, HandshakeError>
where
    R: AsyncRead + Unpin,
    T: serde::de::DeserializeOwned,
{
    reader.next_message().await?.ok_or(HandshakeError::Closed)
}

fn reason(message: String) -> String {
    let mut message = message;
    if message.len() > MAX_REASON_LEN {
        let mut end = MAX_REASON_LEN;
        while !message.is_char_boundary(end) {
            end -= 1;
        }
        message.truncate(end);
    }
    message
}

/// Sends `AuthResult::Err` (best effort: the connection is closed right after anyway).
pub async fn send_rejection<W: AsyncWrite + Unpin>(
    writer: &mut FrameWriter<W>,
    code: RejectCode,
    message: String,
) {
    let verdict = ServerHandshake::AuthResult(AuthResult::Err(AuthFailure {
        code,
        message: reason(message),
    }));
    let _ = writer.send_message(&verdict).await;
}

/// Runs the daemon side up to and including the check of the client's proof. On success
/// the caller sends the verdict (`AuthResult::Ok`, or a rejection such as
/// [`RejectCode::Busy`]); on failure the rejection, if any is due, has been sent.
/// Returns the client's protocol version.
///
/// It reads at most two frames, each bounded by the reader's limit, and never panics on
/// anything the peer sends. The caller puts it under the handshake deadline.
pub async fn server_handshake<R, W>(
    reader: &mut FrameReader<R>,
    writer: &mut FrameWriter<W>,
    params: &ServerParams<'_>,
) -> Result<u32, HandshakeError>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let ClientHandshake::Hello(hello) = read_message(reader).await? else {
        return Err(HandshakeError::Unexpected { expected: "Hello" });
    };
    if hello.magic != MAGIC {
        return Err(HandshakeError::BadMagic);
    }
    if !(params.version_rule)(hello.version, params.version) {
        let err = HandshakeError::IncompatibleVersion {
            client: hello.version,
            daemon: params.version,
        };
        send_rejection(writer, RejectCode::IncompatibleVersion, err.to_string()).await;
        return Err(err);
    }
    let server_nonce = random_nonce()?;
    let challenge = Challenge {
        version: params.version,
        server_nonce,
        server_proof: server_proof(params.token, &hello.client_nonce, &server_nonce),
    };
    writer
        .send_message(&ServerHandshake::Challenge(challenge))
        .await?;
    let ClientHandshake::Auth(auth) = read_message(reader).await? else {
        return Err(HandshakeError::Unexpected { expected: "Auth" });
    };
    let expected = client_proof(params.token, &server_nonce, &hello.client_nonce);
    if !proofs_match(&expected, &auth.client_proof) {
        send_rejection(
            writer,
            RejectCode::BadProof,
            "wrong proof: this client does not hold the daemon's session token".to_owned(),
        )
        .await;
        return Err(HandshakeError::BadProof);
    }
    Ok(hello.version)
}

/// Runs the client side of the handshake. The daemon's proof is checked before the
/// client sends its own; a daemon that cannot prove it holds the token gets nothing more.
/// Returns the daemon's protocol version.
pub async fn client_handshake<R, W>(
    reader: &mut FrameReader<R>,
    writer: &mut FrameWriter<W>,
    params: &ClientParams<'_>,
) -> Result<u32, HandshakeError>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let client_nonce = random_nonce()?;
    let hello = ClientHandshake::Hello(Hello {
        magic: MAGIC,
        version: params.version,
        client_nonce,
    });
    writer.send_message(&hello).await?;
    let challenge = match read_message(reader).await? {
        ServerHandshake::Challenge(challenge) => challenge,
        ServerHandshake::AuthResult(AuthResult::Err(failure)) => {
            return Err(HandshakeError::Rejected {
                code: failure.code,
                message: failure.message,
            });
        }
        ServerHandshake::AuthResult(AuthResult::Ok) => {
            return Err(HandshakeError::Unexpected {
                expected: "Challenge",
            });
        }
    };
    let expected = server_proof(params.token, &client_nonce, &challenge.server_nonce);
    if !proofs_match(&expected, &challenge.server_proof) {
        return Err(HandshakeError::ServerImpostor);
    }
    if !(params.version_rule)(params.version, challenge.version) {
        return Err(HandshakeError::IncompatibleVersion {
            client: params.version,
            daemon: challenge.version,
        });
    }
    let auth = ClientHandshake::Auth(Auth {
        client_proof: client_proof(params.token, &challenge.server_nonce, &client_nonce),
    });
    writer.send_message(&auth).await?;
    match read_message(reader).await? {
        ServerHandshake::AuthResult(AuthResult::Ok) => Ok(challenge.version),
        ServerHandshake::AuthResult(AuthResult::Err(failure)) => Err(HandshakeError::Rejected {
            code: failure.code,
            message: failure.message,
        }),
        ServerHandshake::Challenge(_) => Err(HandshakeError::Unexpected {
            expected: "AuthResult",
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::PRE_AUTH_MAX_FRAME;

    #[test]
    fn padded_key_hmac_equals_the_plain_hmac() {
        let token = SessionToken::from_bytes(core::array::from_fn(|i| i as u8));
        let (a, b) = ([1u8; 32], [2u8; 32]);
        let mut plain = <Hmac<Sha256> as KeyInit>::new_from_slice(token.as_bytes()).unwrap();
        plain.update(SERVER_DOMAIN);
        plain.update(&a);
        plain.update(&b);
        let plain: Proof = plain.finalize().into_bytes().into();
        assert_eq!(server_proof(&token, &a, &b), plain);
        // The two directions are domain-separated and order-sensitive.
        assert_ne!(server_proof(&token, &a, &b), client_proof(&token, &a, &b));
        assert_ne!(client_proof(&token, &a, &b), client_proof(&token, &b, &a));
    }

    #[test]
    fn handshake_frames_fit_the_pre_auth_limit() {
        let hello = ClientHandshake::Hello(Hello {
            magic: MAGIC,
            version: u32::MAX,
            client_nonce: [0xff; 32],
        });
        let challenge = ServerHandshake::Challenge(Challenge {
            version: u32::MAX,
            server_nonce: [0xff; 32],
            server_proof: [0xff; 32],
        });
        let rejection = ServerHandshake::AuthResult(AuthResult::Err(AuthFailure {
            code: RejectCode::IncompatibleVersion,
            message: reason("é".repeat(500)),
        }));
        for len in [
            postcard::to_stdvec(&hello).unwrap().len(),
            postcard::to_stdvec(&challenge).unwrap().len(),
            postcard::to_stdvec(&rejection).unwrap().len(),
        ] {
            assert!(len <= PRE_AUTH_MAX_FRAME, "{len}");
        }
    }

    #[test]
    fn debug_output_hides_nonces_and_proofs() {
        let auth = ClientHandshake::Auth(Auth {
            client_proof: [0xab; 32],
        });
        let challenge = ServerHandshake::Challenge(Challenge {
            version: 1,
            server_nonce: [0xcd; 32],
            server_proof: [0xef; 32],
        });
        let shown = format!("{auth:?} {challenge:?}");
        for secret in ["171", "205", "239", "ab", "cd", "ef"] {
            assert!(!shown.contains(secret), "{shown}");
        }
    }

    #[test]
    fn the_wire_layout_of_hello_is_frozen() {
        let hello = ClientHandshake::Hello(Hello {
            magic: MAGIC,
            version: 3,
            client_nonce: [9; 32],
        });
        let bytes = postcard::to_stdvec(&hello).unwrap();
        let mut expected = vec![0u8, b'L', b'T', b'C', b'H', 3];
        expected.extend_from_slice(&[9; 32]);
        assert_eq!(bytes, expected);
    }
}
