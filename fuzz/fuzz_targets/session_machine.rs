//! The session state machine (`session::SessionMachine::transition`) over a sequence of arbitrary
//! inputs, from an arbitrary starting record (any state, any version up to `u64::MAX`).
//!
//! Invariants, from the versioning model (`shared/seeds/versioning-model.md`):
//! - an accepted transition either increments `state_version` by exactly one (never wrapping) with
//!   exactly one STATE_CHANGE naming both versions (sections 2, 3, 8, 9, 11), or changes nothing but
//!   `last_rx` and yields no STATE_CHANGE (telemetry, section 3);
//! - telemetry inputs (traffic, a nonce below the ceiling) never change the version;
//! - a refusal leaves the session as it was and carries a SECURITY_EVENT or POLICY_EVENT, never a
//!   STATE_CHANGE (section 6);
//! - a reattach is accepted only at the current version (sections 4 and 10);
//! - nothing leaves TERMINATED; no version passes the ceiling except by terminating (section 8);
//! - the same arguments give the same result (section 12).
#![no_main]

use arbitrary::Arbitrary;
use jvpn_common::maps::{SessionState, TransportBinding};
use jvpn_user::session::{
    Input, RecoverCause, Session, SessionEvent, SessionId, SessionMachine, TerminateCause, Timers,
    NONCE_CEILING, VERSION_CEILING,
};
use libfuzzer_sys::fuzz_target;

#[derive(Debug, Arbitrary)]
struct Case {
    state: u8,
    version: Version,
    id: u64,
    last_rx: u32,
    timers: Option<(u32, u32)>,
    steps: Vec<Step>,
}

/// A starting version: near the interesting edges more often than uniformly.
#[derive(Debug, Arbitrary)]
enum Version {
    Small(u8),
    BelowCeiling(u8),
    BelowMax(u8),
    Any(u64),
}

#[derive(Debug, Arbitrary)]
struct Step {
    /// Milliseconds the clock moves, backwards if negative.
    elapsed: i32,
    input: Kind,
}

#[derive(Debug, Arbitrary)]
enum Kind {
    Handshake {
        path: u8,
        key: u8,
        secrets: Vec<u8>,
    },
    Traffic {
        back: u16,
    },
    Nonce(Nonce),
    Tick,
    /// A reattach claiming the current version plus `offset`.
    Reattach {
        offset: i8,
        path: u8,
    },
    ReattachAny {
        claimed: u64,
        path: u8,
    },
    Terminate(u8),
    ForceRecover(bool),
}

#[derive(Debug, Arbitrary)]
enum Nonce {
    AtCeiling(i8),
    Any(u64),
}

fn path(n: u8) -> TransportBinding {
    TransportBinding::from_v4([198, 51, 100, n], 50_000 + u16::from(n))
}

fn input(step: &Kind, session: &Session, now: u64) -> Input {
    match step {
        Kind::Handshake {
            path: p,
            key,
            secrets,
        } => Input::HandshakeComplete {
            binding: path(*p),
            header_key: [*key; 16].into(),
            secrets: secrets.clone().into(),
        },
        Kind::Traffic { back } => Input::Traffic {
            at: now.saturating_sub(u64::from(*back)),
        },
        Kind::Nonce(Nonce::AtCeiling(offset)) => Input::NonceObserved {
            highest: NONCE_CEILING.saturating_add_signed(i64::from(*offset)),
        },
        Kind::Nonce(Nonce::Any(highest)) => Input::NonceObserved { highest: *highest },
        Kind::Tick => Input::Tick,
        Kind::Reattach { offset, path: p } => Input::ReattachValidated {
            claimed_version: session
                .state_version
                .wrapping_add_signed(i64::from(*offset)),
            new_binding: path(*p),
        },
        Kind::ReattachAny { claimed, path: p } => Input::ReattachValidated {
            claimed_version: *claimed,
            new_binding: path(*p),
        },
        Kind::Terminate(c) => Input::Terminate {
            cause: [
                TerminateCause::Operator,
                TerminateCause::Client,
                TerminateCause::Policy,
            ][usize::from(*c % 3)],
        },
        Kind::ForceRecover(lost) => Input::ForceRecover {
            cause: if *lost {
                RecoverCause::DataplaneLost
            } else {
                RecoverCause::Policy
            },
        },
    }
}

fuzz_target!(|case: Case| {
    let machine = SessionMachine::new(
        case.timers
            .and_then(|(k, i)| Timers::new(u64::from(k), u64::from(i)).ok())
            .unwrap_or_default(),
    );
    let Some(id) = SessionId::new(case.id) else {
        return;
    };
    let state = SessionState::from_u8(case.state % 4).expect("0..4 are states");
    let version = match case.version {
        Version::Small(v) => u64::from(v),
        Version::BelowCeiling(d) => VERSION_CEILING - u64::from(d),
        Version::BelowMax(d) => u64::MAX - u64::from(d),
        Version::Any(v) => v,
    };
    let mut now: u64 = 1_000_000_000;
    let mut session = Session::birth(id, [7; 32], now);
    session.state = state;
    session.state_version = version;
    session.last_rx = now.saturating_sub(u64::from(case.last_rx));

    for step in &case.steps {
        now = now.saturating_add_signed(i64::from(step.elapsed));
        let input = input(&step.input, &session, now);
        let result = machine.transition(&session, &input, now);
        assert_eq!(
            machine.transition(&session, &input, now),
            result,
            "the machine is not deterministic"
        );
        match result {
            Ok(transition) => {
                let next = &transition.session;
                let changes = transition.state_changes();
                assert_eq!(next.id, session.id);
                assert_eq!(next.client_key, session.client_key);
                assert_eq!(next.created_at, session.created_at);
                if next.state_version == session.state_version {
                    assert!(
                        changes.is_empty(),
                        "STATE_CHANGE without an increment: {input:?}"
                    );
                    assert!(transition.events.is_empty(), "events without an increment");
                    let mut same = next.clone();
                    same.last_rx = session.last_rx;
                    assert_eq!(
                        same, session,
                        "changed more than last_rx without an increment"
                    );
                } else {
                    assert!(
                        !matches!(input, Input::Traffic { .. })
                            && !matches!(input, Input::NonceObserved { highest } if highest <= NONCE_CEILING),
                        "telemetry changed the version: {input:?}"
                    );
                    assert_ne!(session.state, SessionState::Terminated, "left TERMINATED");
                    assert_eq!(
                        Some(next.state_version),
                        session.state_version.checked_add(1),
                        "the version must rise by exactly one"
                    );
                    assert_eq!(changes.len(), 1, "one STATE_CHANGE per increment");
                    let change = &changes[0];
                    assert_eq!(change.session, session.id);
                    assert_eq!(
                        (change.from_state, change.to_state),
                        (session.state, next.state)
                    );
                    assert_eq!(
                        (change.from_version, change.to_version),
                        (session.state_version, next.state_version)
                    );
                    assert_eq!(change.at, now);
                    assert_eq!(next.changed_at, now);
                    assert!(
                        next.state_version <= VERSION_CEILING
                            || next.state == SessionState::Terminated,
                        "version {} passed the ceiling in {:?}",
                        next.state_version,
                        next.state
                    );
                    if let Input::ReattachValidated {
                        claimed_version, ..
                    } = input
                    {
                        if next.state != SessionState::Terminated {
                            assert_eq!(claimed_version, session.state_version, "stale reattach");
                        }
                    }
                    for event in &transition.events[1..] {
                        assert!(matches!(event, SessionEvent::Policy(_)), "{event:?}");
                    }
                }
                session = transition.session;
            }
            Err(reject) => {
                assert!(
                    reject.event.as_state_change().is_none(),
                    "a refusal reported a STATE_CHANGE"
                );
                let incident = reject
                    .event
                    .as_incident()
                    .expect("a refusal has an incident");
                assert_eq!(incident.reason, reject.reason);
                assert_eq!(incident.version, session.state_version);
            }
        }
    }
});
