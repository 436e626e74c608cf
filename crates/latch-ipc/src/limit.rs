//! A rate limiter for per-connection failure logs, so that a peer hammering the socket
//! cannot flood the log.

use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

/// Admits at most `per_window` log lines per window, and counts the rest.
#[derive(Debug)]
pub(crate) struct LogLimiter {
    per_window: u32,
    window: Duration,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    window_start: Option<Instant>,
    admitted: u32,
    suppressed: u64,
}

impl LogLimiter {
    /// At most `per_second` lines a second.
    pub(crate) fn per_second(per_second: u32) -> Self {
        Self {
            per_window: per_second,
            window: Duration::from_secs(1),
            state: Mutex::new(State::default()),
        }
    }

    /// Whether a line may be logged at `now`. `Some(n)`: log it, noting that `n` lines
    /// were suppressed since the last one logged. `None`: stay quiet.
    pub(crate) fn admit(&self, now: Instant) -> Option<u64> {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let expired = state
            .window_start
            .is_none_or(|start| now.saturating_duration_since(start) >= self.window);
        if expired {
            state.window_start = Some(now);
            state.admitted = 0;
        }
        if state.admitted < self.per_window {
            state.admitted += 1;
            Some(std::mem::take(&mut state.suppressed))
        } else {
            state.suppressed = state.suppressed.saturating_add(1);
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admits_n_per_second_then_reports_the_suppressed_count() {
        let limiter = LogLimiter::per_second(2);
        let t0 = Instant::now();
        assert_eq!(limiter.admit(t0), Some(0));
        assert_eq!(limiter.admit(t0), Some(0));
        assert_eq!(limiter.admit(t0), None);
        assert_eq!(limiter.admit(t0 + Duration::from_millis(999)), None);
        assert_eq!(limiter.admit(t0 + Duration::from_secs(1)), Some(2));
        assert_eq!(limiter.admit(t0 + Duration::from_secs(1)), Some(0));
        assert_eq!(limiter.admit(t0 + Duration::from_secs(1)), None);
    }
}
