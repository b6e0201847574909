//! Operational tests of the redb store: group commit, reopening, locking, and the errors an
//! operator sees. Every test runs on a real redb file in a fresh temporary directory.

use super::tests::{advance, create, open, reattach, step, T0};
use super::*;

#[test]
fn the_group_committer_gives_each_caller_its_own_durable_outcome() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(RedbStore::open(dir.path()).unwrap());
    let sessions: Vec<Session> = (1..=64).map(|n| create(&store, 1000 + n)).collect();
    let committer = GroupCommitter::spawn(store.clone(), 16).unwrap();
    std::thread::scope(|scope| {
        for s in &sessions {
            let committer = &committer;
            scope.spawn(move || {
                let t = step(s, reattach(1, 5), T0 + 1);
                let ticket = committer.submit(CasRequest::new(
                    Expected::Version(1),
                    t.session.clone(),
                    t.state_changes(),
                ));
                assert_eq!(ticket.wait().unwrap(), CasOutcome::Committed);
                // The same request again has lost: the store is at version 2.
                let again = committer.submit(CasRequest::new(
                    Expected::Version(1),
                    t.session.clone(),
                    t.state_changes(),
                ));
                assert_eq!(
                    again.wait().unwrap(),
                    CasOutcome::Conflict {
                        current: Some(t.session)
                    }
                );
            });
        }
    });
    drop(committer);
    drop(store);
    let reopened = RedbStore::open(dir.path()).unwrap();
    for s in &sessions {
        assert_eq!(reopened.get(s.id).unwrap().unwrap().state_version, 2);
    }
}

#[test]
fn everything_committed_survives_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let (s1, s2) = {
        let store = RedbStore::open(dir.path()).unwrap();
        let s1 = create(&store, 21);
        let s2 = advance(&store, &create(&store, 22), reattach(1, 7));
        (s1, s2)
    };
    let store = RedbStore::open(dir.path()).unwrap();
    assert_eq!(store.list().unwrap(), vec![s1, s2.clone()]);
    assert_eq!(store.audit(s2.id).unwrap().len(), 2);
}

#[test]
fn a_second_opener_is_told_the_store_is_locked_and_by_whom() {
    let (dir, _store) = open();
    match RedbStore::open(dir.path()) {
        Err(e @ StoreError::Locked { .. }) => {
            let StoreError::Locked { owner, .. } = &e else {
                unreachable!()
            };
            assert_eq!(*owner, Some(std::process::id()));
            let message = e.to_string();
            assert!(
                message.contains("locked by another jvpn gateway"),
                "{message}"
            );
            assert!(message.contains("--state-dir"), "{message}");
        }
        other => panic!("expected Locked, got {other:?}"),
    }
}

#[test]
fn an_unusable_state_dir_says_what_to_do() {
    let file = tempfile::NamedTempFile::new().unwrap();
    let under_a_file = file.path().join("state");
    match RedbStore::open(&under_a_file) {
        Err(e @ StoreError::Private(_)) => {
            assert!(e.to_string().contains("pass another --state-dir"), "{e}");
        }
        other => panic!("expected a state dir error, got {other:?}"),
    }
}
