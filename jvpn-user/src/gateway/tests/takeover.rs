//! Taking a session over from another node, through the real controller: two controllers with
//! one identity share one store (as two nodes share etcd); the second adopts the session the
//! first created only for an authenticated request of an authorised client, treats it as not
//! owned until its own commit (a challenge even from the bound address, no downstream), and
//! numbers its gateway nonces under the epoch it was given.

use super::*;
use crate::crypto::open_body;
use crate::gateway::epoch::EPOCH_SHIFT;
use jvpn_common::control::{Body, PathChallenge, PathResponse, ReattachAck, ReattachRequest};
use jvpn_common::maps::SessionState;
use jvpn_common::wire::Be64;

fn request(session: &ClientSession, claimed: u64, nonce: u64) -> Vec<u8> {
    let body = ReattachRequest {
        acked_version: Be64::new(claimed),
        attempt: Be64::new(1),
    };
    sealed(
        session,
        MessageType::ReattachRequest,
        claimed,
        nonce,
        body.as_body(),
    )
}

/// Node A (which created the session) and node B (clustered), sharing A's store.
fn two_nodes() -> (Harness, Harness) {
    let (gateway, client) = (PrivateKey::generate(), PrivateKey::generate());
    let a = Harness::with(gateway.clone(), client.clone(), 1);
    let mut b = Harness::with(gateway, client, 2);
    b.store = a.store.clone();
    b.controller.ownership.set_clustered();
    (a, b)
}

#[test]
fn only_an_authenticated_request_of_an_authorised_client_takes_a_live_session_over() {
    let (a, b) = two_nodes();
    let session = a.session();
    let id = session.welcome.session_id.get();
    let stored = a
        .store
        .get(crate::session::SessionId::new(id).expect("nonzero"))
        .expect("read")
        .expect("stored");
    let from = a.client_addr;
    let mut out = Vec::new();

    // Sealed under another session's keys: refused as a seal failure, nothing adopted.
    let other = a.session();
    let forged = request(&other, 1, 1);
    assert!(b
        .controller
        .admit_takeover(&stored, &forged, from, &mut out)
        .is_none());

    // A terminated record is never taken over.
    let mut ended = stored.clone();
    ended.state = SessionState::Terminated;
    assert!(b
        .controller
        .admit_takeover(&ended, &request(&session, 1, 2), from, &mut out)
        .is_none());
    assert!(
        b.controller.sessions.snapshot(id).is_none(),
        "nothing adopted"
    );

    // The genuine request: adopted, unsure, served by no downstream route.
    let keys = b
        .controller
        .admit_takeover(&stored, &request(&session, 1, 3), from, &mut out)
        .expect("taken over");
    b.controller.adopt(stored, keys, 9, from, T0);
    assert!(!b.controller.serves(id), "not owned until committed here");

    // Even from the bound address it is challenged, not acknowledged: B must commit to own it.
    let seen = b.step(&request(&session, 1, 4), from, T0);
    let datagram = sent_to(&seen, from).pop().expect("a PATH_CHALLENGE");
    let (header, challenge) =
        open_body::<PathChallenge>(&session.keys, Direction::GatewayToClient, &datagram)
            .expect("a sealed PATH_CHALLENGE");
    assert_eq!(
        header.nonce.get() >> EPOCH_SHIFT,
        9,
        "numbered under its own epoch"
    );

    let response = PathResponse::answering(&challenge);
    let response = sealed(
        &session,
        MessageType::PathResponse,
        1,
        5,
        response.as_body(),
    );
    let seen = b.step(&response, from, T0);
    let datagram = sent_to(&seen, from).pop().expect("a REATTACH_ACK");
    let (_, ack) = open_body::<ReattachAck>(&session.keys, Direction::GatewayToClient, &datagram)
        .expect("a sealed REATTACH_ACK");
    assert_eq!(
        ack.new_version.get(),
        2,
        "one version more, in the shared store"
    );
    assert_eq!(b.entry(id).expect("B's map entry").state_version, 2);
}
