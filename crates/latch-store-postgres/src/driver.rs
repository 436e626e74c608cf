//! The driver task: appends local groups, applies the other hosts' rows in order,
//! reconnects, reloads after a failed append, writes checkpoints.

use std::sync::Arc;
use std::time::{Duration, Instant};

use latch_store::{AuthData, Change, LogRequest, LogSide, Prepared, Proposal, StoreError};
use tokio::sync::{Notify, oneshot};
use tokio_postgres::{AsyncMessage, Client};
use zeroize::Zeroizing;

use crate::parking_lot_free::Mutex;
use crate::{Contact, PgConfig, PgError, connect, deadline, tls};

/// The append lock's advisory key ("latchlog").
const LOG_LOCK: i64 = 0x6c61_7463_686c_6f67;
/// The notification channel.
const CHANNEL: &str = "latch_log";
/// Rows read per catch-up query.
const CATCH_UP_ROWS: i64 = 1_000;
/// The longest wait between two reconnection attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// What `latch status` shows of the shared backend.
#[derive(Clone, Debug)]
pub struct BackendStatus {
    /// Connected to the database now.
    pub connected: bool,
    /// The last log row applied here.
    pub last_applied: u64,
    /// The newest row this host has seen in the log.
    pub log_head: u64,
    /// When the database last answered.
    pub last_contact: Option<Instant>,
    /// The last error, if the database is not reachable.
    pub last_error: Option<String>,
    /// Checkpoints this host wrote.
    pub checkpoints_written: u64,
}

impl BackendStatus {
    pub(crate) fn new(seq: u64) -> Self {
        Self {
            connected: true,
            last_applied: seq,
            log_head: seq,
            last_contact: Some(Instant::now()),
            last_error: None,
            checkpoints_written: 0,
        }
    }

    /// How many rows behind the log this host is.
    #[must_use]
    pub fn lag(&self) -> u64 {
        self.log_head.saturating_sub(self.last_applied)
    }
}

fn seq_i64(seq: u64) -> i64 {
    i64::try_from(seq).unwrap_or(i64::MAX)
}

fn seq_u64(seq: i64) -> Result<u64, PgError> {
    u64::try_from(seq).map_err(|_| PgError::Invalid(format!("negative batch number {seq}")))
}

fn unavailable(e: &PgError) -> StoreError {
    StoreError::Unavailable {
        reason: e.to_string(),
    }
}

/// Applies one log row's payload to `data` (start-up replay).
fn apply_payload(data: &mut AuthData, seq: u64, payload: &[u8]) -> Result<(), PgError> {
    let batches: Vec<Vec<Change>> = serde_json::from_slice(payload)
        .map_err(|e| PgError::Invalid(format!("log row {seq} does not decode: {e}")))?;
    for change in batches.into_iter().flatten() {
        data.apply(change);
    }
    Ok(())
}

/// The newest checkpoint and every row after it.
pub(crate) async fn load(client: &Client, config: &PgConfig) -> Result<(AuthData, u64), PgError> {
    let limit = config.write_timeout * 10;
    let row = deadline(
        limit,
        client.query_opt(
            "SELECT seq, auth, provider, totp, latch_totp FROM latch_checkpoint \
             ORDER BY seq DESC LIMIT 1",
            &[],
        ),
    )
    .await??;
    let (mut data, mut seq) = match row {
        Some(row) => {
            let seq = seq_u64(row.get(0))?;
            let mut files: [Option<Zeroizing<Vec<u8>>>; 4] = Default::default();
            for (i, slot) in files.iter_mut().enumerate() {
                *slot = row.get::<_, Option<Vec<u8>>>(i + 1).map(Zeroizing::new);
            }
            let label = std::path::PathBuf::from(format!("checkpoint {seq}"));
            let data = tokio::task::spawn_blocking(move || AuthData::decode_files(&label, &files))
                .await
                .map_err(|e| PgError::Invalid(e.to_string()))??;
            (data, seq)
        }
        None => (AuthData::new(), 0),
    };
    loop {
        let rows = deadline(
            limit,
            client.query(
                "SELECT seq, payload FROM latch_log WHERE seq > $1 ORDER BY seq LIMIT $2",
                &[&seq_i64(seq), &CATCH_UP_ROWS],
            ),
        )
        .await??;
        if rows.is_empty() {
            return Ok((data, seq));
        }
        for row in rows {
            let n = seq_u64(row.get(0))?;
            if n != seq + 1 {
                return Err(PgError::Invalid(format!(
                    "log row {} missing (found {n})",
                    seq + 1
                )));
            }
            let payload: &[u8] = row.get(1);
            apply_payload(&mut data, n, payload)?;
            seq = n;
        }
    }
}

/// True if the log or the checkpoints hold anything.
pub(crate) async fn holds_data(client: &Client, config: &PgConfig) -> Result<bool, PgError> {
    let row = deadline(
        config.write_timeout,
        client.query_one(
            "SELECT EXISTS (SELECT 1 FROM latch_log) OR EXISTS (SELECT 1 FROM latch_checkpoint)",
            &[],
        ),
    )
    .await??;
    Ok(row.get(0))
}

/// Writes `files` as checkpoint 0 of an empty database.
pub(crate) async fn import(
    client: &mut Client,
    config: &PgConfig,
    files: &[Option<Vec<u8>>; 4],
) -> Result<(), PgError> {
    let limit = config.write_timeout * 10;
    let tx = deadline(limit, client.transaction()).await??;
    deadline(
        limit,
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&LOG_LOCK]),
    )
    .await??;
    let head = deadline(
        limit,
        tx.query_one(
            "SELECT coalesce((SELECT max(seq) FROM latch_log), -1), \
                    (SELECT count(*) FROM latch_checkpoint)",
            &[],
        ),
    )
    .await??;
    let (last, checkpoints): (i64, i64) = (head.get(0), head.get(1));
    if last >= 0 || checkpoints > 0 {
        return Err(PgError::NotEmpty(last.max(0)));
    }
    deadline(
        limit,
        tx.execute(
            "INSERT INTO latch_checkpoint (seq, origin, auth, provider, totp, latch_totp) \
             VALUES (0, $1, $2, $3, $4, $5)",
            &[
                &config.host_name,
                &files[0],
                &files[1],
                &files[2],
                &files[3],
            ],
        ),
    )
    .await??;
    deadline(limit, tx.commit()).await??;
    Ok(())
}

struct Driver {
    config: PgConfig,
    client: Option<Client>,
    /// Keeps the LISTEN connection open.
    listener: Option<Client>,
    side: LogSide,
    status: Arc<Mutex<BackendStatus>>,
    contact: Arc<Contact>,
    wake: Arc<Notify>,
    pending: Vec<Proposal>,
    usage_at: Option<Instant>,
    closing: Option<oneshot::Sender<Result<(), StoreError>>>,
    backoff: Duration,
    next_connect: Instant,
    last_checkpoint: u64,
    /// The state may hold a group the log does not: reload before anything else.
    reload: bool,
}

/// Starts the driver (and its listener) on the current runtime.
pub(crate) async fn start(
    config: PgConfig,
    client: Client,
    side: LogSide,
    status: Arc<Mutex<BackendStatus>>,
    contact: Arc<Contact>,
) -> Result<(), PgError> {
    let wake = Arc::new(Notify::new());
    contact.touch();
    let last_checkpoint = deadline(
        config.write_timeout,
        client.query_one("SELECT coalesce(max(seq), 0) FROM latch_checkpoint", &[]),
    )
    .await??
    .get::<_, i64>(0);
    let listener = listen(&config, Arc::clone(&wake), Arc::clone(&status)).await?;
    let driver = Driver {
        next_connect: Instant::now(),
        backoff: Duration::from_millis(100),
        config,
        client: Some(client),
        listener: Some(listener),
        side,
        status,
        contact,
        wake,
        pending: Vec::new(),
        usage_at: None,
        closing: None,
        last_checkpoint: seq_u64(last_checkpoint)?,
        reload: false,
    };
    tokio::spawn(driver.run());
    Ok(())
}

/// A connection that LISTENs and wakes the driver on every notification.
async fn listen(
    config: &PgConfig,
    wake: Arc<Notify>,
    status: Arc<Mutex<BackendStatus>>,
) -> Result<Client, PgError> {
    let pg = config.pg()?;
    let (client, mut connection) = deadline(config.write_timeout, pg.connect(tls()?)).await??;
    tokio::spawn(async move {
        loop {
            match std::future::poll_fn(|cx| connection.poll_message(cx)).await {
                Some(Ok(AsyncMessage::Notification(n))) => {
                    // The payload is the new row's number: the head of the log.
                    if let Ok(seq) = n.payload().parse::<u64>() {
                        let mut st = status.lock();
                        st.log_head = st.log_head.max(seq);
                    }
                    wake.notify_one();
                }
                Some(Ok(_)) => {}
                Some(Err(e)) => {
                    tracing::debug!(error = %e, "listener connection ended");
                    break;
                }
                None => break,
            }
        }
        // Polling goes on; the driver reconnects the listener with the client.
        wake.notify_one();
    });
    deadline(
        config.write_timeout,
        client.batch_execute(&format!("LISTEN {CHANNEL}")),
    )
    .await??;
    Ok(client)
}

impl Driver {
    async fn run(mut self) {
        loop {
            let poll = tokio::time::sleep(self.config.poll_interval);
            let usage = async {
                match self.usage_at {
                    Some(at) => tokio::time::sleep_until(at.into()).await,
                    None => std::future::pending().await,
                }
            };
            let wake = Arc::clone(&self.wake);
            tokio::select! {
                req = self.side.recv() => match req {
                    Some(r) => self.take(r),
                    None => return, // every store handle is gone
                },
                () = wake.notified() => {}
                () = poll => {}
                () = usage => {
                    self.usage_at = None;
                    if let Some(p) = self.side.take_usage() {
                        self.pending.push(p);
                    }
                }
            }
            while let Some(r) = self.side.try_recv() {
                self.take(r);
            }
            if self.closing.is_some()
                && let Some(p) = self.side.take_usage()
            {
                self.pending.push(p);
            }
            self.ensure_connected().await;
            if self.reload {
                self.reload().await;
            }
            if !self.pending.is_empty() {
                let proposals = std::mem::take(&mut self.pending);
                self.append(proposals).await;
            } else if self.client.is_some() {
                self.catch_up().await;
            }
            if let Some(done) = self.closing.take() {
                let _ = done.send(Ok(()));
                return;
            }
            self.maybe_checkpoint().await;
        }
    }

    fn take(&mut self, r: LogRequest) {
        match r {
            LogRequest::Propose(p) => self.pending.push(p),
            LogRequest::UsageDue if self.usage_at.is_none() => {
                self.usage_at = Some(Instant::now() + self.config.usage_flush_interval);
            }
            LogRequest::Close(done) => self.closing = Some(done),
            LogRequest::Shutdown => {
                let (done, _) = oneshot::channel();
                self.closing.get_or_insert(done);
            }
            _ => {}
        }
    }

    fn lost(&mut self, e: &PgError) {
        tracing::warn!(error = %e, "shared store: database unreachable");
        self.client = None;
        self.listener = None;
        let mut st = self.status.lock();
        st.connected = false;
        st.last_error = Some(e.to_string());
    }

    fn contact(&self) {
        self.contact.touch();
        let mut st = self.status.lock();
        st.connected = true;
        st.last_error = None;
        st.last_contact = Some(Instant::now());
        st.last_applied = self.side.last_applied();
        st.log_head = st.log_head.max(st.last_applied);
    }

    async fn ensure_connected(&mut self) {
        if self.client.is_some() || Instant::now() < self.next_connect {
            return;
        }
        match connect(&self.config).await {
            Ok(client) => {
                self.client = Some(client);
                self.listener = listen(
                    &self.config,
                    Arc::clone(&self.wake),
                    Arc::clone(&self.status),
                )
                .await
                .ok();
                self.backoff = Duration::from_millis(100);
                tracing::info!("shared store: reconnected");
                self.contact();
            }
            Err(e) => {
                self.lost(&e);
                self.next_connect = Instant::now() + self.backoff;
                self.backoff = (self.backoff * 2).min(MAX_BACKOFF);
            }
        }
    }

    /// Replaces the state by the database's, after a failed append.
    async fn reload(&mut self) {
        let Some(client) = self.client.as_ref() else {
            return;
        };
        match load(client, &self.config).await {
            Ok((data, seq)) => {
                self.side.reset(data, seq);
                self.reload = false;
                tracing::info!(seq, "shared store: state reloaded from the database");
                self.contact();
            }
            Err(e) => self.lost(&e),
        }
    }

    /// Applies rows appended by other hosts, in order, never skipping one.
    async fn catch_up(&mut self) {
        let Some(client) = self.client.as_ref() else {
            return;
        };
        let from = self.side.last_applied();
        let rows = deadline(
            self.config.write_timeout,
            client.query(
                "SELECT seq, payload FROM latch_log WHERE seq > $1 ORDER BY seq LIMIT $2",
                &[&seq_i64(from), &CATCH_UP_ROWS],
            ),
        )
        .await
        .and_then(|r| r.map_err(PgError::from));
        match rows {
            Ok(rows) => {
                let more = rows.len() == usize::try_from(CATCH_UP_ROWS).unwrap_or(usize::MAX);
                if let Some(last) = rows.last().and_then(|r| seq_u64(r.get(0)).ok()) {
                    let mut st = self.status.lock();
                    st.log_head = st.log_head.max(last);
                }
                if let Err(e) = self.apply_rows(&rows) {
                    tracing::error!(error = %e, "shared store: cannot apply a log row");
                }
                self.contact();
                if more {
                    self.wake.notify_one();
                }
            }
            Err(e) => self.lost(&e),
        }
    }

    fn apply_rows(&self, rows: &[tokio_postgres::Row]) -> Result<(), PgError> {
        for row in rows {
            let seq = seq_u64(row.get(0))?;
            if seq != self.side.last_applied() + 1 {
                // Not yet visible in order: read again later, never skip.
                return Ok(());
            }
            let payload: &[u8] = row.get(1);
            self.side.apply_foreign(seq, payload)?;
        }
        Ok(())
    }

    /// One transaction: the append lock, the rows of other hosts, the local group on
    /// top of them, the insert, the notification, the commit.
    async fn append(&mut self, proposals: Vec<Proposal>) {
        if self.reload || self.client.is_none() {
            let e = StoreError::Unavailable {
                reason: self
                    .status
                    .lock()
                    .last_error
                    .clone()
                    .unwrap_or_else(|| "the database is not connected".into()),
            };
            for p in proposals {
                self.side.refuse(p, &e);
            }
            return;
        }
        let mut proposals = Some(proposals);
        let mut prepared: Option<Prepared> = None;
        let limit = self.config.write_timeout;
        let host = self.config.host_name.clone();
        let result = {
            let Some(client) = self.client.as_mut() else {
                return;
            };
            let side = &self.side;
            let proposals = &mut proposals;
            let prepared = &mut prepared;
            deadline(limit, async move {
                let tx = client.transaction().await?;
                tx.execute("SELECT pg_advisory_xact_lock($1)", &[&LOG_LOCK])
                    .await?;
                let rows = tx
                    .query(
                        "SELECT seq, payload FROM latch_log WHERE seq > $1 ORDER BY seq",
                        &[&seq_i64(side.last_applied())],
                    )
                    .await?;
                for row in &rows {
                    let seq = seq_u64(row.get(0))?;
                    let payload: &[u8] = row.get(1);
                    side.apply_foreign(seq, payload)?;
                }
                let group = side.prepare(proposals.take().unwrap_or_default());
                if group.is_empty() {
                    *prepared = Some(group);
                    tx.rollback().await?;
                    return Ok(());
                }
                let seq = group.seq;
                let payload = group.payload.clone();
                *prepared = Some(group);
                tx.execute(
                    "INSERT INTO latch_log (seq, origin, payload) VALUES ($1, $2, $3)",
                    &[&seq_i64(seq), &host, &payload],
                )
                .await?;
                tx.execute("SELECT pg_notify($1, $2)", &[&CHANNEL, &seq.to_string()])
                    .await?;
                tx.commit().await?;
                Ok::<(), PgError>(())
            })
            .await
            .and_then(|r| r)
        };
        match result {
            Ok(()) => {
                if let Some(group) = prepared {
                    self.side.committed(group);
                }
                self.contact();
            }
            Err(e) => {
                let error = unavailable(&e);
                if let Some(group) = prepared {
                    let applied = !group.is_empty();
                    self.side.failed(group, &error);
                    self.reload |= applied;
                }
                if let Some(rest) = proposals {
                    for p in rest {
                        self.side.refuse(p, &error);
                    }
                }
                self.lost(&e);
            }
        }
    }

    /// Every `checkpoint_every` rows, the whole state at the last applied row.
    async fn maybe_checkpoint(&mut self) {
        let last = self.side.last_applied();
        if self.client.is_none()
            || self.reload
            || last < self.last_checkpoint + self.config.checkpoint_every
        {
            return;
        }
        let capture = self.side.capture();
        let seq = capture.seq();
        let files = match tokio::task::spawn_blocking(move || capture.encode()).await {
            Ok(Ok(files)) => files,
            Ok(Err(e)) => {
                tracing::error!(error = %e, "cannot encode a checkpoint");
                return;
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot encode a checkpoint");
                return;
            }
        };
        let Some(client) = self.client.as_ref() else {
            return;
        };
        let written = deadline(
            self.config.write_timeout * 10,
            client.execute(
                "INSERT INTO latch_checkpoint (seq, origin, auth, provider, totp, latch_totp) \
                 VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (seq) DO NOTHING",
                &[
                    &seq_i64(seq),
                    &self.config.host_name,
                    &files[0],
                    &files[1],
                    &files[2],
                    &files[3],
                ],
            ),
        )
        .await
        .and_then(|r| r.map_err(PgError::from));
        match written {
            Ok(_) => {
                self.last_checkpoint = seq;
                self.status.lock().checkpoints_written += 1;
                tracing::debug!(seq, "checkpoint written");
            }
            Err(e) => self.lost(&e),
        }
    }
}
