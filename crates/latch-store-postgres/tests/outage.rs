//! The database stops answering (SIGSTOP) and restarts, under a host that keeps going.
//! Its own test binary: it stops the whole cluster of its process.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant};

use common::{database, host, token, until, user};
use latch_store::{Change, StoreError};

const WAIT: Duration = Duration::from_secs(30);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_fail_fast_while_the_database_hangs_and_resume_after_a_restart() {
    let db = database("outage");
    let a = host(&db, "a").await;
    let b = host(&db, "b").await;
    let (sa, sb) = (a.store(), b.store());
    sa.commit(vec![
        Change::PutUser(user("u1")),
        Change::PutRefreshToken(token("t1", "u1")),
    ])
    .await
    .unwrap();
    until(WAIT, "b caught up", || sb.refresh_token("t1").is_some()).await;

    let cluster = latch_test_postgres::cluster().unwrap();
    cluster.signal("STOP").unwrap();
    let started = Instant::now();
    let r = sa.commit(vec![Change::PutUser(user("u2"))]).await;
    let took = started.elapsed();
    // Reads go on from memory meanwhile.
    assert!(sa.refresh_token("t1").is_some());
    cluster.signal("CONT").unwrap();
    assert!(matches!(r, Err(StoreError::Unavailable { .. })), "{r:?}");
    assert!(
        took < Duration::from_secs(10),
        "the write hung for {took:?}"
    );
    assert!(!a.status().connected);
    // The failed write's group was applied here: the host reloads before writing again.
    until(WAIT, "a reconnected", || a.status().connected).await;

    // A restart cuts every connection; writes resume, nothing is lost or applied twice.
    cluster.restart().unwrap();
    let mut ok = 0;
    let end = Instant::now() + WAIT;
    while ok < 5 {
        assert!(Instant::now() < end, "writes did not resume");
        if sb
            .commit(vec![Change::PutUser(user(&format!("after{ok}")))])
            .await
            .is_ok()
        {
            ok += 1;
        }
    }
    until(WAIT, "a caught up", || sa.user("after4").is_some()).await;
    until(WAIT, "same state", || {
        sa.last_applied() == sb.last_applied()
    })
    .await;
    assert_eq!(sa.snapshot(), sb.snapshot());
    assert!(sa.user("u2").is_none() || sb.user("u2").is_some());
    // A third host loading now sees exactly the same.
    let c = host(&db, "c").await;
    assert_eq!(c.store().snapshot(), sa.snapshot());
}
