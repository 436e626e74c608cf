//! Framing: a 4-byte big-endian length, then a postcard payload.
//!
//! Lengths are checked against the current limit from the 4-byte header alone, before any
//! buffer is reserved for the payload (tokio-util's [`LengthDelimitedCodec`] does that
//! check first), so a peer announcing 4 GiB costs nothing. The limit is
//! [`PRE_AUTH_MAX_FRAME`] until the handshake succeeds and [`MAX_FRAME`] after.
//!
//! A payload must decode to exactly one message: trailing bytes are an error
//! ([`decode`] uses `postcard::take_from_bytes` and checks the remainder).

use std::io;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio_util::codec::{Decoder, Encoder, LengthDelimitedCodec, LengthDelimitedCodecError};

/// Largest frame payload accepted before the handshake succeeds.
pub const PRE_AUTH_MAX_FRAME: usize = 256;
/// Largest frame payload accepted after the handshake (1 MiB).
pub const MAX_FRAME: usize = 1024 * 1024;
/// Size of the length prefix.
pub const LENGTH_PREFIX_LEN: usize = 4;

/// Initial buffer for an encoded message: room for a validation answer (a user summary)
/// without growing.
const ENCODE_CAPACITY: usize = 256;
/// Most bytes asked of the socket in one read.
const READ_CHUNK: usize = 8 * 1024;
/// Queued output is written once it reaches this size.
pub(crate) const WRITE_BATCH: usize = 64 * 1024;

/// Errors reading, writing, encoding or decoding frames.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FrameError {
    /// A frame's length is over the current limit.
    #[error("frame longer than the {max}-byte limit")]
    TooLarge {
        /// The limit in force.
        max: usize,
    },
    /// The peer closed the connection in the middle of a frame.
    #[error("connection closed in the middle of a frame ({buffered} bytes buffered)")]
    Truncated {
        /// How many bytes of the unfinished frame (after its header, if that was complete)
        /// had arrived.
        buffered: usize,
    },
    /// The payload is not a valid message.
    #[error("frame does not decode: {0}")]
    Decode(#[source] postcard::Error),
    /// The payload holds a valid message followed by extra bytes.
    #[error("frame has {0} trailing bytes after its message")]
    TrailingBytes(usize),
    /// A message could not be encoded.
    #[error("message does not encode: {0}")]
    Encode(#[source] postcard::Error),
    /// The socket failed.
    #[error("socket error: {0}")]
    Io(#[source] io::Error),
    /// A frame the peer started was not complete within the stall deadline.
    #[error("a frame was not completed within {after:?} ({buffered} bytes of it arrived)")]
    Stalled {
        /// The deadline.
        after: Duration,
        /// How many bytes of the unfinished frame had arrived.
        buffered: usize,
    },
}

impl FrameError {
    fn from_codec(err: io::Error, max: usize) -> Self {
        let too_large =
            matches!(err.get_ref(), Some(inner) if inner.is::<LengthDelimitedCodecError>());
        if too_large {
            Self::TooLarge { max }
        } else {
            Self::Io(err)
        }
    }
}

/// A length-delimited codec with a 4-byte big-endian length and the given payload limit.
pub fn codec(max_frame_length: usize) -> LengthDelimitedCodec {
    LengthDelimitedCodec::builder()
        .length_field_type::<u32>()
        .big_endian()
        .max_frame_length(max_frame_length)
        .new_codec()
}

/// Decodes one message from a frame payload; trailing bytes are an error.
pub fn decode<T: DeserializeOwned>(payload: &[u8]) -> Result<T, FrameError> {
    let (value, rest) = postcard::take_from_bytes::<T>(payload).map_err(FrameError::Decode)?;
    if rest.is_empty() {
        Ok(value)
    } else {
        Err(FrameError::TrailingBytes(rest.len()))
    }
}

/// Encodes one message as a frame payload, refusing one longer than `max`.
pub fn encode<T: Serialize + ?Sized>(message: &T, max: usize) -> Result<Bytes, FrameError> {
    // Most messages are small: one allocation instead of a few doublings.
    let payload = postcard::to_extend(message, Vec::with_capacity(ENCODE_CAPACITY))
        .map_err(FrameError::Encode)?;
    if payload.len() > max {
        return Err(FrameError::TooLarge { max });
    }
    Ok(Bytes::from(payload))
}

/// Reads frames from a byte stream.
///
/// Memory is bounded by the frame limit: a read asks for at most 8 KiB more than a
/// partial frame, and a frame's buffer is reserved only after its length passed the check.
/// With a stall deadline ([`FrameReader::with_stall_deadline`]), a frame whose first
/// byte has arrived must be complete within it. [`FrameReader::next_frame`] is
/// cancel-safe.
#[derive(Debug)]
pub struct FrameReader<R> {
    io: R,
    codec: LengthDelimitedCodec,
    buf: BytesMut,
    eof: bool,
    /// The codec has consumed a frame's header and waits for its payload.
    in_frame: bool,
    /// How long a started frame may take to complete.
    stall: Option<Duration>,
    /// When the reader first waited for more of the current, started frame.
    frame_started: Option<tokio::time::Instant>,
}

impl<R: AsyncRead + Unpin> FrameReader<R> {
    /// A reader over `io` accepting payloads of at most `max_frame_length` bytes.
    pub fn new(io: R, max_frame_length: usize) -> Self {
        Self::with_buffer(io, BytesMut::new(), max_frame_length)
    }

    /// A reader over `io` that first decodes the bytes already in `buf` (bytes read past
    /// the end of an earlier phase of the connection).
    pub fn with_buffer(io: R, buf: BytesMut, max_frame_length: usize) -> Self {
        Self {
            io,
            codec: codec(max_frame_length),
            buf,
            eof: false,
            in_frame: false,
            stall: None,
            frame_started: None,
        }
    }

    /// A frame whose first byte has arrived must be complete within `after`, or
    /// [`FrameReader::next_frame`] fails with [`FrameError::Stalled`]. Waiting between
    /// frames has no deadline.
    #[must_use]
    pub fn with_stall_deadline(mut self, after: Duration) -> Self {
        self.stall = Some(after);
        self
    }

    /// The current payload limit.
    pub fn max_frame_length(&self) -> usize {
        self.codec.max_frame_length()
    }

    /// Changes the payload limit, from the next frame on.
    pub fn set_max_frame_length(&mut self, max_frame_length: usize) {
        self.codec.set_max_frame_length(max_frame_length);
    }

    /// The next frame's payload; `Ok(None)` on a clean end of stream.
    pub async fn next_frame(&mut self) -> Result<Option<BytesMut>, FrameError> {
        loop {
            let max = self.codec.max_frame_length();
            let before = self.buf.len();
            if let Some(frame) = self
                .codec
                .decode(&mut self.buf)
                .map_err(|e| FrameError::from_codec(e, max))?
            {
                self.in_frame = false;
                self.frame_started = None;
                return Ok(Some(frame));
            }
            if self.buf.len() < before {
                self.in_frame = true;
            }
            if self.eof {
                return if self.buf.is_empty() && !self.in_frame {
                    Ok(None)
                } else {
                    Err(FrameError::Truncated {
                        buffered: self.buf.len(),
                    })
                };
            }
            let chunk =
                (max.saturating_add(LENGTH_PREFIX_LEN)).clamp(LENGTH_PREFIX_LEN, READ_CHUNK);
            self.buf.reserve(chunk);
            let started = self.in_frame || !self.buf.is_empty();
            let read = match self.stall.filter(|_| started) {
                Some(after) => {
                    let since = *self
                        .frame_started
                        .get_or_insert_with(tokio::time::Instant::now);
                    let read = self.io.read_buf(&mut self.buf);
                    match tokio::time::timeout_at(since + after, read).await {
                        Ok(read) => read,
                        Err(_) => {
                            return Err(FrameError::Stalled {
                                after,
                                buffered: self.buf.len(),
                            });
                        }
                    }
                }
                None => self.io.read_buf(&mut self.buf).await,
            }
            .map_err(FrameError::Io)?;
            if read == 0 {
                self.eof = true;
            }
        }
    }

    /// The next frame, decoded as one `T`; `Ok(None)` on a clean end of stream.
    pub async fn next_message<T: DeserializeOwned>(&mut self) -> Result<Option<T>, FrameError> {
        match self.next_frame().await? {
            Some(frame) => decode(&frame).map(Some),
            None => Ok(None),
        }
    }

    /// Whether bytes read from the stream wait in the buffer (part or all of a frame).
    pub fn has_buffered(&self) -> bool {
        self.in_frame || !self.buf.is_empty()
    }

    /// The stream, and the bytes read from it that no frame has consumed yet.
    pub fn into_parts(self) -> (R, BytesMut) {
        (self.io, self.buf)
    }

    #[cfg(test)]
    pub(crate) fn buffer_capacity(&self) -> usize {
        self.buf.capacity()
    }
}

/// Writes frames to a byte stream. Frames are queued into one buffer and written by
/// [`FrameWriter::flush`], so a batch of frames costs one write.
#[derive(Debug)]
pub struct FrameWriter<W> {
    io: W,
    codec: LengthDelimitedCodec,
    buf: BytesMut,
}

impl<W: AsyncWrite + Unpin> FrameWriter<W> {
    /// A writer over `io` refusing payloads longer than `max_frame_length` bytes.
    pub fn new(io: W, max_frame_length: usize) -> Self {
        Self {
            io,
            codec: codec(max_frame_length),
            buf: BytesMut::new(),
        }
    }

    /// Changes the payload limit, from the next frame on.
    pub fn set_max_frame_length(&mut self, max_frame_length: usize) {
        self.codec.set_max_frame_length(max_frame_length);
    }

    /// Appends one frame to the output buffer.
    pub fn queue(&mut self, payload: &[u8]) -> Result<(), FrameError> {
        let max = self.codec.max_frame_length();
        self.codec
            .encode(payload, &mut self.buf)
            .map_err(|e| FrameError::from_codec(e, max))
    }

    /// Appends bytes that are already framed (the end of a frame started elsewhere).
    pub(crate) fn queue_encoded(&mut self, framed: &[u8]) {
        self.buf.extend_from_slice(framed);
    }

    /// How many bytes are queued and not yet written.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// Writes everything queued.
    pub async fn flush(&mut self) -> Result<(), FrameError> {
        self.io
            .write_all_buf(&mut self.buf)
            .await
            .map_err(FrameError::Io)?;
        self.io.flush().await.map_err(FrameError::Io)
    }

    /// Queues one frame and writes it.
    pub async fn send(&mut self, payload: &[u8]) -> Result<(), FrameError> {
        self.queue(payload)?;
        self.flush().await
    }

    /// Encodes `message`, queues it and writes it.
    pub async fn send_message<T: Serialize + ?Sized>(
        &mut self,
        message: &T,
    ) -> Result<(), FrameError> {
        let payload = encode(message, self.codec.max_frame_length())?;
        self.send(&payload).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_4_gib_length_prefix_is_refused_from_the_header_alone() {
        let input: &[u8] = &[0xff, 0xff, 0xff, 0xff, 1, 2, 3];
        let mut reader = FrameReader::new(input, PRE_AUTH_MAX_FRAME);
        let err = reader.next_frame().await.unwrap_err();
        assert!(matches!(err, FrameError::TooLarge { max: 256 }), "{err}");
        assert!(
            reader.buffer_capacity() <= READ_CHUNK,
            "buffer grew to {}",
            reader.buffer_capacity()
        );
    }

    #[tokio::test]
    async fn frames_round_trip_and_limits_apply_per_frame() {
        let mut wire = Vec::new();
        let mut writer = FrameWriter::new(&mut wire, 16);
        writer.send_message(&(1u8, "hi".to_owned())).await.unwrap();
        let err = writer.send_message(&vec![0u8; 64]).await.unwrap_err();
        assert!(matches!(err, FrameError::TooLarge { max: 16 }), "{err}");
        writer.set_max_frame_length(1024);
        writer.send_message(&vec![7u8; 64]).await.unwrap();
        assert_eq!(&wire[..4], &[0, 0, 0, 4]);

        let mut reader = FrameReader::new(&wire[..], 16);
        let first: (u8, String) = reader.next_message().await.unwrap().unwrap();
        assert_eq!(first, (1, "hi".to_owned()));
        let err = reader.next_frame().await.unwrap_err();
        assert!(matches!(err, FrameError::TooLarge { max: 16 }), "{err}");

        let mut reader = FrameReader::new(&wire[..], 16);
        reader.next_frame().await.unwrap();
        reader.set_max_frame_length(1024);
        let second: Vec<u8> = reader.next_message().await.unwrap().unwrap();
        assert_eq!(second, vec![7u8; 64]);
        assert!(reader.next_frame().await.unwrap().is_none());
    }

    #[tokio::test]
    async fn trailing_bytes_and_truncation_are_errors() {
        let mut payload = postcard::to_stdvec(&5u32).unwrap();
        payload.push(0);
        assert!(matches!(
            decode::<u32>(&payload),
            Err(FrameError::TrailingBytes(1))
        ));
        let input: &[u8] = &[0, 0, 0, 9, 1, 2];
        let mut reader = FrameReader::new(input, 256);
        assert!(matches!(
            reader.next_frame().await,
            Err(FrameError::Truncated { buffered: 2 })
        ));
        // A header alone, then the end: truncated too, not a clean end.
        let input: &[u8] = &[0, 0, 0, 9];
        let mut reader = FrameReader::new(input, 256);
        assert!(matches!(
            reader.next_frame().await,
            Err(FrameError::Truncated { buffered: 0 })
        ));
        let input: &[u8] = &[0, 0];
        let mut reader = FrameReader::new(input, 256);
        assert!(matches!(
            reader.next_frame().await,
            Err(FrameError::Truncated { buffered: 2 })
        ));
    }

    #[tokio::test(start_paused = true)]
    async fn an_idle_reader_waits_forever_but_a_started_frame_has_a_deadline() {
        use tokio::io::AsyncWriteExt as _;
        let (mut peer, io) = tokio::io::duplex(1024);
        let mut reader = FrameReader::new(io, 1024).with_stall_deadline(Duration::from_secs(10));
        // Idle between frames: an hour passes and nothing is due.
        let idle = tokio::time::timeout(Duration::from_secs(3600), reader.next_frame()).await;
        assert!(idle.is_err(), "an idle reader gave up: {idle:?}");

        // A frame in two pieces, each frame within its own deadline.
        peer.write_all(&[0, 0, 0, 3, 1]).await.unwrap();
        let first = async {
            tokio::time::sleep(Duration::from_secs(6)).await;
            peer.write_all(&[2, 3, 0, 0, 0, 2, 7]).await.unwrap();
            tokio::time::sleep(Duration::from_secs(6)).await;
            peer.write_all(&[8]).await.unwrap();
            peer
        };
        let (mut peer, frames) = tokio::join!(first, async {
            let a = reader.next_frame().await.unwrap().unwrap();
            let b = reader.next_frame().await.unwrap().unwrap();
            (a, b)
        });
        assert_eq!(
            (&frames.0[..], &frames.1[..]),
            (&[1u8, 2, 3][..], &[7u8, 8][..])
        );

        // Half a frame, then silence: refused at the deadline, not before.
        peer.write_all(&[0, 0, 0, 8, 1, 2, 3]).await.unwrap();
        let start = tokio::time::Instant::now();
        let err = reader.next_frame().await.unwrap_err();
        assert!(
            matches!(err, FrameError::Stalled { buffered: 3, after } if after == Duration::from_secs(10)),
            "{err}"
        );
        assert_eq!(start.elapsed(), Duration::from_secs(10));
        // A header cut short counts as a started frame too.
        let (mut peer, io) = tokio::io::duplex(1024);
        let mut reader = FrameReader::new(io, 1024).with_stall_deadline(Duration::from_secs(1));
        peer.write_all(&[0, 0]).await.unwrap();
        assert!(matches!(
            reader.next_frame().await,
            Err(FrameError::Stalled { buffered: 2, .. })
        ));
    }

    #[tokio::test]
    async fn leftover_bytes_carry_over_to_the_next_reader() {
        let mut wire = Vec::new();
        let mut writer = FrameWriter::new(&mut wire, 256);
        writer.queue(b"one").unwrap();
        writer.queue(b"two").unwrap();
        writer.flush().await.unwrap();
        let mut reader = FrameReader::new(&wire[..], 256);
        assert_eq!(&reader.next_frame().await.unwrap().unwrap()[..], b"one");
        let (_, leftover) = reader.into_parts();
        let empty: &[u8] = &[];
        let mut reader = FrameReader::with_buffer(empty, leftover, 256);
        assert_eq!(&reader.next_frame().await.unwrap().unwrap()[..], b"two");
        assert!(reader.next_frame().await.unwrap().is_none());
    }
}
