//! Tests of what the store keeps of a session's keys, on a real redb file: keys are wiped in the
//! transaction that records TERMINATED, stay wiped across a restart, and the ended session cannot
//! be revived; records an earlier jvpn left with keys are wiped when the store opens.

use super::tests::{advance, create, open, reattach};
use super::*;
use crate::session::{Input, TerminateCause};
use jvpn_common::abi::HEADER_KEY_LEN;
use jvpn_common::maps::SessionState;

/// Whether any 8-byte window of `needle` appears in `haystack`.
fn contains_any_window(haystack: &[u8], needle: &[u8]) -> bool {
    needle
        .windows(8)
        .any(|w| haystack.windows(8).any(|h| h == w))
}

#[test]
fn terminating_wipes_the_keys_in_the_same_commit_and_a_restart_does_not_bring_them_back() {
    let (dir, store) = open();
    let attached = create(&store, 9);
    assert!(!attached.secrets.is_empty(), "the handshake stored keys");
    let stored = store.get(attached.id).expect("get").expect("present");
    assert_eq!(
        *stored.secrets, *attached.secrets,
        "a live session keeps its keys"
    );

    let moved = advance(&store, &attached, reattach(1, 2));
    let ended = advance(
        &store,
        &moved,
        Input::Terminate {
            cause: TerminateCause::Operator,
        },
    );
    assert_eq!(ended.state, SessionState::Terminated);
    let stored = store.get(ended.id).expect("get").expect("present");
    assert_eq!(stored.state, SessionState::Terminated);
    assert!(stored.secrets.is_empty(), "secrets wiped: {stored:?}");
    assert_eq!(stored.header_key, [0; HEADER_KEY_LEN], "header key wiped");
    assert_eq!(
        store.audit(ended.id).expect("audit").len(),
        3,
        "the history stays"
    );

    drop(store);
    let store = RedbStore::open(dir.path()).expect("reopen");
    let stored = store.get(ended.id).expect("get").expect("present");
    assert!(stored.secrets.is_empty() && stored.header_key == [0; HEADER_KEY_LEN]);

    let revive = CasRequest::new(
        Expected::Version(ended.state_version),
        attached.clone(),
        Vec::new(),
    );
    let outcome = store.compare_and_set(
        revive.session.id,
        revive.expected,
        &revive.session,
        &revive.audit,
    );
    assert!(
        matches!(
            outcome,
            Err(StoreError::Refused {
                source: MutationRefused::AfterTermination | MutationRefused::NotAnIncrement { .. },
                ..
            })
        ),
        "an ended session cannot be revived: {outcome:?}"
    );
}

#[test]
fn a_terminated_record_stored_with_keys_is_wiped_when_the_store_opens() {
    let (dir, store) = open();
    let attached = create(&store, 11);
    let mut ended = advance(
        &store,
        &attached,
        Input::Terminate {
            cause: TerminateCause::Client,
        },
    );
    drop(store);
    // Write the record as an earlier jvpn did: TERMINATED with its keys.
    ended.header_key = attached.header_key;
    ended.secrets = attached.secrets.clone();
    {
        let db = ::redb::Database::create(dir.path().join(redb::STORE_FILE)).expect("db");
        let txn = db.begin_write().expect("begin");
        {
            let mut table = txn
                .open_table(::redb::TableDefinition::<(u64, u64), &[u8]>::new(
                    "sessions",
                ))
                .expect("table");
            let record = codec::encode_session(&ended).expect("encode");
            table
                .insert((ended.id.get(), 0), record.as_slice())
                .expect("insert");
        }
        txn.commit().expect("commit");
    }
    let store = RedbStore::open(dir.path()).expect("reopen");
    let stored = store.get(ended.id).expect("get").expect("present");
    assert!(stored.secrets.is_empty(), "legacy keys wiped: {stored:?}");
    assert_eq!(stored.header_key, [0; HEADER_KEY_LEN]);
    let listed = store.list().expect("list");
    let record = codec::encode_session(&listed[0]).expect("encode");
    assert!(!contains_any_window(&record, &attached.secrets));
}

#[test]
fn debug_of_a_session_shows_no_key_bytes() {
    let (_dir, store) = open();
    let mut s = create(&store, 12);
    s.header_key = [0xa5; HEADER_KEY_LEN];
    s.secrets = vec![0x5a; 80].into();
    let shown = format!(
        "{s:?} {:?}",
        CasRequest::new(Expected::Absent, s.clone(), vec![])
    );
    for byte in ["165", "a5", "90", "5a"] {
        assert!(
            !shown.contains(&format!("{byte}, {byte}")),
            "key bytes {byte} in {shown}"
        );
    }
    let input = Input::HandshakeComplete {
        binding: s.binding,
        header_key: [0xa5; HEADER_KEY_LEN].into(),
        secrets: vec![0x5a; 80].into(),
    };
    let shown = format!("{input:?}");
    assert!(
        !shown.contains("165, 165") && !shown.contains("90, 90"),
        "{shown}"
    );
}
