//! Events: the AuthManager's events, turned into protocol events and fanned out to the
//! connections that subscribed to their kinds.
//!
//! latch-ipc's [`Broadcaster`] sends every event to every subscriber and a connection
//! follows one broadcaster at a time, so the hub keeps one broadcaster per distinct set of
//! kinds a connection asked for (at most 2⁹ − 1 today) and publishes each event only to
//! the sets that contain its kind. Subscribing again switches the connection to another
//! set's broadcaster; unsubscribing switches it to one that never sends.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use latch_auth::{AuthEvent, ThrottleKey};
use latch_ipc::broadcast::Broadcaster;
use latch_protocol::{Event, EventKind, LockoutKey, Timestamp};
use tokio::sync::{broadcast, watch};

/// Events a subscriber may fall behind by before it is sent `Lagged`.
pub(crate) const EVENT_QUEUE: usize = 1024;

/// The bit of a kind in a subscription mask: its position in [`EventKind::ALL`].
fn bit(kind: EventKind) -> u32 {
    EventKind::ALL
        .iter()
        .position(|k| *k == kind)
        .map_or(0, |i| 1 << i)
}

fn mask_of(kinds: &[EventKind]) -> u32 {
    kinds.iter().fold(0, |m, k| m | bit(*k))
}

/// The per-kind-set broadcasters.
#[derive(Debug)]
pub(crate) struct EventHub {
    by_mask: Mutex<HashMap<u32, Arc<Broadcaster<Event>>>>,
    /// Never sends: the subscription of a connection that unsubscribed.
    silent: Broadcaster<Event>,
}

impl EventHub {
    pub(crate) fn new() -> Self {
        Self {
            by_mask: Mutex::new(HashMap::new()),
            silent: Broadcaster::new(1),
        }
    }

    /// The broadcaster that carries exactly the events of `kinds`. The caller subscribes
    /// a connection to it.
    pub(crate) fn broadcaster_for(&self, kinds: &[EventKind]) -> Arc<Broadcaster<Event>> {
        let mask = mask_of(kinds);
        if mask == 0 {
            return Arc::new(self.silent.clone());
        }
        let mut map = self.by_mask.lock().unwrap_or_else(PoisonError::into_inner);
        // Forget sets nobody follows. A broadcaster handed out but not yet subscribed to
        // is still held by its caller, so it is kept.
        map.retain(|_, b| b.subscriber_count() > 0 || Arc::strong_count(b) > 1);
        Arc::clone(
            map.entry(mask)
                .or_insert_with(|| Arc::new(Broadcaster::new(EVENT_QUEUE))),
        )
    }

    /// The broadcaster of a connection that wants no events.
    pub(crate) fn silent(&self) -> &Broadcaster<Event> {
        &self.silent
    }

    /// Sends `event` to every connection whose subscription includes its kind.
    pub(crate) fn publish(&self, event: &Event) {
        let bit = bit(event.kind());
        let map = self.by_mask.lock().unwrap_or_else(PoisonError::into_inner);
        for (mask, broadcaster) in map.iter() {
            if mask & bit != 0
                && broadcaster.subscriber_count() > 0
                && let Err(err) = broadcaster.send(event)
            {
                tracing::warn!(%err, kind = %event.kind(), "cannot send an event");
            }
        }
    }

    /// Number of live kind sets (tests).
    #[cfg(test)]
    fn sets(&self) -> usize {
        self.by_mask
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }
}

/// The wire form of a lockout key.
pub(crate) fn lockout_key(key: &ThrottleKey) -> LockoutKey {
    match key {
        ThrottleKey::Username(name) => LockoutKey::Username(name.clone()),
        ThrottleKey::Source(ip) => LockoutKey::Source(*ip),
    }
}

/// The protocol event for a manager event; `None` for a kind the protocol does not carry
/// (the manager's event enum may grow first).
pub(crate) fn to_protocol(event: &AuthEvent) -> Option<Event> {
    Some(match event {
        AuthEvent::UserAdded { user_id } => Event::UserAdded {
            user_id: user_id.as_str().to_owned(),
        },
        AuthEvent::UserUpdated { user_id } => Event::UserUpdated {
            user_id: user_id.as_str().to_owned(),
        },
        AuthEvent::UserRemoved { user_id } => Event::UserRemoved {
            user_id: user_id.as_str().to_owned(),
        },
        AuthEvent::RefreshTokenCreated {
            user_id,
            refresh_token_id,
            token_type,
            client_id,
            client_name,
        } => Event::RefreshTokenCreated {
            user_id: user_id.as_str().to_owned(),
            refresh_token_id: refresh_token_id.as_str().to_owned(),
            token_type: (*token_type).into(),
            client_id: client_id.clone(),
            client_name: client_name.clone(),
        },
        AuthEvent::RefreshTokenRevoked {
            user_id,
            refresh_token_id,
        } => Event::RefreshTokenRevoked {
            user_id: user_id.as_str().to_owned(),
            refresh_token_id: refresh_token_id.as_str().to_owned(),
        },
        AuthEvent::LoginFailed {
            username,
            provider_type,
            source,
            reason,
        } => Event::LoginFailed {
            username: username.clone(),
            provider_type: provider_type.clone(),
            source: *source,
            reason: reason.clone(),
        },
        AuthEvent::LoginSucceeded {
            user_id,
            provider_type,
            source,
        } => Event::LoginSucceeded {
            user_id: user_id.as_str().to_owned(),
            provider_type: provider_type.clone(),
            source: *source,
        },
        AuthEvent::LockoutStarted { key, until } => Event::LockoutStarted {
            key: lockout_key(key),
            until: Timestamp::from(*until),
        },
        AuthEvent::LockoutCleared { key } => Event::LockoutCleared {
            key: lockout_key(key),
        },
        other => {
            tracing::debug!(
                event = other.name(),
                "no protocol event for this auth event"
            );
            return None;
        }
    })
}

/// Forwards the manager's events to the hub until `stop` turns true.
pub(crate) async fn forward(
    mut events: broadcast::Receiver<AuthEvent>,
    hub: Arc<EventHub>,
    mut stop: watch::Receiver<bool>,
) {
    use broadcast::error::RecvError;
    loop {
        let next = tokio::select! {
            biased;
            _ = stop.wait_for(|stopped| *stopped) => return,
            next = events.recv() => next,
        };
        match next {
            Ok(event) => {
                if let Some(event) = to_protocol(&event) {
                    hub.publish(&event);
                }
            }
            Err(RecvError::Lagged(missed)) => {
                tracing::warn!(
                    missed,
                    "the event forwarder fell behind; events were dropped"
                );
            }
            Err(RecvError::Closed) => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use latch_models::{TokenType, UserId};

    use super::*;

    #[test]
    fn masks_follow_the_wire_order() {
        assert_eq!(mask_of(&[]), 0);
        assert_eq!(mask_of(&[EventKind::UserAdded]), 1);
        assert_eq!(
            mask_of(&[EventKind::UserRemoved, EventKind::UserAdded]),
            0b101
        );
        assert_eq!(
            mask_of(&EventKind::ALL),
            (1 << EventKind::ALL.len()) - 1,
            "every kind has its own bit"
        );
    }

    #[test]
    fn same_kinds_share_a_broadcaster_and_unfollowed_sets_are_forgotten() {
        let hub = EventHub::new();
        let a = hub.broadcaster_for(&[EventKind::UserAdded, EventKind::UserRemoved]);
        let b = hub.broadcaster_for(&[EventKind::UserRemoved, EventKind::UserAdded]);
        assert!(Arc::ptr_eq(&a, &b));
        let c = hub.broadcaster_for(&[EventKind::LoginFailed]);
        assert!(!Arc::ptr_eq(&a, &c));
        assert_eq!(hub.sets(), 2);
        drop((a, b, c));
        // Nobody subscribed and nobody holds them: the next call prunes them.
        let _d = hub.broadcaster_for(&[EventKind::UserUpdated]);
        assert_eq!(hub.sets(), 1);
    }

    #[test]
    fn conversion_keeps_ids_and_types() {
        let user_id = UserId::from("u1");
        let ev = to_protocol(&AuthEvent::RefreshTokenCreated {
            user_id: user_id.clone(),
            refresh_token_id: "t1".into(),
            token_type: TokenType::LongLivedAccessToken,
            client_id: None,
            client_name: Some("script".into()),
        });
        assert_eq!(
            ev,
            Some(Event::RefreshTokenCreated {
                user_id: "u1".into(),
                refresh_token_id: "t1".into(),
                token_type: latch_protocol::TokenType::LongLivedAccessToken,
                client_id: None,
                client_name: Some("script".into()),
            })
        );
        assert_eq!(
            to_protocol(&AuthEvent::UserRemoved { user_id }),
            Some(Event::UserRemoved {
                user_id: "u1".into()
            })
        );
        let key = ThrottleKey::username("Paulus");
        assert_eq!(lockout_key(&key), LockoutKey::Username("paulus".into()));
    }
}
