//! The jump: claim admission on REATTACH_REQUEST, return-routability (PATH_CHALLENGE /
//! PATH_RESPONSE) and the commit, and the REJECT budget, through the real handlers.

use super::*;
use crate::crypto::open_body;
use crate::gateway::reject_budget::REJECTS_PER_SECOND;
use jvpn_common::control::{
    Body, PathChallenge, PathResponse, ReattachAck, ReattachRequest, Reject,
};
use jvpn_common::wire::Be64;
use jvpn_common::{RejectReason, TransportBinding};

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

fn reject_reason(session: &ClientSession, datagram: &[u8]) -> Option<RejectReason> {
    let (_, reject) = open_body::<Reject>(&session.keys, Direction::GatewayToClient, datagram)
        .expect("a sealed REJECT");
    reject.reason()
}

/// Spec sections 4 and 6 with QUIC-style path validation: a claim at another version is refused
/// with its reason; a valid one only gets a challenge; only the token returned from the
/// challenged address, at the challenged version, moves the binding (+1, REATTACH_ACK).
#[test]
fn the_binding_moves_only_after_the_new_path_answers_its_challenge() {
    let h = Harness::new();
    let session = h.session();
    let id = session.welcome.session_id.get();
    let roamed_addr: SocketAddr = ROAMED.parse().expect("addr");

    for (claimed, nonce, reason) in [
        (0, 1, RejectReason::StaleVersion),
        (2, 2, RejectReason::VersionJump),
    ] {
        let seen = h.step(&request(&session, claimed, nonce), roamed_addr, T0);
        let answer = sent_to(&seen, roamed_addr).pop().expect("a REJECT");
        assert_eq!(
            reject_reason(&session, &answer),
            Some(reason),
            "claim {claimed}"
        );
    }
    let seen = h.step(&request(&session, 1, 3), roamed_addr, T0);
    let datagram = sent_to(&seen, roamed_addr).pop().expect("a PATH_CHALLENGE");
    let (challenge_header, challenge) =
        open_body::<PathChallenge>(&session.keys, Direction::GatewayToClient, &datagram)
            .expect("a sealed PATH_CHALLENGE");
    assert_eq!(
        h.entry(id).expect("entry").state_version,
        1,
        "nothing moved yet"
    );
    let slot = h.entry(id).expect("entry").replay_slot;
    assert_eq!(
        challenge_header.hinted_slot(),
        Some(slot),
        "a message sealed to the client names the session's slot in the XDP table"
    );

    let mut forged = PathResponse::answering(&challenge);
    forged.token[0] ^= 1;
    let genuine = PathResponse::answering(&challenge);
    let response = |r: &PathResponse, version, nonce| {
        sealed(
            &session,
            MessageType::PathResponse,
            version,
            nonce,
            r.as_body(),
        )
    };
    let cases = [
        ("wrong token", response(&forged, 1, 4), roamed_addr),
        ("wrong address", response(&genuine, 1, 5), h.client_addr),
    ];
    for (case, datagram, from) in cases {
        let seen = h.step(&datagram, from, T0);
        let answer = sent_to(&seen, from).pop().expect("a REJECT");
        assert_eq!(
            reject_reason(&session, &answer),
            Some(RejectReason::PathValidation),
            "{case}"
        );
        assert_eq!(h.entry(id).expect("entry").state_version, 1, "{case}");
    }

    let seen = h.step(&response(&genuine, 1, 6), roamed_addr, T0);
    let datagram = sent_to(&seen, roamed_addr).pop().expect("a REATTACH_ACK");
    let (header, ack) =
        open_body::<ReattachAck>(&session.keys, Direction::GatewayToClient, &datagram)
            .expect("a sealed REATTACH_ACK");
    assert_eq!((header.state_version.get(), ack.new_version.get()), (2, 2));
    let entry = h.entry(id).expect("entry");
    assert_eq!(entry.state_version, 2);
    assert_eq!(
        header.hinted_slot(),
        Some(entry.replay_slot),
        "the REATTACH_ACK names the session's slot, which the client echoes"
    );
    assert_eq!(
        entry.transport,
        TransportBinding::from_socket_addr(roamed_addr)
    );

    let seen = h.step(&response(&genuine, 1, 7), roamed_addr, T0);
    let answer = sent_to(&seen, roamed_addr).pop().expect("a REJECT");
    assert_eq!(
        reject_reason(&session, &answer),
        Some(RejectReason::PathValidation),
        "a token answers one challenge only"
    );
}

/// Spec section 6 says refuse explicitly; the REJECT budget bounds how often (per session and
/// source, per second): past it a refusal is still counted but no REJECT is sent.
#[test]
fn rejects_to_one_source_stop_at_the_budget() {
    let h = Harness::new();
    let session = h.session();
    let tries = REJECTS_PER_SECOND + 5;
    let mut answers = Vec::new();
    for nonce in 1..=u64::from(tries) {
        let seen = h.step(&request(&session, 0, nonce), h.client_addr, T0);
        answers.extend(sent_to(&seen, h.client_addr));
    }
    let mut rejects = 0;
    for answer in answers {
        assert_eq!(
            reject_reason(&session, &answer),
            Some(RejectReason::StaleVersion)
        );
        rejects += 1;
    }
    assert_eq!(rejects, REJECTS_PER_SECOND);
    let stats = h.controller.counters.controller_stats();
    assert_eq!(stats.rejects_suppressed, 5);
    assert_eq!(
        h.controller.counters.rejects(RejectReason::StaleVersion),
        u64::from(tries)
    );
    // A second later the budget is back.
    let seen = h.step(&request(&session, 0, 100), h.client_addr, T0 + 1_000);
    assert_eq!(sent_to(&seen, h.client_addr).len(), 1);
}
