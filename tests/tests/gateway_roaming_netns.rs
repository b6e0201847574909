//! NAT rebinding seen from the gateway: sealed traffic of a session arriving from a transport it
//! is not bound to is dropped in XDP as TRANSPORT_MISMATCH, and the controller answers the new
//! transport with a sealed REJECT(TRANSPORT_MISMATCH), so the client reattaches at once instead
//! of waiting for silence. Nothing about the session changes until it does. Topology as in
//! `gateway_netns.rs`: the real `jvpn gateway` with XDP, a wire-protocol client.

use jvpn_common::{MessageType, RejectReason};
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
