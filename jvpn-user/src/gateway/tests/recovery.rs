//! After lost maps: the gateway's own PATH_CHALLENGE of a RECOVERING session at its last
//! binding, answered by the real client core, re-attaches the session; nothing else about the
//! challenge moves it.

use super::*;
use crate::client_session::{ClientEvent, ClientSessionState};
use crate::crypto::{open_body, SessionKeys};
use crate::session::{Input, RecoverCause};
use jvpn_common::control::{PathChallenge, Reject, GATEWAY_CHALLENGE_ATTEMPT};
use jvpn_common::maps::SessionState;
use jvpn_common::{RejectReason, TransportBinding};

/// An address that is not the client's.
const ATTACKER: &str = "127.0.0.1:40666";

/// The keys the controller holds for session `id` (the client core keeps its own copy).
fn keys(h: &Harness, id: u64) -> Arc<SessionKeys> {
    h.controller.sessions.snapshot(id).expect("held").1
}

/// A session moved to RECOVERING as a start with lost maps moves it.
fn recovering(h: &Harness) -> (ClientSessionState, u64) {
    let client = ClientSessionState::new(h.session()).expect("WELCOME at 1");
    let id = client.session_id();
    let input = Input::ForceRecover {
        cause: RecoverCause::DataplaneLost,
    };
    let mut out = Vec::new();
    h.controller
        .apply_input(id, input, T0, &mut out)
        .expect("RECOVERING");
    h.settle(out, &[], T0);
    assert_eq!(h.controller.recovering_ids(), vec![id]);
    (client, id)
}

/// The gateway's challenge of session `id`, as sent to the client.
fn challenge(h: &Harness, id: u64) -> Vec<u8> {
    let effects = h.controller.challenge_recovering(id, T0);
    let seen = h.settle(effects, &[], T0);
    sent_to(&seen, h.client_addr)
        .pop()
        .expect("a PATH_CHALLENGE to the binding")
}

/// The challenge goes to the last binding at the RECOVERING version with attempt 0; the real
/// client core answers it and the answer commits ATTACHED one version up, bound where it was.
#[test]
fn a_recovering_session_is_challenged_and_reattaches_in_one_round_trip() {
    let h = Harness::new();
    let (mut client, id) = recovering(&h);
    let datagram = challenge(&h, id);
    assert!(
        h.controller.challenge_recovering(id, T0).is_empty(),
        "one outstanding challenge per address"
    );
    let (header, body) =
        open_body::<PathChallenge>(&keys(&h, id), Direction::GatewayToClient, &datagram)
            .expect("sealed for the client");
    assert_eq!(header.state_version.get(), 2, "at the RECOVERING version");
    assert_eq!(body.attempt.get(), GATEWAY_CHALLENGE_ATTEMPT);
    assert_eq!(
        h.entry(id).expect("entry").state_version,
        2,
        "nothing moved yet"
    );

    let Ok(ClientEvent::PathChallenge { response, .. }) = client.handle(&datagram) else {
        panic!("the client core answers the gateway's challenge");
    };
    let seen = h.step(&response, h.client_addr, T0 + 10);
    let ack = sent_to(&seen, h.client_addr).pop().expect("a REATTACH_ACK");
    assert!(matches!(
        client.handle(&ack),
        Ok(ClientEvent::ReattachAcked { new_version: 3, .. })
    ));
    let entry = h.entry(id).expect("entry");
    assert_eq!(entry.state_version, 3);
    assert_eq!(entry.state, SessionState::Attached as u8);
    assert_eq!(
        entry.transport,
        TransportBinding::from_socket_addr(h.client_addr)
    );
    assert!(h.controller.recovering_ids().is_empty());
    assert!(
        h.controller.challenge_recovering(id, T0 + 20).is_empty(),
        "an ATTACHED session is not challenged"
    );
}

/// The challenge reflected back to the gateway (from anywhere) does not open; answered from
/// another address it is refused. The session stays RECOVERING at its version, bound where it
/// was.
#[test]
fn a_reflected_or_misdirected_answer_moves_nothing() {
    let h = Harness::new();
    let (mut client, id) = recovering(&h);
    let datagram = challenge(&h, id);
    let attacker: SocketAddr = ATTACKER.parse().expect("addr");
    let unmoved = |h: &Harness| {
        let entry = h.entry(id).expect("entry");
        assert_eq!(
            (entry.state_version, entry.state),
            (2, SessionState::Recovering as u8)
        );
        assert_eq!(
            entry.transport,
            TransportBinding::from_socket_addr(h.client_addr),
            "the binding did not move"
        );
    };

    for from in [attacker, h.client_addr] {
        let seen = h.step(&datagram, from, T0);
        assert!(
            sent_to(&seen, from).is_empty(),
            "nothing answers a datagram that does not open"
        );
        unmoved(&h);
    }

    let Ok(ClientEvent::PathChallenge { response, .. }) = client.handle(&datagram) else {
        panic!("the client core answers the gateway's challenge");
    };
    let seen = h.step(&response, attacker, T0);
    let refusal = sent_to(&seen, attacker).pop().expect("a REJECT");
    let (_, reject) =
        open_body::<Reject>(&keys(&h, id), Direction::GatewayToClient, &refusal).expect("sealed");
    assert_eq!(reject.reason(), Some(RejectReason::PathValidation));
    unmoved(&h);
}
