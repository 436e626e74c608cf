//! The `timing` group: does a refused login take as long for an unknown username as for
//! a known user with a wrong password? (An unknown user gets a dummy bcrypt check; a
//! measurable difference would let a peer enumerate usernames.)
//!
//! Two cases, each on a daemon with throttling off, so lockouts never answer early:
//! - [`measure`]: a cost-12 daemon (Home Assistant's default cost), whose owner's hash is
//!   cost 12 too;
//! - [`measure_cost_mismatch`]: a Home Assistant directory whose hashes are cost 12 (the
//!   owner's, written by a cost-12 daemon that then stopped) served by a daemon
//!   configured with `bcrypt_cost = 10`: the dummy check for an unknown user must cost
//!   what checking the stored hash costs, not what the configuration says.
//!
//! The known user is the bench owner, who has a password. Attempts alternate between the
//! two kinds (which kind goes first alternates too, so drift hits both alike); each is
//! timed from sending `LoginContinue` to its answer, on a fresh flow.

use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use latch_client::protocol::{FlowState, Handler, Sensitive};
use latch_client::{Client, ClientOptions};

use crate::daemon::{CLIENT_ID, Daemon, USERNAME};
use crate::report::percentile;

/// A username the daemon does not know.
const UNKNOWN_USERNAME: &str = "nobody-by-this-name";
/// A password that is not the owner's.
const WRONG_PASSWORD: &str = "wrong horse battery staple";
/// Longest a refused login may take before the scenario fails.
const REQUEST_DEADLINE: Duration = Duration::from_secs(30);
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

/// `attempts` timed attempts of each kind on a cost-12 daemon.
pub(crate) async fn measure(attempts: usize) -> Result<Timing> {
    let mut daemon = Daemon::spawn(12)?;
    daemon.wait_ready().await?;
    daemon.owner_token().await?;
    alternate(&daemon, attempts).await
}

/// `attempts` timed attempts of each kind on a directory whose hashes are cost 12,
/// served with `bcrypt_cost = 10`.
pub(crate) async fn measure_cost_mismatch(attempts: usize) -> Result<Timing> {
    let mut daemon = Daemon::spawn(12)?;
    daemon.wait_ready().await?;
    daemon.owner_token().await?;
    daemon.restart_with_cost(10)?;
    daemon.wait_ready().await?;
    let stored = stored_costs(daemon.home())?;
    if stored != [12] {
        bail!("expected one stored hash of cost 12, found costs {stored:?}");
    }
    alternate(&daemon, attempts).await
}

/// The bcrypt costs of the hashes in the home's `auth_provider.homeassistant` file.
fn stored_costs(home: &std::path::Path) -> Result<Vec<u32>> {
    use base64::Engine as _;
    let path = home.join(".storage").join("auth_provider.homeassistant");
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("cannot read {}", path.display()))?;
    let file: serde_json::Value = serde_json::from_str(&text)?;
    let users = file["data"]["users"]
        .as_array()
        .with_context(|| format!("no users in {}", path.display()))?;
    users
        .iter()
        .map(|u| {
            // Home Assistant stores the `$2b$12$…` string base64-encoded.
            let hash = u["password"]
                .as_str()
                .context("a user without a password")?;
            let hash = base64::engine::general_purpose::STANDARD.decode(hash)?;
            let cost = hash
                .get(4..6)
                .and_then(|c| std::str::from_utf8(c).ok())
                .and_then(|c| c.parse().ok())
                .context("a password that is not a bcrypt hash")?;
            Ok(cost)
        })
        .collect()
}

/// `attempts` timed attempts of each kind, alternating.
async fn alternate(daemon: &Daemon, attempts: usize) -> Result<Timing> {
    // A deadline turns an answer that never comes into an error instead of a hung bench
    // (a timer per bcrypt-length request costs nothing measurable).
    let client = Client::connect_with(ClientOptions {
        request_timeout: Some(REQUEST_DEADLINE),
        ..daemon.options()
    })
    .await
    .context("cannot connect to latchd")?;
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
    fn reads_the_stored_bcrypt_costs() {
        use base64::Engine as _;
        let home = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let storage = home.path().join(".storage");
        std::fs::create_dir(&storage).unwrap_or_else(|e| panic!("{e}"));
        let b64 = |h: &str| base64::engine::general_purpose::STANDARD.encode(h);
        let file = serde_json::json!({
            "version": 1, "minor_version": 1, "key": "auth_provider.homeassistant",
            "data": {"users": [
                {"username": "a", "password": b64("$2b$12$abcdefghijklmnopqrstuu")},
                {"username": "b", "password": b64("$2b$04$abcdefghijklmnopqrstuu")},
            ]}
        });
        std::fs::write(
            storage.join("auth_provider.homeassistant"),
            file.to_string(),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(stored_costs(home.path()).ok(), Some(vec![12, 4]));
        std::fs::write(
            storage.join("auth_provider.homeassistant"),
            r#"{"data":{"users":[{"username":"a","password":"bm90IGEgaGFzaA=="}]}}"#,
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert!(stored_costs(home.path()).is_err());
    }

    #[test]
    fn refuses_empty_or_degenerate_samples() {
        assert_eq!(compare(vec![], vec![1.0]), None);
        assert_eq!(compare(vec![1.0], vec![]), None);
        assert_eq!(compare(vec![1.0], vec![0.0]), None);
    }
}
