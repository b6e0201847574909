use super::*;
use SessionState::*;

fn bound() -> (TransportBinding, SocketAddr) {
    let addr: SocketAddr = "192.0.2.1:40000".parse().expect("addr");
    (TransportBinding::from_socket_addr(addr), addr)
}

/// A rekey starts only for an ATTACHED session, at its current version, from its bound transport.
#[test]
fn a_rekey_is_admitted_only_attached_current_and_bound() {
    let (binding, from) = bound();
    let elsewhere: SocketAddr = "192.0.2.9:40000".parse().expect("addr");
    let cases = [
        (Attached, 5, 5, from, Ok(())),
        (Attached, 5, 4, from, Err(RejectReason::StaleVersion)),
        (Attached, 5, 6, from, Err(RejectReason::VersionJump)),
        (
            Attached,
            5,
            5,
            elsewhere,
            Err(RejectReason::TransportMismatch),
        ),
        (Recovering, 5, 5, from, Err(RejectReason::NotAttached)),
        (Birth, 0, 0, from, Err(RejectReason::NotAttached)),
        (Terminated, 5, 5, from, Err(RejectReason::Terminated)),
    ];
    for (state, current, claimed, source, expected) in cases {
        assert_eq!(
            admit_rekey(state, current, binding, claimed, source),
            expected,
            "{state:?} at {current}, claim {claimed} from {source}"
        );
    }
}

/// The reject-after rule: age or messages, whichever first; a clock going back is no time.
#[test]
fn keys_wear_out_by_age_or_by_messages() {
    let limits = RejectAfter {
        age: Duration::from_millis(180_000),
        messages: 1 << 20,
    };
    let cases = [
        (0, 179_999, 0, false),
        (0, 180_000, 0, true),
        (1_000, 180_999, 0, false),
        (0, 1, (1 << 20) - 1, false),
        (0, 1, 1 << 20, true),
        (500_000, 100, 0, false),
    ];
    for (since, now, messages, worn) in cases {
        assert_eq!(
            limits.worn_out(since, now, messages),
            worn,
            "keys from {since}, now {now}, {messages} messages"
        );
    }
}

#[test]
fn key_use_counts_the_busier_direction_since_the_keys() {
    let used = KeyUse::new(0, 100, 50);
    assert_eq!(used.messages(100, 50), 0);
    assert_eq!(used.messages(110, 53), 10);
    assert_eq!(used.messages(101, 80), 30);
    assert_eq!(
        used.messages(0, 0),
        0,
        "counters below the start count as none"
    );
}

/// The live table takes a committed record's keys when they change (a rekey), with a fresh
/// [`KeyUse`]; the same keys or a record without keys (TERMINATED) change nothing.
#[test]
fn the_live_keys_follow_the_committed_record() {
    use crate::gateway::live::LiveSession;
    use crate::session::{Session, SessionId};
    let old = SessionKeys::derive(&[1; 32], &[2; 32], &[3; 32]);
    let new = SessionKeys::derive(&[4; 32], &[5; 32], &[6; 32]);
    let id = SessionId::new(5).expect("nonzero");
    let mut session = Session::birth(id, [0; 32], 0);
    session.secrets = old.to_stored().to_vec().into();
    let mut live = LiveSession::new(session.clone(), Arc::new(old.clone()), 1_000);
    live.next_tx_nonce = 1_010;

    session.changed_at = 7;
    live.rotate_keys(&session);
    assert_eq!(*live.keys, old);
    assert_eq!(live.key_use.since, 0, "the same keys keep their age");

    session.secrets = new.to_stored().to_vec().into();
    live.rotate_keys(&session);
    assert_eq!(*live.keys, new);
    assert_eq!(live.key_use, KeyUse::new(7, 1_010, 0));

    session.secrets = Vec::new().into();
    live.rotate_keys(&session);
    assert_eq!(*live.keys, new, "a record without keys keeps the last ones");
}
