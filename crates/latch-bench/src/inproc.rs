//! Scenario 1: in-process access-token validation through the AuthManager, against a
//! bare HMAC-SHA256 over the same signing input (with a prepared key) and, with
//! `--ha-python`, against Home Assistant's own `async_validate_access_token` on the same
//! store, measured in the same run (`peer/ha_validate.py`).

use std::hint::black_box;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use hmac::{Hmac, KeyInit, Mac};
use latch_auth::{AuthConfig, AuthManager, ManagerOptions};
use latch_store::{Store, StoreOptions};
use latch_token::NewRefreshToken;
use serde::Deserialize;
use sha2::Sha256;

/// Distinct access tokens (one per refresh token) the first-validation loops go through:
/// far more than Home Assistant's 16-entry JWT caches hold, so neither side is answered
/// from a cache.
const TOKENS: usize = 256;

/// The Home Assistant side, run by `python ha_validate.py CONFIG_DIR TOKENS_JSON SECONDS`.
const HA_SCRIPT: &str = include_str!("../peer/ha_validate.py");

/// The measured rates, in operations per second.
#[derive(Clone, Debug)]
pub(crate) struct InProcess {
    /// A token's first validation: the [`TOKENS`] tokens in turn through a one-entry
    /// verified-token cache, so every call misses it, decodes, verifies and remembers the
    /// token (the refresh token's prepared key is cached, as it is after that refresh
    /// token's first use).
    pub(crate) first: f64,
    /// The same token validated again and again (as a service does): the verified-token
    /// cache answers.
    pub(crate) repeat: f64,
    /// One HMAC-SHA256 over a token's signing input with a prepared key (the key's
    /// inner and outer hash states made once): the cryptography no validation avoids.
    pub(crate) hmac: f64,
    /// Home Assistant on the same store, when measured.
    pub(crate) peer: Option<HomeAssistant>,
}

/// Home Assistant's `async_validate_access_token`, as `ha_validate.py` measured it.
#[derive(Clone, Debug, Deserialize)]
pub(crate) struct HomeAssistant {
    pub(crate) version: String,
    /// The tokens in turn: its JWT caches miss.
    pub(crate) first_ops: f64,
    /// One token again and again: its JWT caches answer the decode.
    pub(crate) repeat_ops: f64,
    pub(crate) tokens: usize,
    pub(crate) jwt_cache_size: usize,
}

/// Runs `f(i)` in batches of 1,000 for `duration` after a warm-up; operations per
/// second.
fn rate(duration: Duration, mut f: impl FnMut(usize) -> bool) -> Result<f64> {
    const BATCH: usize = 1_000;
    for i in 0..BATCH {
        if !black_box(f(i)) {
            bail!("the operation failed");
        }
    }
    let start = Instant::now();
    let mut n = 0_usize;
    loop {
        for i in n..n + BATCH {
            if !black_box(f(i)) {
                bail!("the operation failed");
            }
        }
        n += BATCH;
        if start.elapsed() >= duration {
            #[allow(clippy::cast_precision_loss)]
            return Ok(n as f64 / start.elapsed().as_secs_f64());
        }
    }
}

fn manager(home: &Path, verified_cache_size: usize) -> Result<AuthManager> {
    let store = Store::open(home, StoreOptions::default())?;
    Ok(AuthManager::from_config(
        store,
        &AuthConfig::default(),
        ManagerOptions {
            verified_cache_size,
            ..ManagerOptions::default()
        },
    )?)
}

/// One user with [`TOKENS`] refresh tokens, an access token minted from each.
async fn populate(manager: &AuthManager) -> Result<(Vec<String>, String)> {
    let user = manager
        .create_user(Some("Bench".into()), None, false)
        .await?;
    let mut tokens = Vec::with_capacity(TOKENS);
    let mut raw_key = String::new();
    for _ in 0..TOKENS {
        let refresh = manager
            .create_refresh_token(
                user.id.as_str(),
                NewRefreshToken::normal("http://127.0.0.1:8123/", None),
            )
            .await?;
        raw_key = refresh.jwt_key.expose().to_owned();
        tokens.push(
            manager
                .create_access_token(refresh.id.as_str(), None)?
                .token,
        );
    }
    if tokens
        .iter()
        .any(|t| manager.validate_access_token(t).is_none())
    {
        bail!("a fresh access token does not validate");
    }
    Ok((tokens, raw_key))
}

/// Scenario 1; `ha_python`: the interpreter of a virtual environment with Home Assistant.
pub(crate) async fn measure(duration: Duration, ha_python: Option<&Path>) -> Result<InProcess> {
    let home = tempfile::Builder::new()
        .prefix("latch-bench-inproc-")
        .tempdir()
        .context("cannot create a temp home")?;

    // One entry: each token pushes the previous one out, so none is found there.
    let uncached = manager(home.path(), 1)?;
    let (tokens, raw_key) = populate(&uncached).await?;
    let first = rate(duration, |i| {
        uncached
            .validate_access_token(black_box(&tokens[i % TOKENS]))
            .is_some()
    })?;
    // A clean stop writes Home Assistant's files: the peer reads what latch wrote.
    uncached.store().close().await?;
    drop(uncached);

    let repeat_token = tokens.last().context("no tokens")?.clone();
    let peer = match ha_python {
        Some(python) => Some(home_assistant(
            python,
            home.path(),
            &tokens,
            &repeat_token,
            duration,
        )?),
        None => None,
    };

    let cached = manager(home.path(), latch_auth::VERIFIED_CACHE_DEFAULT)?;
    let repeat = rate(duration, |_| {
        cached
            .validate_access_token(black_box(&repeat_token))
            .is_some()
    })?;
    cached.store().close().await?;

    // The floor: what validation cannot avoid, one HMAC-SHA256 over the JWT's signing
    // input, with the key prepared once as a validation finds it.
    let prepared = Hmac::<Sha256>::new_from_slice(raw_key.as_bytes())
        .map_err(|e| anyhow::anyhow!("cannot prepare an HMAC key: {e}"))?;
    let signing_input = repeat_token
        .rsplit_once('.')
        .map(|(input, _)| input.as_bytes().to_vec())
        .unwrap_or_default();
    let hmac = rate(duration, |_| {
        let mut mac = black_box(&prepared).clone();
        mac.update(black_box(&signing_input));
        black_box(mac.finalize().into_bytes());
        true
    })?;
    Ok(InProcess {
        first,
        repeat,
        hmac,
        peer,
    })
}

/// Runs `peer/ha_validate.py` on `home` with `python`; what it measured.
fn home_assistant(
    python: &Path,
    home: &Path,
    tokens: &[String],
    repeat: &str,
    duration: Duration,
) -> Result<HomeAssistant> {
    let dir = tempfile::Builder::new()
        .prefix("latch-bench-ha-")
        .tempdir()
        .context("cannot create a temp dir for the Home Assistant peer")?;
    let script = dir.path().join("ha_validate.py");
    std::fs::write(&script, HA_SCRIPT)?;
    let list = dir.path().join("tokens.json");
    std::fs::write(
        &list,
        serde_json::to_vec(&serde_json::json!({ "tokens": tokens, "repeat": repeat }))?,
    )?;
    let out = Command::new(python)
        .arg(&script)
        .arg(home)
        .arg(&list)
        .arg(duration.as_secs_f64().to_string())
        .output()
        .with_context(|| format!("cannot run {}", python.display()))?;
    if !out.status.success() {
        bail!(
            "the Home Assistant peer failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout
        .lines()
        .last()
        .context("the Home Assistant peer printed nothing")?;
    let peer: HomeAssistant = serde_json::from_str(line)
        .with_context(|| format!("unexpected answer from the Home Assistant peer: {line}"))?;
    if peer.tokens <= peer.jwt_cache_size {
        bail!(
            "{} tokens do not defeat Home Assistant's {}-entry caches",
            peer.tokens,
            peer.jwt_cache_size
        );
    }
    Ok(peer)
}
