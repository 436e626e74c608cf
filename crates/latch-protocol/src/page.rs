//! Paged listings: lists that can outgrow one frame (users, a user's tokens, lockouts)
//! are read a page at a time, in a stable order, with a cursor.

use serde::{Deserialize, Serialize};

/// The longest frame the socket carries after the handshake (latch-ipc's `MAX_FRAME`):
/// every answer, pages included, must encode within it.
pub const MAX_FRAME_LEN: usize = 1 << 20;

/// The most items a page holds; a larger `limit` is served as this. With every field
/// at its longest (a 255-byte username, a 1,000-byte display name, groups, credentials
/// and MFA modules) 500 users encode in about 850 KB, under [`MAX_FRAME_LEN`] (a test
/// keeps it so).
pub const MAX_PAGE_SIZE: u32 = 500;

/// The bytes a page's items may take, encoded. A page is cut short before an item would
/// pass it (its `next` cursor then points on), so a page fits a frame whatever its
/// items hold; a single item longer than this still comes alone.
pub const PAGE_BYTE_BUDGET: usize = 768 * 1024;

/// One page of a listing.
///
/// Items come in the listing's stable order (users and tokens by id, lockouts by their
/// key's text, `username:…` / `source:…`), each after the cursor asked for. `next` is
/// the cursor for the following page: `None` when this page ends the listing.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Page<T> {
    /// The items.
    pub items: Vec<T>,
    /// Pass this as `after` for the next page; `None` at the end.
    pub next: Option<String>,
}

impl<T: Serialize> Page<T> {
    /// Fills a page from `items`, already in cursor order and after the requested
    /// cursor: at most `limit` items (clamped to `1..=`[`MAX_PAGE_SIZE`]), fewer when the
    /// next item would take the encoded items past [`PAGE_BYTE_BUDGET`] (the first one
    /// always goes in). `more` tells whether items remain after those given; `cursor`
    /// names an item's position.
    ///
    /// ```
    /// use latch_protocol::Page;
    ///
    /// let page = Page::fill(["a", "b", "c"].map(String::from), 2, false, |s| s.clone());
    /// assert_eq!(page.items, ["a", "b"]);
    /// assert_eq!(page.next.as_deref(), Some("b"));
    /// let last = Page::fill(["c"].map(String::from), 2, false, |s| s.clone());
    /// assert_eq!(last.next, None);
    /// ```
    pub fn fill(
        items: impl IntoIterator<Item = T>,
        limit: u32,
        more: bool,
        cursor: impl Fn(&T) -> String,
    ) -> Self {
        let limit = clamp_limit(limit);
        let mut out = Vec::new();
        let mut bytes = 0usize;
        let mut items = items.into_iter().peekable();
        while let Some(item) = items.peek() {
            if out.len() >= limit {
                break;
            }
            // An item that cannot be measured cannot be sent either; it is left to the
            // frame encoder to refuse.
            let len = encoded_len(item);
            if !out.is_empty() && bytes.saturating_add(len) > PAGE_BYTE_BUDGET {
                break;
            }
            bytes = bytes.saturating_add(len);
            if let Some(item) = items.next() {
                out.push(item);
            }
        }
        let next = if more || items.peek().is_some() {
            out.last().map(&cursor)
        } else {
            None
        };
        Self { items: out, next }
    }
}

/// The length of a value's postcard encoding; `usize::MAX` if it cannot be encoded.
pub(crate) fn encoded_len<T: Serialize + ?Sized>(value: &T) -> usize {
    postcard::serialize_with_flavor::<T, postcard::ser_flavors::Size, usize>(
        value,
        postcard::ser_flavors::Size::default(),
    )
    .unwrap_or(usize::MAX)
}

/// A requested page length as served: `1..=`[`MAX_PAGE_SIZE`].
#[must_use]
pub fn clamp_limit(limit: u32) -> usize {
    usize::try_from(limit.clamp(1, MAX_PAGE_SIZE)).unwrap_or(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_are_clamped() {
        assert_eq!(clamp_limit(0), 1);
        assert_eq!(clamp_limit(7), 7);
        assert_eq!(clamp_limit(u32::MAX), MAX_PAGE_SIZE as usize);
        let many: Vec<String> = (0..1_000).map(|i| format!("{i:04}")).collect();
        let page = Page::fill(many, u32::MAX, false, String::clone);
        assert_eq!(page.items.len(), MAX_PAGE_SIZE as usize);
        assert_eq!(page.next.as_deref(), Some("0499"));
    }

    #[test]
    fn the_byte_budget_cuts_a_page_short_and_points_on() {
        let big = "x".repeat(300 * 1024);
        let items = vec![big.clone(), big.clone(), big.clone(), big];
        let page = Page::fill(items, 10, false, |s| s.len().to_string());
        assert_eq!(
            page.items.len(),
            2,
            "two 300 KiB items fit 768 KiB, three do not"
        );
        assert!(page.next.is_some());
        // One item over the budget still comes, alone.
        let huge = vec!["y".repeat(PAGE_BYTE_BUDGET + 1), "z".into()];
        let page = Page::fill(huge, 10, false, String::clone);
        assert_eq!(page.items.len(), 1);
        assert!(page.next.is_some());
    }

    #[test]
    fn next_is_set_only_when_more_remain() {
        let page = Page::fill(vec!["a".to_owned()], 1, true, String::clone);
        assert_eq!(page.next.as_deref(), Some("a"));
        let page = Page::fill(Vec::<String>::new(), 5, false, String::clone);
        assert!(page.items.is_empty() && page.next.is_none());
    }
}
