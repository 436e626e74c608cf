//! One authenticated connection: the only place that reads requests and writes answers.
//!
//! The reading task decodes each frame. Requests answered from memory (token
//! validation, lookups) are answered right there; every other request (anything that
//! commits to the store or runs bcrypt) runs in its own task, at most
//! `max_in_flight_per_connection` at once, so a slow login never delays the validations
//! behind it. Answers carry their request's id and go out in the order they finish.

use std::collections::HashMap;
use std::sync::Arc;

use latch_ipc::server::{Connection, ConnectionSender};
use latch_ipc::{Raw, SendError};
use latch_protocol::{ApiError, ErrorCode, Event, Request, RequestFrame, Response};
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;
use zeroize::Zeroize;

use crate::events::EventHub;
use crate::handler::{Answer, Handler};
use crate::wire::ResponsePayload;

/// An authenticated connection as the daemon holds it.
pub(crate) type DaemonConnection = Connection<Raw, ResponsePayload, Event>;
type Sender = ConnectionSender<ResponsePayload, Event>;

/// What every connection shares.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) handler: Arc<Handler>,
    pub(crate) hub: Arc<EventHub>,
    pub(crate) max_in_flight: usize,
}

/// Sends an answer; false when the connection is gone.
async fn reply(sender: &Sender, id: u64, result: Answer) -> bool {
    reply_as(sender, id, result, false).await
}

/// Sends an answer, straight into the socket if `now` and the writer is idle (see
/// [`ConnectionSender::send_now`]); false when the connection is gone.
async fn reply_as(sender: &Sender, id: u64, result: Answer, now: bool) -> bool {
    let payload = ResponsePayload { id, result };
    let sent = if now {
        sender.send_now(&payload).await
    } else {
        sender.send(&payload).await
    };
    match sent {
        Ok(()) => true,
        Err(SendError::Frame(e)) => {
            // Over the frame limit (listings check first; this is the last guard): the
            // id still gets an answer.
            tracing::warn!(id, %e, "an answer cannot be sent");
            let result = Err(ApiError::new(
                ErrorCode::AnswerTooLarge,
                format!("the answer cannot be sent: {e}"),
            ));
            sender.send(&ResponsePayload { id, result }).await.is_ok()
        }
        Err(_) => false,
    }
}

fn log_answer(id: u64, request: &'static str, result: &Answer) {
    match result {
        Ok(_) => tracing::trace!(id, request, "answered"),
        Err(e) => tracing::debug!(id, request, code = %e.code, "answered with an error"),
    }
}

/// Serves `conn` until the peer closes it, it fails, or `stop` turns true; then lets the
/// requests already running finish and answers them.
pub(crate) async fn serve(
    conn: DaemonConnection,
    shared: Arc<Shared>,
    mut stop: watch::Receiver<bool>,
) {
    let peer = conn.peer();
    tracing::debug!(uid = ?peer.uid, pid = ?peer.pid, "connection opened");
    let (mut requests, sender) = conn.into_split();
    let slots = Arc::new(Semaphore::new(shared.max_in_flight));
    let mut tasks = JoinSet::new();
    let mut running: HashMap<tokio::task::Id, u64> = HashMap::new();
    // One future for the whole loop, so each request does not register a new waiter.
    let mut stop_reading = stop.clone();
    let stopped = async move {
        let _ = stop_reading.wait_for(|stopped| *stopped).await;
    };
    tokio::pin!(stopped);
    loop {
        reap(&mut tasks, &mut running, &sender).await;
        let next = tokio::select! {
            biased;
            () = &mut stopped => break,
            next = requests.recv_raw() => next,
        };
        let mut raw = match next {
            Ok(Some(raw)) => raw,
            Ok(None) => break,
            Err(e) => {
                tracing::debug!(%e, "connection ended by a bad frame");
                break;
            }
        };
        let decoded = RequestFrame::decode(&raw);
        // Payloads carry passwords and tokens.
        raw[..].zeroize();
        let frame = match decoded {
            Ok(frame) => frame,
            Err(e) => {
                let Some(id) = e.id() else {
                    tracing::warn!("closing a connection whose frame holds no request id");
                    break;
                };
                tracing::debug!(id, %e, "request not decoded");
                if reply(&sender, id, Err(e.api_error())).await {
                    continue;
                }
                break;
            }
        };
        let RequestFrame { id, request } = frame;
        let name = request.name();
        let ok = match request {
            Request::Subscribe { kinds } => {
                let broadcaster = shared.hub.broadcaster_for(&kinds);
                let result = match sender.subscribe(&broadcaster).await {
                    Ok(()) => Ok(Response::Subscribed),
                    Err(_) => break,
                };
                reply(&sender, id, result).await
            }
            Request::Unsubscribe => {
                let result = match sender.subscribe(shared.hub.silent()).await {
                    Ok(()) => Ok(Response::Unsubscribed),
                    Err(_) => break,
                };
                reply(&sender, id, result).await
            }
            request if Handler::runs_inline(&request) => {
                let result = shared.handler.handle(request).await;
                log_answer(id, name, &result);
                // Alone, the answer goes out at once; in a burst, answers are batched.
                let alone = !requests.has_buffered();
                reply_as(&sender, id, result, alone).await
            }
            request => {
                let permit = tokio::select! {
                    biased;
                    _ = stop.wait_for(|stopped| *stopped) => None,
                    permit = Arc::clone(&slots).acquire_owned() => permit.ok(),
                };
                let Some(permit) = permit else {
                    let refused = Err(ApiError::new(
                        ErrorCode::ShuttingDown,
                        "latchd is shutting down and takes no new work",
                    ));
                    reply(&sender, id, refused).await;
                    break;
                };
                let handler = Arc::clone(&shared.handler);
                let sender = sender.clone();
                let task = tasks.spawn(async move {
                    let result = handler.handle(request).await;
                    log_answer(id, name, &result);
                    reply(&sender, id, result).await;
                    drop(permit);
                });
                running.insert(task.id(), id);
                true
            }
        };
        if !ok {
            break;
        }
    }
    // Stop reading; answer what is running.
    drop(requests);
    while let Some(done) = tasks.join_next_with_id().await {
        settle(done, &mut running, &sender).await;
    }
    tracing::debug!(uid = ?peer.uid, pid = ?peer.pid, "connection closed");
}

/// Collects finished request tasks without waiting.
async fn reap(
    tasks: &mut JoinSet<()>,
    running: &mut HashMap<tokio::task::Id, u64>,
    sender: &Sender,
) {
    while let Some(done) = tasks.try_join_next_with_id() {
        settle(done, running, sender).await;
    }
}

/// Forgets a finished task; a task that panicked still gets its request answered.
async fn settle(
    done: Result<(tokio::task::Id, ()), tokio::task::JoinError>,
    running: &mut HashMap<tokio::task::Id, u64>,
    sender: &Sender,
) {
    match done {
        Ok((task, ())) => {
            running.remove(&task);
        }
        Err(e) => {
            let request = running.remove(&e.id());
            tracing::error!(request_id = ?request, %e, "a request task failed");
            if let Some(id) = request {
                let failed = Err(ApiError::new(
                    ErrorCode::Internal,
                    "the daemon failed while handling this request",
                ));
                reply(sender, id, failed).await;
            }
        }
    }
}
