//! [`Pager`]: a listing read a page at a time, so it works at any store size.

use futures::Stream;
use latch_protocol::{LockoutInfo, MAX_PAGE_SIZE, Page, Request, Response, TokenInfo, UserInfo};

use crate::client::response_name;
use crate::{Client, ClientError};

/// A kind of item that comes in pages: users, a user's tokens, lockouts.
pub trait Paged: Sized + Send + 'static {
    /// The page this answer carries, or the name of the answer that came instead.
    #[doc(hidden)]
    fn take(response: Response) -> Result<Page<Self>, &'static str>;
}

impl Paged for UserInfo {
    fn take(response: Response) -> Result<Page<Self>, &'static str> {
        match response {
            Response::UserPage(page) => Ok(page),
            other => Err(response_name(&other)),
        }
    }
}

impl Paged for TokenInfo {
    fn take(response: Response) -> Result<Page<Self>, &'static str> {
        match response {
            Response::TokenPage(page) => Ok(page),
            other => Err(response_name(&other)),
        }
    }
}

impl Paged for LockoutInfo {
    fn take(response: Response) -> Result<Page<Self>, &'static str> {
        match response {
            Response::LockoutPage(page) => Ok(page),
            other => Err(response_name(&other)),
        }
    }
}

/// Which listing a pager reads.
#[derive(Debug, Clone)]
enum Listing {
    Users,
    Tokens { user_id: String },
    Lockouts,
}

impl Listing {
    fn request(&self, after: Option<String>, limit: u32) -> Request {
        match self {
            Self::Users => Request::ListUsersPage { after, limit },
            Self::Tokens { user_id } => Request::ListTokensPage {
                user_id: user_id.clone(),
                after,
                limit,
            },
            Self::Lockouts => Request::ListLockoutsPage { after, limit },
        }
    }
}

/// A listing read a page at a time (users and tokens in id order, lockouts in key
/// order), each page one request; see [`Client::users`], [`Client::tokens`] and
/// [`Client::lockouts`].
///
/// ```no_run
/// # async fn demo(client: latch_client::Client) -> Result<(), latch_client::ClientError> {
/// let mut users = client.users();
/// while let Some(page) = users.next_page().await? {
///     for user in page {
///         println!("{} {}", user.id, user.display_name());
///     }
/// }
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct Pager<T> {
    client: Client,
    listing: Listing,
    limit: u32,
    after: Option<String>,
    done: bool,
    _items: std::marker::PhantomData<fn() -> T>,
}

impl<T: Paged> Pager<T> {
    fn new(client: &Client, listing: Listing) -> Self {
        Self {
            client: client.clone(),
            listing,
            limit: MAX_PAGE_SIZE,
            after: None,
            done: false,
            _items: std::marker::PhantomData,
        }
    }

    /// Asks for pages of at most `limit` items (the daemon serves at most
    /// [`MAX_PAGE_SIZE`], and fewer when a page would outgrow a frame).
    #[must_use]
    pub fn page_size(mut self, limit: u32) -> Self {
        self.limit = limit.max(1);
        self
    }

    /// Starts after this cursor (an id, or a lockout key's text) instead of at the
    /// beginning.
    #[must_use]
    pub fn after(mut self, cursor: impl Into<String>) -> Self {
        self.after = Some(cursor.into());
        self
    }

    /// The next page; `None` once the listing is read to its end. A page may be empty
    /// only as the last one.
    ///
    /// # Errors
    ///
    /// As [`Client::request`]; `user_not_found` for the tokens of a user that is gone.
    pub async fn next_page(&mut self) -> Result<Option<Vec<T>>, ClientError> {
        if self.done {
            return Ok(None);
        }
        let request = self.listing.request(self.after.clone(), self.limit);
        let name = request.name();
        let page = T::take(self.client.request(request).await?)
            .map_err(|got| ClientError::UnexpectedResponse { request: name, got })?;
        match page.next {
            // A cursor that does not move would loop forever: end instead.
            Some(next) if self.after.as_deref() != Some(next.as_str()) => {
                self.after = Some(next);
            }
            _ => self.done = true,
        }
        Ok(Some(page.items))
    }

    /// Every remaining item.
    ///
    /// # Errors
    ///
    /// As [`Pager::next_page`].
    pub async fn all(mut self) -> Result<Vec<T>, ClientError> {
        let mut all = Vec::new();
        while let Some(page) = self.next_page().await? {
            all.extend(page);
        }
        Ok(all)
    }

    /// The remaining items one by one, fetching each page when the previous one is used
    /// up; the stream ends after the last item or the first error.
    pub fn into_stream(self) -> impl Stream<Item = Result<T, ClientError>> + Send {
        let pending: std::vec::IntoIter<T> = Vec::new().into_iter();
        futures::stream::unfold(
            (self, pending, false),
            |(mut pager, mut pending, failed)| async move {
                if failed {
                    return None;
                }
                loop {
                    if let Some(item) = pending.next() {
                        return Some((Ok(item), (pager, pending, false)));
                    }
                    match pager.next_page().await {
                        Ok(Some(page)) => pending = page.into_iter(),
                        Ok(None) => return None,
                        Err(e) => return Some((Err(e), (pager, pending, true))),
                    }
                }
            },
        )
    }
}

impl Client {
    /// Every user, a page at a time (by id).
    #[must_use]
    pub fn users(&self) -> Pager<UserInfo> {
        Pager::new(self, Listing::Users)
    }

    /// A user's refresh tokens, a page at a time (by id).
    #[must_use]
    pub fn tokens(&self, user_id: &str) -> Pager<TokenInfo> {
        Pager::new(
            self,
            Listing::Tokens {
                user_id: user_id.to_owned(),
            },
        )
    }

    /// The lockouts and failure counts, a page at a time (by key).
    #[must_use]
    pub fn lockouts(&self) -> Pager<LockoutInfo> {
        Pager::new(self, Listing::Lockouts)
    }
}
