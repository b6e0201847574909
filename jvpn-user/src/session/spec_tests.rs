//! Table-driven tests of the state machine against the versioning spec
//! (`shared/seeds/versioning-model.md`); each test names the section it checks.

use super::*;
use jvpn_common::maps::{SessionState, TransportBinding};
use jvpn_common::RejectReason;

const T0: Millis = 1_700_000_000_000;
const KEEPALIVE: Millis = 30_000;
const IDLE: Millis = 180_000;

fn machine() -> SessionMachine {
    SessionMachine::new(Timers::new(KEEPALIVE, IDLE).unwrap())
}

fn id() -> SessionId {
    SessionId::new(0x0000_1234_5678_9abc).unwrap()
}

fn path(n: u8) -> TransportBinding {
    TransportBinding::from_v4([192, 0, 2, n], 40_000 + u16::from(n))
}

fn handshake() -> Input {
    Input::HandshakeComplete {
        binding: path(1),
        header_key: [7; 16].into(),
        secrets: vec![9; 64].into(),
    }
}

/// A session in `state` at `version`, last heard from at `T0`.
fn seeded(state: SessionState, version: u64) -> Session {
    let mut s = Session::birth(id(), [3; CLIENT_KEY_LEN], T0);
    s.state = state;
    s.state_version = version;
    s.binding = path(1);
    s
}

fn accept(s: &Session, input: Input, now: Millis) -> Transition {
    machine()
        .transition(s, &input, now)
        .unwrap_or_else(|r| panic!("{input:?} on {s:?} rejected: {r:?}"))
}

fn reject(s: &Session, input: Input, now: Millis) -> Reject {
    match machine().transition(s, &input, now) {
        Ok(t) => panic!("{input:?} on {s:?} accepted: {t:?}"),
        Err(r) => r,
    }
}

fn the_state_change(t: &Transition) -> StateChange {
    let changes = t.state_changes();
    assert_eq!(changes.len(), 1, "exactly one STATE_CHANGE: {t:?}");
    changes[0].clone()
}

#[test]
fn section2_born_attached_lost_reattached_ended_reads_0_1_2_3_4() {
    let born = Session::birth(id(), [3; CLIENT_KEY_LEN], T0);
    let attached = accept(&born, handshake(), T0 + 10).session;
    let recovering = accept(&attached, Input::Tick, T0 + 10 + KEEPALIVE).session;
    let reattach = Input::ReattachValidated {
        claimed_version: 2,
        new_binding: path(2),
    };
    let reattached = accept(&recovering, reattach, T0 + 10 + KEEPALIVE + 5).session;
    let terminate = Input::Terminate {
        cause: TerminateCause::Client,
    };
    let ended = accept(&reattached, terminate, T0 + 10 + KEEPALIVE + 6).session;
    let history: Vec<_> = [&born, &attached, &recovering, &reattached, &ended]
        .iter()
        .map(|s| (s.state, s.state_version))
        .collect();
    use SessionState::*;
    assert_eq!(
        history,
        [
            (Birth, 0),
            (Attached, 1),
            (Recovering, 2),
            (Attached, 3),
            (Terminated, 4)
        ]
    );
    assert_eq!(reattached.binding, path(2));
    assert_eq!(attached.header_key, [7; 16]);
    assert_eq!(*attached.secrets, vec![9; 64]);
}

#[test]
fn section3_must_increment_on_each_listed_event() {
    use SessionState::*;
    let reattach = |v| Input::ReattachValidated {
        claimed_version: v,
        new_binding: path(2),
    };
    #[rustfmt::skip]
    let table: Vec<(&str, Session, Input, Millis, SessionState, Cause)> = vec![
        ("state change (handshake)", seeded(Birth, 0), handshake(), T0, Attached, Cause::HandshakeComplete),
        ("state change (keepalive)", seeded(Attached, 5), Input::Tick, T0 + KEEPALIVE, Recovering, Cause::KeepaliveTimeout),
        ("binding change (reattach)", seeded(Recovering, 5), reattach(5), T0, Attached, Cause::Reattach),
        ("reattach accepted, same state", seeded(Attached, 5), reattach(5), T0, Attached, Cause::Reattach),
        ("termination (operator)", seeded(Attached, 5), Input::Terminate { cause: TerminateCause::Operator }, T0, Terminated, Cause::OperatorTerminate),
        ("termination (idle)", seeded(Recovering, 5), Input::Tick, T0 + IDLE, Terminated, Cause::IdleTimeout),
        ("termination (idle, never recovered)", seeded(Attached, 5), Input::Tick, T0 + IDLE, Terminated, Cause::IdleTimeout),
        ("policy forced, same state", seeded(Recovering, 5), Input::ForceRecover { cause: RecoverCause::Policy }, T0, Recovering, Cause::PolicyRecover),
        ("policy forced (maps lost)", seeded(Attached, 5), Input::ForceRecover { cause: RecoverCause::DataplaneLost }, T0, Recovering, Cause::DataplaneLost),
        ("policy forced in BIRTH", seeded(Birth, 0), Input::ForceRecover { cause: RecoverCause::DataplaneLost }, T0, Terminated, Cause::HandshakeAbandoned),
        ("key change (rekey)", seeded(Attached, 5), rekey(5), T0, Attached, Cause::Rekey),
        ("termination (keys worn out)", seeded(Attached, 5), Input::Terminate { cause: TerminateCause::RekeyTimeout }, T0, Terminated, Cause::RekeyTimeout),
    ];
    for (what, before, input, now, to, cause) in table {
        let t = accept(&before, input, now);
        assert_eq!(t.session.state, to, "{what}");
        assert_eq!(t.session.state_version, before.state_version + 1, "{what}");
        assert_eq!(t.session.changed_at, now, "{what}");
        let change = the_state_change(&t);
        let expected = StateChange {
            session: before.id,
            from_state: before.state,
            to_state: to,
            from_version: before.state_version,
            to_version: before.state_version + 1,
            cause,
            at: now,
            binding: t.session.binding,
        };
        assert_eq!(change, expected, "{what}");
    }
}

#[test]
fn section3_must_not_increment_on_telemetry_or_health_signals() {
    use SessionState::*;
    #[rustfmt::skip]
    let table: Vec<(&str, Session, Input, Millis)> = vec![
        ("traffic", seeded(Attached, 5), Input::Traffic { at: T0 + 100 }, T0 + 100),
        ("traffic while recovering", seeded(Recovering, 5), Input::Traffic { at: T0 + 100 }, T0 + 100),
        ("nonce below the ceiling", seeded(Attached, 5), Input::NonceObserved { highest: NONCE_CEILING }, T0),
        ("tick before keepalive", seeded(Attached, 5), Input::Tick, T0 + KEEPALIVE - 1),
        ("tick before idle", seeded(Recovering, 5), Input::Tick, T0 + IDLE - 1),
        ("tick with the clock gone back", seeded(Attached, 5), Input::Tick, T0 - IDLE * 10),
        ("tick after the end", seeded(Terminated, 5), Input::Tick, T0 + IDLE * 10),
    ];
    for (what, before, input, now) in table {
        let t = accept(&before, input, now);
        assert_eq!(t.events, [], "{what}: no event");
        assert_eq!(t.session.state_version, before.state_version, "{what}");
        assert_eq!(t.session.state, before.state, "{what}");
        assert_eq!(t.session.binding, before.binding, "{what}");
    }
}

#[test]
fn section3_traffic_is_telemetry_that_postpones_the_keepalive_timeout() {
    let s = seeded(SessionState::Attached, 1);
    let heard = accept(&s, Input::Traffic { at: T0 + 20_000 }, T0 + 20_000).session;
    assert_eq!(heard.last_rx, T0 + 20_000);
    // Late telemetry never moves last_rx back.
    let late = accept(&heard, Input::Traffic { at: T0 }, T0 + 20_001).session;
    assert_eq!(late.last_rx, T0 + 20_000);
    let t = accept(&late, Input::Tick, T0 + KEEPALIVE + 1);
    assert_eq!(
        t.events,
        [],
        "30 s after T0 but only 10 s after the last traffic"
    );
    let t = accept(&late, Input::Tick, T0 + 20_000 + KEEPALIVE);
    assert_eq!(t.session.state, SessionState::Recovering);
}

#[test]
fn section4_and_6_stale_or_jumping_reattach_is_rejected_explicitly_without_mutation() {
    use SessionState::*;
    for state in [Attached, Recovering] {
        for (claimed, reason) in [
            (0, RejectReason::StaleVersion),
            (6, RejectReason::StaleVersion),
            (8, RejectReason::VersionJump),
            (u64::MAX, RejectReason::VersionJump),
        ] {
            let s = seeded(state, 7);
            let input = Input::ReattachValidated {
                claimed_version: claimed,
                new_binding: path(9),
            };
            let r = reject(&s, input, T0);
            assert_eq!(r.reason, reason);
            let SessionEvent::Security(incident) = &r.event else {
                panic!("a stale reattach is a SECURITY_EVENT: {r:?}");
            };
            assert_eq!((incident.reason, incident.version), (reason, 7));
            assert!(incident
                .detail
                .contains(&format!("claimed version {claimed}")));
        }
    }
}

#[test]
fn section6_refusals_name_their_reason_and_event_kind() {
    use SessionState::*;
    let reattach = |v| Input::ReattachValidated {
        claimed_version: v,
        new_binding: path(2),
    };
    let terminate = Input::Terminate {
        cause: TerminateCause::Operator,
    };
    let recover = Input::ForceRecover {
        cause: RecoverCause::DataplaneLost,
    };
    #[rustfmt::skip]
    let table: Vec<(&str, Session, Input, RejectReason, &str)> = vec![
        ("reattach to an ended session", seeded(Terminated, 4), reattach(4), RejectReason::Terminated, "SECURITY_EVENT"),
        ("traffic for an ended session", seeded(Terminated, 4), Input::Traffic { at: T0 }, RejectReason::Terminated, "SECURITY_EVENT"),
        ("handshake for an ended session", seeded(Terminated, 4), handshake(), RejectReason::Terminated, "SECURITY_EVENT"),
        ("second handshake completion", seeded(Attached, 1), handshake(), RejectReason::HandshakeReplay, "SECURITY_EVENT"),
        ("reattach before the handshake", seeded(Birth, 0), reattach(0), RejectReason::NotAttached, "SECURITY_EVENT"),
        ("terminate an ended session", seeded(Terminated, 4), terminate, RejectReason::Terminated, "POLICY_EVENT"),
        ("recover an ended session", seeded(Terminated, 4), recover, RejectReason::Terminated, "POLICY_EVENT"),
    ];
    for (what, s, input, reason, kind) in table {
        let r = reject(&s, input, T0 + 1);
        assert_eq!(r.reason, reason, "{what}");
        assert_eq!(r.event.kind(), kind, "{what}");
        let incident = r.event.as_incident().expect("an incident");
        assert_eq!(incident.session, s.id, "{what}");
        assert_eq!(incident.version, s.state_version, "{what}");
        assert_eq!(incident.at, T0 + 1, "{what}");
    }
}

#[test]
fn section8_a_transition_past_the_ceiling_terminates_deterministically() {
    use SessionState::*;
    let reattach = |v| Input::ReattachValidated {
        claimed_version: v,
        new_binding: path(2),
    };
    let inputs = [
        (seeded(Attached, VERSION_CEILING), reattach(VERSION_CEILING)),
        (
            seeded(Recovering, VERSION_CEILING),
            reattach(VERSION_CEILING),
        ),
        (
            seeded(Attached, VERSION_CEILING),
            Input::ForceRecover {
                cause: RecoverCause::Policy,
            },
        ),
        (seeded(Birth, VERSION_CEILING), handshake()),
    ];
    for (s, input) in inputs {
        let first = machine().transition(&s, &input, T0).expect("terminates");
        let second = machine().transition(&s, &input, T0).expect("terminates");
        assert_eq!(first, second, "deterministic");
        assert_eq!(first.session.state, Terminated);
        assert_eq!(first.session.state_version, VERSION_CEILING + 1);
        assert_eq!(
            first.session.binding, s.binding,
            "the refused move is not applied"
        );
        assert_eq!(the_state_change(&first).cause, Cause::VersionExhausted);
        let policy: Vec<_> = first
            .events
            .iter()
            .filter(|e| e.kind() == "POLICY_EVENT")
            .collect();
        assert_eq!(policy.len(), 1, "{first:?}");
        assert_eq!(
            policy[0].as_incident().unwrap().reason,
            RejectReason::VersionExhausted
        );
        // Nothing moves an ended session again.
        assert!(machine()
            .transition(&first.session, &reattach(VERSION_CEILING + 1), T0)
            .is_err());
    }
    // One below the ceiling the transition still happens as asked.
    let t = accept(
        &seeded(Attached, VERSION_CEILING - 1),
        reattach(VERSION_CEILING - 1),
        T0,
    );
    assert_eq!(
        (t.session.state, t.session.state_version),
        (Attached, VERSION_CEILING)
    );
}

#[test]
fn section8_a_nonce_past_the_ceiling_terminates_deterministically() {
    let s = seeded(SessionState::Attached, 9);
    let input = Input::NonceObserved {
        highest: NONCE_CEILING + 1,
    };
    let first = accept(&s, input.clone(), T0);
    assert_eq!(first, accept(&s, input, T0), "deterministic");
    assert_eq!(first.session.state, SessionState::Terminated);
    assert_eq!(first.session.state_version, 10);
    assert_eq!(the_state_change(&first).cause, Cause::NonceExhausted);
    assert!(first.events.iter().any(|e| e.kind() == "POLICY_EVENT"
        && e.as_incident().unwrap().reason == RejectReason::VersionExhausted));
}

#[test]
fn section8_a_version_at_u64_max_is_refused_never_wrapped() {
    let s = seeded(SessionState::Attached, u64::MAX);
    let r = reject(
        &s,
        Input::Terminate {
            cause: TerminateCause::Policy,
        },
        T0,
    );
    assert_eq!(r.reason, RejectReason::VersionExhausted);
    assert_eq!(r.event.kind(), "POLICY_EVENT");
}

#[test]
fn section12_the_same_session_input_and_time_give_the_same_result() {
    let s = seeded(SessionState::Recovering, 3);
    let inputs = [
        Input::Tick,
        Input::ReattachValidated {
            claimed_version: 3,
            new_binding: path(4),
        },
        Input::ReattachValidated {
            claimed_version: 2,
            new_binding: path(4),
        },
    ];
    for input in inputs {
        for now in [T0, T0 + IDLE] {
            assert_eq!(
                machine().transition(&s, &input, now),
                machine().transition(&s, &input, now)
            );
        }
    }
}

fn rekey(claimed_version: u64) -> Input {
    Input::Rekey {
        claimed_version,
        secrets: vec![0x5a; 96].into(),
    }
}

/// docs/rekey.md: a rekey replaces the keys of an ATTACHED session at its current version and
/// nothing else; at any other version or in any other state it is refused and changes nothing.
#[test]
fn rekey_installs_new_keys_only_when_attached_at_the_current_version() {
    use SessionState::*;
    let before = seeded(Attached, 5);
    let t = accept(&before, rekey(5), T0);
    assert_eq!(*t.session.secrets, vec![0x5a; 96]);
    assert_eq!(t.session.binding, before.binding, "the binding stays");
    assert_eq!(
        t.session.header_key, before.header_key,
        "the XDP tag key stays"
    );
    #[rustfmt::skip]
    let refused: Vec<(&str, Session, Input, RejectReason)> = vec![
        ("stale claim", seeded(Attached, 5), rekey(4), RejectReason::StaleVersion),
        ("jumping claim", seeded(Attached, 5), rekey(6), RejectReason::VersionJump),
        ("recovering", seeded(Recovering, 5), rekey(5), RejectReason::NotAttached),
        ("birth", seeded(Birth, 0), rekey(0), RejectReason::NotAttached),
        ("terminated", seeded(Terminated, 5), rekey(5), RejectReason::Terminated),
    ];
    for (what, session, input, reason) in refused {
        let reject = machine().transition(&session, &input, T0).expect_err(what);
        assert_eq!(reject.reason, reason, "{what}");
    }
}
