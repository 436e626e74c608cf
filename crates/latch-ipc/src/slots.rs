//! The pre-authentication slots: connections still in their handshake, oldest first.
//!
//! A fixed number of strangers may be in their handshake at once. When every slot is
//! taken, a new connection does not wait and is not refused: the *oldest* stranger is
//! closed and its slot goes to the newcomer. An honest client finishes its handshake in
//! well under a millisecond, so it is almost never the oldest; a peer that opens
//! connections and stays silent only ever pushes out its own earlier ones, and to keep
//! an honest client out it would have to open a slot's worth of connections within that
//! client's handshake, continuously.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use tokio_util::sync::{CancellationToken, WaitForCancellationFuture};

/// The table of handshakes in progress.
#[derive(Debug)]
pub(crate) struct PreAuthSlots {
    max: usize,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    next_id: u64,
    /// Handshakes in progress, oldest first: an id and the token that closes it.
    open: VecDeque<(u64, CancellationToken)>,
}

/// A slot held by one connection in its handshake; released when dropped.
#[derive(Debug)]
pub(crate) struct PreAuthSlot {
    id: u64,
    closed: CancellationToken,
    slots: Arc<PreAuthSlots>,
}

/// What taking a slot did.
#[derive(Debug)]
pub(crate) enum Taken {
    /// A slot was free.
    Free(PreAuthSlot),
    /// Every slot was taken: the oldest handshake was told to close, and its slot is
    /// the newcomer's.
    Evicted(PreAuthSlot),
}

impl PreAuthSlots {
    /// A table of `max` slots.
    pub(crate) fn new(max: usize) -> Arc<Self> {
        Arc::new(Self {
            max,
            state: Mutex::new(State::default()),
        })
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A slot for a new connection, evicting the oldest handshake when all are taken;
    /// `None` only when there are no slots at all.
    pub(crate) fn take(self: &Arc<Self>) -> Option<Taken> {
        if self.max == 0 {
            return None;
        }
        let mut state = self.state();
        let mut evicted = false;
        while state.open.len() >= self.max {
            if let Some((_, oldest)) = state.open.pop_front() {
                oldest.cancel();
                evicted = true;
            }
        }
        let id = state.next_id;
        state.next_id += 1;
        let closed = CancellationToken::new();
        state.open.push_back((id, closed.clone()));
        drop(state);
        let slot = PreAuthSlot {
            id,
            closed,
            slots: Arc::clone(self),
        };
        Some(if evicted {
            Taken::Evicted(slot)
        } else {
            Taken::Free(slot)
        })
    }

    /// How many handshakes are in progress.
    pub(crate) fn in_use(&self) -> usize {
        self.state().open.len()
    }
}

impl PreAuthSlot {
    /// Completes when a newcomer has taken this slot: the handshake must end now.
    pub(crate) fn evicted(&self) -> WaitForCancellationFuture<'_> {
        self.closed.cancelled()
    }
}

impl Drop for PreAuthSlot {
    fn drop(&mut self) {
        let mut state = self.slots.state();
        if let Some(at) = state.open.iter().position(|(id, _)| *id == self.id) {
            state.open.remove(at);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn slot(taken: Option<Taken>) -> (PreAuthSlot, bool) {
        match taken {
            Some(Taken::Free(slot)) => (slot, false),
            Some(Taken::Evicted(slot)) => (slot, true),
            None => panic!("no slot"),
        }
    }

    #[test]
    fn the_oldest_handshake_makes_room_for_a_new_one() {
        let slots = PreAuthSlots::new(2);
        let (first, evicted) = slot(slots.take());
        assert!(!evicted);
        let (second, evicted) = slot(slots.take());
        assert!(!evicted);
        assert_eq!(slots.in_use(), 2);

        let (third, evicted) = slot(slots.take());
        assert!(evicted);
        assert!(first.closed.is_cancelled(), "the oldest is told to close");
        assert!(!second.closed.is_cancelled() && !third.closed.is_cancelled());
        assert_eq!(slots.in_use(), 2);

        // The evicted one's drop frees nothing more; a finished handshake frees its slot.
        drop(first);
        assert_eq!(slots.in_use(), 2);
        drop(third);
        assert_eq!(slots.in_use(), 1);
        let (_fourth, evicted) = slot(slots.take());
        assert!(!evicted);
        let (_fifth, evicted) = slot(slots.take());
        assert!(evicted);
        assert!(second.closed.is_cancelled());
    }

    #[test]
    fn no_slots_means_no_handshakes() {
        assert!(PreAuthSlots::new(0).take().is_none());
    }
}
