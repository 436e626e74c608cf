//! What the JSON API and the sign-in page share about a login flow's answer: the
//! redirect check latchd waits for (IndieAuth, with the network fetch here), and the
//! per-address flow count, released when an answer ends the flow.

use std::net::IpAddr;

use latch_protocol::{ErrorCode, FormInput, HttpFlow, HttpFlowStep};

use crate::daemon::Failure;
use crate::indieauth::{RedirectVerdict, check_redirect_uri, page_lists};
use crate::limits::Reservation;
use crate::state::AppState;

/// Why a step of a login flow got no answer.
#[derive(Debug)]
pub(crate) enum StepFailure {
    /// latchd does not know the flow (ended or expired); its place in the per-address
    /// count is freed.
    Gone,
    /// Anything else.
    Failed(Failure),
}

impl AppState {
    /// Sends a step's input to latchd from `ip`.
    pub(crate) async fn continue_flow(
        &self,
        flow_id: &str,
        input: FormInput,
        ip: IpAddr,
    ) -> Result<HttpFlow, StepFailure> {
        let client = self.daemon.client();
        match self
            .daemon
            .call(client.http_login_continue(flow_id, input, Some(ip)))
            .await
        {
            Ok(flow) => Ok(flow),
            Err(Failure::Api {
                code: ErrorCode::FlowNotFound,
                ..
            }) => {
                self.flows.release(flow_id);
                Err(StepFailure::Gone)
            }
            Err(e) => Err(StepFailure::Failed(e)),
        }
    }

    /// Whether `redirect_uri` may receive a code for `client_id`: by the rules, else by
    /// the client's page.
    pub(crate) async fn redirect_allowed(&self, client_id: &str, redirect_uri: &str) -> bool {
        match check_redirect_uri(client_id, redirect_uri) {
            RedirectVerdict::Allowed => true,
            RedirectVerdict::Refused => false,
            RedirectVerdict::NeedsDiscovery => match self.discovery.page(client_id).await {
                Some(page) => page_lists(client_id, &page, redirect_uri),
                None => false,
            },
        }
    }

    /// Takes a flow's answer to where the client sees it: a redirect check is done and
    /// answered (latchd then issues the code or refuses); the flow's place in the
    /// per-address count is kept while it goes on and freed when it ends.
    /// `reservation` is the place of a flow that this request started.
    pub(crate) async fn settle(
        &self,
        flow: HttpFlow,
        reservation: Option<Reservation>,
    ) -> Result<HttpFlow, Failure> {
        let flow = match flow.step {
            HttpFlowStep::CheckRedirect {
                client_id,
                redirect_uri,
            } => {
                let allowed = self.redirect_allowed(&client_id, &redirect_uri).await;
                if !allowed {
                    tracing::warn!(client_id, "redirect_uri refused for this client_id");
                }
                let answer = self
                    .daemon
                    .call(
                        self.daemon
                            .client()
                            .http_login_authorize(&flow.flow_id, allowed),
                    )
                    .await;
                match answer {
                    Ok(flow) => flow,
                    Err(e) => {
                        self.flows.release(&flow.flow_id);
                        return Err(e);
                    }
                }
            }
            step => HttpFlow { step, ..flow },
        };
        match (&flow.step, reservation) {
            (HttpFlowStep::Form(_), Some(reservation)) => reservation.keep(&flow.flow_id),
            (HttpFlowStep::Form(_) | HttpFlowStep::Rejected(_), None) => {}
            (HttpFlowStep::CheckRedirect { .. }, _) => {
                // latchd answered a redirect check with another one: a bug.
                tracing::error!("latchd asked for a second redirect check");
                self.flows.release(&flow.flow_id);
                return Err(Failure::Broken);
            }
            _ => self.flows.release(&flow.flow_id),
        }
        Ok(flow)
    }
}
