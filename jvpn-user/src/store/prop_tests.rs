//! Property test on a real redb store: two controllers with possibly stale views of one session
//! race random transitions through compare-and-set. Exactly the CASes made from the current version
//! commit (spec section 4, and 9.5: no concurrent accepted mutation), the losers see the current
//! record, and the stored audit is exactly the chain of committed STATE_CHANGEs (sections 9, 11).

use super::*;
use crate::session::{Input, RecoverCause, SessionMachine, TerminateCause, Timers, CLIENT_KEY_LEN};
use jvpn_common::maps::{SessionState, TransportBinding};
use proptest::prelude::*;

#[derive(Clone, Debug)]
enum Move {
    Reattach(u8),
    Recover,
    Terminate,
    Refresh,
}

fn moves() -> impl Strategy<Value = Vec<(bool, Move)>> {
    let m = prop_oneof![
        6 => any::<u8>().prop_map(Move::Reattach),
        2 => Just(Move::Recover),
        1 => Just(Move::Terminate),
        2 => Just(Move::Refresh),
    ];
    proptest::collection::vec((any::<bool>(), m), 1..40)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    #[test]
    fn section4_9_11_racing_controllers_commit_only_from_the_current_version(steps in moves()) {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = RedbStore::open(dir.path()).expect("open");
        let machine = SessionMachine::new(Timers::default());
        let id = SessionId::new(77).unwrap();
        let born = Session::birth(id, [0; CLIENT_KEY_LEN], 0);
        let handshake = Input::HandshakeComplete {
            binding: TransportBinding::from_v4([10, 1, 1, 1], 1),
            header_key: [1; 16].into(),
            secrets: Vec::new().into(),
        };
        let t = machine.transition(&born, &handshake, 0).unwrap();
        let mut committed = t.state_changes();
        let created = CasRequest::from_transition(Expected::Absent, t);
        prop_assert_eq!(
            store.compare_and_set(id, Expected::Absent, &created.session, &created.audit).unwrap(),
            CasOutcome::Committed
        );
        let mut latest = created.session;
        let mut views = [latest.clone(), latest.clone()];
        for (now, (which, step)) in (1u64..).zip(steps) {
            let view = &mut views[usize::from(which)];
            let input = match step {
                Move::Refresh => {
                    *view = store.get(id).unwrap().unwrap();
                    continue;
                }
                Move::Reattach(n) => Input::ReattachValidated {
                    claimed_version: view.state_version,
                    new_binding: TransportBinding::from_v4([10, 2, 2, n], 2),
                },
                Move::Recover => Input::ForceRecover { cause: RecoverCause::Policy },
                Move::Terminate => Input::Terminate { cause: TerminateCause::Operator },
            };
            let Ok(t) = machine.transition(view, &input, now) else { continue };
            let expected = Expected::Version(view.state_version);
            let request = CasRequest::from_transition(expected, t);
            let outcome = store
                .compare_and_set(id, expected, &request.session, &request.audit)
                .unwrap();
            if view.state_version == latest.state_version {
                prop_assert_eq!(outcome, CasOutcome::Committed);
                committed.extend(request.audit);
                latest = request.session;
                // The store keeps no keys of an ended session.
                if latest.state == SessionState::Terminated {
                    latest.wipe_keys();
                }
                *view = latest.clone();
            } else {
                prop_assert!(view.state_version < latest.state_version);
                prop_assert_eq!(outcome, CasOutcome::Conflict { current: Some(latest.clone()) });
            }
        }
        prop_assert_eq!(store.get(id).unwrap(), Some(latest));
        prop_assert_eq!(store.audit(id).unwrap(), committed);
    }
}
