//! A client the gateway no longer knows (spec section 6: silent ignore is forbidden): a sealed
//! REJECT TERMINATED closes the core at once; with no answer at all, the core closes itself after
//! [`UNANSWERED_REATTACH_LIMIT`] unanswered REATTACH_REQUESTs. Both are fatal: a new handshake.

use super::*;
use jvpn_common::abi::HEADER_LEN;

/// The gateway terminated the session at whatever version (an operator from ATTACHED, or from
/// RECOVERING after a restart): its REJECT TERMINATED ends the session on the client.
#[test]
fn reject_terminated_closes_the_core_at_any_version_from_acked_up() {
    for gateway_version in [1, 2, 3, 40] {
        let (mut gateway, mut client) = established();
        let (header, _) = gateway.open(&client.keepalive().unwrap());
        let reject = Reject::new(
            RejectReason::Terminated,
            gateway_version,
            header.nonce.get(),
        );
        let closed = Closed::TerminatedAtGateway(gateway_version);
        let refusal = client.handle(&gateway.seal(gateway_version, &reject));
        assert_eq!(
            refusal,
            Err(SessionRefusal::Closed(closed)),
            "{gateway_version}"
        );
        assert!(refusal.unwrap_err().is_fatal());
        assert_eq!(client.closed(), Some(closed));
        assert_eq!(
            client.reattach_request(),
            Err(SessionRefusal::Closed(closed))
        );
    }
}

/// A REJECT TERMINATED below the acknowledged version is older than what the client knows; so
/// is one that does not open: neither ends anything.
#[test]
fn a_stale_or_forged_reject_terminated_changes_nothing() {
    let (mut gateway, mut client) = established();
    reattach_to(&mut gateway, &mut client, 2);
    let stale = gateway.seal(1, &Reject::new(RejectReason::Terminated, 1, 1));
    assert!(matches!(
        client.handle(&stale),
        Err(SessionRefusal::StaleVersion { .. })
    ));
    let mut forged = gateway.seal(4, &Reject::new(RejectReason::Terminated, 4, 1));
    let last = forged.len() - 1;
    forged[last] ^= 1;
    assert!(matches!(
        client.handle(&forged),
        Err(SessionRefusal::Unauthenticated(_))
    ));
    assert_eq!(client.closed(), None);
}

/// A whole reattach to `version` (challenged at `version - 1`).
fn reattach_to(gateway: &mut TestGateway, client: &mut ClientSessionState, version: u64) {
    let request = client.reattach_request().unwrap();
    let (_, body) = gateway.open_control::<ReattachRequest>(&request);
    let datagram = gateway.seal(version - 1, &challenge(body.attempt.get()));
    client.handle(&datagram).unwrap();
    gateway.version = version;
    let datagram = gateway.seal(version, &ack(version));
    client.handle(&datagram).unwrap();
}

#[test]
fn unanswered_reattaches_close_the_core_after_the_limit() {
    let (_gateway, mut client) = established();
    for n in 1..=UNANSWERED_REATTACH_LIMIT {
        client
            .reattach_request()
            .unwrap_or_else(|e| panic!("request {n} of the limit: {e}"));
        assert_eq!(client.snapshot().unanswered_reattaches, n);
    }
    let closed = Closed::Unanswered(UNANSWERED_REATTACH_LIMIT);
    let refusal = client.reattach_request();
    assert_eq!(refusal, Err(SessionRefusal::Closed(closed)));
    assert!(
        refusal.unwrap_err().is_fatal(),
        "the driver must rehandshake"
    );
    assert_eq!(client.closed(), Some(closed));
    assert_eq!(client.keepalive(), Err(SessionRefusal::Closed(closed)));
}

/// Any fresh authenticated gateway message proves the gateway knows the session and starts the
/// count again; a replayed one, or a forged one, does not.
#[test]
fn only_a_fresh_authentic_answer_resets_the_count() {
    let (mut gateway, mut client) = established();
    let old = gateway.seal_raw(MessageType::Keepalive, 1, b"");
    client.handle(&old).unwrap();
    for _ in 1..UNANSWERED_REATTACH_LIMIT {
        client.reattach_request().unwrap();
    }
    let mut forged = gateway.seal_raw(MessageType::Keepalive, 1, b"");
    forged[HEADER_LEN] ^= 1;
    assert!(client.handle(&forged).is_err());
    assert!(client.handle(&old).is_err(), "a replay is refused");
    assert_eq!(
        client.snapshot().unanswered_reattaches,
        UNANSWERED_REATTACH_LIMIT - 1
    );

    let fresh = gateway.seal_raw(MessageType::Keepalive, 1, b"");
    assert_eq!(client.handle(&fresh), Ok(ClientEvent::Keepalive));
    assert_eq!(client.snapshot().unanswered_reattaches, 0);
    for _ in 0..UNANSWERED_REATTACH_LIMIT {
        client.reattach_request().unwrap();
    }
    assert!(client.reattach_request().is_err());
}
