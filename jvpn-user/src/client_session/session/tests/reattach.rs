//! The reattach as the client core lives it (spec section 5, `docs/protocol.md` "Reattach"):
//! REATTACH_REQUEST, PATH_CHALLENGE answered at its version, REATTACH_ACK at exactly one above,
//! and the refusals around it.

use super::*;

/// A whole reattach, the gateway challenging at `challenge_version` and committing one above it.
fn reattach(gateway: &mut TestGateway, client: &mut ClientSessionState, challenge_version: u64) {
    let request = client.reattach_request().unwrap();
    let (_, body) = gateway.open_control::<ReattachRequest>(&request);
    let datagram = gateway.seal(challenge_version, &challenge(body.attempt.get()));
    let ClientEvent::PathChallenge { response, .. } = client.handle(&datagram).unwrap() else {
        panic!("a challenge of the current attempt is answered");
    };
    gateway.open_control::<PathResponse>(&response);
    gateway.version = challenge_version + 1;
    let datagram = gateway.seal(gateway.version, &ack(gateway.version));
    assert!(matches!(
        client.handle(&datagram),
        Ok(ClientEvent::ReattachAcked { .. })
    ));
}

#[test]
fn path_validation_moves_the_session_exactly_one_version_up() {
    let (mut gateway, mut client) = established();
    client.seal_data(b"x").unwrap();
    let request = client.reattach_request().unwrap();
    let (header, body) = gateway.open_control::<ReattachRequest>(&request);
    assert_eq!(header.state_version.get(), 1);
    assert_eq!(
        header.nonce.get(),
        2,
        "nonces continue into control messages"
    );
    assert_eq!((body.acked_version.get(), body.attempt.get()), (1, 1));

    let datagram = gateway.seal(1, &challenge(1));
    let event = client.handle(&datagram).unwrap();
    let ClientEvent::PathChallenge {
        response,
        version: 1,
        attempt: 1,
    } = event
    else {
        panic!("expected the challenge to be answered, got {event:?}");
    };
    let (header, body) = gateway.open_control::<PathResponse>(&response);
    assert_eq!(
        header.state_version.get(),
        1,
        "answered at the challenge's version"
    );
    assert_eq!((body.token, body.attempt.get()), (TOKEN, 1));
    assert_eq!(
        client.acked_version(),
        1,
        "nothing is acknowledged before the ACK"
    );

    let datagram = gateway.seal(2, &ack(2));
    assert_eq!(
        client.handle(&datagram),
        Ok(ClientEvent::ReattachAcked {
            new_version: 2,
            binding: NEW_BINDING.to_socket_addr()
        })
    );
    assert_eq!(
        (client.acked_version(), client.pending_reattach()),
        (2, None)
    );
    let (header, _) = gateway.open(&client.seal_data(b"after").unwrap());
    assert_eq!(header.state_version.get(), 2);
    let datagram = gateway.seal_raw(MessageType::Data, 2, b"new");
    assert_eq!(
        client.handle(&datagram),
        Ok(ClientEvent::Data(b"new".to_vec()))
    );
}

#[test]
fn challenge_from_a_recovering_gateway_is_answered_at_acked_plus_one() {
    let (mut gateway, mut client) = established();
    // The gateway moved the session to RECOVERING (1 -> 2) while the client was away.
    let request = client.reattach_request().unwrap();
    gateway.open_control::<ReattachRequest>(&request);
    let event = client.handle(&gateway.seal(2, &challenge(1))).unwrap();
    let ClientEvent::PathChallenge {
        response,
        version: 2,
        ..
    } = event
    else {
        panic!("expected an answer at version 2, got {event:?}");
    };
    let (header, _) = gateway.open_control::<PathResponse>(&response);
    assert_eq!(header.state_version.get(), 2);
    assert!(matches!(
        client.handle(&gateway.seal(3, &ack(3))),
        Ok(ClientEvent::ReattachAcked { new_version: 3, .. })
    ));
    assert_eq!(client.acked_version(), 3);
}

#[test]
fn only_the_current_attempt_is_answered() {
    let (mut gateway, mut client) = established();
    client.reattach_request().unwrap();
    client.reattach_request().unwrap();
    assert_eq!(
        client.handle(&gateway.seal(1, &challenge(1))),
        Err(SessionRefusal::StaleAttempt {
            attempt: 1,
            current: 2
        })
    );
    assert!(matches!(
        client.handle(&gateway.seal(1, &challenge(2))),
        Ok(ClientEvent::PathChallenge { attempt: 2, .. })
    ));
}

#[test]
fn lower_version_is_refused_and_the_session_goes_on() {
    let (mut gateway, mut client) = established();
    let old = gateway.seal_raw(MessageType::Data, 1, b"sent before the jump");
    reattach(&mut gateway, &mut client, 1);
    for datagram in [old, gateway.seal_raw(MessageType::Keepalive, 1, &[])] {
        let refusal = client.handle(&datagram).unwrap_err();
        assert!(
            matches!(
                refusal,
                SessionRefusal::StaleVersion {
                    version: 1,
                    acked: 2,
                    ..
                }
            ),
            "{refusal:?}"
        );
        assert!(!refusal.is_fatal());
    }
    assert_eq!((client.acked_version(), client.closed()), (2, None));
    let datagram = gateway.seal_raw(MessageType::Data, 2, b"ok");
    assert_eq!(
        client.handle(&datagram),
        Ok(ClientEvent::Data(b"ok".to_vec()))
    );
}

#[test]
fn reattach_ack_with_a_wrong_version_fails_closed() {
    let (mut gateway, mut client) = established();
    client.reattach_request().unwrap();
    client.handle(&gateway.seal(1, &challenge(1))).unwrap();
    let refusal = client.handle(&gateway.seal(3, &ack(3))).unwrap_err();
    assert_eq!(
        refusal,
        SessionRefusal::Ambiguous(Ambiguity::AckMismatch {
            expected: 2,
            got: 3
        })
    );
    assert_eq!(client.acked_version(), 1);
    assert!(matches!(client.closed(), Some(Closed::Ambiguous(_))));
}

#[test]
fn ack_without_a_challenge_confirms_that_nothing_moved() {
    let (mut gateway, mut client) = established();
    client.reattach_request().unwrap();
    assert!(matches!(
        client.handle(&gateway.seal(1, &ack(1))),
        Ok(ClientEvent::ReattachAcked { new_version: 1, .. })
    ));
    assert_eq!(
        (client.acked_version(), client.pending_reattach()),
        (1, None)
    );
}

#[test]
fn data_ahead_of_its_ack_is_dropped_without_closing() {
    let (mut gateway, mut client) = established();
    client.reattach_request().unwrap();
    client.handle(&gateway.seal(1, &challenge(1))).unwrap();
    let early = client.handle(&gateway.seal_raw(MessageType::Data, 2, b"early"));
    assert!(matches!(
        early,
        Err(SessionRefusal::AheadOfAck { version: 2, .. })
    ));
    assert!(client.closed().is_none());
    assert!(client.handle(&gateway.seal(2, &ack(2))).is_ok());
}

/// The gateway may be slow to commit an attempt whose challenge the client answered; the client
/// retries meanwhile. The ACK of the answered attempt, arriving after the retry left, is the
/// reattach completing, not an ambiguity (seen under load: the retry used to forget the answered
/// challenge and the late ACK closed the session).
#[test]
fn the_ack_of_an_answered_attempt_is_accepted_after_a_retry() {
    let (mut gateway, mut client) = established();
    let request = client.reattach_request().unwrap();
    let (_, body) = gateway.open_control::<ReattachRequest>(&request);
    let datagram = gateway.seal(1, &challenge(body.attempt.get()));
    assert!(matches!(
        client.handle(&datagram),
        Ok(ClientEvent::PathChallenge { version: 1, .. })
    ));
    let retry = client.reattach_request().unwrap();
    let (_, body) = gateway.open_control::<ReattachRequest>(&retry);
    assert_eq!(body.attempt.get(), 2, "the retry is a new attempt");

    let datagram = gateway.seal(2, &ack(2));
    assert_eq!(
        client.handle(&datagram),
        Ok(ClientEvent::ReattachAcked {
            new_version: 2,
            binding: NEW_BINDING.to_socket_addr()
        })
    );
    assert_eq!(client.acked_version(), 2);
}

/// After losing its maps the gateway challenges the session at its RECOVERING version with
/// attempt 0 and nothing pending at the client: the core answers at that version, then accepts
/// the REATTACH_ACK one above it; a replay of the challenge is refused, and the next jump goes on
/// from the new version.
#[test]
fn the_gateways_own_challenge_of_a_recovering_session_is_answered_and_acknowledged() {
    use jvpn_common::control::GATEWAY_CHALLENGE_ATTEMPT;
    let (mut gateway, mut client) = established();
    let datagram = gateway.seal(2, &challenge(GATEWAY_CHALLENGE_ATTEMPT));
    let event = client.handle(&datagram).unwrap();
    let ClientEvent::PathChallenge {
        response,
        version: 2,
        attempt: GATEWAY_CHALLENGE_ATTEMPT,
    } = event
    else {
        panic!("expected the gateway's challenge to be answered, got {event:?}");
    };
    let (header, body) = gateway.open_control::<PathResponse>(&response);
    assert_eq!(header.state_version.get(), 2, "answered at RECOVERING");
    assert_eq!(
        (body.token, body.attempt.get()),
        (TOKEN, GATEWAY_CHALLENGE_ATTEMPT)
    );
    assert!(matches!(
        client.handle(&datagram),
        Err(SessionRefusal::Replayed { .. })
    ));
    assert_eq!(client.acked_version(), 1, "nothing acknowledged yet");
    let datagram = gateway.seal(3, &ack(3));
    assert!(matches!(
        client.handle(&datagram),
        Ok(ClientEvent::ReattachAcked { new_version: 3, .. })
    ));
    assert_eq!(client.acked_version(), 3);
    assert_eq!(client.pending_reattach(), None);
    assert_eq!(
        client.snapshot().latest_attempt,
        0,
        "the client made no attempt"
    );
    reattach(&mut gateway, &mut client, 3);
    assert_eq!(client.acked_version(), 4);
}

/// The slot hint (`docs/protocol.md`, "Slot hint"): every message the client sends carries the
/// slot the gateway named last; a REATTACH_ACK (possibly from the node that took the session
/// over) replaces it even when it names none, so an old node's slot is not echoed to a new one.
#[test]
fn the_client_echoes_the_slot_its_gateway_names() {
    let (mut gateway, mut client) = established();
    let hint = |datagram: &[u8]| WireHeader::parse(datagram).unwrap().hinted_slot();
    assert_eq!(hint(&client.seal_data(b"x").unwrap()), None, "none yet");
    gateway.slot = Some(7);
    reattach(&mut gateway, &mut client, 1);
    assert_eq!(hint(&client.seal_data(b"y").unwrap()), Some(7));
    assert_eq!(hint(&client.keepalive().unwrap()), Some(7));
    gateway.slot = None;
    reattach(&mut gateway, &mut client, 2);
    assert_eq!(
        hint(&client.seal_data(b"z").unwrap()),
        None,
        "the new node named none: the old slot is forgotten"
    );
}
