//! IndieAuth discovery: fetching a client's page for its `<link rel="redirect_uri">`
//! tags, as Home Assistant does (one GET, 5 s in all, the first 10 KiB), with limits of
//! its own: redirects only to `http`/`https` and at most 10 of them, no proxy from the
//! environment, no cookies. Any failure is an empty page: the redirect URI is refused.

use std::time::Duration;

/// The fetcher, built once and shared.
#[derive(Debug, Clone)]
pub(crate) struct Discovery {
    client: reqwest::Client,
    max_bytes: usize,
}

/// Redirects followed at most.
const MAX_REDIRECTS: usize = 10;

impl Discovery {
    /// A fetcher that gives up after `timeout` and reads at most `max_bytes`.
    pub(crate) fn new(timeout: Duration, max_bytes: usize) -> Result<Self, reqwest::Error> {
        let policy = reqwest::redirect::Policy::custom(|attempt| {
            if attempt.previous().len() >= MAX_REDIRECTS {
                attempt.error("too many redirects")
            } else if matches!(attempt.url().scheme(), "http" | "https") {
                attempt.follow()
            } else {
                attempt.stop()
            }
        });
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout)
            .redirect(policy)
            .no_proxy()
            .user_agent(concat!(
                "latch-http/",
                env!("CARGO_PKG_VERSION"),
                " (IndieAuth redirect_uri discovery)"
            ))
            .build()?;
        Ok(Self { client, max_bytes })
    }

    /// The start of the page at `url` (lossily decoded), or `None` when it cannot be
    /// fetched; the reason is logged.
    pub(crate) async fn page(&self, url: &str) -> Option<String> {
        let mut response = match self.client.get(url).send().await {
            Ok(response) => response,
            Err(e) => {
                tracing::warn!(url, error = %e, "cannot fetch the client's page to look up its redirect_uri");
                return None;
            }
        };
        let mut body = Vec::new();
        loop {
            match response.chunk().await {
                Ok(Some(chunk)) => {
                    let room = self.max_bytes - body.len();
                    body.extend_from_slice(&chunk[..chunk.len().min(room)]);
                    if body.len() >= self.max_bytes {
                        break;
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    tracing::warn!(url, error = %e, "error while reading the client's page");
                    break;
                }
            }
        }
        Some(String::from_utf8_lossy(&body).into_owned())
    }
}
