//! Event fan-out to authenticated connections.
//!
//! A [`Broadcaster`] encodes each event once and hands the frame to every subscribed
//! connection's writer. Only an authenticated connection can subscribe (the sole way in is
//! [`ConnectionSender::subscribe`](crate::server::ConnectionSender::subscribe), and that
//! type exists only after a successful handshake); there is no list of sockets to filter.
//!
//! Memory is bounded: the broadcaster keeps a ring of at most `capacity` frames shared by
//! all subscribers, and each connection's writer takes frames from it as fast as its
//! socket drains. A subscriber that falls more than `capacity` frames behind loses the
//! oldest ones and receives [`ServerFrame::Lagged`] with the
//! number lost.

use std::fmt;
use std::marker::PhantomData;

use bytes::Bytes;
use serde::Serialize;
use tokio::sync::broadcast;

use crate::ServerFrame;
use crate::frame::{FrameError, MAX_FRAME, encode};

/// Largest ring a broadcaster keeps.
const MAX_CAPACITY: usize = 1 << 20;

/// Sends events of type `Ev` to every authenticated connection that subscribed.
pub struct Broadcaster<Ev> {
    tx: broadcast::Sender<Bytes>,
    max_frame: usize,
    _marker: PhantomData<fn(Ev)>,
}

impl<Ev> Clone for Broadcaster<Ev> {
    fn clone(&self) -> Self {
        Self {
            tx: self.tx.clone(),
            max_frame: self.max_frame,
            _marker: PhantomData,
        }
    }
}

impl<Ev> fmt::Debug for Broadcaster<Ev> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Broadcaster")
            .field("subscribers", &self.tx.receiver_count())
            .field("max_frame", &self.max_frame)
            .finish()
    }
}

impl<Ev> Broadcaster<Ev> {
    /// A broadcaster whose subscribers may fall at most `capacity` events behind
    /// (clamped to 1..=1,048,576); events up to [`MAX_FRAME`] bytes.
    pub fn new(capacity: usize) -> Self {
        Self::with_max_frame_length(capacity, MAX_FRAME)
    }

    /// [`Broadcaster::new`] with another frame limit (it must not exceed the connections').
    pub fn with_max_frame_length(capacity: usize, max_frame_length: usize) -> Self {
        let (tx, _) = broadcast::channel(capacity.clamp(1, MAX_CAPACITY));
        Self {
            tx,
            max_frame: max_frame_length,
            _marker: PhantomData,
        }
    }

    /// How many connections are subscribed.
    pub fn subscriber_count(&self) -> usize {
        self.tx.receiver_count()
    }

    /// A new subscription, for an authenticated connection's writer.
    pub(crate) fn receiver(&self) -> broadcast::Receiver<Bytes> {
        self.tx.subscribe()
    }
}

impl<Ev: Serialize> Broadcaster<Ev> {
    /// Sends `event` to every subscriber; returns how many there are. The event is encoded
    /// once; an event over the frame limit is refused.
    pub fn send(&self, event: &Ev) -> Result<usize, FrameError> {
        let payload = encode(&ServerFrame::<(), &Ev>::Event(event), self.max_frame)?;
        Ok(self.tx.send(payload).unwrap_or(0))
    }
}
