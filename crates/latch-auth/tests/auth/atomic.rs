//! Onboarding and adding a password login commit the password entry, the user and the
//! credential in one store batch: whichever journal write fails, reopening the store
//! finds all of them or none, never an entry that blocks its username with no user
//! behind it. Driven by latch-store's fault-injection hook, against the real journal.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use latch_auth::{AuthManager, ThrottleConfig};
use latch_models::{FixedClock, GROUP_ID_USER, GroupId};
use latch_store::{Store, StoreOptions, WriteStep};

use crate::common::{OWNER_PASSWORD, default_config, options, t0};

/// Fails the `n`-th journal write counted from when it is armed (`n` = 0: never).
#[derive(Clone, Default)]
struct FailNth {
    n: Arc<AtomicUsize>,
    seen: Arc<AtomicUsize>,
}

impl FailNth {
    fn arm(&self, n: usize) {
        self.seen.store(0, Ordering::SeqCst);
        self.n.store(n, Ordering::SeqCst);
    }

    fn options(&self) -> StoreOptions {
        let this = self.clone();
        StoreOptions {
            fault_hook: Some(Arc::new(move |step| {
                let n = this.n.load(Ordering::SeqCst);
                if n > 0
                    && step == WriteStep::JournalWrite
                    && this.seen.fetch_add(1, Ordering::SeqCst) + 1 == n
                {
                    return Err(std::io::Error::other("injected journal failure"));
                }
                Ok(())
            })),
            ..StoreOptions::default()
        }
    }
}

fn manager(home: &Path, store_options: StoreOptions) -> AuthManager {
    let store = Store::open(home, store_options).unwrap();
    let clock = Arc::new(FixedClock::new(t0()));
    AuthManager::from_config(
        store,
        &default_config(),
        options(&clock, ThrottleConfig::default()),
    )
    .unwrap()
}

/// What a reopened store holds: (password entry for `username`, any user with a
/// credential of that username).
fn reopened(home: &Path, username: &str) -> (bool, bool) {
    let m = manager(home, StoreOptions::default());
    let entry = m.store().ha_user(username).is_some();
    let user = m
        .users()
        .iter()
        .any(|u| m.username_of(u.id.as_str()).as_deref() == Some(username));
    (entry, user)
}

#[tokio::test]
async fn onboarding_leaves_all_or_nothing_whichever_write_fails() {
    for n in 1..=2 {
        let home = tempfile::tempdir().unwrap();
        let faults = FailNth::default();
        let m = manager(home.path(), faults.options());
        faults.arm(n);
        let result = m
            .onboard(Some("Paulus".into()), "paulus", OWNER_PASSWORD)
            .await;
        drop(m);
        let (entry, user) = reopened(home.path(), "paulus");
        assert_eq!(
            entry, user,
            "failing journal write {n}: entry {entry}, user {user} ({result:?})"
        );
        assert_eq!(
            entry,
            result.is_ok(),
            "write {n}: durable exactly when acknowledged"
        );
        if !entry {
            // Nothing blocks the name: onboarding again works.
            let m = manager(home.path(), StoreOptions::default());
            m.onboard(Some("Paulus".into()), "paulus", OWNER_PASSWORD)
                .await
                .unwrap();
        }
    }
}

#[tokio::test]
async fn adding_a_password_login_leaves_all_or_nothing_whichever_write_fails() {
    for n in 1..=2 {
        let home = tempfile::tempdir().unwrap();
        let faults = FailNth::default();
        let m = manager(home.path(), faults.options());
        m.onboard(Some("Paulus".into()), "paulus", OWNER_PASSWORD)
            .await
            .unwrap();
        let anne = m
            .create_user(
                Some("Anne".into()),
                Some(vec![GroupId::from(GROUP_ID_USER)]),
                false,
            )
            .await
            .unwrap();
        faults.arm(n);
        let result = m
            .add_password_login(anne.id.as_str(), "anne", "anne-pw")
            .await;
        drop(m);
        let (entry, user) = reopened(home.path(), "anne");
        assert_eq!(
            entry, user,
            "failing journal write {n}: entry {entry}, credential {user} ({result:?})"
        );
        assert_eq!(entry, result.is_ok());
        if !entry {
            let m = manager(home.path(), StoreOptions::default());
            m.add_password_login(anne.id.as_str(), "anne", "anne-pw")
                .await
                .unwrap();
        }
    }
}
