//! More than one host: two real `latchd` on one PostgreSQL started for the run
//! (latch-test-postgres: a private cluster under target/, on loopback, fsync on).
//!
//! - a revocation on host A, timed from sending it to host B refusing the token;
//! - durable mutations with writers spread over both hosts;
//! - the load of a large home (users and refresh tokens) from the database: the newest
//!   checkpoint and the rows after it, as `latchd` opens it;
//! - pipelined socket validation on a postgres host beside a files host.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use latch_client::Client;
use latch_store::{Store, StoreOptions};
use latch_store_postgres::{PgBackend, PgConfig};
use latch_test_postgres::{Cluster, Database, PASSWORD};

use crate::daemon::Daemon;
use crate::report::percentile;
use crate::socket;

/// What the group measured.
#[derive(Debug)]
pub(crate) struct Measured {
    pub(crate) revoke_p50_ms: f64,
    pub(crate) revoke_p99_ms: f64,
    pub(crate) revocations: usize,
    pub(crate) mutations_per_sec: f64,
    pub(crate) mutations: u64,
    pub(crate) writers: usize,
    pub(crate) load_secs: f64,
    pub(crate) loads: usize,
    pub(crate) checkpoint_mb: f64,
    /// The same home opened from its files, in this process, once.
    pub(crate) files_load_secs: f64,
    pub(crate) validate_postgres: f64,
    pub(crate) validate_files: f64,
}

/// How big and how long.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Sizes {
    pub(crate) revocations: usize,
    pub(crate) writers: usize,
    pub(crate) writes: Duration,
    pub(crate) users: usize,
    pub(crate) tokens_per_user: usize,
    pub(crate) loads: usize,
    pub(crate) validate: Duration,
}

/// `[store]` for a host of `db`, its password in a 0600 file of its home.
fn store_table(db: &Database, home: &std::path::Path, host: &str) -> Result<String> {
    use std::os::unix::fs::PermissionsExt as _;
    let password_file = home.join("db-password");
    std::fs::write(&password_file, PASSWORD)?;
    std::fs::set_permissions(&password_file, std::fs::Permissions::from_mode(0o600))?;
    Ok(format!(
        "\n[store]\nbackend = \"postgres\"\nurl = \"{}\"\npassword_file = \"{}\"\nhost_name = \"{host}\"\n",
        db.url(),
        password_file.display()
    ))
}

async fn host(db: &Database, name: &str) -> Result<Daemon> {
    let mut daemon = Daemon::spawn_with(4, |home| store_table(db, home, name))?;
    daemon.wait_ready().await?;
    Ok(daemon)
}

pub(crate) async fn measure(sizes: Sizes) -> Result<Measured> {
    let cluster = latch_test_postgres::private_cluster("bench")?;
    let db = cluster.database("bench_hosts")?;
    let a = host(&db, "a").await?;
    let b = host(&db, "b").await?;
    let (token, owner) = a.owner_token().await?;

    crate::step("  revocation on A refused on B");
    let mut revoke_ms = revocations(&a, &b, &owner, sizes.revocations).await?;
    crate::step("  durable mutations over two hosts");
    let (mutations, rate) = mutations(&a, &b, &owner, sizes.writers, sizes.writes).await?;
    crate::step("  validation, postgres host beside files host");
    let mut files = Daemon::spawn(4)?;
    files.wait_ready().await?;
    let (files_token, _) = files.owner_token().await?;
    // Interleaved, alternating which goes first, the best of each: the two share this
    // machine's cores with PostgreSQL and the other host.
    let mut pg_rate = 0.0_f64;
    let mut files_rate = 0.0_f64;
    for round in 0_u32..4 {
        for pg in [round.is_multiple_of(2), !round.is_multiple_of(2)] {
            if pg {
                let (r, _) = socket::pipelined(&b, &token, 4, 64, sizes.validate).await?;
                pg_rate = pg_rate.max(r);
            } else {
                let (r, _) = socket::pipelined(&files, &files_token, 4, 64, sizes.validate).await?;
                files_rate = files_rate.max(r);
            }
        }
    }
    drop((a, b, files));

    crate::step(&format!(
        "  load of {} users and {} tokens from PostgreSQL",
        sizes.users,
        sizes.users * sizes.tokens_per_user
    ));
    let (load_secs, checkpoint_mb, files_load_secs) = load(&cluster, sizes).await?;
    Ok(Measured {
        revoke_p50_ms: percentile(&mut revoke_ms, 50.0).context("no revocations")?,
        revoke_p99_ms: percentile(&mut revoke_ms, 99.0).context("no revocations")?,
        revocations: sizes.revocations,
        mutations_per_sec: rate,
        mutations,
        writers: sizes.writers,
        load_secs,
        loads: sizes.loads,
        checkpoint_mb,
        files_load_secs,
        validate_postgres: pg_rate,
        validate_files: files_rate,
    })
}

/// Each round: a long-lived token made on A and seen valid on B, then revoked on A
/// while B validates it in a loop; the time from sending the revocation to B's refusal.
async fn revocations(a: &Daemon, b: &Daemon, owner: &str, rounds: usize) -> Result<Vec<f64>> {
    let (ca, cb) = (a.client().await?, b.client().await?);
    let mut samples = Vec::with_capacity(rounds);
    for i in 0..rounds {
        let t = ca
            .create_long_lived_token(owner, &format!("revoke {i}"), None, 30)
            .await?;
        let access = t.access_token.expose().to_owned();
        let seen = Instant::now();
        while cb.validate_token(&access).await.is_err() {
            if seen.elapsed() > Duration::from_secs(10) {
                bail!("B never saw token {i}");
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        let revoker = ca.clone();
        let id = t.refresh_token_id.clone();
        let started = Instant::now();
        let revoke = tokio::spawn(async move { revoker.revoke_by_id(&id).await });
        while cb.validate_token(&access).await.is_ok() {
            if started.elapsed() > Duration::from_secs(10) {
                bail!("B still accepts revoked token {i}");
            }
            // A pause between polls, so the poller does not take the cores the two
            // hosts and PostgreSQL need (the resolution stays well under a millisecond).
            tokio::time::sleep(Duration::from_micros(200)).await;
        }
        samples.push(started.elapsed().as_secs_f64() * 1e3);
        revoke.await??;
    }
    Ok(samples)
}

/// `writers` clients, half on each host, each turning the sliding expiry of its own
/// refresh token on and off (a durable mutation that latch-auth does not serialise, as
/// it does user creation behind its admin lock).
async fn mutations(
    a: &Daemon,
    b: &Daemon,
    owner: &str,
    writers: usize,
    window: Duration,
) -> Result<(u64, f64)> {
    let maker = a.client().await?;
    let mut ids = Vec::with_capacity(writers);
    for w in 0..writers {
        let t = maker
            .create_long_lived_token(owner, &format!("writer {w}"), None, 30)
            .await?;
        ids.push(t.refresh_token_id);
    }
    // Every host knows every token before the clock starts.
    let cb = b.client().await?;
    let last = ids.last().cloned().unwrap_or_default();
    let seen = Instant::now();
    while cb.set_token_expiry(&last, true).await.is_err() {
        if seen.elapsed() > Duration::from_secs(10) {
            bail!("B never saw the writers' tokens");
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let done = Arc::new(AtomicU64::new(0));
    let counting = Arc::new(AtomicBool::new(false));
    let stop = Arc::new(AtomicBool::new(false));
    let mut tasks = tokio::task::JoinSet::new();
    for (w, id) in ids.into_iter().enumerate() {
        let client: Client = if w % 2 == 0 {
            a.client().await?
        } else {
            b.client().await?
        };
        let (done, counting, stop) = (done.clone(), counting.clone(), stop.clone());
        tasks.spawn(async move {
            let mut n = 0_u64;
            while !stop.load(Ordering::Relaxed) {
                n += 1;
                client.set_token_expiry(&id, n.is_multiple_of(2)).await?;
                if counting.load(Ordering::Relaxed) {
                    done.fetch_add(1, Ordering::Relaxed);
                }
            }
            Ok::<(), latch_client::ClientError>(())
        });
    }
    tokio::time::sleep(window / 5).await;
    counting.store(true, Ordering::Relaxed);
    let started = Instant::now();
    tokio::time::sleep(window).await;
    let n = done.load(Ordering::Relaxed);
    let elapsed = started.elapsed();
    stop.store(true, Ordering::Relaxed);
    while let Some(r) = tasks.join_next().await {
        r?.context("set_token_expiry")?;
    }
    #[allow(clippy::cast_precision_loss)]
    Ok((n, n as f64 / elapsed.as_secs_f64()))
}

/// A home of `users` × `tokens_per_user` imported into a fresh database, then opened
/// `loads` times as latchd opens it; the median, and the checkpoint's size.
async fn load(cluster: &Cluster, sizes: Sizes) -> Result<(f64, f64, f64)> {
    let home = tempfile::Builder::new()
        .prefix("latch-bench-pg-")
        .tempdir()?;
    let dir = home.path().to_path_buf();
    let (users, per) = (sizes.users, sizes.tokens_per_user);
    let (data, files_secs) = tokio::task::spawn_blocking(move || -> Result<_> {
        crate::store::generate(&dir, users, per)?;
        let started = Instant::now();
        let store = Store::open(&dir, StoreOptions::default())?;
        let took = started.elapsed().as_secs_f64();
        let data = store.snapshot();
        drop(store);
        Ok((data, took))
    })
    .await??;
    let size = std::fs::metadata(home.path().join(".storage").join("auth"))?.len();
    let db = cluster.database("bench_load")?;
    let config = PgConfig::new(&db.url(), Some(PASSWORD.to_owned()), "loader");
    latch_store_postgres::import(&config, &data).await?;
    drop(data);
    let mut times = Vec::with_capacity(sizes.loads);
    for _ in 0..sizes.loads {
        let started = Instant::now();
        let backend = PgBackend::open(config.clone()).await?;
        let took = started.elapsed().as_secs_f64();
        let store = backend.store();
        if store.users().len() != users {
            bail!("loaded {} users, not {users}", store.users().len());
        }
        drop(store);
        drop(backend);
        times.push(took);
    }
    #[allow(clippy::cast_precision_loss)]
    let mb = size as f64 / (1024.0 * 1024.0);
    Ok((
        percentile(&mut times, 50.0).context("no loads")?,
        mb,
        files_secs,
    ))
}
