//! The machinery shared by authenticated connections on both sides: the split stream, the
//! writer task, the typed receiver and the frame type the daemon sends.
//!
//! Limits after the handshake:
//!
//! - **Outbound bytes.** What a connection's senders queue for its writer task is
//!   counted in bytes ([`frame_cost`]: payload, header, and a fixed overhead per frame)
//!   against a budget; a frame that does not fit waits until the writer has put enough
//!   on the socket. When a stall deadline is set (the daemon's side), a frame still
//!   waiting after it closes the connection: the peer does not read its answers.
//!   Events do not pass through this queue: the writer takes them from the
//!   broadcaster's shared ring only as fast as the socket drains, and a subscriber that
//!   falls behind the ring gets [`ServerFrame::Lagged`].
//! - **Partial frames.** With a stall deadline, a frame the peer has started must be
//!   complete within it ([`FrameReader::with_stall_deadline`]). A connection idle
//!   between frames (a subscriber) has no deadline.

use std::fmt;
use std::io;
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::{Arc, Weak};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use interprocess::local_socket::tokio::Stream;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, broadcast, mpsc};
use tokio_util::sync::{CancellationToken, DropGuard, WaitForCancellationFutureOwned};

use crate::frame::{FrameError, FrameReader, FrameWriter, WRITE_BATCH, codec, decode, encode};
use tokio_util::codec::{Encoder as _, LengthDelimitedCodec};

/// What the daemon sends an authenticated client: responses and events in one stream.
///
/// The caller supplies `Resp` and `Ev`; a response carries whatever id the caller's
/// protocol puts in it. Frozen wire format: `Response` = 0, `Event` = 1, `Lagged` = 2.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ServerFrame<Resp, Ev> {
    /// The answer to a request.
    Response(Resp),
    /// A broadcast event (only sent to connections that subscribed).
    Event(Ev),
    /// This subscriber fell behind and the given number of events were dropped for it.
    Lagged(u64),
}

/// Why a message could not be sent.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SendError {
    /// The connection is closed.
    #[error("the connection is closed")]
    Closed,
    /// The message could not be encoded or is over the frame limit.
    #[error("cannot send: {0}")]
    Frame(#[from] FrameError),
    /// The peer did not read: the connection's outbound budget stayed full for the
    /// whole stall deadline, and the connection was closed.
    #[error(
        "the peer read nothing for {after:?} while {budget} bytes of answers waited: connection closed"
    )]
    Stalled {
        /// The outbound budget, in bytes.
        budget: usize,
        /// The stall deadline.
        after: Duration,
    },
}

/// What a queued frame costs against a connection's outbound budget, beyond its payload
/// and 4-byte header: the bookkeeping of one queued frame.
pub const FRAME_OVERHEAD: usize = 64;

/// What a frame of `payload_len` bytes costs against an outbound budget.
pub fn frame_cost(payload_len: usize) -> usize {
    payload_len
        .saturating_add(crate::frame::LENGTH_PREFIX_LEN)
        .saturating_add(FRAME_OVERHEAD)
}

/// How a connection bounds what its senders queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct OutboundLimits {
    /// Bytes (by [`frame_cost`]) queued and not yet written, at most. A frame that costs
    /// more than the whole budget takes all of it (it waits for an empty queue).
    pub(crate) budget: usize,
    /// With `Some`, a frame that waits this long for room closes the connection, and a
    /// started incoming frame must complete within it. `None`: wait as long as it takes.
    pub(crate) stall: Option<Duration>,
}

/// The byte budget of one connection's outbound queue: permits are bytes, taken by a
/// sender before it queues a frame and given back by the writer once the frame is on
/// the socket.
#[derive(Debug)]
struct Budget {
    permits: Semaphore,
    capacity: usize,
    stall: Option<Duration>,
}

impl Budget {
    fn new(limits: OutboundLimits) -> Self {
        let capacity = limits
            .budget
            .clamp(1, Semaphore::MAX_PERMITS)
            .min(u32::MAX as usize);
        Self {
            permits: Semaphore::new(capacity),
            capacity,
            stall: limits.stall,
        }
    }

    /// The permits a frame of this cost takes (a cost above the capacity takes it all).
    fn permits_for(&self, cost: usize) -> u32 {
        u32::try_from(cost.min(self.capacity)).unwrap_or(u32::MAX)
    }

    fn release(&self, permits: usize) {
        if permits > 0 {
            self.permits.add_permits(permits);
        }
    }

    fn in_use(&self) -> usize {
        self.capacity
            .saturating_sub(self.permits.available_permits())
    }
}

/// The stream of an authenticated connection, shared by its read and write halves, and
/// the connection slot it occupies (released when both halves are gone). Dropping it
/// cancels the connection's token, which ends the writer task.
#[derive(Debug)]
struct Shared {
    stream: Stream,
    _slot: Option<OwnedSemaphorePermit>,
    _cancel_on_drop: DropGuard,
}

impl Shared {
    /// Writes what the socket takes now, without waiting; `WouldBlock` when it takes
    /// nothing (and always where the direct path is not available).
    fn try_write(&self, buf: &[u8]) -> io::Result<usize> {
        #[cfg(unix)]
        {
            #[allow(irrefutable_let_patterns)]
            if let Stream::UdSocket(socket) = &self.stream {
                return socket.inner().try_write(buf);
            }
        }
        let _ = buf;
        Err(io::ErrorKind::WouldBlock.into())
    }

    /// Shuts the socket down in both directions, so that the peer sees the end at once
    /// even while a half is still held somewhere. (Named pipes: nothing to do here; the
    /// pipe closes with its last handle.)
    fn shutdown(&self) {
        #[cfg(unix)]
        {
            use std::os::fd::AsFd;
            #[allow(irrefutable_let_patterns)]
            if let Stream::UdSocket(socket) = &self.stream
                && let Ok(fd) = socket.as_fd().try_clone_to_owned()
            {
                // shutdown(2) acts on the socket, not the descriptor: the duplicate is
                // enough, and closing it leaves the original open.
                let _ = std::os::unix::net::UnixStream::from(fd).shutdown(std::net::Shutdown::Both);
            }
        }
    }
}

/// Read half of an authenticated connection.
#[derive(Debug)]
pub(crate) struct ReadHalf(Arc<Shared>);

/// Write half of an authenticated connection.
#[derive(Debug)]
pub(crate) struct WriteHalf(Arc<Shared>);

impl AsyncRead for ReadHalf {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let mut stream: &Stream = &self.get_mut().0.stream;
        Pin::new(&mut stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for WriteHalf {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let mut stream: &Stream = &self.get_mut().0.stream;
        Pin::new(&mut stream).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let mut stream: &Stream = &self.get_mut().0.stream;
        Pin::new(&mut stream).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let mut stream: &Stream = &self.get_mut().0.stream;
        Pin::new(&mut stream).poll_shutdown(cx)
    }
}

/// A command for a connection's writer task, with the budget permits it holds.
#[derive(Debug)]
pub(crate) struct Outgoing {
    command: Command,
    permits: u32,
}

#[derive(Debug)]
pub(crate) enum Command {
    /// An encoded frame payload.
    Frame(Bytes),
    /// Start forwarding these broadcast events.
    Subscribe(broadcast::Receiver<Bytes>),
}

impl Command {
    fn cost(&self) -> usize {
        match self {
            Self::Frame(payload) => frame_cost(payload.len()),
            Self::Subscribe(_) => FRAME_OVERHEAD,
        }
    }
}

/// The sending side of a connection: a queue to its writer task bounded in bytes, and
/// the direct path that bypasses it when the writer has nothing in hand.
#[derive(Debug, Clone)]
pub(crate) struct OutboundQueue {
    tx: mpsc::UnboundedSender<Outgoing>,
    cancel: CancellationToken,
    max_frame: usize,
    direct: Arc<Direct>,
    budget: Arc<Budget>,
}

impl OutboundQueue {
    pub(crate) fn max_frame(&self) -> usize {
        self.max_frame
    }

    /// Encodes `message` and queues it for the writer task (waiting while the queue is
    /// full); frames queued together go out in one write.
    pub(crate) async fn send<T: Serialize + ?Sized>(&self, message: &T) -> Result<(), SendError> {
        let payload = encode(message, self.max_frame)?;
        self.push(Command::Frame(payload)).await
    }

    /// Encodes `message` and writes it into the socket from the caller's task when the
    /// writer task is idle and the socket takes it, else queues it as [`Self::send`]
    /// does. For a frame nothing else follows soon: it saves two task switches, but a
    /// burst sent this way costs a write each instead of one for all.
    pub(crate) async fn send_now<T: Serialize + ?Sized>(
        &self,
        message: &T,
    ) -> Result<(), SendError> {
        let payload = encode(message, self.max_frame)?;
        if self.cancel.is_cancelled() {
            return Err(SendError::Closed);
        }
        match self.direct.try_send(&payload) {
            Ok(()) => Ok(()),
            Err(Busy) => self.push(Command::Frame(payload)).await,
        }
    }

    /// Queues a command for the writer task once the budget has room for it; direct
    /// sends wait behind it.
    pub(crate) async fn push(&self, command: Command) -> Result<(), SendError> {
        if self.cancel.is_cancelled() {
            return Err(SendError::Closed);
        }
        let permits = self.reserve(command.cost()).await?;
        let outgoing = Outgoing { command, permits };
        let mut st = self.direct.state.lock();
        // Set with the command queued, both under the lock: the writer cannot go idle in
        // between, so no direct send overtakes the command.
        st.writer_busy = true;
        self.tx.send(outgoing).map_err(|_| SendError::Closed)
    }

    /// Takes `cost` bytes of the budget, waiting for the writer to free them; past the
    /// stall deadline the connection is closed.
    async fn reserve(&self, cost: usize) -> Result<u32, SendError> {
        let budget = &self.budget;
        let permits = budget.permits_for(cost);
        if let Ok(taken) = budget.permits.try_acquire_many(permits) {
            taken.forget();
            return Ok(permits);
        }
        let wait = async {
            match budget.stall {
                Some(after) => tokio::time::timeout(after, budget.permits.acquire_many(permits))
                    .await
                    .map_err(|_| after),
                None => Ok(budget.permits.acquire_many(permits).await),
            }
        };
        let taken = tokio::select! {
            biased;
            () = self.cancel.cancelled() => return Err(SendError::Closed),
            taken = wait => taken,
        };
        match taken {
            Ok(Ok(taken)) => {
                taken.forget();
                Ok(permits)
            }
            Ok(Err(_)) => Err(SendError::Closed),
            Err(after) => {
                tracing::debug!(
                    budget = budget.capacity,
                    ?after,
                    "closing a connection that does not read its answers"
                );
                self.cancel.cancel();
                Err(SendError::Stalled {
                    budget: budget.capacity,
                    after,
                })
            }
        }
    }

    /// Bytes of the budget held by frames queued and not yet written.
    pub(crate) fn queued_bytes(&self) -> usize {
        self.budget.in_use()
    }

    pub(crate) fn close(&self) {
        self.cancel.cancel();
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.cancel.is_cancelled() || self.tx.is_closed()
    }
}

/// The writer task has frames in hand: a frame must go through the queue, behind them.
#[derive(Debug)]
struct Busy;

/// The direct path of a connection's outbound frames.
///
/// A request answered from memory should not cost a task switch to the writer task and
/// back. So a sender writes its frame into the socket itself (a non-blocking write,
/// under this lock) when the writer task holds nothing: nothing queued, nothing being
/// written. The writer marks itself busy, under the same lock, before it writes
/// anything, and idle only once it has written everything and its queue is empty; so a
/// frame is never interleaved with another. If the socket takes only part of a frame,
/// the rest becomes the writer's first bytes and the writer is woken to finish it.
/// Frames that go through the queue are batched into one write, as before; events
/// always go through the writer.
#[derive(Debug)]
struct Direct {
    state: parking_lot::Mutex<DirectState>,
    /// Wakes the writer task to write a `leftover`.
    wake: tokio::sync::Notify,
    stream: Weak<Shared>,
}

#[derive(Debug)]
struct DirectState {
    writer_busy: bool,
    /// The unwritten end of a frame a sender started; written first by the writer.
    leftover: BytesMut,
    codec: LengthDelimitedCodec,
    frame: BytesMut,
}

impl Direct {
    fn new(stream: Weak<Shared>, max_frame: usize) -> Self {
        Self {
            state: parking_lot::Mutex::new(DirectState {
                writer_busy: false,
                leftover: BytesMut::new(),
                codec: codec(max_frame),
                frame: BytesMut::new(),
            }),
            wake: tokio::sync::Notify::new(),
            stream,
        }
    }

    /// Writes one frame of `payload` unless the writer task is busy.
    fn try_send(&self, payload: &Bytes) -> Result<(), Busy> {
        let mut st = self.state.lock();
        if st.writer_busy {
            return Err(Busy);
        }
        let Some(shared) = self.stream.upgrade() else {
            return Err(Busy);
        };
        let DirectState { codec, frame, .. } = &mut *st;
        frame.clear();
        if codec.encode(payload.clone(), frame).is_err() {
            return Err(Busy);
        }
        let mut written = 0;
        while written < frame.len() {
            match shared.try_write(&frame[written..]) {
                Ok(n) => written += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                // Full (or failing): the writer finishes it, or finds and reports the error.
                Err(_) => break,
            }
        }
        if written == frame.len() {
            return Ok(());
        }
        if written == 0 {
            return Err(Busy);
        }
        let rest = frame.split_off(written);
        st.leftover = rest;
        st.writer_busy = true;
        drop(st);
        self.wake.notify_one();
        Ok(())
    }

    /// The writer task is about to write: no sender may write directly until
    /// [`Direct::writer_done`]. Returns the end of a frame a sender started, if any.
    fn writer_starts(&self) -> Option<BytesMut> {
        let mut st = self.state.lock();
        st.writer_busy = true;
        (!st.leftover.is_empty()).then(|| std::mem::take(&mut st.leftover))
    }

    /// The writer task wrote everything it held; it is idle if nothing is queued.
    fn writer_done(&self, rx: &mpsc::UnboundedReceiver<Outgoing>) {
        let mut st = self.state.lock();
        if rx.is_empty() && st.leftover.is_empty() {
            st.writer_busy = false;
        }
    }
}

/// The message type of a receiver whose caller takes payloads undecoded, with
/// [`FrameReceiver::recv_raw`]. It has no values, so such a receiver has no `recv`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Raw {}

/// Receives the typed messages of an authenticated connection.
///
/// A frame that does not decode, a frame over the limit or a socket error ends the
/// connection: the error is returned once, the connection is closed, and every later call
/// returns `Ok(None)`.
pub struct FrameReceiver<T> {
    frames: FrameReader<ReadHalf>,
    cancel: CancellationToken,
    /// Kept across calls, so waiting for the next frame does not register a new waiter
    /// on the token every time.
    cancelled: Pin<Box<WaitForCancellationFutureOwned>>,
    done: bool,
    _marker: PhantomData<fn() -> T>,
}

impl<T> fmt::Debug for FrameReceiver<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FrameReceiver")
            .field("max_frame_length", &self.frames.max_frame_length())
            .field("done", &self.done)
            .finish_non_exhaustive()
    }
}

impl<T: DeserializeOwned> FrameReceiver<T> {
    /// The next message; `Ok(None)` once the connection is closed (by the peer, by
    /// [`FrameReceiver::close`], by the writer failing, or by the daemon shutting down).
    /// Cancel-safe.
    pub async fn recv(&mut self) -> Result<Option<T>, FrameError> {
        if self.done {
            return Ok(None);
        }
        let next = tokio::select! {
            biased;
            () = self.cancelled.as_mut() => Ok(None),
            frame = self.frames.next_frame() => frame,
        };
        let result = match next {
            Ok(Some(frame)) => decode::<T>(&frame).map(Some),
            Ok(None) => Ok(None),
            Err(e) => Err(e),
        };
        if !matches!(result, Ok(Some(_))) {
            self.done = true;
            self.cancel.cancel();
        }
        result
    }
}

impl<T> FrameReceiver<T> {
    /// The next frame's payload, undecoded; `Ok(None)` once the connection is closed.
    ///
    /// For a caller that decodes payloads itself (for instance to answer a request it
    /// cannot decode but whose id it can read). The frame limit still holds, and a frame
    /// over it or a socket error ends the connection exactly as for
    /// [`FrameReceiver::recv`]. The bytes are the caller's: zeroize them when they may hold
    /// secrets. Cancel-safe.
    pub async fn recv_raw(&mut self) -> Result<Option<BytesMut>, FrameError> {
        if self.done {
            return Ok(None);
        }
        let next = tokio::select! {
            biased;
            () = self.cancelled.as_mut() => Ok(None),
            frame = self.frames.next_frame() => frame,
        };
        if !matches!(next, Ok(Some(_))) {
            self.done = true;
            self.cancel.cancel();
        }
        next
    }

    /// Whether bytes of a next frame have arrived already (a peer sending requests
    /// back to back): a caller may then batch its answers rather than send each now.
    pub fn has_buffered(&self) -> bool {
        self.frames.has_buffered()
    }

    /// Closes the connection (both directions).
    pub fn close(&self) {
        self.cancel.cancel();
    }
}

/// Splits an authenticated stream into a typed receiver and an outbound queue served by a
/// spawned writer task. `leftover` holds bytes read past the handshake.
pub(crate) fn wire<T>(
    stream: Stream,
    leftover: BytesMut,
    slot: Option<OwnedSemaphorePermit>,
    max_frame: usize,
    limits: OutboundLimits,
    cancel: CancellationToken,
) -> (FrameReceiver<T>, OutboundQueue) {
    let shared = Arc::new(Shared {
        stream,
        _slot: slot,
        _cancel_on_drop: cancel.clone().drop_guard(),
    });
    // Unbounded in frames: every frame holds its bytes of the budget until written.
    let (tx, rx) = mpsc::unbounded_channel();
    let budget = Arc::new(Budget::new(limits));
    let writer = FrameWriter::new(WriteHalf(Arc::clone(&shared)), max_frame);
    let direct = Arc::new(Direct::new(Arc::downgrade(&shared), max_frame));
    tokio::spawn(run_writer(
        Pump {
            writer,
            rx,
            direct: Arc::clone(&direct),
            budget: Arc::clone(&budget),
            written: 0,
        },
        cancel.clone(),
        Arc::downgrade(&shared),
    ));
    let mut frames = FrameReader::with_buffer(ReadHalf(shared), leftover, max_frame);
    if let Some(stall) = limits.stall {
        frames = frames.with_stall_deadline(stall);
    }
    let receiver = FrameReceiver {
        frames,
        cancel: cancel.clone(),
        cancelled: Box::pin(cancel.clone().cancelled_owned()),
        done: false,
        _marker: PhantomData,
    };
    let queue = OutboundQueue {
        tx,
        cancel,
        max_frame,
        direct,
        budget,
    };
    (receiver, queue)
}

enum Step {
    Command(Option<Outgoing>),
    Event(Result<Bytes, broadcast::error::RecvError>),
    /// A sender left the end of a frame to write.
    Leftover,
}

async fn next_event(
    events: &mut Option<broadcast::Receiver<Bytes>>,
) -> Result<Bytes, broadcast::error::RecvError> {
    match events {
        Some(events) => events.recv().await,
        None => std::future::pending().await,
    }
}

/// The writer task's state: the socket's writer, the queue it drains, and the budget
/// permits of the frames it has taken but not yet written.
struct Pump {
    writer: FrameWriter<WriteHalf>,
    rx: mpsc::UnboundedReceiver<Outgoing>,
    direct: Arc<Direct>,
    budget: Arc<Budget>,
    /// Permits of the commands in the writer's buffer, given back once it is flushed.
    written: usize,
}

impl Pump {
    /// Queues one command's frame; `false` if the connection must end.
    fn apply_command(
        &mut self,
        events: &mut Option<broadcast::Receiver<Bytes>>,
        outgoing: Outgoing,
    ) -> bool {
        self.written += outgoing.permits as usize;
        match outgoing.command {
            Command::Frame(payload) => self.writer.queue(&payload).is_ok(),
            Command::Subscribe(receiver) => {
                *events = Some(receiver);
                true
            }
        }
    }

    /// Queues one event's frame (or a `Lagged` notice); `false` if the connection must
    /// end.
    fn apply_event(
        &mut self,
        events: &mut Option<broadcast::Receiver<Bytes>>,
        event: Result<Bytes, broadcast::error::RecvError>,
    ) -> bool {
        use broadcast::error::RecvError;
        match event {
            Ok(payload) => self.writer.queue(&payload).is_ok(),
            Err(RecvError::Lagged(missed)) => self.lagged(missed),
            Err(RecvError::Closed) => {
                *events = None;
                true
            }
        }
    }

    fn lagged(&mut self, missed: u64) -> bool {
        let frame = ServerFrame::<(), ()>::Lagged(missed);
        match postcard::to_stdvec(&frame) {
            Ok(payload) => self.writer.queue(&payload).is_ok(),
            Err(_) => false,
        }
    }

    /// Writes everything buffered, then gives the budget of what was written back.
    async fn flush(&mut self) -> Result<(), FrameError> {
        self.writer.flush().await?;
        self.budget.release(std::mem::take(&mut self.written));
        Ok(())
    }
}

/// How the writer's pump stopped.
enum Exit {
    /// The connection was cancelled.
    Cancelled,
    /// Every sender is gone and everything they queued is written.
    SendersGone,
    /// Writing failed.
    Failed,
}

/// The writer task. It pumps the outbound queue and the event subscription into the
/// socket; then, once the connection is cancelled (closed by either side, the daemon
/// shutting down, or both halves dropped), it shuts the socket down. It holds the stream
/// only while pumping, so dropping every handle closes the connection.
async fn run_writer(pump: Pump, cancel: CancellationToken, stream: Weak<Shared>) {
    match run_pump(pump, &cancel).await {
        Exit::Cancelled => {}
        Exit::SendersGone => cancel.cancelled().await,
        Exit::Failed => cancel.cancel(),
    }
    if let Some(shared) = stream.upgrade() {
        shared.shutdown();
    }
}

/// Drains the outbound queue and the event subscription into the socket, batching
/// whatever is ready into one write.
async fn run_pump(mut pump: Pump, cancel: &CancellationToken) -> Exit {
    let mut events: Option<broadcast::Receiver<Bytes>> = None;
    let direct = Arc::clone(&pump.direct);
    loop {
        let step = tokio::select! {
            biased;
            () = cancel.cancelled() => return Exit::Cancelled,
            () = direct.wake.notified() => Step::Leftover,
            command = pump.rx.recv() => Step::Command(command),
            event = next_event(&mut events) => Step::Event(event),
        };
        // From here until everything is written, senders queue behind this writer.
        if let Some(leftover) = direct.writer_starts() {
            pump.writer.queue_encoded(&leftover);
        }
        let ok = match step {
            Step::Command(None) => {
                if pump.writer.buffered() > 0 && pump.flush().await.is_err() {
                    return Exit::Failed;
                }
                return Exit::SendersGone;
            }
            Step::Command(Some(command)) => pump.apply_command(&mut events, command),
            Step::Event(event) => pump.apply_event(&mut events, event),
            Step::Leftover => true,
        };
        if !ok {
            return Exit::Failed;
        }
        let mut senders_gone = false;
        while pump.writer.buffered() < WRITE_BATCH {
            let mut progressed = false;
            match pump.rx.try_recv() {
                Ok(command) => {
                    if !pump.apply_command(&mut events, command) {
                        return Exit::Failed;
                    }
                    progressed = true;
                }
                Err(mpsc::error::TryRecvError::Empty) => {}
                Err(mpsc::error::TryRecvError::Disconnected) => senders_gone = true,
            }
            if let Some(receiver) = events.as_mut() {
                use broadcast::error::{RecvError, TryRecvError};
                let event = match receiver.try_recv() {
                    Ok(payload) => Some(Ok(payload)),
                    Err(TryRecvError::Lagged(missed)) => Some(Err(RecvError::Lagged(missed))),
                    Err(TryRecvError::Closed) => Some(Err(RecvError::Closed)),
                    Err(TryRecvError::Empty) => None,
                };
                if let Some(event) = event {
                    if !pump.apply_event(&mut events, event) {
                        return Exit::Failed;
                    }
                    progressed = true;
                }
            }
            if !progressed {
                break;
            }
        }
        if pump.writer.buffered() > 0 {
            let flushed = tokio::select! {
                biased;
                () = cancel.cancelled() => return Exit::Cancelled,
                flushed = pump.flush() => flushed,
            };
            if flushed.is_err() {
                return Exit::Failed;
            }
        } else {
            // A subscription only: nothing to write, its permits are free again.
            pump.budget.release(std::mem::take(&mut pump.written));
        }
        if senders_gone {
            return Exit::SendersGone;
        }
        direct.writer_done(&pump.rx);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Serialize)]
    struct Resp(u32, String);

    #[test]
    fn event_and_lagged_encodings_do_not_depend_on_the_response_type() {
        let event = "ev".to_owned();
        let generic = postcard::to_stdvec(&ServerFrame::<(), &String>::Event(&event)).unwrap();
        let concrete = postcard::to_stdvec(&ServerFrame::<Resp, String>::Event(event)).unwrap();
        assert_eq!(generic, concrete);
        let lagged = postcard::to_stdvec(&ServerFrame::<(), ()>::Lagged(5)).unwrap();
        let concrete = postcard::to_stdvec(&ServerFrame::<Resp, String>::Lagged(5)).unwrap();
        assert_eq!(lagged, concrete);
        let response = Resp(1, "x".to_owned());
        let by_ref = postcard::to_stdvec(&ServerFrame::<&Resp, ()>::Response(&response)).unwrap();
        let by_value =
            postcard::to_stdvec(&ServerFrame::<Resp, String>::Response(response)).unwrap();
        assert_eq!(by_ref, by_value);
    }
}
