//! latchd behind latch-http: one `latch-client` connection shared by every request,
//! reopened on the next call after latchd restarts. A call that cannot reach latchd is
//! [`Failure::Unavailable`] (answered 503), as is latchd's `unavailable` answer (its
//! shared database silent past the staleness bound); the first such failure after a success is
//! logged as an error, and the first success after failures as latchd being back.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use latch_client::{Client, ClientError};
use latch_protocol::ErrorCode;

/// Why a call to latchd gave no answer.
#[derive(Debug)]
pub(crate) enum Failure {
    /// latchd cannot be reached (stopped, restarting, refusing us, too slow).
    Unavailable,
    /// latchd answered with an error.
    Api {
        /// Its stable code.
        code: ErrorCode,
        /// Its message.
        message: String,
    },
    /// An answer of the wrong kind: a bug, logged.
    Broken,
}

/// The shared latchd client.
#[derive(Debug, Clone)]
pub(crate) struct Daemon {
    client: Client,
    reachable: Arc<AtomicBool>,
}

impl Daemon {
    pub(crate) fn new(client: Client) -> Self {
        Self {
            client,
            reachable: Arc::new(AtomicBool::new(true)),
        }
    }

    /// The client, for a call.
    pub(crate) fn client(&self) -> &Client {
        &self.client
    }

    /// Runs a call and sorts its failure.
    pub(crate) async fn call<T>(
        &self,
        call: impl Future<Output = Result<T, ClientError>>,
    ) -> Result<T, Failure> {
        match call.await {
            Ok(value) => {
                self.mark_reachable();
                Ok(value)
            }
            Err(ClientError::Api { code, message }) => {
                self.mark_reachable();
                if code == ErrorCode::ShuttingDown {
                    self.mark_unreachable(&message);
                    return Err(Failure::Unavailable);
                }
                // latchd answers, but its shared database is out of reach for longer
                // than its staleness bound: 503 as well, the client retries later.
                if code == ErrorCode::Unavailable {
                    tracing::warn!(message, "latchd cannot answer safely now");
                    return Err(Failure::Unavailable);
                }
                Err(Failure::Api { code, message })
            }
            Err(e @ (ClientError::UnexpectedResponse { .. } | ClientError::Protocol { .. })) => {
                tracing::error!(error = %e, "latchd gave an answer latch-http cannot use");
                Err(Failure::Broken)
            }
            Err(e) => {
                self.mark_unreachable(&e.to_string());
                Err(Failure::Unavailable)
            }
        }
    }

    fn mark_reachable(&self) {
        if !self.reachable.swap(true, Ordering::Relaxed) {
            tracing::info!("latchd is reachable again");
        }
    }

    fn mark_unreachable(&self, reason: &str) {
        if self.reachable.swap(false, Ordering::Relaxed) {
            tracing::error!(
                reason,
                "latchd is not reachable: answering 503 until it is back"
            );
        }
    }
}
