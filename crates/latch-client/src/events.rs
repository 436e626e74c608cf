//! Event subscription: what a subscriber receives, and the bounded hand-off from the
//! connection's reader to it.

use std::pin::Pin;
use std::sync::Mutex;
use std::task::{Context, Poll};

use latch_protocol::{Event, EventKind};
use tokio::sync::mpsc;

use crate::client::lock;

/// What a [`Subscription`] yields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientEvent {
    /// An event of one of the subscribed kinds.
    Event(Event),
    /// This many events were dropped, by the daemon or by this client, because the
    /// subscriber fell behind. Re-read whatever state you mirror.
    Lagged {
        /// How many events were lost.
        missed: u64,
    },
    /// The connection dropped and was re-established (with a re-read token file), and
    /// the subscription was re-sent. Events in between were lost: re-read whatever state
    /// you mirror.
    Reconnected,
}

/// A stream of [`ClientEvent`]s, from [`Client::subscribe`](crate::Client::subscribe).
///
/// It implements [`futures::Stream`]; [`Subscription::next_event`] does the same without
/// the trait. It ends when the client is dropped (every clone), when another
/// subscription replaces it, after [`Client::unsubscribe`](crate::Client::unsubscribe),
/// or when the connection drops under [`ReconnectPolicy::Never`](crate::ReconnectPolicy::Never).
/// The queue behind it is bounded: a subscriber that falls behind gets a
/// [`ClientEvent::Lagged`] instead of unbounded memory.
#[derive(Debug)]
pub struct Subscription {
    rx: mpsc::Receiver<ClientEvent>,
    kinds: Vec<EventKind>,
}

impl Subscription {
    /// The next event; `None` once the subscription has ended.
    pub async fn next_event(&mut self) -> Option<ClientEvent> {
        self.rx.recv().await
    }

    /// The kinds subscribed to.
    #[must_use]
    pub fn kinds(&self) -> &[EventKind] {
        &self.kinds
    }
}

impl futures::Stream for Subscription {
    type Item = ClientEvent;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<ClientEvent>> {
        self.get_mut().rx.poll_recv(cx)
    }
}

/// The active subscription of a client, shared by the client and its connections'
/// readers. A reader never waits for the subscriber: what does not fit is counted and
/// reported as [`ClientEvent::Lagged`] once there is room.
#[derive(Debug, Default)]
pub(crate) struct EventHub {
    slot: Mutex<Option<Slot>>,
    next_id: Mutex<u64>,
}

#[derive(Debug)]
struct Slot {
    id: u64,
    kinds: Vec<EventKind>,
    tx: mpsc::Sender<ClientEvent>,
    /// Events lost since the last successful delivery.
    missed: u64,
    /// The daemon has confirmed this subscription once.
    established: bool,
}

/// What a new connection must restore.
pub(crate) struct Restore {
    pub(crate) kinds: Vec<EventKind>,
    pub(crate) was_established: bool,
}

impl EventHub {
    /// Installs a new subscription, ending the previous one; returns its id and stream.
    pub(crate) fn install(&self, kinds: Vec<EventKind>, buffer: usize) -> (u64, Subscription) {
        let id = {
            let mut next = lock(&self.next_id);
            *next += 1;
            *next
        };
        let (tx, rx) = mpsc::channel(buffer.max(1));
        *lock(&self.slot) = Some(Slot {
            id,
            kinds: kinds.clone(),
            tx,
            missed: 0,
            established: false,
        });
        (id, Subscription { rx, kinds })
    }

    /// Marks subscription `id` as confirmed by the daemon.
    pub(crate) fn established(&self, id: u64) {
        if let Some(slot) = lock(&self.slot).as_mut().filter(|s| s.id == id) {
            slot.established = true;
        }
    }

    /// Removes subscription `id` (if it is still the active one), ending its stream.
    pub(crate) fn remove(&self, id: u64) {
        let mut slot = lock(&self.slot);
        if slot.as_ref().is_some_and(|s| s.id == id) {
            *slot = None;
        }
    }

    /// Removes whatever subscription is active, ending its stream.
    pub(crate) fn clear(&self) {
        *lock(&self.slot) = None;
    }

    /// True while a subscriber is listening.
    pub(crate) fn is_active(&self) -> bool {
        lock(&self.slot).as_ref().is_some_and(|s| !s.tx.is_closed())
    }

    /// What a new connection must re-send, if anything.
    pub(crate) fn restore(&self) -> Option<Restore> {
        lock(&self.slot)
            .as_ref()
            .filter(|s| !s.tx.is_closed())
            .map(|s| Restore {
                kinds: s.kinds.clone(),
                was_established: s.established,
            })
    }

    /// Hands an event to the subscriber, if any, without waiting.
    pub(crate) fn deliver(&self, event: ClientEvent) {
        let mut guard = lock(&self.slot);
        let Some(slot) = guard.as_mut() else {
            return;
        };
        if slot.missed > 0 {
            match slot.tx.try_send(ClientEvent::Lagged {
                missed: slot.missed,
            }) {
                Ok(()) => slot.missed = 0,
                Err(mpsc::error::TrySendError::Full(_)) => {
                    slot.missed += 1;
                    return;
                }
                Err(mpsc::error::TrySendError::Closed(_)) => {
                    *guard = None;
                    return;
                }
            }
        }
        match slot.tx.try_send(event) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(_)) => slot.missed += 1,
            Err(mpsc::error::TrySendError::Closed(_)) => *guard = None,
        }
    }

    /// The daemon dropped `missed` events for this connection.
    pub(crate) fn lagged(&self, missed: u64) {
        let mut guard = lock(&self.slot);
        let Some(slot) = guard.as_mut() else {
            return;
        };
        let missed = slot.missed.saturating_add(missed);
        match slot.tx.try_send(ClientEvent::Lagged { missed }) {
            Ok(()) => slot.missed = 0,
            Err(mpsc::error::TrySendError::Full(_)) => slot.missed = missed,
            Err(mpsc::error::TrySendError::Closed(_)) => *guard = None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn added(n: u32) -> ClientEvent {
        ClientEvent::Event(Event::UserAdded {
            user_id: n.to_string(),
        })
    }

    #[tokio::test]
    async fn a_slow_subscriber_gets_lagged_not_unbounded_memory() {
        let hub = EventHub::default();
        let (_, mut sub) = hub.install(vec![EventKind::UserAdded], 2);
        for n in 0..5 {
            hub.deliver(added(n));
        }
        assert_eq!(sub.next_event().await, Some(added(0)));
        assert_eq!(sub.next_event().await, Some(added(1)));
        // Three were dropped; the next delivery reports them first.
        hub.deliver(added(5));
        assert_eq!(
            sub.next_event().await,
            Some(ClientEvent::Lagged { missed: 3 })
        );
        assert_eq!(sub.next_event().await, Some(added(5)));
    }

    #[tokio::test]
    async fn daemon_lag_adds_to_local_lag_and_replacing_ends_the_old_stream() {
        let hub = EventHub::default();
        let (first, mut sub) = hub.install(vec![EventKind::UserAdded], 1);
        hub.deliver(added(0));
        hub.deliver(added(1)); // dropped locally
        hub.lagged(4);
        assert_eq!(sub.next_event().await, Some(added(0)));
        hub.lagged(0);
        assert_eq!(
            sub.next_event().await,
            Some(ClientEvent::Lagged { missed: 5 })
        );
        let (second, _new) = hub.install(vec![EventKind::UserRemoved], 1);
        assert_ne!(first, second);
        assert_eq!(sub.next_event().await, None);
        hub.remove(first); // not the active one: no effect
        assert!(hub.is_active());
        hub.remove(second);
        assert!(!hub.is_active());
    }
}
