//! At most N login flows in progress per client address.
//!
//! latchd bounds flows in number and age for everyone together (and drops the oldest
//! when full); this bounds what one address may hold, so a single client cannot push
//! everyone else's flows out. A flow counts from its start until an answer ends it
//! (abort, code, refusal, `DELETE`, "not found") or until [`FLOW_TTL`], latchd's own
//! limit on a flow's age, has passed. The JSON API refuses a flow over the share (429);
//! the sign-in page, whose every load starts a flow, gives up the address's oldest flow
//! instead, so reloading it never locks a person out.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use tokio::time::Instant;

/// How long a flow may stay in progress (latchd's default flow lifetime).
pub const FLOW_TTL: Duration = Duration::from_secs(600);

/// Flows tracked at most across all addresses (as many as latchd keeps).
const MAX_TRACKED: usize = 10_000;

#[derive(Debug)]
struct Tracked {
    /// Unique per reservation.
    ticket: u64,
    /// The flow, once latchd has answered; `None` while its start is running.
    flow_id: Option<String>,
    since: Instant,
}

#[derive(Debug, Default)]
struct State {
    by_ip: HashMap<IpAddr, Vec<Tracked>>,
    ip_of: HashMap<String, IpAddr>,
    total: usize,
    next_ticket: u64,
}

impl State {
    fn prune(&mut self, now: Instant, ttl: Duration) {
        let mut removed = Vec::new();
        self.by_ip.retain(|_, flows| {
            flows.retain(|t| {
                let keep = now.duration_since(t.since) < ttl;
                if !keep && let Some(id) = &t.flow_id {
                    removed.push(id.clone());
                }
                keep
            });
            !flows.is_empty()
        });
        for id in removed {
            self.ip_of.remove(&id);
        }
        self.total = self.by_ip.values().map(Vec::len).sum();
    }

    fn remove_ticket(&mut self, ip: IpAddr, ticket: u64) {
        if let Some(flows) = self.by_ip.get_mut(&ip) {
            if let Some(i) = flows.iter().position(|t| t.ticket == ticket) {
                let t = flows.remove(i);
                self.total -= 1;
                if let Some(id) = t.flow_id {
                    self.ip_of.remove(&id);
                }
            }
            if flows.is_empty() {
                self.by_ip.remove(&ip);
            }
        }
    }

    /// Drops the oldest tracked flow anywhere (latchd drops its oldest too).
    fn drop_oldest(&mut self) {
        let oldest = self
            .by_ip
            .iter()
            .flat_map(|(ip, flows)| flows.iter().map(move |t| (*ip, t.ticket, t.since)))
            .min_by_key(|(_, _, since)| *since);
        if let Some((ip, ticket, _)) = oldest {
            self.remove_ticket(ip, ticket);
        }
    }
}

/// The per-address count of login flows.
#[derive(Debug, Clone)]
pub(crate) struct FlowLimiter {
    per_address: usize,
    ttl: Duration,
    state: Arc<Mutex<State>>,
}

/// A place for one flow of an address, held while its start runs. Dropped unused, it
/// frees the place.
#[derive(Debug)]
pub(crate) struct Reservation {
    limiter: FlowLimiter,
    ip: IpAddr,
    ticket: u64,
    kept: bool,
}

impl Reservation {
    /// The flow started and goes on: it counts until it ends.
    pub(crate) fn keep(mut self, flow_id: &str) {
        let mut state = self.limiter.state.lock();
        let ip = self.ip;
        if let Some(t) = state
            .by_ip
            .get_mut(&ip)
            .and_then(|flows| flows.iter_mut().find(|t| t.ticket == self.ticket))
        {
            t.flow_id = Some(flow_id.to_owned());
            state.ip_of.insert(flow_id.to_owned(), ip);
        }
        self.kept = true;
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        if !self.kept {
            self.limiter
                .state
                .lock()
                .remove_ticket(self.ip, self.ticket);
        }
    }
}

impl FlowLimiter {
    /// At most `per_address` flows per address, each counted at most `ttl`.
    pub(crate) fn new(per_address: usize, ttl: Duration) -> Self {
        Self {
            per_address: per_address.max(1),
            ttl,
            state: Arc::new(Mutex::new(State::default())),
        }
    }

    /// A place for a new flow from `ip`, or `None` when it has as many as allowed.
    pub(crate) fn reserve(&self, ip: IpAddr) -> Option<Reservation> {
        let now = Instant::now();
        let mut state = self.state.lock();
        state.prune(now, self.ttl);
        if state.by_ip.get(&ip).map_or(0, Vec::len) >= self.per_address {
            return None;
        }
        while state.total >= MAX_TRACKED {
            state.drop_oldest();
        }
        state.next_ticket += 1;
        let ticket = state.next_ticket;
        state.by_ip.entry(ip).or_default().push(Tracked {
            ticket,
            flow_id: None,
            since: now,
        });
        state.total += 1;
        Some(Reservation {
            limiter: self.clone(),
            ip,
            ticket,
            kept: false,
        })
    }

    /// A place for a new flow from `ip`; when it has as many as allowed, the oldest one
    /// that latchd has started is given up to make room, and its id returned so that
    /// the caller aborts it. For the sign-in page, where every load starts a flow: a
    /// person who reloads it is never locked out, and one address still holds no more
    /// than its share. `None` only while all of the address's places are still starting.
    pub(crate) fn reserve_evicting(&self, ip: IpAddr) -> Option<(Reservation, Option<String>)> {
        if let Some(reservation) = self.reserve(ip) {
            return Some((reservation, None));
        }
        let evicted = {
            let mut state = self.state.lock();
            let oldest = state.by_ip.get(&ip).and_then(|flows| {
                flows
                    .iter()
                    .filter(|t| t.flow_id.is_some())
                    .min_by_key(|t| t.since)
                    .map(|t| (t.ticket, t.flow_id.clone()))
            });
            let (ticket, flow_id) = oldest?;
            state.remove_ticket(ip, ticket);
            flow_id
        };
        self.reserve(ip).map(|r| (r, evicted))
    }

    /// The flow ended (or does not exist): it no longer counts.
    pub(crate) fn release(&self, flow_id: &str) {
        let mut state = self.state.lock();
        let Some(ip) = state.ip_of.remove(flow_id) else {
            return;
        };
        let ticket = state.by_ip.get(&ip).and_then(|flows| {
            flows
                .iter()
                .find(|t| t.flow_id.as_deref() == Some(flow_id))
                .map(|t| t.ticket)
        });
        if let Some(ticket) = ticket {
            state.remove_ticket(ip, ticket);
        }
    }

    /// Flows counted for `ip` now.
    #[cfg(test)]
    fn count(&self, ip: IpAddr) -> usize {
        let mut state = self.state.lock();
        state.prune(Instant::now(), self.ttl);
        state.by_ip.get(&ip).map_or(0, Vec::len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[tokio::test(start_paused = true)]
    async fn an_address_gets_its_share_and_no_more() {
        let limiter = FlowLimiter::new(2, FLOW_TTL);
        let a = ip("192.168.1.20");
        limiter.reserve(a).unwrap().keep("f1");
        limiter.reserve(a).unwrap().keep("f2");
        assert!(limiter.reserve(a).is_none());
        // Another address is not affected.
        limiter.reserve(ip("192.168.1.21")).unwrap().keep("g1");
        // An ended flow frees its place.
        limiter.release("f1");
        assert_eq!(limiter.count(a), 1);
        limiter.reserve(a).unwrap().keep("f3");
        assert!(limiter.reserve(a).is_none());
    }

    #[tokio::test(start_paused = true)]
    async fn the_page_gives_up_the_oldest_flow_of_the_address() {
        let limiter = FlowLimiter::new(2, FLOW_TTL);
        let a = ip("192.168.1.20");
        limiter.reserve(a).unwrap().keep("f1");
        tokio::time::advance(Duration::from_secs(1)).await;
        limiter.reserve(a).unwrap().keep("f2");
        let (r, evicted) = limiter.reserve_evicting(a).unwrap();
        assert_eq!(evicted.as_deref(), Some("f1"));
        r.keep("f3");
        assert_eq!(limiter.count(a), 2);
        // Releasing the evicted flow later changes nothing.
        limiter.release("f1");
        assert_eq!(limiter.count(a), 2);
        // A start still running is never given up.
        let limiter = FlowLimiter::new(1, FLOW_TTL);
        let _starting = limiter.reserve(a).unwrap();
        assert!(limiter.reserve_evicting(a).is_none());
    }

    #[tokio::test(start_paused = true)]
    async fn a_reservation_not_kept_frees_its_place() {
        let limiter = FlowLimiter::new(1, FLOW_TTL);
        let a = ip("10.0.0.1");
        let r = limiter.reserve(a).unwrap();
        assert!(limiter.reserve(a).is_none(), "held while the start runs");
        drop(r);
        assert_eq!(limiter.count(a), 0);
        assert!(limiter.reserve(a).is_some());
    }

    #[tokio::test(start_paused = true)]
    async fn flows_stop_counting_after_their_lifetime() {
        let limiter = FlowLimiter::new(1, FLOW_TTL);
        let a = ip("10.0.0.1");
        limiter.reserve(a).unwrap().keep("f1");
        tokio::time::advance(FLOW_TTL - Duration::from_secs(1)).await;
        assert!(limiter.reserve(a).is_none());
        tokio::time::advance(Duration::from_secs(1)).await;
        limiter.reserve(a).unwrap().keep("f2");
        // Releasing a forgotten flow is harmless.
        limiter.release("f1");
        assert_eq!(limiter.count(a), 1);
    }
}
