//! [`Client`]: one authenticated connection shared by every clone, a reader task that
//! dispatches answers by request id, and reconnection.

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use std::time::Duration;

use latch_ipc::client::{ClientReceiver, ClientSender};
use latch_ipc::{SendError, ServerFrame};
use latch_protocol::{
    ApiError, Event, EventKind, Request, RequestFrame, Response, ResponsePayload,
};
use tokio::sync::oneshot;

use crate::events::{ClientEvent, EventHub, Subscription};
use crate::{ClientError, ClientOptions, ReconnectPolicy};

/// Locks a std mutex, ignoring poisoning (no critical section here can leave its data
/// half-changed).
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

type Answer = Result<Response, ApiError>;

/// A client of `latchd`. Cheap to clone; every clone shares one connection, on which
/// any number of requests from any number of tasks may be in flight at once.
///
/// Every call returns the specific payload of its answer, or a [`ClientError`]. When the
/// connection drops, calls in flight fail with [`ClientError::Disconnected`]; the next
/// call reconnects, re-reading the token file (the daemon rotates it at every start).
/// See [`ReconnectPolicy`].
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("socket", &self.inner.socket)
            .field("token_file", &self.inner.token_file)
            .field("connected", &self.is_connected())
            .finish_non_exhaustive()
    }
}

struct Inner {
    options: ClientOptions,
    socket: PathBuf,
    token_file: PathBuf,
    next_id: AtomicU64,
    /// How many connections were made so far.
    generation: AtomicU64,
    daemon_version: AtomicU32,
    /// Serialises connection attempts.
    connect_lock: tokio::sync::Mutex<()>,
    current: Mutex<Option<Arc<Live>>>,
    events: Arc<EventHub>,
    /// A background reconnection task is running.
    reconnecting: AtomicBool,
}

impl Drop for Inner {
    fn drop(&mut self) {
        if let Some(live) = lock(&self.current).take() {
            live.sender.close();
        }
    }
}

/// One authenticated connection and the requests waiting for an answer on it.
struct Live {
    sender: ClientSender<RequestFrame>,
    pending: Mutex<Pending>,
}

#[derive(Default)]
struct Pending {
    /// The reader has stopped: nothing more will be answered.
    closed: bool,
    /// By request id (ids are this client's own counter: a fast hash will do).
    waiting: HashMap<u64, oneshot::Sender<Answer>, foldhash::fast::RandomState>,
}

impl Live {
    fn is_open(&self) -> bool {
        !self.sender.is_closed() && !lock(&self.pending).closed
    }
}

/// Why a request could not be answered on one connection.
enum Failed {
    /// Nothing was sent: another connection may be tried.
    NotSent,
    /// Sent (or maybe sent) and failed.
    Error(ClientError),
}

impl Client {
    /// Connects to the daemon found through the environment: `$LATCH_SOCKET` and
    /// `$LATCH_TOKEN_FILE`, else the files in `$LATCH_HOME`, else in `~/.latch`.
    ///
    /// # Errors
    ///
    /// [`ClientError::NotRunning`] when no daemon listens, [`ClientError::TokenMissing`]
    /// or [`ClientError::TokenUnreadable`] for token-file problems,
    /// [`ClientError::ServerImpostor`] or [`ClientError::AuthRefused`] when the
    /// handshake fails, [`ClientError::ProtocolVersion`], [`ClientError::Timeout`].
    pub async fn connect() -> Result<Self, ClientError> {
        Self::connect_with(ClientOptions::default()).await
    }

    /// Connects with explicit options (see [`ClientOptions`] for how paths resolve).
    ///
    /// # Errors
    ///
    /// As [`Client::connect`], and [`ClientError::NoHome`] when no home can be found.
    pub async fn connect_with(options: ClientOptions) -> Result<Self, ClientError> {
        let client = Self::new_lazy(options)?;
        client.live().await?;
        Ok(client)
    }

    /// A client that connects on its first call, not now.
    ///
    /// # Errors
    ///
    /// [`ClientError::NoHome`] when no home can be found.
    pub fn new_lazy(options: ClientOptions) -> Result<Self, ClientError> {
        let (socket, token_file) = options.resolve_paths()?;
        Ok(Self {
            inner: Arc::new(Inner {
                options,
                socket,
                token_file,
                next_id: AtomicU64::new(1),
                generation: AtomicU64::new(0),
                daemon_version: AtomicU32::new(0),
                connect_lock: tokio::sync::Mutex::new(()),
                current: Mutex::new(None),
                events: Arc::new(EventHub::default()),
                reconnecting: AtomicBool::new(false),
            }),
        })
    }

    /// The socket this client connects to.
    #[must_use]
    pub fn socket_path(&self) -> &Path {
        &self.inner.socket
    }

    /// The session-token file this client reads at every connect.
    #[must_use]
    pub fn token_path(&self) -> &Path {
        &self.inner.token_file
    }

    /// The daemon's protocol version, as of the last handshake (0 before any).
    #[must_use]
    pub fn daemon_version(&self) -> u32 {
        self.inner.daemon_version.load(Ordering::Relaxed)
    }

    /// True while a connection is open.
    #[must_use]
    pub fn is_connected(&self) -> bool {
        lock(&self.inner.current)
            .as_ref()
            .is_some_and(|live| live.is_open())
    }

    /// How many connections this client has made (1 after the first connect; more after
    /// reconnects).
    #[must_use]
    pub fn connection_count(&self) -> u64 {
        self.inner.generation.load(Ordering::Relaxed)
    }

    /// Closes the current connection; the next call opens a new one (unless the policy
    /// is [`ReconnectPolicy::Never`]). Calls in flight fail with
    /// [`ClientError::Disconnected`].
    pub fn disconnect(&self) {
        if let Some(live) = lock(&self.inner.current).take() {
            live.sender.close();
        }
    }

    /// Sends any request and returns the daemon's answer, whatever its kind. The typed
    /// methods are built on this.
    ///
    /// # Errors
    ///
    /// A connection error (see [`Client::connect`]), [`ClientError::Api`] with the
    /// daemon's error, [`ClientError::Disconnected`], [`ClientError::Timeout`].
    pub async fn request(&self, request: Request) -> Result<Response, ClientError> {
        let id = self.inner.next_id.fetch_add(1, Ordering::Relaxed);
        let frame = RequestFrame::new(id, request);
        // A request that was never written can safely go out on a fresh connection.
        for _ in 0..2 {
            let live = self.live().await?;
            match send_on(&live, &frame, self.inner.options.request_timeout).await {
                Ok(answer) => return answer.map_err(ClientError::from),
                Err(Failed::NotSent) => forget(&self.inner, &live),
                Err(Failed::Error(e)) => return Err(e),
            }
        }
        Err(ClientError::Disconnected)
    }

    /// Receives events of these kinds, replacing any earlier subscription of this client
    /// (whose stream ends). The subscription survives reconnects: it is re-sent on every
    /// new connection, and [`ClientEvent::Reconnected`] marks the gap.
    ///
    /// # Errors
    ///
    /// As [`Client::request`].
    pub async fn subscribe(
        &self,
        kinds: impl IntoIterator<Item = EventKind>,
    ) -> Result<Subscription, ClientError> {
        let mut kinds: Vec<EventKind> = kinds.into_iter().collect();
        kinds.sort_unstable();
        kinds.dedup();
        let (id, subscription) = self
            .inner
            .events
            .install(kinds.clone(), self.inner.options.event_buffer);
        match self.request(Request::Subscribe { kinds }).await {
            Ok(Response::Subscribed) => {
                self.inner.events.established(id);
                Ok(subscription)
            }
            Ok(other) => {
                self.inner.events.remove(id);
                Err(unexpected("subscribe", &other))
            }
            Err(e) => {
                self.inner.events.remove(id);
                Err(e)
            }
        }
    }

    /// [`Client::subscribe`] to every kind this version knows.
    ///
    /// # Errors
    ///
    /// As [`Client::request`].
    pub async fn subscribe_all(&self) -> Result<Subscription, ClientError> {
        self.subscribe(EventKind::ALL).await
    }

    /// Ends the subscription: the daemon stops sending events and the stream ends.
    ///
    /// # Errors
    ///
    /// As [`Client::request`].
    pub async fn unsubscribe(&self) -> Result<(), ClientError> {
        self.inner.events.clear();
        match self.request(Request::Unsubscribe).await? {
            Response::Unsubscribed => Ok(()),
            other => Err(unexpected("unsubscribe", &other)),
        }
    }

    /// The open connection, or a new one.
    async fn live(&self) -> Result<Arc<Live>, ClientError> {
        ensure_live(&self.inner).await
    }
}

/// Drops `live` as the current connection (if it still is).
fn forget(inner: &Inner, live: &Arc<Live>) {
    live.sender.close();
    let mut current = lock(&inner.current);
    if current.as_ref().is_some_and(|c| Arc::ptr_eq(c, live)) {
        *current = None;
    }
}

fn current_open(inner: &Inner) -> Option<Arc<Live>> {
    lock(&inner.current)
        .as_ref()
        .filter(|live| live.is_open())
        .cloned()
}

async fn ensure_live(inner: &Arc<Inner>) -> Result<Arc<Live>, ClientError> {
    if let Some(live) = current_open(inner) {
        return Ok(live);
    }
    let _guard = inner.connect_lock.lock().await;
    if let Some(live) = current_open(inner) {
        return Ok(live);
    }
    if inner.options.reconnect == ReconnectPolicy::Never
        && inner.generation.load(Ordering::Relaxed) > 0
    {
        return Err(ClientError::Disconnected);
    }
    open(inner).await
}

/// Connects, authenticates (reading the token file now), starts the reader, and
/// restores the subscription. Called with `connect_lock` held.
async fn open(inner: &Arc<Inner>) -> Result<Arc<Live>, ClientError> {
    let config = inner.options.ipc_config(&inner.socket, &inner.token_file);
    let deadline = inner.options.connect_timeout;
    let connection = tokio::time::timeout(
        deadline,
        latch_ipc::client::connect::<RequestFrame, ResponsePayload, Event>(&config),
    )
    .await
    .map_err(|_| ClientError::Timeout(deadline))?
    .map_err(ClientError::from_ipc)?;
    inner
        .daemon_version
        .store(connection.daemon_version(), Ordering::Relaxed);
    let (sender, receiver) = connection.into_split();
    let live = Arc::new(Live {
        sender,
        pending: Mutex::new(Pending::default()),
    });
    let generation = inner.generation.fetch_add(1, Ordering::Relaxed) + 1;
    tracing::debug!(socket = %inner.socket.display(), generation, "connected to latchd");
    tokio::spawn(read_loop(
        receiver,
        Arc::clone(&live),
        Arc::downgrade(inner),
        Arc::clone(&inner.events),
    ));
    if let Some(restore) = inner.events.restore() {
        if restore.was_established {
            inner.events.deliver(ClientEvent::Reconnected);
        }
        let frame = RequestFrame::new(
            inner.next_id.fetch_add(1, Ordering::Relaxed),
            Request::Subscribe {
                kinds: restore.kinds,
            },
        );
        let outcome = match send_on(&live, &frame, inner.options.request_timeout).await {
            Ok(Ok(Response::Subscribed)) => Ok(()),
            Ok(Ok(other)) => Err(unexpected("subscribe", &other)),
            Ok(Err(api)) => Err(ClientError::from(api)),
            Err(Failed::NotSent) => Err(ClientError::Disconnected),
            Err(Failed::Error(e)) => Err(e),
        };
        if let Err(e) = outcome {
            live.sender.close();
            return Err(e);
        }
    }
    *lock(&inner.current) = Some(Arc::clone(&live));
    Ok(live)
}

/// Sends one frame on `live` and waits for its answer.
async fn send_on(
    live: &Live,
    frame: &RequestFrame,
    timeout: Option<Duration>,
) -> Result<Answer, Failed> {
    let id = frame.id;
    let (tx, rx) = oneshot::channel();
    {
        let mut pending = lock(&live.pending);
        if pending.closed {
            return Err(Failed::NotSent);
        }
        pending.waiting.insert(id, tx);
    }
    if let Err(e) = live.sender.send(frame).await {
        lock(&live.pending).waiting.remove(&id);
        return Err(match e {
            SendError::Closed => Failed::NotSent,
            other => Failed::Error(ClientError::Protocol {
                detail: format!("cannot send {}: {other}", frame.request.name()),
            }),
        });
    }
    let answer = match timeout {
        Some(after) => match tokio::time::timeout(after, rx).await {
            Ok(answer) => answer,
            Err(_) => {
                lock(&live.pending).waiting.remove(&id);
                return Err(Failed::Error(ClientError::Timeout(after)));
            }
        },
        None => rx.await,
    };
    answer.map_err(|_| Failed::Error(ClientError::Disconnected))
}

/// The reader of one connection: answers go to their waiting callers by id, events to
/// the subscriber. When the connection ends, every caller still waiting gets
/// [`ClientError::Disconnected`], and a subscribed client reconnects in the background.
async fn read_loop(
    mut receiver: ClientReceiver<ResponsePayload, Event>,
    live: Arc<Live>,
    inner: Weak<Inner>,
    events: Arc<EventHub>,
) {
    loop {
        match receiver.recv().await {
            Ok(Some(ServerFrame::Response(payload))) => {
                let waiter = lock(&live.pending).waiting.remove(&payload.id);
                match waiter {
                    Some(tx) => {
                        let _ = tx.send(payload.result);
                    }
                    None => {
                        tracing::debug!(id = payload.id, "answer to a request nobody waits for");
                    }
                }
            }
            Ok(Some(ServerFrame::Event(event))) => events.deliver(ClientEvent::Event(event)),
            Ok(Some(ServerFrame::Lagged(missed))) => events.lagged(missed),
            Ok(None) => break,
            Err(e) => {
                tracing::warn!(error = %e, "the connection to latchd broke");
                break;
            }
        }
    }
    live.sender.close();
    {
        let mut pending = lock(&live.pending);
        pending.closed = true;
        pending.waiting.clear();
    }
    let Some(inner) = inner.upgrade() else {
        events.clear();
        return;
    };
    forget(&inner, &live);
    tracing::debug!(socket = %inner.socket.display(), "disconnected from latchd");
    match inner.options.reconnect {
        ReconnectPolicy::Never => events.clear(),
        ReconnectPolicy::Backoff { initial, max } => {
            if events.is_active() && !inner.reconnecting.swap(true, Ordering::AcqRel) {
                tokio::spawn(reconnect_loop(Arc::downgrade(&inner), initial, max));
            }
        }
    }
}

/// Reconnects a subscribed client in the background, pausing `initial`, then twice as
/// long each time up to `max`, until it succeeds, the subscription ends or the client is
/// dropped.
async fn reconnect_loop(inner: Weak<Inner>, initial: Duration, max: Duration) {
    let mut pause = initial;
    loop {
        tokio::time::sleep(pause).await;
        let Some(inner) = inner.upgrade() else {
            return;
        };
        if !inner.events.is_active() {
            inner.reconnecting.store(false, Ordering::Release);
            return;
        }
        match ensure_live_boxed(&inner).await {
            Ok(_) => {
                inner.reconnecting.store(false, Ordering::Release);
                return;
            }
            Err(e) => tracing::debug!(error = %e, ?pause, "reconnecting to latchd failed"),
        }
        pause = pause.saturating_mul(2).min(max);
    }
}

/// [`ensure_live`] behind a box: the reader spawns the reconnection loop, which opens
/// connections, which spawn readers; the box cuts that cycle of future types.
fn ensure_live_boxed(
    inner: &Arc<Inner>,
) -> std::pin::Pin<Box<dyn Future<Output = Result<Arc<Live>, ClientError>> + Send + '_>> {
    Box::pin(ensure_live(inner))
}

/// The variant name of a response, for [`ClientError::UnexpectedResponse`].
pub(crate) fn response_name(response: &Response) -> &'static str {
    match response {
        Response::Pong => "pong",
        Response::Status(_) => "status",
        Response::Providers(_) => "providers",
        Response::Flow(_) => "flow",
        Response::Validated(_) => "validated",
        Response::AccessToken(_) => "access_token",
        Response::Tokens(_) => "tokens",
        Response::LongLivedToken(_) => "long_lived_token",
        Response::Revoked { .. } => "revoked",
        Response::Users(_) => "users",
        Response::User(_) => "user",
        Response::Groups(_) => "groups",
        Response::MfaModules(_) => "mfa_modules",
        Response::SetupFlow(_) => "setup_flow",
        Response::RecoveryCodes(_) => "recovery_codes",
        Response::Permission { .. } => "permission",
        Response::Lockouts(_) => "lockouts",
        Response::Done => "done",
        Response::Subscribed => "subscribed",
        Response::Unsubscribed => "unsubscribed",
        Response::UserPage(_) => "user_page",
        Response::TokenPage(_) => "token_page",
        Response::LockoutPage(_) => "lockout_page",
        Response::Throttle(_) => "throttle",
        Response::LoginProviders(_) => "login_providers",
        Response::HttpFlow(_) => "http_flow",
        Response::Grant(_) => "grant",
        Response::StoreStatus(_) => "store_status",
    }
}

pub(crate) fn unexpected(request: &'static str, response: &Response) -> ClientError {
    ClientError::UnexpectedResponse {
        request,
        got: response_name(response),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_is_clone_send_sync() {
        fn assert_traits<T: Clone + Send + Sync + 'static>() {}
        assert_traits::<Client>();
    }

    #[test]
    fn response_payload_is_wire_equal_to_the_protocol_frame() {
        // latch-ipc's envelope around our payload encodes exactly as the protocol's own
        // server frame, so either side may use either type.
        let ok = latch_protocol::ServerFrame::ok(42, Response::Pong);
        let bytes = ok.encode().unwrap();
        let decoded: ServerFrame<ResponsePayload, Event> = postcard_decode(&bytes);
        let ServerFrame::Response(payload) = decoded else {
            panic!("not a response");
        };
        assert_eq!(payload.id, 42);
        assert_eq!(payload.result, Ok(Response::Pong));

        let lagged = latch_protocol::ServerFrame::Lagged { missed: 9 };
        let decoded: ServerFrame<ResponsePayload, Event> =
            postcard_decode(&lagged.encode().unwrap());
        assert!(matches!(decoded, ServerFrame::Lagged(9)));
    }

    fn postcard_decode<T: for<'de> serde::Deserialize<'de>>(bytes: &[u8]) -> T {
        latch_ipc::frame::decode(bytes).unwrap()
    }

    #[tokio::test]
    async fn a_client_without_a_daemon_says_not_running() {
        let dir = tempfile::tempdir().unwrap();
        let err = Client::connect_with(ClientOptions::for_home(dir.path()))
            .await
            .unwrap_err();
        assert!(matches!(err, ClientError::NotRunning { .. }), "{err:?}");
        let lazy = Client::new_lazy(ClientOptions::for_home(dir.path())).unwrap();
        assert!(!lazy.is_connected());
        assert!(matches!(
            lazy.ping().await,
            Err(ClientError::NotRunning { .. })
        ));
    }
}
