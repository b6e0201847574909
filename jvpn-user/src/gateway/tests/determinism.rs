//! Spec section 12: the controller is a function of its inputs. The same datagrams at the same
//! times, on the same state and randomness, give the same effects; and a step that changes a
//! session ends with its compare-and-set, whose outcome alone decides the reply.

use super::*;
use crate::crypto::{open_body, SessionKeys};
use crate::gateway::effect::{CommitToken, Then};
use crate::gateway::Applied;
use crate::session::{Input, Session, SessionId};
use crate::store::{CasOutcome, CasRequest, Expected};
use jvpn_common::control::{
    Body, PathChallenge, PathResponse, ReattachAck, ReattachRequest, Reject, Terminate,
};
use jvpn_common::wire::Be64;
use jvpn_common::{RejectReason, TransportBinding};

const ID: u64 = 0x0000_1234_5678_9abc;

/// Creates session [`ID`] with `keys`, bound to the client's address, through the controller's
/// own commit path (as a HELLO would, without the handshake's fresh randomness).
fn adopt(h: &Harness, keys: &SessionKeys) {
    let id = SessionId::new(ID).expect("nonzero");
    let client = *h.identity.private_key.public_key().as_bytes();
    let input = Input::HandshakeComplete {
        binding: TransportBinding::from_socket_addr(h.client_addr),
        header_key: (*keys.header_key(Direction::ClientToGateway)).into(),
        secrets: keys.to_stored().to_vec().into(),
    };
    let t = h
        .controller
        .machine
        .transition(&Session::birth(id, client, T0), &input, T0)
        .expect("handshake transition");
    let mut out = Vec::new();
    let keys = Arc::new(keys.clone());
    h.controller
        .commit(Expected::Absent, t, keys, Then::Nothing, &mut out);
    h.settle(out, &[], T0);
    assert_eq!(h.entry(ID).expect("entry").state_version, 1);
}

fn message(
    keys: &SessionKeys,
    msg_type: MessageType,
    version: u64,
    nonce: u64,
    body: &[u8],
) -> Vec<u8> {
    let header = WireHeader::new(msg_type, ID, version, nonce);
    seal_message(keys, Direction::ClientToGateway, header, body).expect("seal")
}

fn reattach(keys: &SessionKeys, claimed: u64, nonce: u64) -> Vec<u8> {
    let body = ReattachRequest {
        acked_version: Be64::new(claimed),
        attempt: Be64::new(1),
    };
    message(
        keys,
        MessageType::ReattachRequest,
        claimed,
        nonce,
        body.as_body(),
    )
}

/// Two controllers with the same configuration, state and seed are fed the same script (DATA,
/// its replay, a stale DATA, a KEEPALIVE, a jump with its challenge and response, a TERMINATE):
/// every step's effects are identical, and the script did what it says.
#[test]
fn the_same_inputs_give_the_same_effects() {
    let gateway_key = PrivateKey::generate();
    let client_key = PrivateKey::generate();
    let a = Harness::with(gateway_key.clone(), client_key.clone(), 42);
    let b = Harness::with(gateway_key, client_key, 42);
    let keys = SessionKeys::from_stored(&[7; SessionKeys::STORED_LEN]);
    adopt(&a, &keys);
    adopt(&b, &keys);
    let client = a.client_addr;
    let roamed: SocketAddr = ROAMED.parse().expect("addr");
    let packet = ipv4_packet(CLIENT_V4, [10, 99, 0, 1]);

    let mut script: Vec<(Vec<u8>, SocketAddr, u64)> = vec![
        (
            message(&keys, MessageType::Data, 1, 1, &packet),
            client,
            T0 + 1,
        ),
        (
            message(&keys, MessageType::Data, 1, 1, &packet),
            client,
            T0 + 2,
        ),
        (
            message(&keys, MessageType::Data, 0, 2, &packet),
            client,
            T0 + 3,
        ),
        (
            message(&keys, MessageType::Keepalive, 1, 3, &[]),
            client,
            T0 + 4,
        ),
        (reattach(&keys, 1, 4), roamed, T0 + 5),
    ];
    let mut runs = Vec::new();
    for (datagram, from, now) in &script {
        let (left, right) = (a.step(datagram, *from, *now), b.step(datagram, *from, *now));
        assert_eq!(format!("{left:?}"), format!("{right:?}"), "{datagram:?}");
        runs.push(left);
    }
    assert_eq!(
        tun_packets(&runs[0]),
        vec![packet.clone()],
        "DATA delivered"
    );
    assert!(
        matches!(runs[1].as_slice(), [Seen::Event(e)] if e.reason == Some(RejectReason::DuplicateNonce)),
        "its replay is not: evented, and unanswered since a REJECT would be larger: {:?}",
        runs[1]
    );
    assert!(tun_packets(&runs[2]).is_empty(), "nor stale DATA");
    assert_eq!(sent_to(&runs[3], client).len(), 1, "KEEPALIVE answered");

    let challenge = sent_to(&runs[4], roamed).pop().expect("a PATH_CHALLENGE");
    let (_, challenge) = open_body::<PathChallenge>(&keys, Direction::GatewayToClient, &challenge)
        .expect("a sealed PATH_CHALLENGE");
    let response = PathResponse::answering(&challenge);
    let terminate = Terminate {
        cause: 1,
        reserved: [0; 7],
    };
    script = vec![
        (
            message(&keys, MessageType::PathResponse, 1, 5, response.as_body()),
            roamed,
            T0 + 6,
        ),
        (
            message(&keys, MessageType::Terminate, 2, 6, terminate.as_body()),
            roamed,
            T0 + 7,
        ),
    ];
    for (datagram, from, now) in &script {
        let (left, right) = (a.step(datagram, *from, *now), b.step(datagram, *from, *now));
        assert_eq!(format!("{left:?}"), format!("{right:?}"), "{datagram:?}");
    }
    for h in [&a, &b] {
        let entry = h.entry(ID).expect("entry");
        assert_eq!(entry.transport, TransportBinding::from_socket_addr(roamed));
        assert!(entry.state_version >= 2, "the jump committed");
    }
}

/// Jumps the adopted session to `roamed` (REATTACH_REQUEST, PATH_CHALLENGE, PATH_RESPONSE) up
/// to the compare-and-set its step ends with: the commit's request and token, and the step's
/// other effects.
fn jump_to_its_commit(
    h: &Harness,
    keys: &SessionKeys,
    roamed: SocketAddr,
) -> (Box<CasRequest>, Box<CommitToken>, Vec<Effect>) {
    let seen = h.step(&reattach(keys, 1, 1), roamed, T0);
    let challenge = sent_to(&seen, roamed).pop().expect("a PATH_CHALLENGE");
    let (_, challenge) = open_body::<PathChallenge>(keys, Direction::GatewayToClient, &challenge)
        .expect("a sealed PATH_CHALLENGE");
    let response = PathResponse::answering(&challenge);
    let mut datagram = message(keys, MessageType::PathResponse, 1, 2, response.as_body());
    let mut out = Vec::new();
    h.controller.handle(&mut datagram, roamed, T0, &mut out);
    let Some(Effect::Commit { request, token }) = out.pop() else {
        panic!("the step ends with its commit: {out:?}");
    };
    (request, token, out)
}

/// A PATH_RESPONSE that validates ends its step with the compare-and-set and sends nothing;
/// the reply comes from the outcome: a lost race is refused with CONCURRENT_MUTATION at the
/// version the store holds, and the session is not moved.
#[test]
fn the_reply_to_a_jump_waits_for_its_commit() {
    let h = Harness::new();
    let keys = SessionKeys::from_stored(&[9; SessionKeys::STORED_LEN]);
    adopt(&h, &keys);
    let roamed: SocketAddr = ROAMED.parse().expect("addr");
    let (request, token, out) = jump_to_its_commit(&h, &keys, roamed);
    assert!(
        out.iter().all(|e| !matches!(e, Effect::Send { .. })),
        "nothing is sent before the commit: {out:?}"
    );
    assert_eq!(request.session.state_version, 2);

    // Another node moved the session first: the store holds version 3.
    let mut stored = request.session.clone();
    stored.state_version = 3;
    let outcome = Ok(CasOutcome::Conflict {
        current: Some(stored),
    });
    let settled = h.controller.settle(*token, outcome);
    assert!(
        settled.map_write().is_none(),
        "a lost race writes no map entry"
    );
    let (result, next) = h.controller.reply(settled, T0);
    assert!(result.is_err(), "{result:?}");
    let seen = h.settle(next, &[], T0);
    let reject = sent_to(&seen, roamed).pop().expect("a REJECT");
    let (header, reject) =
        open_body::<Reject>(&keys, Direction::GatewayToClient, &reject).expect("a sealed REJECT");
    assert_eq!(reject.reason(), Some(RejectReason::ConcurrentMutation));
    assert_eq!(header.state_version.get(), 3);
    assert_eq!(
        h.entry(ID).expect("entry").state_version,
        1,
        "the map is not moved"
    );
}

/// The order after a commit, as the executor performs it: `settle` installs the committed
/// record and names its map entry, sealing nothing (no nonce is taken); the shell writes the
/// entry; only then does `reply` publish the STATE_CHANGE and seal the REATTACH_ACK at the
/// committed version. So the map never waits for a seal, and no ACK exists before its commit.
#[test]
fn a_commit_is_written_into_the_map_before_its_ack_is_sealed() {
    let h = Harness::new();
    let keys = SessionKeys::from_stored(&[11; SessionKeys::STORED_LEN]);
    adopt(&h, &keys);
    let roamed: SocketAddr = ROAMED.parse().expect("addr");
    let (request, token, _) = jump_to_its_commit(&h, &keys, roamed);
    let outcome = h.store.compare_and_set(
        request.session.id,
        request.expected,
        &request.session,
        &request.audit,
    );
    assert!(matches!(outcome, Ok(CasOutcome::Committed)), "{outcome:?}");
    let next_nonce = || h.controller.sessions.lock()[&ID].next_tx_nonce;
    let nonce_before = next_nonce();

    let settled = h.controller.settle(*token, outcome);
    let (id, entry) = settled
        .map_write()
        .expect("a committed jump names its map entry");
    assert_eq!(id, ID);
    assert_eq!(entry.state_version, 2);
    assert_eq!(entry.transport, TransportBinding::from_socket_addr(roamed));
    assert_eq!(next_nonce(), nonce_before, "settling seals nothing");
    assert_eq!(
        h.controller
            .sessions
            .snapshot(ID)
            .expect("live")
            .0
            .state_version,
        2,
        "the cache holds the committed version"
    );
    assert_eq!(
        h.entry(ID).expect("entry").state_version,
        1,
        "not yet written"
    );
    h.fake.upsert_session(id, entry).expect("map write");

    let (result, next) = h.controller.reply(settled, T0);
    assert!(matches!(result, Ok(Applied::Committed(ref s)) if s.state_version == 2));
    assert_eq!(next_nonce(), nonce_before + 1, "the ACK is sealed now");
    let published = next
        .iter()
        .position(|e| matches!(e, Effect::Publish(r) if r.to_version == Some(2)));
    let sent = next.iter().position(|e| matches!(e, Effect::Send { .. }));
    assert!(
        matches!((published, sent), (Some(p), Some(s)) if p < s),
        "the STATE_CHANGE, then the ACK: {next:?}"
    );
    let Some(Effect::Send { to, datagram }) = sent.map(|i| &next[i]) else {
        unreachable!("found above");
    };
    assert_eq!(*to, roamed);
    let (header, ack) = open_body::<ReattachAck>(&keys, Direction::GatewayToClient, datagram)
        .expect("a sealed REATTACH_ACK");
    assert_eq!(ack.new_version.get(), 2);
    assert_eq!(header.state_version.get(), 2);
}
