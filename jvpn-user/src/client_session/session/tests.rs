//! The client core against the real gateway-side crypto ([`TestGateway`]): the handshake, DATA
//! both ways, the version rules of spec sections 5 and 10, path validation, replays, forgeries,
//! REJECT and TERMINATE.

use super::*;
use crate::client_session::refusal::Ambiguity;
use crate::client_session::test_gateway::{TestGateway, TEST_KEEPALIVE_SECS, TEST_SESSION};
use crate::crypto::handshake::tai64n;
use crate::crypto::ClientHandshake;
use jvpn_common::control::{
    PathChallenge, ReattachAck, ReattachRequest, Reject, Terminate, TerminateCause,
};
use jvpn_common::replay::ReplayReject;
use jvpn_common::version::NONCE_CEILING;
use jvpn_common::wire::{Be64, MessageType};
use jvpn_common::{RejectReason, TransportBinding};
use std::time::SystemTime;

fn established() -> (TestGateway, ClientSessionState) {
    let mut gateway = TestGateway::new();
    let client = ClientSessionState::new(gateway.handshake()).expect("WELCOME at version 1");
    (gateway, client)
}

const TOKEN: [u8; 32] = [0xc4; 32];
const NEW_BINDING: TransportBinding = TransportBinding::from_v4([198, 51, 100, 7], 40001);

fn challenge(attempt: u64) -> PathChallenge {
    PathChallenge {
        token: TOKEN,
        attempt: Be64::new(attempt),
    }
}

fn ack(new_version: u64) -> ReattachAck {
    ReattachAck {
        new_version: Be64::new(new_version),
        binding: NEW_BINDING,
    }
}

#[test]
fn handshake_opens_the_session_at_version_1_with_nonces_from_1() {
    let (_gateway, client) = established();
    assert_eq!(
        client.snapshot(),
        ClientSnapshot {
            session_id: TEST_SESSION,
            acked_version: 1,
            next_nonce: 1,
            newest_gateway_nonce: (1 << 40) | 1,
            latest_attempt: 0,
            pending: None,
            unanswered_reattaches: 0,
            closed: None,
        }
    );
    assert_eq!(
        client.welcome().keepalive_interval_secs.get(),
        TEST_KEEPALIVE_SECS
    );
}

#[test]
fn welcome_at_another_version_than_1_is_refused() {
    let mut gateway = TestGateway::new();
    let identity = gateway.client_identity();
    let (mut handshake, hello) =
        ClientHandshake::start(&identity, tai64n(SystemTime::now())).unwrap();
    let welcome = gateway.accept_hello_at(&hello, 2);
    let session = handshake.finish(&welcome).unwrap();
    let refusal = ClientSessionState::new(session).unwrap_err();
    assert_eq!(refusal, SessionRefusal::WelcomeVersion(2));
    assert!(refusal.is_fatal());
}

#[test]
fn data_and_keepalives_flow_both_ways() {
    let (mut gateway, mut client) = established();
    for (i, packet) in [&b"\x45first"[..], b"\x45second", b""].iter().enumerate() {
        let (header, body) = gateway.open(&client.seal_data(packet).unwrap());
        assert_eq!(header.message_type(), Some(MessageType::Data));
        assert_eq!(header.state_version.get(), 1);
        assert_eq!(header.nonce.get(), i as u64 + 1, "c2g nonces start at 1");
        assert_eq!(body, *packet);
    }
    let (header, body) = gateway.open(&client.keepalive().unwrap());
    assert_eq!(header.message_type(), Some(MessageType::Keepalive));
    assert!(body.is_empty());

    let datagram = gateway.seal_raw(MessageType::Data, 1, b"\x45downstream");
    assert_eq!(
        client.handle(&datagram),
        Ok(ClientEvent::Data(b"\x45downstream".to_vec()))
    );
    let datagram = gateway.seal_raw(MessageType::Keepalive, 1, &[]);
    assert_eq!(client.handle(&datagram), Ok(ClientEvent::Keepalive));
}

#[test]
fn unexpected_jump_fails_closed_and_everything_after_is_refused() {
    let (mut gateway, mut client) = established();
    let jump = SessionRefusal::Ambiguous(Ambiguity::VersionJump {
        message: MessageType::Data,
        version: 3,
        acked: 1,
    });
    assert_eq!(
        client.handle(&gateway.seal_raw(MessageType::Data, 3, b"?")),
        Err(jump)
    );
    let closed = SessionRefusal::Closed(Closed::Ambiguous(Ambiguity::VersionJump {
        message: MessageType::Data,
        version: 3,
        acked: 1,
    }));
    let valid = gateway.seal_raw(MessageType::Data, 1, b"valid");
    assert_eq!(client.handle(&valid), Err(closed.clone()));
    assert_eq!(client.seal_data(b"x"), Err(closed.clone()));
    assert_eq!(client.keepalive(), Err(closed.clone()));
    assert_eq!(client.reattach_request(), Err(closed.clone()));
    assert_eq!(client.terminate(TerminateCause::ClientClosed), Err(closed));
}

#[test]
fn replayed_gateway_datagrams_are_refused() {
    let (mut gateway, mut client) = established();
    let data = gateway.seal_raw(MessageType::Data, 1, b"once");
    assert!(client.handle(&data).is_ok());
    let nonce = WireHeader::parse(&data).unwrap().nonce.get();
    assert_eq!(
        client.handle(&data),
        Err(SessionRefusal::Replayed {
            nonce,
            reason: ReplayReject::Duplicate
        })
    );

    client.reattach_request().unwrap();
    client.handle(&gateway.seal(1, &challenge(1))).unwrap();
    let ack = gateway.seal(2, &ack(2));
    client.handle(&ack).unwrap();
    let before = client.snapshot();
    assert!(matches!(
        client.handle(&ack),
        Err(SessionRefusal::Replayed {
            reason: ReplayReject::Duplicate,
            ..
        })
    ));
    assert_eq!(client.snapshot(), before);
}

/// Every single-byte change to an authentic datagram, and every truncation, is refused without a
/// trace: the snapshot is unchanged, the session stays open even when the forgery claims a version
/// jump, and the authentic datagram (its nonce unspent) is accepted afterwards.
#[test]
fn forged_datagrams_change_nothing() {
    let (mut gateway, mut client) = established();
    client.reattach_request().unwrap();
    let authentic = gateway.seal_raw(MessageType::Data, 1, b"\x45authentic packet");
    let before = client.snapshot();
    let mut forgeries: Vec<Vec<u8>> = (0..authentic.len())
        .map(|i| {
            let mut forged = authentic.clone();
            forged[i] ^= 0x01;
            forged
        })
        .collect();
    forgeries.extend((0..authentic.len()).map(|len| authentic[..len].to_vec()));
    // The same header sealed under another session's keys.
    let mut stranger = TestGateway::new();
    stranger.handshake();
    forgeries.push(stranger.seal_raw(MessageType::Data, 1, b"\x45authentic packet"));
    for (i, forged) in forgeries.iter().enumerate() {
        let refusal = client.handle(forged).unwrap_err();
        assert!(!refusal.is_fatal(), "forgery {i}: {refusal:?}");
        assert_eq!(client.snapshot(), before, "forgery {i} changed the state");
    }
    assert_eq!(
        client.handle(&authentic),
        Ok(ClientEvent::Data(b"\x45authentic packet".to_vec()))
    );
}

#[test]
fn reject_is_decoded_and_changes_nothing() {
    let (mut gateway, mut client) = established();
    let (header, _) = gateway.open(&client.keepalive().unwrap());
    let rejected = header.nonce.get();
    let before = client.snapshot();
    let reject = Reject::new(RejectReason::PathValidation, 1, rejected);
    assert_eq!(
        client.handle(&gateway.seal(1, &reject)),
        Ok(ClientEvent::Rejected {
            reason: RejectReason::PathValidation,
            gateway_version: 1,
            rejected_nonce: rejected
        })
    );
    let after = client.snapshot();
    assert_eq!(
        (after.acked_version, after.pending, after.closed),
        (1, None, None)
    );
    assert_eq!(after.next_nonce, before.next_nonce);
}

#[test]
fn reject_from_a_gateway_ahead_fails_closed() {
    let (mut gateway, mut client) = established();
    let reject = Reject::new(RejectReason::StaleVersion, 4, 1);
    assert_eq!(
        client.handle(&gateway.seal(4, &reject)),
        Err(SessionRefusal::Ambiguous(Ambiguity::RejectedAhead {
            reason: RejectReason::StaleVersion,
            gateway_version: 4,
            acked: 1
        }))
    );
    assert!(client.closed().is_some());
}

/// Spec section 6.2: the gateway answers a replay from the bound transport with a REJECT of
/// DUPLICATE_NONCE or NONCE_TOO_OLD. That REJECT may answer someone else's replay, so it is
/// information: with a jump in flight, at the acknowledged version, at the challenged one or even
/// at the version the ACK still on its way will bring, it changes nothing (the pending reattach
/// stays, the session stays open), and the jump then completes.
#[test]
fn a_replay_reject_during_a_jump_changes_nothing_and_the_jump_goes_on() {
    let (mut gateway, mut client) = established();
    let rejected = WireHeader::parse(&client.keepalive().unwrap())
        .unwrap()
        .nonce
        .get();
    client.reattach_request().unwrap();
    let before_challenge = client.snapshot();
    let reject = Reject::new(RejectReason::DuplicateNonce, 1, rejected);
    assert_eq!(
        client.handle(&gateway.seal(1, &reject)),
        Ok(ClientEvent::ReplayReported {
            reason: RejectReason::DuplicateNonce,
            gateway_version: 1,
            rejected_nonce: rejected
        })
    );
    assert_eq!(client.snapshot().pending, before_challenge.pending);
    assert!(matches!(
        client.handle(&gateway.seal(1, &challenge(1))),
        Ok(ClientEvent::PathChallenge { version: 1, .. })
    ));
    let challenged = client.snapshot();
    for (reason, version) in [
        (RejectReason::NonceTooOld, 1),
        (RejectReason::DuplicateNonce, 2),
    ] {
        let reject = Reject::new(reason, version, rejected);
        assert!(
            matches!(
                client.handle(&gateway.seal(version, &reject)),
                Ok(ClientEvent::ReplayReported { reason: r, .. }) if r == reason
            ),
            "{reason:?} at version {version}"
        );
        let after = client.snapshot();
        assert_eq!(
            (after.acked_version, after.pending, after.closed),
            (challenged.acked_version, challenged.pending, None),
            "{reason:?} at version {version} changed the session"
        );
    }
    assert_eq!(
        client.handle(&gateway.seal(2, &ack(2))),
        Ok(ClientEvent::ReattachAcked {
            new_version: 2,
            binding: NEW_BINDING.to_socket_addr()
        })
    );
}

#[test]
fn terminate_from_the_gateway_closes_the_session() {
    let (mut gateway, mut client) = established();
    let terminate = Terminate::new(TerminateCause::Operator);
    assert_eq!(
        client.handle(&gateway.seal(2, &terminate)),
        Ok(ClientEvent::Terminated {
            cause: TerminateCause::Operator
        })
    );
    assert_eq!(
        client.seal_data(b"x"),
        Err(SessionRefusal::Closed(Closed::ByGateway(
            TerminateCause::Operator
        )))
    );
}

#[test]
fn client_terminate_is_sealed_and_closes_the_core() {
    let (gateway, mut client) = established();
    let datagram = client.terminate(TerminateCause::ClientClosed).unwrap();
    let (header, body) = gateway.open_control::<Terminate>(&datagram);
    assert_eq!(header.state_version.get(), 1);
    assert_eq!(body.cause(), Some(TerminateCause::ClientClosed));
    assert_eq!(
        client.keepalive(),
        Err(SessionRefusal::Closed(Closed::ByClient(
            TerminateCause::ClientClosed
        )))
    );
}

#[test]
fn nonce_exhaustion_closes_the_core_before_the_safety_margin() {
    let (gateway, mut client) = established();
    client.set_next_nonce_for_test(NONCE_CEILING - 1);
    let (header, _) = gateway.open(&client.seal_data(b"last").unwrap());
    assert_eq!(header.nonce.get(), NONCE_CEILING - 1);
    assert_eq!(
        client.seal_data(b"one more"),
        Err(SessionRefusal::NonceExhausted)
    );
    assert_eq!(
        client.keepalive(),
        Err(SessionRefusal::Closed(Closed::NonceExhausted))
    );
}

mod reattach;
mod rekey;
mod unknown;
