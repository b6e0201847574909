//! Tests of the redb store against the versioning spec; each names the section it checks. Every
//! test runs on a real redb file in a fresh temporary directory.

use super::*;
use crate::session::{
    Input, RecoverCause, SessionMachine, TerminateCause, Timers, Transition, CLIENT_KEY_LEN,
};
use jvpn_common::maps::{SessionState, TransportBinding};
use std::sync::Barrier;

pub(super) const T0: u64 = 1_700_000_000_000;

pub(super) fn open() -> (tempfile::TempDir, RedbStore) {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = RedbStore::open(dir.path()).expect("open store");
    (dir, store)
}

pub(super) fn id(n: u64) -> SessionId {
    SessionId::new(n).unwrap()
}

pub(super) fn path(n: u8) -> TransportBinding {
    TransportBinding::from_v4([10, 0, 0, n], 1000 + u16::from(n))
}

pub(super) fn step(s: &Session, input: Input, now: u64) -> Transition {
    SessionMachine::new(Timers::default())
        .transition(s, &input, now)
        .expect("accepted")
}

pub(super) fn reattach(v: u64, p: u8) -> Input {
    Input::ReattachValidated {
        claimed_version: v,
        new_binding: path(p),
    }
}

/// Creates session `n` in the store, ATTACHED at version 1, and returns it.
pub(super) fn create(store: &RedbStore, n: u64) -> Session {
    let born = Session::birth(id(n), [n as u8; CLIENT_KEY_LEN], T0);
    let input = Input::HandshakeComplete {
        binding: path(1),
        header_key: [1; 16].into(),
        secrets: vec![2; 64].into(),
    };
    let t = step(&born, input, T0);
    let outcome = store.compare_and_set(born.id, Expected::Absent, &t.session, &t.state_changes());
    assert_eq!(outcome.expect("create"), CasOutcome::Committed);
    t.session
}

/// Applies `input` to the stored session by CAS and returns the new session.
pub(super) fn advance(store: &RedbStore, s: &Session, input: Input) -> Session {
    let t = step(s, input, s.changed_at + 1);
    let outcome = store.compare_and_set(
        s.id,
        Expected::Version(s.state_version),
        &t.session,
        &t.state_changes(),
    );
    assert_eq!(outcome.expect("cas"), CasOutcome::Committed);
    t.session
}

#[test]
fn section2_and_11_a_whole_life_is_stored_with_one_audit_record_per_version() {
    let (_dir, store) = open();
    let attached = create(&store, 7);
    let recovering = advance(
        &store,
        &attached,
        Input::ForceRecover {
            cause: RecoverCause::Policy,
        },
    );
    let reattached = advance(&store, &recovering, reattach(2, 2));
    let ended = advance(
        &store,
        &reattached,
        Input::Terminate {
            cause: TerminateCause::Client,
        },
    );
    let mut at_rest = ended.clone();
    at_rest.wipe_keys();
    assert_eq!(store.get(id(7)).unwrap(), Some(at_rest));
    let history: Vec<_> = store
        .audit(id(7))
        .unwrap()
        .iter()
        .map(|c| (c.from_state, c.from_version, c.to_state, c.to_version))
        .collect();
    use SessionState::*;
    assert_eq!(
        history,
        [
            (Birth, 0, Attached, 1),
            (Attached, 1, Recovering, 2),
            (Recovering, 2, Attached, 3),
            (Attached, 3, Terminated, 4),
        ]
    );
}

#[test]
fn section4_a_cas_on_a_stale_version_conflicts_and_writes_nothing() {
    let (_dir, store) = open();
    let v1 = create(&store, 1);
    let v2 = advance(&store, &v1, reattach(1, 2));
    // A second mutation computed from version 1 loses.
    let late = step(&v1, reattach(1, 3), T0 + 5);
    let outcome = store
        .compare_and_set(
            v1.id,
            Expected::Version(1),
            &late.session,
            &late.state_changes(),
        )
        .unwrap();
    assert_eq!(
        outcome,
        CasOutcome::Conflict {
            current: Some(v2.clone())
        }
    );
    assert_eq!(store.get(v1.id).unwrap(), Some(v2));
    assert_eq!(store.audit(v1.id).unwrap().len(), 2);
    // A CAS on a session that does not exist conflicts with nothing stored.
    let outcome = store
        .compare_and_set(id(99), Expected::Version(1), &late.session, &[])
        .unwrap();
    assert_eq!(outcome, CasOutcome::Conflict { current: None });
}

#[test]
fn section4_and_9_5_racing_reattaches_with_the_same_version_have_exactly_one_winner() {
    let (_dir, store) = open();
    let v1 = create(&store, 3);
    let racers = 8;
    let barrier = Barrier::new(racers);
    let outcomes: Vec<(u8, CasOutcome)> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..racers as u8)
            .map(|p| {
                let (store, v1, barrier) = (&store, &v1, &barrier);
                scope.spawn(move || {
                    let t = step(v1, reattach(1, 10 + p), T0 + 1);
                    barrier.wait();
                    let o = store
                        .compare_and_set(
                            v1.id,
                            Expected::Version(1),
                            &t.session,
                            &t.state_changes(),
                        )
                        .expect("cas");
                    (p, o)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let winners: Vec<_> = outcomes
        .iter()
        .filter(|(_, o)| *o == CasOutcome::Committed)
        .collect();
    assert_eq!(winners.len(), 1, "{outcomes:?}");
    let stored = store.get(v1.id).unwrap().unwrap();
    assert_eq!(stored.state_version, 2);
    assert_eq!(stored.binding, path(10 + winners[0].0));
    for (_, o) in &outcomes {
        if *o != CasOutcome::Committed {
            assert_eq!(
                *o,
                CasOutcome::Conflict {
                    current: Some(stored.clone())
                }
            );
        }
    }
    assert_eq!(
        store.audit(v1.id).unwrap().len(),
        2,
        "one record per version"
    );
}

#[test]
fn section9_a_cas_that_keeps_or_lowers_the_version_is_refused() {
    let (_dir, store) = open();
    let v1 = create(&store, 4);
    let v2 = advance(&store, &v1, reattach(1, 2));
    let mut same = v2.clone();
    same.binding = path(9);
    let mut lower = v2.clone();
    lower.state_version = 1;
    for (new, expected_error) in [
        (same, MutationRefused::NotAnIncrement { current: 2, new: 2 }),
        (
            lower,
            MutationRefused::NotAnIncrement { current: 2, new: 1 },
        ),
    ] {
        match store.compare_and_set(v2.id, Expected::Version(2), &new, &[]) {
            Err(StoreError::Refused { source, .. }) => assert_eq!(source, expected_error),
            other => panic!("expected a refusal, got {other:?}"),
        }
    }
    assert_eq!(store.get(v2.id).unwrap(), Some(v2));
}

#[test]
fn section11_an_increment_without_its_audit_record_is_impossible() {
    let (_dir, store) = open();
    let v1 = create(&store, 5);
    let t = step(&v1, reattach(1, 2), T0 + 1);
    let good = t.state_changes();
    let mut wrong_session = good.clone();
    wrong_session[0].session = id(6);
    let mut wrong_versions = good.clone();
    wrong_versions[0].from_version = 0;
    let mut wrong_state = good.clone();
    wrong_state[0].to_state = SessionState::Recovering;
    #[rustfmt::skip]
    let cases = [
        ("no audit", vec![], MutationRefused::AuditCount { increments: 1, given: 0 }),
        ("two records", [good.clone(), good.clone()].concat(), MutationRefused::AuditCount { increments: 1, given: 2 }),
        ("other session", wrong_session, MutationRefused::AuditChain { index: 0 }),
        ("wrong versions", wrong_versions, MutationRefused::AuditChain { index: 0 }),
        ("ends elsewhere", wrong_state, MutationRefused::AuditChain { index: 0 }),
    ];
    for (what, audit, expected_error) in cases {
        match store.compare_and_set(v1.id, Expected::Version(1), &t.session, &audit) {
            Err(StoreError::Refused { source, .. }) => assert_eq!(source, expected_error, "{what}"),
            other => panic!("{what}: expected a refusal, got {other:?}"),
        }
    }
    assert_eq!(store.get(v1.id).unwrap(), Some(v1.clone()));
    assert_eq!(store.audit(v1.id).unwrap().len(), 1);
}

#[test]
fn section8_a_live_session_past_the_ceiling_is_refused() {
    let (_dir, store) = open();
    let mut s = Session::birth(id(8), [0; CLIENT_KEY_LEN], T0);
    s.state = SessionState::Attached;
    s.state_version = crate::session::VERSION_CEILING + 1;
    let audit: Vec<StateChange> = Vec::new();
    match store.compare_and_set(s.id, Expected::Absent, &s, &audit) {
        Err(StoreError::Refused { source, .. }) => {
            assert_eq!(source, MutationRefused::PastCeiling(s.state_version))
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[test]
fn section2_ids_are_never_reused_and_ended_sessions_never_change() {
    let (_dir, store) = open();
    let v1 = create(&store, 9);
    assert!(store.is_issued(id(9)).unwrap());
    assert!(!store.is_issued(id(10)).unwrap());
    let again = Session::birth(id(9), [0; CLIENT_KEY_LEN], T0);
    let outcome = store
        .compare_and_set(id(9), Expected::Absent, &again, &[])
        .unwrap();
    assert_eq!(outcome, CasOutcome::IdAlreadyIssued);
    let ended = advance(
        &store,
        &v1,
        Input::Terminate {
            cause: TerminateCause::Operator,
        },
    );
    let mut revived = ended.clone();
    revived.state = SessionState::Attached;
    revived.state_version = 3;
    let audit = [StateChange {
        session: id(9),
        from_state: SessionState::Terminated,
        to_state: SessionState::Attached,
        from_version: 2,
        to_version: 3,
        cause: crate::session::Cause::Reattach,
        at: T0,
        binding: revived.binding,
    }];
    match store.compare_and_set(id(9), Expected::Version(2), &revived, &audit) {
        Err(StoreError::Refused { source, .. }) => {
            assert_eq!(source, MutationRefused::AfterTermination)
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[test]
fn a_batch_applies_in_order_with_an_outcome_per_item() {
    let (_dir, store) = open();
    let v1 = create(&store, 11);
    let first = step(&v1, reattach(1, 2), T0 + 1);
    let second = step(&first.session, reattach(2, 3), T0 + 2);
    let loser = step(&v1, reattach(1, 4), T0 + 3);
    let mut bad = first.session.clone();
    bad.id = id(12);
    let batch = [
        CasRequest::new(
            Expected::Version(1),
            first.session.clone(),
            first.state_changes(),
        ),
        CasRequest::new(
            Expected::Version(2),
            second.session.clone(),
            second.state_changes(),
        ),
        CasRequest::new(
            Expected::Version(1),
            loser.session.clone(),
            loser.state_changes(),
        ),
        CasRequest::new(Expected::Version(1), bad, first.state_changes()),
        CasRequest::new(Expected::Version(3), second.session.clone(), vec![]),
    ];
    let items = store.compare_and_set_batch(&batch).unwrap();
    assert_eq!(items[0], Ok(CasOutcome::Committed));
    assert_eq!(items[1], Ok(CasOutcome::Committed));
    assert_eq!(
        items[2],
        Ok(CasOutcome::Conflict {
            current: Some(second.session.clone())
        })
    );
    assert_eq!(items[3], Ok(CasOutcome::Conflict { current: None }));
    assert_eq!(
        items[4],
        Err(MutationRefused::NotAnIncrement { current: 3, new: 3 })
    );
    assert_eq!(store.get(v1.id).unwrap(), Some(second.session));
    assert_eq!(store.audit(v1.id).unwrap().len(), 3);
}
