//! Scenario 1: in-process access-token validation through the AuthManager, against a
//! bare HMAC-SHA256 over the same signing input.

use std::hint::black_box;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use hmac::{Hmac, KeyInit, Mac};
use latch_auth::{AuthConfig, AuthManager, ManagerOptions};
use latch_store::{Store, StoreOptions};
use latch_token::NewRefreshToken;
use sha2::Sha256;

/// The measured rates, in operations per second.
#[derive(Clone, Copy, Debug)]
pub(crate) struct InProcess {
    /// The same token validated again and again (as a service does): the verified-token
    /// cache answers.
    pub(crate) validate: f64,
    /// With the verified-token cache off: every validation decodes and verifies.
    pub(crate) validate_uncached: f64,
    pub(crate) hmac: f64,
}

/// Runs `f` in batches of 1,000 for `duration` after a warm-up; operations per second.
fn rate(duration: Duration, mut f: impl FnMut() -> bool) -> Result<f64> {
    const BATCH: u64 = 1_000;
    for _ in 0..BATCH {
        if !black_box(f()) {
            bail!("the operation failed");
        }
    }
    let start = Instant::now();
    let mut n = 0_u64;
    loop {
        for _ in 0..BATCH {
            if !black_box(f()) {
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

/// A manager in a temporary home with one user, one refresh token and an access token
/// minted from it.
struct Setup {
    _home: tempfile::TempDir,
    manager: AuthManager,
    refresh: latch_models::RefreshToken,
    jwt: String,
}

async fn setup(options: ManagerOptions) -> Result<Setup> {
    let home = tempfile::tempdir().context("cannot create a temp home")?;
    let store = Store::open(home.path(), StoreOptions::default())?;
    let manager = AuthManager::from_config(store, &AuthConfig::default(), options)?;
    let user = manager
        .create_user(Some("Bench".into()), None, false)
        .await?;
    let refresh = manager
        .create_refresh_token(
            user.id.as_str(),
            NewRefreshToken::normal("http://127.0.0.1:8123/", None),
        )
        .await?;
    let jwt = manager
        .create_access_token(refresh.id.as_str(), None)?
        .token;
    if manager.validate_access_token(&jwt).is_none() {
        bail!("the fresh access token does not validate");
    }
    Ok(Setup {
        _home: home,
        manager,
        refresh,
        jwt,
    })
}

/// Scenario 1.
pub(crate) async fn measure(duration: Duration) -> Result<InProcess> {
    let uncached = setup(ManagerOptions {
        verified_cache_size: 0,
        ..ManagerOptions::default()
    })
    .await?;
    let validate_uncached = rate(duration, || {
        uncached
            .manager
            .validate_access_token(black_box(&uncached.jwt))
            .is_some()
    })?;
    uncached.manager.store().close().await?;

    let Setup {
        _home,
        manager,
        refresh,
        jwt,
    } = setup(ManagerOptions::default()).await?;
    let validate = rate(duration, || {
        manager.validate_access_token(black_box(&jwt)).is_some()
    })?;

    // The floor: what validation cannot avoid, one HMAC-SHA256 keyed with the raw key
    // over the JWT's signing input.
    let raw_key = refresh.jwt_key.expose().as_bytes().to_vec();
    let signing_input = jwt
        .rsplit_once('.')
        .map(|(input, _)| input.as_bytes().to_vec())
        .unwrap_or_default();
    let hmac = rate(duration, || {
        let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(black_box(&raw_key)) else {
            return false;
        };
        mac.update(black_box(&signing_input));
        black_box(mac.finalize().into_bytes());
        true
    })?;
    manager.store().close().await?;
    Ok(InProcess {
        validate,
        validate_uncached,
        hmac,
    })
}
