//! NAT rebinding seen from the gateway: sealed traffic of a session arriving from a transport it
//! is not bound to is dropped in XDP as TRANSPORT_MISMATCH, and the controller answers the new
//! transport with a sealed REJECT(TRANSPORT_MISMATCH), so the client reattaches at once instead
//! of waiting for silence. Nothing about the session changes until it does. And spec section
//! 6.2: a replay from the bound transport, dropped in XDP as DUPLICATE_NONCE, is answered there
//! with a sealed REJECT(DUPLICATE_NONCE); a replay from any other address gets nothing. Topology
//! as in `gateway_netns.rs`: the real `jvpn gateway` with XDP, a wire-protocol client.

use jvpn_common::{MessageType, RejectReason, WireHeader};
use jvpn_tests::probe::{client_socket, drops, gateway, started};
use jvpn_tests::topology::Family;
use jvpn_tests::wire_client::{as_reject, assert_silent, WireClient};
use std::time::Duration;

#[test]
fn traffic_from_a_new_port_gets_a_transport_mismatch_reject_and_changes_nothing() {
    let f = started(&[]);
    let gw = gateway(Family::V4);
    let old_port = client_socket(&f, Family::V4, 40001);
    // The same client behind a NAT that picked a new outer port.
    let new_port = client_socket(&f, Family::V4, 40002);
    let mut c = WireClient::handshake(&f.client, &old_port, gw);

    let data = c.data(b"after the NAT rebinding");
    new_port.send_to(&data, gw).expect("send DATA");
    let reply = c.receive(&new_port, "the REJECT");
    let reject = as_reject(&reply).unwrap_or_else(|| panic!("a REJECT, got {reply:?}"));
    assert_eq!(reject.reason(), Some(RejectReason::TransportMismatch));
    assert_eq!(reject.gateway_version.get(), 1);
    assert_eq!(reply.header.state_version.get(), 1);
    assert_eq!(drops(&f, RejectReason::TransportMismatch), 1);
    assert_eq!(f.audit_versions(c.id), vec![1], "nothing moved");

    // A packet at an old version from a new port is not "the client moved": no answer.
    let stale = c.seal(MessageType::Data, 0, b"stale");
    new_port.send_to(&stale, gw).expect("send stale DATA");
    assert_silent(&new_port, Duration::from_millis(300), "a stale packet");

    // The client reattaches from where it is now; the session follows.
    assert_eq!(c.jump(&new_port), 2);
    let data = c.data(b"bound again");
    new_port.send_to(&data, gw).expect("send DATA");
    assert_silent(&new_port, Duration::from_millis(300), "accepted DATA");
    assert_eq!(f.audit_versions(c.id), vec![1, 2]);
}

#[test]
fn a_replay_from_the_bound_transport_gets_a_duplicate_nonce_reject_there_only() {
    let f = started(&[]);
    let gw = gateway(Family::V4);
    let bound = client_socket(&f, Family::V4, 40003);
    let elsewhere = client_socket(&f, Family::V4, 40004);
    let mut c = WireClient::handshake(&f.client, &bound, gw);

    // Longer than a REJECT, so answering it amplifies nothing.
    let data = c.data(&[0x45; 64]);
    let nonce = WireHeader::parse(&data).expect("header").nonce.get();
    bound.send_to(&data, gw).expect("send DATA");
    assert_silent(&bound, Duration::from_millis(300), "accepted DATA");
    bound.send_to(&data, gw).expect("replay DATA");
    let reply = c.receive(&bound, "the REJECT of the replay");
    let reject = as_reject(&reply).unwrap_or_else(|| panic!("a REJECT, got {reply:?}"));
    assert_eq!(reject.reason(), Some(RejectReason::DuplicateNonce));
    assert_eq!(
        (reject.gateway_version.get(), reject.rejected_nonce.get()),
        (1, nonce)
    );
    assert_eq!(drops(&f, RejectReason::DuplicateNonce), 1);

    // A control message replayed from another address: XDP drops the copy as DUPLICATE_NONCE,
    // and nothing is sent to the address the replayer chose (nor to the client).
    let request = c.reattach_request(1, 1);
    elsewhere
        .send_to(&request, gw)
        .expect("send REATTACH_REQUEST");
    let challenge = c.receive(&elsewhere, "the PATH_CHALLENGE");
    assert_eq!(challenge.kind(), MessageType::PathChallenge);
    elsewhere
        .send_to(&request, gw)
        .expect("replay REATTACH_REQUEST");
    assert_silent(&elsewhere, Duration::from_millis(300), "a foreign replay");
    assert_silent(&bound, Duration::from_millis(100), "a foreign replay");
    assert_eq!(drops(&f, RejectReason::DuplicateNonce), 2);
    assert_eq!(f.audit_versions(c.id), vec![1], "nothing moved");
}
