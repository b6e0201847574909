//! Property tests: random input sequences against the invariants of spec section 9 (strictly
//! increasing, never reused, one state per version, no accepted message lowers it), the audit
//! coupling of section 11 (exactly one STATE_CHANGE per increment, none otherwise), the
//! determinism of section 12, and the ceiling of section 8.

use super::*;
use jvpn_common::maps::{SessionState, TransportBinding};
use proptest::prelude::*;
use std::collections::BTreeMap;

#[derive(Clone, Debug)]
enum Step {
    Handshake(u8),
    Traffic(u32),
    Nonce(bool),
    Tick,
    Reattach { offset: i8, path: u8 },
    ReattachAny(u64),
    Terminate(u8),
    ForceRecover(bool),
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        1 => any::<u8>().prop_map(Step::Handshake),
        4 => any::<u32>().prop_map(Step::Traffic),
        1 => any::<bool>().prop_map(Step::Nonce),
        4 => Just(Step::Tick),
        6 => (-2i8..=2, any::<u8>()).prop_map(|(offset, path)| Step::Reattach { offset, path }),
        1 => any::<u64>().prop_map(Step::ReattachAny),
        1 => (0u8..3).prop_map(Step::Terminate),
        1 => any::<bool>().prop_map(Step::ForceRecover),
    ]
}

fn path(n: u8) -> TransportBinding {
    TransportBinding::from_v4([198, 51, 100, n], 50_000)
}

fn to_input(step: &Step, current: &Session, now: Millis) -> Input {
    match *step {
        Step::Handshake(n) => Input::HandshakeComplete {
            binding: path(n),
            header_key: [n; 16].into(),
            secrets: vec![n; 8].into(),
        },
        Step::Traffic(back) => Input::Traffic {
            at: now.saturating_sub(Millis::from(back % 5_000)),
        },
        Step::Nonce(high) => Input::NonceObserved {
            highest: if high {
                NONCE_CEILING + 1
            } else {
                NONCE_CEILING
            },
        },
        Step::Tick => Input::Tick,
        Step::Reattach { offset, path: p } => Input::ReattachValidated {
            claimed_version: current.state_version.wrapping_add_signed(i64::from(offset)),
            new_binding: path(p),
        },
        Step::ReattachAny(v) => Input::ReattachValidated {
            claimed_version: v,
            new_binding: path(0),
        },
        Step::Terminate(c) => Input::Terminate {
            cause: [
                TerminateCause::Operator,
                TerminateCause::Client,
                TerminateCause::Policy,
            ][usize::from(c)],
        },
        Step::ForceRecover(lost) => Input::ForceRecover {
            cause: if lost {
                RecoverCause::DataplaneLost
            } else {
                RecoverCause::Policy
            },
        },
    }
}

fn start() -> impl Strategy<Value = Session> {
    let id = SessionId::new(0x42).unwrap();
    prop_oneof![
        3 => Just(Session::birth(id, [1; CLIENT_KEY_LEN], 0)),
        1 => (0u64..4).prop_map(move |below| {
            let mut s = Session::birth(id, [1; CLIENT_KEY_LEN], 0);
            s.state = SessionState::Attached;
            s.state_version = VERSION_CEILING - below;
            s
        }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn section9_11_12_invariants_hold_over_random_input_sequences(
        initial in start(),
        steps in proptest::collection::vec((0u64..60_000, step()), 1..80),
    ) {
        let machine = SessionMachine::new(Timers::new(30_000, 180_000).unwrap());
        let mut session = initial.clone();
        let mut now: Millis = 1_000_000;
        // Section 9.3: every version corresponds to exactly one state.
        let mut states_by_version = BTreeMap::from([(session.state_version, session.state)]);
        let mut state_changes = 0u64;
        for (elapsed, step) in &steps {
            now += elapsed;
            let input = to_input(step, &session, now);
            let result = machine.transition(&session, &input, now);
            // Section 12: same session, input and time, same result.
            prop_assert_eq!(&result, &machine.transition(&session, &input, now));
            match result {
                Err(reject) => {
                    // Section 6: an explicit reason and its event, and no mutation.
                    let incident = reject.event.as_incident().expect("SECURITY or POLICY event");
                    prop_assert_eq!(incident.reason, reject.reason);
                    prop_assert_eq!(incident.version, session.state_version);
                }
                Ok(t) => {
                    let before = &session;
                    let after = &t.session;
                    let changes = t.state_changes();
                    state_changes += changes.len() as u64;
                    prop_assert!(after.state_version >= before.state_version, "9.4: never lowered");
                    if after.state_version == before.state_version {
                        // Section 3 and 14: no hidden transition, no event.
                        prop_assert!(changes.is_empty());
                        prop_assert!(t.events.is_empty());
                        prop_assert_eq!(after.state, before.state);
                        prop_assert_eq!(after.binding, before.binding);
                        prop_assert_eq!(after.header_key, before.header_key);
                    } else {
                        // Sections 2 and 11: +1, with exactly one matching STATE_CHANGE.
                        prop_assert_eq!(after.state_version, before.state_version + 1);
                        prop_assert_eq!(changes.len(), 1);
                        let c = &changes[0];
                        prop_assert_eq!(
                            (c.from_state, c.to_state, c.from_version, c.to_version, c.at),
                            (before.state, after.state, before.state_version, after.state_version, now)
                        );
                        prop_assert_ne!(before.state, SessionState::Terminated, "ended is final");
                        if let Input::ReattachValidated { claimed_version, .. } = input {
                            prop_assert_eq!(claimed_version, before.state_version, "4: CAS on version");
                        }
                        // Section 9.2: versions are never reused.
                        prop_assert!(states_by_version
                            .insert(after.state_version, after.state)
                            .is_none());
                    }
                    // Section 8: only a termination may pass the ceiling, and only by one.
                    if after.state_version > VERSION_CEILING {
                        prop_assert_eq!(after.state, SessionState::Terminated);
                        prop_assert!(after.state_version <= VERSION_CEILING + 1);
                    }
                    session = t.session;
                }
            }
        }
        // Section 11: as many STATE_CHANGEs as increments.
        prop_assert_eq!(state_changes, session.state_version - initial.state_version);
        // Section 9.1: the history is a strict total order ending at the current version.
        prop_assert_eq!(states_by_version.keys().next_back(), Some(&session.state_version));
        prop_assert_eq!(
            states_by_version.len() as u64,
            session.state_version - initial.state_version + 1
        );
    }
}
