//! Scenario 7: the store at scale: a Home Assistant `.storage/auth` with many users and
//! refresh tokens, its load time and memory in a fresh process, and durable mutations
//! with concurrent writers against the cost of one fsync.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use latch_models::User;
use latch_store::{AuthData, Change, Store, StoreFile, StoreOptions};
use latch_token::NewRefreshToken;

use crate::report::percentile;

/// What the fresh process saw.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Loaded {
    pub(crate) load_secs: f64,
    pub(crate) rss_mb: f64,
}

/// The durable-mutation measurement.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Mutations {
    pub(crate) rate: f64,
    pub(crate) p50_ms: f64,
    pub(crate) p99_ms: f64,
    pub(crate) fsync_ms: f64,
    /// Background rewrites of the snapshot files that ran during the window.
    pub(crate) rewrites: u64,
    pub(crate) fsyncs: u64,
    pub(crate) commits: u64,
}

/// Writes `.storage/auth` with `users` users and `tokens_per_user` refresh tokens each,
/// built in memory and encoded once (Home Assistant's format, by latch-store). Returns
/// the users.
pub(crate) fn generate(home: &Path, users: usize, tokens_per_user: usize) -> Result<Vec<User>> {
    let now = latch_models::now_micros();
    let mut data = AuthData::new();
    let mut all = Vec::with_capacity(users);
    for i in 0..users {
        let mut user = User::new(Some(format!("User {i}")));
        user.is_active = true;
        data.apply(Change::PutUser(user.clone()));
        for j in 0..tokens_per_user {
            let token = latch_token::create_refresh_token(
                &user,
                std::iter::empty(),
                NewRefreshToken::normal(format!("http://client{j}.local/"), None),
                now,
                "latch-bench",
            )?;
            data.apply(Change::PutRefreshToken(token));
        }
        all.push(user);
    }
    let bytes = data.encode(StoreFile::Auth)?;
    let storage = home.join(".storage");
    std::fs::create_dir_all(&storage)?;
    // On disk before anything is measured: writing back 80 MB of dirty pages would
    // slow every journal fsync of whichever measurement ran first.
    let mut file = std::fs::File::create(storage.join(StoreFile::Auth.name()))?;
    file.write_all(&bytes)?;
    file.sync_all()?;
    Ok(all)
}

/// Opens the store at `home` in a fresh child process (`--store-child`), which prints
/// its load time and its RSS after the load.
pub(crate) fn load_in_child(home: &Path, users: usize, tokens: usize) -> Result<Loaded> {
    let exe = std::env::current_exe().context("cannot find the bench binary")?;
    let out = Command::new(exe)
        .arg("--store-child")
        .arg(home)
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()
        .context("cannot start the store child")?;
    if !out.status.success() {
        bail!("the store child failed: {}", out.status);
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let fields: Vec<&str> = text.split_whitespace().collect();
    let [load_us, rss_kb, n_users, n_tokens] = fields[..] else {
        bail!("the store child printed {text:?}");
    };
    let (n_users, n_tokens): (usize, usize) = (n_users.parse()?, n_tokens.parse()?);
    if n_users != users || n_tokens != tokens {
        bail!(
            "the store child loaded {n_users} users and {n_tokens} tokens, not {users} and {tokens}"
        );
    }
    Ok(Loaded {
        load_secs: load_us.parse::<f64>()? / 1e6,
        rss_mb: rss_kb.parse::<f64>()? / 1024.0,
    })
}

/// `--store-child <home>`: open the store; the line `load_us rss_kb users tokens` for
/// the parent (main prints it).
pub(crate) fn child(home: &str) -> Result<String> {
    let start = Instant::now();
    let store = Store::open(home, StoreOptions::default())?;
    let load = start.elapsed();
    let rss = crate::daemon::rss_kb(None)?;
    let (users, tokens) = store.read(|d| (d.user_count(), d.refresh_token_count()));
    Ok(format!("{} {rss} {users} {tokens}", load.as_micros()))
}

/// The median latency of `File::sync_data` after a small append, in `dir`.
pub(crate) fn fsync_ms(dir: &Path, samples: usize) -> Result<f64> {
    let path = dir.join("fsync-probe");
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)?;
    let mut times = Vec::with_capacity(samples);
    for _ in 0..samples {
        file.write_all(&[0x42; 64])?;
        let t = Instant::now();
        file.sync_data()?;
        times.push(t.elapsed().as_secs_f64() * 1e3);
    }
    drop(file);
    std::fs::remove_file(&path)?;
    percentile(&mut times, 50.0).context("no fsync samples")
}

/// `writers` tasks each commit one user change at a time for `duration`, on the store
/// at `home` opened with `options`.
pub(crate) async fn mutations(
    home: &Path,
    users: &[User],
    writers: usize,
    duration: Duration,
    fsync_samples: usize,
    options: StoreOptions,
) -> Result<Mutations> {
    let dir = home.to_path_buf();
    let store = tokio::task::spawn_blocking(move || Store::open(dir, options)).await??;
    let store = Arc::new(store);
    let fsync_ms = fsync_ms(&home.join(".storage"), fsync_samples)?;
    let before = store.stats();
    let start = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for w in 0..writers {
        let store = store.clone();
        let mut user = users
            .get(w % users.len().max(1))
            .cloned()
            .context("no users")?;
        tasks.spawn(async move {
            let mut latencies = Vec::new();
            let mut k = 0_u64;
            while start.elapsed() < duration {
                k += 1;
                user.name = Some(format!("writer {w} change {k}"));
                let t = Instant::now();
                store.commit(vec![Change::PutUser(user.clone())]).await?;
                latencies.push(t.elapsed().as_secs_f64() * 1e3);
            }
            Ok::<_, latch_store::StoreError>(latencies)
        });
    }
    let mut all = Vec::new();
    while let Some(result) = tasks.join_next().await {
        all.extend(result??);
    }
    let elapsed = start.elapsed();
    let after = store.stats();
    let n = all.len();
    let p50_ms = percentile(&mut all, 50.0).context("no commits")?;
    let p99_ms = percentile(&mut all, 99.0).context("no commits")?;
    #[allow(clippy::cast_precision_loss)]
    let rate = n as f64 / elapsed.as_secs_f64();
    Ok(Mutations {
        rate,
        p50_ms,
        p99_ms,
        fsync_ms,
        rewrites: after.settled_snapshots - before.settled_snapshots,
        fsyncs: after.fsyncs - before.fsyncs,
        commits: after.commits - before.commits,
    })
}
