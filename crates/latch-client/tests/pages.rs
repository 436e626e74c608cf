//! Paged listings and direct lookups against the real daemon: pages in id order that
//! cover everything once, whatever the page size and whatever changes in between;
//! users found by username as Home Assistant compares usernames.
#![cfg(unix)]
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use futures::StreamExt as _;
use latch_client::protocol::{ErrorCode, MAX_PAGE_SIZE};
use latch_client::{ClientError, NewUser};

use common::TestDaemon;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn users_come_a_page_at_a_time_in_id_order() {
    let daemon = TestDaemon::start().await;
    let client = daemon.client().await;
    let mut ids = Vec::new();
    for i in 0..23 {
        ids.push(
            client
                .create_user(NewUser::new(format!("User {i}")))
                .await
                .unwrap()
                .id,
        );
    }
    // The first user became the owner, who cannot be removed.
    let owner = ids[0].clone();
    ids.sort();

    for size in [1, 5, 22, 23, 500] {
        let mut pager = client.users().page_size(size);
        let mut pages = 0;
        let mut seen = Vec::new();
        while let Some(page) = pager.next_page().await.unwrap() {
            assert!(page.len() <= size as usize);
            seen.extend(page.into_iter().map(|u| u.id));
            pages += 1;
        }
        assert_eq!(seen, ids, "page size {size}");
        assert_eq!(pages, 23usize.div_ceil(size as usize), "page size {size}");
    }
    // The stream gives the same, and list_users pages underneath.
    let streamed: Vec<String> = client
        .users()
        .page_size(4)
        .into_stream()
        .map(|u| u.unwrap().id)
        .collect()
        .await;
    assert_eq!(streamed, ids);
    let listed: Vec<String> = client
        .list_users()
        .await
        .unwrap()
        .into_iter()
        .map(|u| u.id)
        .collect();
    assert_eq!(listed, ids);

    // A page asks for at most MAX_PAGE_SIZE, and a cursor resumes after its id.
    let page = client.users_page(None, u32::MAX).await.unwrap();
    assert_eq!(page.items.len(), 23.min(MAX_PAGE_SIZE as usize));
    assert_eq!(page.next, None);
    let page = client.users_page(Some(&ids[9]), 3).await.unwrap();
    let got: Vec<&str> = page.items.iter().map(|u| u.id.as_str()).collect();
    assert_eq!(got, [&ids[10], &ids[11], &ids[12]]);
    assert_eq!(page.next.as_deref(), Some(ids[12].as_str()));

    // Users added and removed between pages: each remaining user at most once.
    let mut pager = client.users().page_size(5);
    let first = pager.next_page().await.unwrap().unwrap();
    let gone = ids.iter().skip(5).find(|id| **id != owner).unwrap().clone();
    client.remove_user(&gone).await.unwrap();
    client.create_user(NewUser::new("Late")).await.unwrap();
    let mut rest: Vec<String> = first.into_iter().map(|u| u.id).collect();
    while let Some(page) = pager.next_page().await.unwrap() {
        rest.extend(page.into_iter().map(|u| u.id));
    }
    assert!(rest.windows(2).all(|w| w[0] < w[1]), "in order, each once");
    assert!(!rest.contains(&gone), "a removed user is left out");
    let expected: Vec<&String> = ids.iter().filter(|id| **id != gone).collect();
    assert!(expected.iter().all(|id| rest.contains(id)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn users_are_found_by_username_and_name_directly() {
    let daemon = TestDaemon::start().await;
    let client = daemon.client().await;
    let owner = client
        .onboard("Paulus", "paulus", "correct horse battery")
        .await
        .unwrap();
    let anne = client.create_user(NewUser::new("Anne")).await.unwrap();
    client
        .add_password(&anne.id, "strasse", "anne's password")
        .await
        .unwrap();
    client.create_user(NewUser::new("Twin")).await.unwrap();
    client.create_user(NewUser::new("Twin")).await.unwrap();

    let found = client.get_user_by_username("  PAULUS ").await.unwrap();
    assert_eq!(found.id, owner.id);
    // Full case folding, as Home Assistant's `casefold()`.
    assert_eq!(
        client.get_user_by_username("Straße").await.unwrap().id,
        anne.id
    );
    let err = client.get_user_by_username("nobody").await.unwrap_err();
    assert!(
        matches!(
            err,
            ClientError::Api {
                code: ErrorCode::UserNotFound,
                ..
            }
        ),
        "{err}"
    );

    assert_eq!(client.find_users_by_name("Anne", 2).await.unwrap().len(), 1);
    assert_eq!(client.find_users_by_name("Twin", 2).await.unwrap().len(), 2);
    assert_eq!(client.find_users_by_name("Twin", 1).await.unwrap().len(), 1);
    assert!(
        client
            .find_users_by_name("anne", 2)
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_and_lockouts_come_in_pages_too() {
    let daemon = TestDaemon::start().await;
    let client = daemon.client().await;
    let owner = client
        .onboard("Paulus", "paulus", "correct horse battery")
        .await
        .unwrap();
    let mut ids = Vec::new();
    for i in 0..7 {
        let t = client
            .create_long_lived_token(&owner.id, &format!("token {i}"), None, 1)
            .await
            .unwrap();
        ids.push(t.refresh_token_id);
    }
    ids.sort();
    let mut pager = client.tokens(&owner.id).page_size(3);
    let mut seen = Vec::new();
    while let Some(page) = pager.next_page().await.unwrap() {
        seen.extend(page.into_iter().map(|t| t.id));
    }
    assert_eq!(seen, ids);
    let err = client.tokens_page("nobody", None, 3).await.unwrap_err();
    assert!(
        matches!(
            err,
            ClientError::Api {
                code: ErrorCode::UserNotFound,
                ..
            }
        ),
        "{err}"
    );

    // Failed logins from two sources and two usernames: four keys, by their text.
    for (user, ip) in [("anne", "10.0.0.1"), ("bob", "10.0.0.2")] {
        let flow = client
            .login_start(
                latch_client::protocol::Handler::new("homeassistant"),
                "https://example.com/",
                None,
                Some(ip.parse().unwrap()),
            )
            .await
            .unwrap();
        let latch_client::protocol::FlowState::Form(form) = flow else {
            panic!("expected a form");
        };
        let input = vec![
            ("username".to_owned(), user.into()),
            ("password".to_owned(), "wrong".into()),
        ];
        client
            .login_continue(&form.flow_id, input, Some(ip.parse().unwrap()))
            .await
            .unwrap();
    }
    let keys: Vec<String> = client
        .lockouts()
        .page_size(1)
        .all()
        .await
        .unwrap()
        .iter()
        .map(|l| l.key.to_string())
        .collect();
    assert_eq!(
        keys,
        [
            "source:10.0.0.1",
            "source:10.0.0.2",
            "username:anne",
            "username:bob"
        ]
    );
    let throttle = client.login_throttle(Some("anne"), None).await.unwrap();
    assert_eq!(throttle.delay_ms, 0, "one failure is not throttled yet");
    assert!(throttle.locked_out.is_none());
}
