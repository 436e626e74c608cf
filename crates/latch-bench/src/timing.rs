//! The `timing` group: does a refused login take as long for an unknown username as for
//! a known user with a wrong password? (An unknown user gets a dummy bcrypt check; a
//! measurable difference would let a peer enumerate usernames.)
//!
//! One cost-12 daemon (Home Assistant's default cost) with throttling off, so lockouts
//! never answer early. The known user is the bench owner, who has a password. Attempts
//! alternate between the two kinds (which kind goes first alternates too, so drift hits
//! both alike); each is timed from sending `LoginContinue` to its answer, on a fresh flow.

use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use latch_client::Client;
use latch_client::protocol::{FlowState, Handler, Sensitive};

use crate::daemon::{CLIENT_ID, Daemon, USERNAME};
use crate::report::percentile;

/// A username the daemon does not know.
const UNKNOWN_USERNAME: &str = "nobody-by-this-name";
/// A password that is not the owner's.
const WRONG_PASSWORD: &str = "wrong horse battery staple";
/// Untimed attempts of each kind first (pool threads, page cache).
const WARM_UP: usize = 2;

/// Medians of the two kinds, in ms.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Timing {
    pub(crate) unknown_ms: f64,
    pub(crate) wrong_ms: f64,
    /// `|unknown − wrong| / wrong`, in percent.
    pub(crate) difference_pct: f64,
    pub(crate) samples: usize,
}

/// Medians and their relative difference (to the known user's median, the real check),
/// from per-attempt times; `None` when either side is empty or the known-user median is
/// not positive.
pub(crate) fn compare(mut unknown: Vec<f64>, mut wrong: Vec<f64>) -> Option<Timing> {
    let samples = unknown.len().min(wrong.len());
    let unknown_ms = percentile(&mut unknown, 50.0)?;
    let wrong_ms = percentile(&mut wrong, 50.0)?;
    if wrong_ms <= 0.0 || !wrong_ms.is_finite() {
        return None;
    }
    Some(Timing {
        unknown_ms,
        wrong_ms,
        difference_pct: (unknown_ms - wrong_ms).abs() / wrong_ms * 100.0,
        samples,
    })
}

/// One refused login: `login_start` (not timed), then the timed `login_continue`, whose
/// answer must be the form again with an error.
async fn refused_login(client: &Client, username: &str) -> Result<Duration> {
    let flow = client
        .login_start(Handler::new("homeassistant"), CLIENT_ID, None, None)
        .await
        .context("login_start")?;
    let FlowState::Form(form) = flow else {
        bail!("login_start did not answer a form: {flow:?}");
    };
    let input = vec![
        ("username".to_owned(), Sensitive::from(username)),
        ("password".to_owned(), Sensitive::from(WRONG_PASSWORD)),
    ];
    let t = Instant::now();
    let answer = client
        .login_continue(&form.flow_id, input, None)
        .await
        .context("login_continue")?;
    let took = t.elapsed();
    match answer {
        FlowState::Form(form) if !form.errors.is_empty() => Ok(took),
        other => {
            bail!("a wrong login for {username:?} was not refused with a form error: {other:?}")
        }
    }
}

/// `attempts` timed attempts of each kind, alternating.
pub(crate) async fn measure(attempts: usize) -> Result<Timing> {
    let mut daemon = Daemon::spawn(12)?;
    daemon.wait_ready().await?;
    daemon.owner_token().await?;
    let client = daemon.client().await?;
    let mut unknown = Vec::with_capacity(attempts);
    let mut wrong = Vec::with_capacity(attempts);
    for i in 0..WARM_UP + attempts {
        let (first, second) = if i % 2 == 0 {
            (UNKNOWN_USERNAME, USERNAME)
        } else {
            (USERNAME, UNKNOWN_USERNAME)
        };
        for username in [first, second] {
            let took = refused_login(&client, username).await?.as_secs_f64() * 1e3;
            if i < WARM_UP {
                continue;
            }
            if username == USERNAME {
                wrong.push(took);
            } else {
                unknown.push(took);
            }
        }
    }
    client.disconnect();
    compare(unknown, wrong).context("no usable samples")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compares_medians_relative_to_the_known_user() {
        let t = compare(vec![103.0, 99.0, 101.0], vec![100.0, 98.0, 102.0])
            .unwrap_or_else(|| panic!("no timing"));
        assert!((t.unknown_ms - 101.0).abs() < 1e-9);
        assert!((t.wrong_ms - 100.0).abs() < 1e-9);
        assert!((t.difference_pct - 1.0).abs() < 1e-9);
        assert_eq!(t.samples, 3);
        // Faster unknown-user refusals count the same as slower ones.
        let t = compare(vec![50.0], vec![100.0]).unwrap_or_else(|| panic!("no timing"));
        assert!((t.difference_pct - 50.0).abs() < 1e-9);
    }

    #[test]
    fn refuses_empty_or_degenerate_samples() {
        assert_eq!(compare(vec![], vec![1.0]), None);
        assert_eq!(compare(vec![1.0], vec![]), None);
        assert_eq!(compare(vec![1.0], vec![0.0]), None);
    }
}
