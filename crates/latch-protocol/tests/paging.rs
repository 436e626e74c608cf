//! A full page always fits a frame: [`MAX_PAGE_SIZE`] items with every field at its
//! longest, and larger items through the byte budget.

#![allow(clippy::unwrap_used)]

use latch_protocol::{
    CredentialInfo, LockoutInfo, LockoutKey, MAX_FRAME_LEN, MAX_PAGE_SIZE, Page, Response,
    ServerFrame, Timestamp, TokenInfo, TokenType, UserInfo,
};

const ID: usize = 32;

fn text(len: usize, c: char) -> String {
    std::iter::repeat_n(c, len).collect()
}

/// A user with a 255-byte username, a 1,000-byte display name (in 2-byte characters),
/// three long group ids, two credentials and two MFA modules.
fn longest_user(i: usize) -> UserInfo {
    UserInfo {
        id: format!("{i:0ID$}"),
        name: Some(text(500, 'é')),
        username: Some(text(255, 'u')),
        is_owner: false,
        is_active: true,
        is_admin: false,
        local_only: true,
        system_generated: false,
        group_ids: vec![text(64, 'g'), text(64, 'h'), text(64, 'i')],
        credentials: vec![
            CredentialInfo {
                id: text(ID, 'c'),
                provider_type: "homeassistant".into(),
                provider_id: Some(text(64, 'p')),
            },
            CredentialInfo {
                id: text(ID, 'd'),
                provider_type: "trusted_networks".into(),
                provider_id: Some(text(64, 'q')),
            },
        ],
        mfa_modules: vec![text(32, 'm'), text(32, 'n')],
    }
}

fn longest_token(i: usize) -> TokenInfo {
    TokenInfo {
        id: format!("{i:0ID$}"),
        user_id: text(ID, 'u'),
        client_id: Some(text(1_000, 'c')),
        client_name: Some(text(255, 'n')),
        client_icon: Some(text(255, 'i')),
        token_type: TokenType::LongLivedAccessToken,
        created_at: Timestamp(i64::MIN),
        last_used_at: Some(Timestamp(i64::MAX)),
        last_used_ip: Some(text(45, '1')),
        expire_at: Some(Timestamp(i64::MAX)),
        auth_provider_type: Some("trusted_networks".into()),
    }
}

fn frame_len(response: Response) -> usize {
    ServerFrame::ok(u64::MAX, response).encode().unwrap().len()
}

#[test]
fn a_full_page_of_the_longest_items_fits_a_frame() {
    let n = MAX_PAGE_SIZE as usize;
    let users = Page {
        items: (0..n).map(longest_user).collect(),
        next: Some(text(ID, 'z')),
    };
    let len = frame_len(Response::UserPage(users));
    assert!(len <= MAX_FRAME_LEN, "{len} bytes");

    let tokens = Page {
        items: (0..n).map(longest_token).collect(),
        next: Some(text(ID, 'z')),
    };
    let len = frame_len(Response::TokenPage(tokens));
    assert!(len <= MAX_FRAME_LEN, "{len} bytes");

    let lockouts = Page {
        items: (0..n)
            .map(|_| LockoutInfo {
                key: LockoutKey::Username(text(255, 'u')),
                failures: u32::MAX,
                locked_until: Some(Timestamp(i64::MAX)),
            })
            .collect(),
        next: Some(format!("username:{}", text(255, 'u'))),
    };
    let len = frame_len(Response::LockoutPage(lockouts));
    assert!(len <= MAX_FRAME_LEN, "{len} bytes");
}

#[test]
fn the_byte_budget_keeps_a_page_of_oversized_items_within_a_frame() {
    // Display names far beyond any cap: the page is cut short instead.
    let users = (0..MAX_PAGE_SIZE as usize).map(|i| {
        let mut u = longest_user(i);
        u.name = Some(text(20_000, 'x'));
        u
    });
    let page = Page::fill(users, MAX_PAGE_SIZE, false, |u| u.id.clone());
    assert!(page.items.len() < MAX_PAGE_SIZE as usize);
    assert_eq!(
        page.next.as_deref(),
        page.items.last().map(|u| u.id.as_str())
    );
    let len = frame_len(Response::UserPage(page));
    assert!(len <= MAX_FRAME_LEN, "{len} bytes");
}
