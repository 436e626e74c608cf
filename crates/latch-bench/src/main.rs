//! latch-bench: the instrument behind `cargo xtask bench`.
//!
//! One job: measure latch against the performance targets of design.md, each figure
//! beside a floor measured in the same run (a bare HMAC, a raw two-process ping-pong,
//! one fsync) or a peer measured in the same run (Home Assistant's own access-token
//! validation, with `--ha-python`), and print one table (scenario, figure, floor or peer, ratio, target, met?), also written
//! as JSON to `target/bench/latest.json`. It uses the real crates and the real
//! `latchd` binary (beside this one in `target/release`), never mocks, and it is not
//! part of the test suite: numbers are quoted from one run on one machine.
//!
//! ```text
//! cargo run --release -p latch-bench -- [--quick]   # what `cargo xtask bench` runs
//! ```
//!
//! `--ha-python PYTHON` names the interpreter of a virtual environment holding Home
//! Assistant (`cargo xtask bench --peer home-assistant` makes one): the `inproc` group
//! then runs `peer/ha_validate.py` on the store latch wrote and compares latch with what
//! it measures. Without it, the Home Assistant rows say "reference, not measured".
//!
//! `--only GROUP[,GROUP…]` runs a subset (`inproc`, `floor`, `socket`, `login-load`,
//! `store`, `footprint`, `fanout`, `timing`, `http`, `forward-auth`, `multi-host`), e.g. to profile one scenario or re-measure after a
//! fix; the socket scenarios always run the floor they are compared with.
//!
//! Internal modes, used by the bench on itself: `--echo <socket>` and `--echo-async
//! <socket>` (the other end of the ping-pong floor, blocking or tokio), `--store-child <home>` (opens a store in a fresh process and
//! prints its load time and RSS) and `--bare-http` (a bare hyper server answering 200,
//! the floor of the forward-auth group).

#![allow(clippy::print_stdout, clippy::print_stderr)]

mod daemon;
mod fanout;
mod floor;
mod forward;
mod http;
mod inproc;
mod multihost;
mod report;
mod socket;
mod store;
mod timing;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use latch_store::StoreOptions;

use crate::daemon::Daemon;
use crate::report::{Machine, Row, Target};

/// How long and how big each scenario runs.
#[derive(Clone, Copy, Debug)]
struct Plan {
    quick: bool,
    /// Bit `i` set: run `GROUPS[i]`; `None`: run everything.
    only: Option<u16>,
    inproc: Duration,
    pingpong: Duration,
    socket: Duration,
    handshakes: usize,
    login_load: Duration,
    login_tasks: usize,
    users: usize,
    tokens_per_user: usize,
    loads: usize,
    writers: usize,
    writes: Duration,
    fsyncs: usize,
    starts: usize,
    fanout: usize,
    /// Timed refused logins of each kind (unknown user, wrong password).
    timing: usize,
    /// How long each server takes the refresh-grant load.
    http: Duration,
    /// Keep-alive connections of that load.
    http_connections: usize,
    /// Revocations timed across two hosts.
    revocations: usize,
}

impl Plan {
    /// Whether the group runs.
    fn wants(&self, group: &str) -> bool {
        let Some(only) = self.only else { return true };
        GROUPS
            .iter()
            .position(|g| *g == group)
            .is_some_and(|i| only & (1 << i) != 0)
    }

    fn new(quick: bool) -> Self {
        if quick {
            Self {
                quick,
                only: None,
                inproc: Duration::from_millis(300),
                pingpong: Duration::from_millis(500),
                socket: Duration::from_secs(1),
                handshakes: 100,
                login_load: Duration::from_secs(3),
                login_tasks: 4,
                users: 10_000,
                tokens_per_user: 10,
                loads: 1,
                writers: 32,
                writes: Duration::from_secs(2),
                fsyncs: 20,
                starts: 3,
                fanout: 1_000,
                timing: 10,
                http: Duration::from_secs(2),
                http_connections: 8,
                revocations: 50,
            }
        } else {
            Self {
                quick,
                only: None,
                inproc: Duration::from_secs(2),
                pingpong: Duration::from_secs(3),
                socket: Duration::from_secs(3),
                handshakes: 500,
                login_load: Duration::from_secs(10),
                login_tasks: 4,
                users: 10_000,
                tokens_per_user: 10,
                loads: 3,
                writers: 32,
                writes: Duration::from_secs(5),
                fsyncs: 50,
                starts: 10,
                fanout: 10_000,
                timing: 40,
                http: Duration::from_secs(5),
                http_connections: 8,
                revocations: 200,
            }
        }
    }
}

/// The scenario groups `--only` accepts.
const GROUPS: [&str; 11] = [
    "inproc",
    "floor",
    "socket",
    "login-load",
    "store",
    "footprint",
    "fanout",
    "timing",
    "http",
    "forward-auth",
    "multi-host",
];

const USAGE: &str = "usage: latch-bench [--quick] [--only GROUP[,GROUP...]] [--ha-python PYTHON]\n\
                     groups: inproc, floor, socket, login-load, store, footprint, fanout, timing, http, multi-host";

/// `[--quick] [--only a,b] [--ha-python PYTHON]`: the plan, and Home Assistant's
/// interpreter if given.
fn parse(args: &[String]) -> Result<(Plan, Option<PathBuf>)> {
    let mut quick = false;
    let mut only = None;
    let mut ha_python = None;
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--quick" => quick = true,
            "--only" => {
                let list = args.next().context(USAGE)?;
                let mut groups = 0_u16;
                for name in list.split(',') {
                    let i = GROUPS
                        .iter()
                        .position(|g| *g == name)
                        .with_context(|| format!("unknown group {name:?}\n{USAGE}"))?;
                    groups |= 1 << i;
                }
                only = Some(groups);
            }
            "--ha-python" => ha_python = Some(PathBuf::from(args.next().context(USAGE)?)),
            other => anyhow::bail!("unknown argument {other:?}\n{USAGE}"),
        }
    }
    let mut plan = Plan::new(quick);
    plan.only = only;
    Ok((plan, ha_python))
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("--echo") => floor::echo(args.get(1).map_or("", String::as_str), floor::Io::Blocking),
        Some("--echo-async") => {
            floor::echo(args.get(1).map_or("", String::as_str), floor::Io::Async)
        }
        Some("--bare-http") => forward::bare_http(|addr| println!("listening on {addr}")),
        Some("--store-child") => {
            store::child(args.get(1).map_or("", String::as_str)).map(|line| println!("{line}"))
        }
        _ => parse(&args).and_then(|(plan, ha_python)| run(plan, ha_python.as_deref())),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("latch-bench: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Collects rows; a scenario that fails is reported on stderr and left out.
#[derive(Debug, Default)]
struct Rows {
    rows: Vec<Row>,
    failed: Vec<String>,
}

impl Rows {
    fn add(&mut self, name: &str, result: Result<Vec<Row>>) {
        match result {
            Ok(rows) => self.rows.extend(rows),
            Err(e) => {
                eprintln!("latch-bench: {name} failed: {e:#}");
                self.failed.push(name.to_owned());
            }
        }
    }
}

fn step(name: &str) -> Instant {
    eprintln!("latch-bench: {name}…");
    Instant::now()
}

fn run(plan: Plan, ha_python: Option<&Path>) -> Result<()> {
    let started = Instant::now();
    // Before any child starts, so that latchd inherits it too.
    fanout::raise_fd_limit();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let mut rows = Rows::default();

    if plan.wants("inproc") {
        step("in-process validation");
        rows.add(
            "in-process validation",
            runtime.block_on(scenario_inproc(plan, ha_python)),
        );
    }

    // The socket scenarios are ratios to the floor: it runs whenever they do.
    let mut pingpong = None;
    if plan.wants("floor") || plan.wants("socket") {
        step("socket floor");
        let measured = floor::measure(plan.pingpong, floor::Io::Blocking).and_then(|p| {
            let tokio = floor::measure(plan.pingpong, floor::Io::Async)?;
            Ok((p, tokio))
        });
        match measured {
            Ok((p, tokio)) => {
                rows.add(
                    "socket floor",
                    Ok(vec![
                        Row::new("socket floor: 2-process ping-pong, 64 B", p.rate, "rt/s"),
                        Row::new("socket floor: one round trip", p.rtt_us, "µs"),
                        Row::new(
                            "  … the same ping-pong with tokio at both ends",
                            tokio.rate,
                            "rt/s",
                        )
                        .floor("ping-pong", p.rate, "rt/s"),
                    ]),
                );
                pingpong = Some(p);
            }
            Err(e) => rows.add("socket floor", Err(e)),
        }
    }

    let mut idle_p99 = None;
    if plan.wants("socket") {
        step("socket validation");
        match runtime.block_on(scenario_socket(plan, pingpong)) {
            Ok((rs, p99)) => {
                idle_p99 = Some(p99);
                rows.add("socket validation", Ok(rs));
            }
            Err(e) => rows.add("socket validation", Err(e)),
        }
    }
    if plan.wants("login-load") {
        step("validation under login load");
        rows.add(
            "validation under login load",
            runtime.block_on(scenario_login_load(plan, idle_p99)),
        );
    }
    if plan.wants("store") {
        step("store scale");
        rows.add("store scale", runtime.block_on(scenario_store(plan)));
    }
    if plan.wants("footprint") {
        step("daemon footprint");
        rows.add(
            "daemon footprint",
            runtime.block_on(scenario_footprint(plan)),
        );
    }
    if plan.wants("fanout") {
        step("fan-out");
        rows.add("fan-out", runtime.block_on(scenario_fanout(plan)));
    }
    if plan.wants("timing") {
        step("login timing");
        rows.add("login timing", runtime.block_on(scenario_timing(plan)));
    }
    if plan.wants("http") {
        step("HTTP refresh grant");
        rows.add(
            "HTTP refresh grant",
            runtime.block_on(scenario_http(plan, ha_python)),
        );
    }
    if plan.wants("forward-auth") {
        step("forward-auth verify");
        rows.add(
            "forward-auth verify",
            runtime.block_on(scenario_forward_auth(plan)),
        );
    }

    if plan.wants("multi-host") {
        step("more than one host (PostgreSQL)");
        rows.add(
            "more than one host",
            runtime.block_on(scenario_multi_host(plan)),
        );
    }

    let mode = if plan.quick { "quick" } else { "full" };
    let machine = machine();
    println!(
        "latch bench ({mode}) — {} cores, {}, {}",
        machine.cores, machine.kernel, machine.date
    );
    print!("{}", report::table(&rows.rows));
    let json = report::to_json(mode, &machine, &rows.rows);
    let path = json_path()?;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(&path, serde_json::to_string_pretty(&json)? + "\n")
        .with_context(|| format!("cannot write {}", path.display()))?;
    println!(
        "written to {} in {:.0} s",
        path.display(),
        started.elapsed().as_secs_f64()
    );
    if rows.failed.is_empty() {
        Ok(())
    } else {
        anyhow::bail!("scenarios failed: {}", rows.failed.join(", "))
    }
}

/// `target/bench/latest.json`, from this binary's place in `target/<profile>/`.
fn json_path() -> Result<PathBuf> {
    let exe = std::env::current_exe().context("cannot find the bench binary")?;
    let target = exe
        .parent()
        .and_then(std::path::Path::parent)
        .context("the bench binary is not in a target directory")?;
    Ok(target.join("bench").join("latest.json"))
}

fn machine() -> Machine {
    let kernel = std::fs::read_to_string("/proc/version")
        .ok()
        .and_then(|v| v.lines().next().map(str::to_owned))
        .unwrap_or_else(|| "unknown".to_owned());
    Machine {
        cores: std::thread::available_parallelism().map_or(1, std::num::NonZero::get),
        kernel,
        date: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
    }
}

async fn scenario_inproc(plan: Plan, ha_python: Option<&Path>) -> Result<Vec<Row>> {
    if let Some(python) = ha_python {
        eprintln!(
            "latch-bench:   with the Home Assistant peer ({})",
            python.display()
        );
    }
    let m = inproc::measure(plan.inproc, ha_python).await?;
    let mut first = Row::new(
        "in-process validate, a token's first validation",
        m.first,
        "ops/s",
    )
    .target(Target::ratio_at_least(15.0))
    .note(
        "AuthManager on one thread: 256 tokens in turn through a 1-entry verified-token \
         cache, so each is decoded (jsonwebtoken's unverified decode into latch-token's \
         claim reader) and verified (its refresh token's HMAC state prepared) and remembered",
    );
    let mut repeat = Row::new("in-process validate, repeated token", m.repeat, "ops/s")
        .target(Target::ratio_at_least(50.0))
        .note("the same token again: the verified-token cache answers, the refresh token and user are looked up");
    let mut rows = Vec::new();
    if let Some(ha) = &m.peer {
        first = first.floor("HA first", ha.first_ops, "ops/s");
        repeat = repeat.floor("HA repeat", ha.repeat_ops, "ops/s");
        rows.push(first);
        rows.push(repeat);
        rows.push(
            Row::new(
                format!("Home Assistant {} validate, first validation", ha.version),
                ha.first_ops,
                "ops/s",
            )
            .note(format!(
                "AuthManager.async_validate_access_token on one thread, on the store latch \
                 wrote (peer/ha_validate.py): {} tokens in turn, more than its {}-entry JWT \
                 caches hold",
                ha.tokens, ha.jwt_cache_size
            )),
        );
        rows.push(
            Row::new(
                format!("Home Assistant {} validate, repeated token", ha.version),
                ha.repeat_ops,
                "ops/s",
            )
            .note(
                "its JWT caches answer the unverified decode and the payload's JSON; the \
                 signature and claims are checked on every call",
            ),
        );
    } else {
        rows.push(first);
        rows.push(repeat);
        rows.push(
            Row::unmeasured(
                "Home Assistant async_validate_access_token",
                "reference, not measured",
            )
            .note("cargo xtask bench --peer home-assistant measures it in the same run"),
        );
    }
    rows.push(
        Row::new("  … a first validation vs a bare HMAC", m.first, "ops/s").floor(
            "HMAC-SHA256, prepared key",
            m.hmac,
            "ops/s",
        ),
    );
    Ok(rows)
}

/// Scenarios 3, 4 and 5 on one cost-4 daemon; also returns the idle p99 (ms).
async fn scenario_socket(plan: Plan, pingpong: Option<floor::PingPong>) -> Result<(Vec<Row>, f64)> {
    let pingpong = pingpong.context("needs the socket floor")?;
    let mut daemon = Daemon::spawn(4)?;
    daemon.wait_ready().await?;
    let (token, _) = daemon.owner_token().await?;
    let pp = "ping-pong";
    let mut rows = Vec::new();

    let one = socket::one_at_a_time(&daemon, &token, plan.socket).await?;
    rows.push(
        Row::new("socket validate, 1 conn, 1 at a time", one.rate, "ops/s")
            .floor(pp, pingpong.rate, "rt/s")
            .target(Target::ratio_at_least(0.9))
            .note(format!(
                "through latch-client; {}; the ping-pong is blocking std IO",
                one.cpu.describe()
            )),
    );
    rows.push(Row::new("  … its p50", one.p50_us, "µs").floor(pp, pingpong.rtt_us, "µs"));
    rows.push(Row::new("  … its p99", one.p99_us, "µs").floor(pp, pingpong.rtt_us, "µs"));

    let (piped, cpu) = socket::pipelined(&daemon, &token, 4, 64, plan.socket).await?;
    rows.push(
        Row::new("socket validate, 64 in flight / 4 conns", piped, "ops/s")
            .floor(pp, pingpong.rate, "rt/s")
            .target(Target::ratio_at_least(8.0))
            .note(format!(
                "4 latch-client connections, 16 tasks each, one client thread; {}",
                cpu.describe()
            )),
    );

    let hs = socket::handshake(&daemon, &token, plan.handshakes).await?;
    rows.push(
        Row::new("connect + handshake + validate, p50", hs.p50_us, "µs")
            .floor(pp, pingpong.rtt_us, "µs")
            .target(Target::ratio_at_most(4.0))
            .note(format!(
                "{} connections, one after another, each through latch-client",
                hs.samples
            )),
    );
    rows.push(Row::new("  … its p99", hs.p99_us, "µs").floor(pp, pingpong.rtt_us, "µs"));
    Ok((rows, one.p99_us / 1e3))
}

/// Scenario 6 on its own cost-12 daemon.
async fn scenario_login_load(plan: Plan, idle_p99_ms: Option<f64>) -> Result<Vec<Row>> {
    let mut daemon = Daemon::spawn(12)?;
    daemon.wait_ready().await?;
    let (token, _) = daemon.owner_token().await?;
    let m = socket::under_login_load(&daemon, &token, plan.login_tasks, plan.login_load).await?;
    let mut row = Row::new(
        "validate p99 under bcrypt-12 login load",
        m.validation.p99_us / 1e3,
        "ms",
    )
    .target(Target::figure_at_most(2.0, "ms"))
    .note(format!(
        "{} login tasks finished {} bcrypt-12 logins in {:.0} s ({:.1}/s) while one \
             connection validated {} times, p50 {:.0} µs",
        m.login_tasks,
        m.logins,
        plan.login_load.as_secs_f64(),
        u64_f(m.logins) / plan.login_load.as_secs_f64(),
        report::num(users_f(m.validation.samples)),
        m.validation.p50_us
    ));
    if let Some(idle) = idle_p99_ms {
        row = row.floor("idle p99", idle, "ms");
    }
    Ok(vec![row])
}

/// Scenario 7.
async fn scenario_store(plan: Plan) -> Result<Vec<Row>> {
    let home = tempfile::Builder::new()
        .prefix("latch-bench-store-")
        .tempdir()?;
    let t = Instant::now();
    let dir = home.path().to_path_buf();
    let (users, tokens_per_user) = (plan.users, plan.tokens_per_user);
    let all_users =
        tokio::task::spawn_blocking(move || store::generate(&dir, users, tokens_per_user))
            .await??;
    let size = std::fs::metadata(home.path().join(".storage").join("auth"))?.len();
    eprintln!(
        "latch-bench:   generated {users} users, {} tokens ({:.1} MB) in {:.1} s",
        users * tokens_per_user,
        bytes_to_mb(size),
        t.elapsed().as_secs_f64()
    );
    let mut loads = Vec::new();
    let mut rss = 0.0_f64;
    for _ in 0..plan.loads {
        let loaded = store::load_in_child(home.path(), users, users * tokens_per_user)?;
        loads.push(loaded.load_secs);
        rss = rss.max(loaded.rss_mb);
    }
    let load = report::percentile(&mut loads, 50.0).context("no loads")?;
    let scale = format!(
        "{} users, {} tokens",
        report::num(users_f(users)),
        report::num(users_f(users * tokens_per_user))
    );
    // The snapshot files as before they followed the data: rewritten only by
    // compaction.
    let journal_only = store::mutations(
        home.path(),
        &all_users,
        plan.writers,
        plan.writes,
        plan.fsyncs,
        StoreOptions {
            snapshot_delay: None,
            ..StoreOptions::default()
        },
    )
    .await?;
    // As latchd runs, except that a stream of changes gets the files rewritten after
    // one second instead of ten, so that whole-file rewrites run inside the window.
    let m = store::mutations(
        home.path(),
        &all_users,
        plan.writers,
        plan.writes,
        plan.fsyncs,
        StoreOptions {
            snapshot_max_delay: Duration::from_secs(1),
            ..StoreOptions::default()
        },
    )
    .await?;
    Ok(vec![
        Row::new(format!("store load, {scale}"), load, "s")
            .target(Target::figure_at_most(0.5, "s"))
            .note(format!(
                "Store::open in a fresh process, median of {}; .storage/auth is {:.1} MB and \
                 in the page cache (not a cold disk)",
                plan.loads,
                bytes_to_mb(size)
            )),
        Row::new("store RSS after load", rss, "MB").target(Target::figure_at_most(150.0, "MB")),
        Row::new(
            format!("durable mutations, {} writers", plan.writers),
            m.rate,
            "/s",
        )
        .floor("files by compaction only", journal_only.rate, "/s")
        .target(Target::figure_at_least(1000.0, "/s"))
        .note(format!(
            "{} commits shared {} journal fsyncs ({:.1} per fsync); the {:.1} MB auth file \
             was rewritten in the background {} times meanwhile (each second at most, to \
             make them show; latchd waits up to 10 s under a stream). Floor: the same \
             writers, before, on a store that rewrites its files only when it compacts",
            report::num(u64_f(m.commits)),
            report::num(u64_f(m.fsyncs)),
            u64_f(m.commits) / u64_f(m.fsyncs.max(1)),
            bytes_to_mb(size),
            m.rewrites
        )),
        Row::new("durable mutation ack, p50", m.p50_ms, "ms")
            .floor("one fsync", m.fsync_ms, "ms")
            .target(Target::ratio_at_most(2.0)),
        Row::new(
            "durable mutation ack, p50 by compaction only",
            journal_only.p50_ms,
            "ms",
        )
        .floor("one fsync", journal_only.fsync_ms, "ms")
        .target(Target::ratio_at_most(2.0)),
        Row::new("durable mutation ack, p99", m.p99_ms, "ms").floor(
            "by compaction only",
            journal_only.p99_ms,
            "ms",
        ),
    ])
}

#[allow(clippy::cast_precision_loss)]
fn users_f(n: usize) -> f64 {
    n as f64
}

#[allow(clippy::cast_precision_loss)]
fn u64_f(n: u64) -> f64 {
    n as f64
}

#[allow(clippy::cast_precision_loss)]
fn bytes_to_mb(n: u64) -> f64 {
    n as f64 / (1024.0 * 1024.0)
}

/// Scenario 8: `latchd` on empty homes.
async fn scenario_footprint(plan: Plan) -> Result<Vec<Row>> {
    let mut ready = Vec::new();
    let mut rss_mb = 0.0_f64;
    for i in 0..plan.starts {
        let mut daemon = Daemon::spawn(12)?;
        ready.push(daemon.wait_ready().await?.as_secs_f64() * 1e3);
        if i == 0 {
            // Idle: no connection, nothing to do.
            tokio::time::sleep(Duration::from_millis(500)).await;
            #[allow(clippy::cast_precision_loss)]
            let kb = daemon::rss_kb(Some(daemon.pid()))? as f64;
            rss_mb = kb / 1024.0;
        }
    }
    let worst = ready.iter().copied().fold(0.0_f64, f64::max);
    let median = report::percentile(&mut ready, 50.0).context("no starts")?;
    Ok(vec![
        Row::new("latchd idle RSS, empty home", rss_mb, "MB")
            .target(Target::figure_at_most(10.0, "MB")),
        Row::new("latchd exec → ready, empty home", median, "ms")
            .target(Target::figure_at_most(50.0, "ms"))
            .note(format!(
                "median of {} starts (worst {worst:.1} ms), ready = a connect + handshake + ping answered",
                plan.starts
            )),
    ])
}

/// Scenario 9.
async fn scenario_fanout(plan: Plan) -> Result<Vec<Row>> {
    let mut daemon = Daemon::spawn(4)?;
    daemon.wait_ready().await?;
    daemon.owner_token().await?;
    let m = fanout::measure(&daemon, plan.fanout).await?;
    let mut note = format!(
        "{} authenticated connections subscribed (connected in {:.1} s); timed from sending \
         create_user (which includes its fsync) to the last delivery; p50 {:.1} ms",
        report::num(users_f(m.connections)),
        m.connect_secs,
        m.p50_ms
    );
    if m.connections < m.requested {
        note.push_str(&format!(
            "; only {} of {} requested: RLIMIT_NOFILE is {}",
            m.connections, m.requested, m.fd_limit
        ));
    }
    Ok(vec![
        Row::new(
            format!(
                "fan-out of one event to {} connections",
                report::num(users_f(m.connections))
            ),
            m.last_ms,
            "ms",
        )
        .target(Target::figure_at_most(100.0, "ms"))
        .note(note),
    ])
}

/// Scenario 10: refused logins, unknown username against wrong password, on a cost-12
/// home served at cost 12 and on a cost-12 home served with `bcrypt_cost = 10`.
async fn scenario_timing(plan: Plan) -> Result<Vec<Row>> {
    let t = timing::measure(plan.timing).await?;
    let how = format!(
        "{} alternating attempts of each on one bcrypt-12 daemon, throttling off; each \
         timed from sending LoginContinue to its answer",
        t.samples
    );
    let mut rows = vec![
        Row::new("refused login, unknown username, median", t.unknown_ms, "ms").note(how),
        Row::new("refused login, known user, wrong password, median", t.wrong_ms, "ms"),
        Row::new("  … median difference", t.difference_pct, "%")
            .target(Target::figure_below(3.0, "%"))
            .note("|unknown − wrong| / wrong: an unknown user must not be refused measurably faster or slower"),
    ];
    let m = timing::measure_cost_mismatch(plan.timing).await?;
    rows.extend([
        Row::new(
            "cost-12 home served at bcrypt_cost 10: unknown username, median",
            m.unknown_ms,
            "ms",
        )
        .note(format!(
            "a home whose stored hash is cost 12 (Home Assistant's), written by a cost-12 \
                 latchd, then served by one configured with bcrypt_cost = 10; {} alternating \
                 attempts of each",
            m.samples
        )),
        Row::new("  … known user, wrong password, median", m.wrong_ms, "ms"),
        Row::new("  … median difference", m.difference_pct, "%")
            .target(Target::figure_below(3.0, "%")),
    ]);
    Ok(rows)
}

/// The token endpoint's refresh grant through latch-http (and, given the peer's Python,
/// through Home Assistant's own HTTP server in the same run).
async fn scenario_http(plan: Plan, ha_python: Option<&std::path::Path>) -> Result<Vec<Row>> {
    let mut daemon = Daemon::spawn(4)?;
    daemon.wait_ready().await?;
    daemon.owner_token().await?;
    let door = http::spawn_latch_http(&daemon)?;
    let refresh = http::sign_in(door.addr).await?;
    let conns = plan.http_connections;
    let pids = [door.pid(), daemon.pid()];
    let ask = http::Ask::refresh(&refresh, daemon::CLIENT_ID);
    let latch = http::load(door.addr, &ask, conns, plan.http, &pids).await?;
    let ceiling = http::load(door.addr, &http::Ask::Static, conns, plan.http, &pids).await?;
    drop(door);
    drop(daemon);
    let cpu = format!(
        "CPU per request: latch-http {:.1} µs, latchd {:.1} µs, bench client {:.1} µs",
        latch.cpu_us[0], latch.cpu_us[1], latch.client_us
    );
    let scenario = format!("HTTP refresh grant, {conns} keep-alive conns (latch-http)");
    let mut rows = Vec::new();
    match ha_python {
        Some(python) => {
            let (server, token, client_id) = http::spawn_home_assistant(python)?;
            let ask = http::Ask::refresh(&token, &client_id);
            let ha = http::load(server.addr, &ask, conns, plan.http, &[server.pid()]).await?;
            drop(server);
            rows.push(
                Row::new(scenario, latch.rate, "req/s")
                    .floor("Home Assistant 2024.3", ha.rate, "req/s")
                    .target(Target::ratio_at_least(20.0))
                    .note(format!(
                        "the same requests to Home Assistant's own http + auth in this run; {cpu}"
                    )),
            );
            rows.push(
                Row::new("  … Home Assistant's p99", ha.p99_us, "µs").note(format!(
                    "p50 {:.0} µs; CPU per request: Home Assistant {:.1} µs, bench client {:.1} µs",
                    ha.p50_us, ha.cpu_us[0], ha.client_us
                )),
            );
        }
        None => rows.push(Row::new(scenario, latch.rate, "req/s").note(format!(
            "Home Assistant not measured: cargo xtask bench --peer home-assistant; {cpu}"
        ))),
    }
    rows.push(Row::new("  … its p50", latch.p50_us, "µs"));
    rows.push(Row::new("  … its p99", latch.p99_us, "µs"));
    rows.push(
        Row::new(
            "  … latch-http's static well-known answer, same load",
            ceiling.rate,
            "req/s",
        )
        .note(format!(
            "the HTTP stack alone (latchd not asked): a ceiling on this machine; CPU per request: \
             latch-http {:.1} µs, bench client {:.1} µs",
            ceiling.cpu_us[0], ceiling.client_us
        )),
    );
    Ok(rows)
}

/// Two hosts on one PostgreSQL started for the run (latch-test-postgres).
async fn scenario_multi_host(plan: Plan) -> Result<Vec<Row>> {
    let m = multihost::measure(multihost::Sizes {
        revocations: plan.revocations,
        writers: plan.writers,
        writes: plan.writes,
        users: plan.users,
        tokens_per_user: plan.tokens_per_user,
        loads: plan.loads,
        validate: plan.socket,
    })
    .await?;
    Ok(vec![
        Row::new(
            "revocation on host A refused on host B, p50",
            m.revoke_p50_ms,
            "ms",
        )
        .note(format!(
            "{} long-lived tokens, each revoked through A while B validates it every 0.2 ms; \
             from sending the revocation (its commit included) to B's first refusal",
            m.revocations
        )),
        Row::new("  … its p99", m.revoke_p99_ms, "ms").target(Target::figure_at_most(50.0, "ms")),
        Row::new(
            format!("durable mutations, {} writers over 2 hosts", m.writers),
            m.mutations_per_sec,
            "/s",
        )
        .target(Target::figure_at_least(1000.0, "/s"))
        .note(format!(
            "set_token_expiry through latch-client, each writer on its own token, half the \
             writers on each host; {} acknowledged, each committed in PostgreSQL (fsync on)",
            report::num(u64_f(m.mutations))
        )),
        Row::new(
            format!(
                "load from PostgreSQL, {} users, {} tokens",
                report::num(users_f(plan.users)),
                report::num(users_f(plan.users * plan.tokens_per_user))
            ),
            m.load_secs,
            "s",
        )
        .floor("files, same home", m.files_load_secs, "s")
        .target(Target::figure_at_most(1.0, "s"))
        .note(format!(
            "PgBackend::open as latchd runs it (connect, migrate, the newest checkpoint of \
             {:.1} MB and the rows after it, decode), median of {}, in the bench process; \
             floor: Store::open of the same home's files once, in the same process",
            m.checkpoint_mb, m.loads
        )),
        Row::new(
            "socket validate, 64 in flight / 4 conns, postgres host",
            m.validate_postgres,
            "ops/s",
        )
        .floor("files host", m.validate_files, "ops/s")
        .target(Target::ratio_at_least(0.95))
        .note(
            "the same load on a files-backed latchd in the same run, interleaved four times, \
             the best of each",
        ),
    ])
}

/// Keep-alive connections of the forward-auth load (a proxy's pool to latch-http).
const FORWARD_AUTH_CONNECTIONS: usize = 64;

async fn scenario_forward_auth(plan: Plan) -> Result<Vec<Row>> {
    let mut daemon = Daemon::spawn(4)?;
    daemon.wait_ready().await?;
    let (bearer, _owner) = daemon.owner_token().await?;
    // Every signed-in user may pass: the rules' cost is one first-match scan either way.
    let config = daemon.home().join("latch.toml");
    let mut text = std::fs::read_to_string(&config)?;
    text.push_str("\n[http]\ndefault_policy = \"allow\"\n");
    std::fs::write(&config, text)?;
    let door = http::spawn_latch_http(&daemon)?;
    let session = forward::session(door.addr).await?;
    let bare = forward::spawn_bare_http()?;
    let conns = FORWARD_AUTH_CONNECTIONS;
    let pids = [door.pid(), daemon.pid()];
    let floor = http::load(
        bare.addr,
        &http::Ask::Get {
            path: "/".to_owned(),
            headers: Vec::new(),
        },
        conns,
        plan.http,
        &[bare.pid()],
    )
    .await?;
    drop(bare);
    let cookie = http::load(
        door.addr,
        &forward::cookie_ask(&session),
        conns,
        plan.http,
        &pids,
    )
    .await?;
    let token = http::load(
        door.addr,
        &forward::verify_ask("authorization", format!("Bearer {bearer}")),
        conns,
        plan.http,
        &pids,
    )
    .await?;
    let client = daemon.client().await?;
    let trials = if plan.quick { 10 } else { 30 };
    let revoke = forward::revoke_to_refusal(door.addr, &client, trials).await?;
    client.disconnect();
    drop(door);
    drop(daemon);
    let mut rows = Vec::new();
    for (what, load) in [("session cookie", &cookie), ("bearer token", &token)] {
        rows.push(
            Row::new(
                format!("forward-auth verify, {what}, {conns} keep-alive conns"),
                load.rate,
                "req/s",
            )
            .floor("bare hyper server answering 200", floor.rate, "req/s")
            .target(Target::ratio_at_least(0.5))
            .note(format!(
                "GET /auth/verify as nginx auth_request sends it, answered from the verify \
                 cache; CPU per request: latch-http {:.1} µs, latchd {:.1} µs, bench client \
                 {:.1} µs; the bare server's p99 {:.2} ms",
                load.cpu_us[0],
                load.cpu_us[1],
                load.client_us,
                floor.p99_us / 1e3
            )),
        );
        rows.push(
            Row::new("  … its p99", load.p99_us / 1e3, "ms")
                .target(Target::figure_at_most(5.0, "ms"))
                .note(format!("p50 {:.2} ms", load.p50_us / 1e3)),
        );
    }
    rows.push(
        Row::new(
            "forward-auth: revoke → first refused verify, worst",
            revoke.max_ms,
            "ms",
        )
        .target(Target::figure_at_most(50.0, "ms"))
        .note(format!(
            "{} trials, p50 {:.2} ms: from sending the revoke (latch-client, as `latch token \
             revoke`) to the first verify answered 401, verifying back to back on one warm \
             connection",
            revoke.trials, revoke.p50_ms
        )),
    );
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn parses_quick_and_only() {
        let (plan, ha) = parse(&args(&[])).unwrap_or_else(|e| panic!("{e}"));
        assert!(!plan.quick);
        assert_eq!(ha, None);
        assert!(GROUPS.iter().all(|g| plan.wants(g)));

        let (plan, _) =
            parse(&args(&["--quick", "--only", "socket,store"])).unwrap_or_else(|e| panic!("{e}"));
        assert!(plan.quick);
        assert!(plan.wants("socket") && plan.wants("store"));
        assert!(!plan.wants("inproc") && !plan.wants("fanout"));
        assert_eq!(plan.fanout, 1_000);
        assert_eq!(plan.timing, 10);

        let (plan, _) = parse(&args(&["--only", "timing"])).unwrap_or_else(|e| panic!("{e}"));
        assert!(plan.wants("timing") && !plan.wants("login-load"));
        assert_eq!(plan.timing, 40);

        let (plan, ha) = parse(&args(&[
            "--ha-python",
            "/venv/bin/python",
            "--only",
            "inproc",
        ]))
        .unwrap_or_else(|e| panic!("{e}"));
        assert!(plan.wants("inproc") && !plan.wants("socket"));
        assert_eq!(ha, Some(PathBuf::from("/venv/bin/python")));
    }

    #[test]
    fn refuses_unknown_arguments_and_groups() {
        assert!(parse(&args(&["--fast"])).is_err());
        assert!(parse(&args(&["--only"])).is_err());
        assert!(parse(&args(&["--only", "socket,disk"])).is_err());
        assert!(parse(&args(&["--ha-python"])).is_err());
    }
}
