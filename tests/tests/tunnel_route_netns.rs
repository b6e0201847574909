//! The client notices a change of its path to the gateway by itself and reattaches at once: the
//! real `jvpn client` watches rtnetlink, and when the route or address it uses goes away it moves
//! the session to the path the routing table offers now, without a new handshake. Each test
//! checks the client's log for the reason, so it cannot pass through the 15 s silence path (three
//! keepalive intervals of 5 s, logged as "no acknowledgement from the gateway").
//!
//! The topology is [`jvpn_tests::tunnel`]'s:
//!
//! ```text
//!  gateway ns                         router ns                 client ns (jvpn client, TUN 10.99.0.2)
//!  jvpn0 10.99.0.1 (TUN)              ip_forward=1              W 10.201.1.2  route to 10.200.0.0/24 metric 1
//!  <gw> 10.200.0.1 <== XDP ==veth==> 10.200.0.2   <rw> 10.201.1.1 <==wifi==> W
//!                                                 <rl> 10.201.2.1 <==lte===> L 10.201.2.2  route metric 2
//! ```
//! [`Tunnel::up`] pins its client to wifi with `--uplink`; `pin_wifi: false` starts it without,
//! following the routing table.

use jvpn_tests::gateway::GatewayFixture;
use jvpn_tests::netns::Netns;
use jvpn_tests::tunnel::{eventually, Tunnel, TunnelOptions};
use std::net::TcpStream;
use std::time::Duration;

/// A port nobody listens on: a reset proves the round trip through the tunnel.
const SERVER_PROBE: &str = "10.99.0.1:5299";
const WIFI_IP: &str = "10.201.1.2";
const LTE_IP: &str = "10.201.2.2";
/// What the silence path logs; a test that sees it did not test the route watch.
const SILENCE: &str = "no acknowledgement from the gateway";

/// Waits for the session's second version, then checks it stopped there and the reason logged.
fn assert_one_reattach_because(
    f: &GatewayFixture,
    session: u64,
    client_log: impl Fn() -> String,
    reason: &str,
) {
    eventually("the client's reattach", || {
        f.audit_versions(session).len() >= 2
    });
    assert_eq!(
        f.audit_versions(session),
        vec![1, 2],
        "one reattach, same session"
    );
    let log = client_log();
    assert!(
        log.contains(reason),
        "the client did not log {reason:?}; its log:\n{log}"
    );
    assert!(
        !log.contains(SILENCE),
        "the reattach came from the silence path, not the route watch:\n{log}"
    );
}

/// Connects to a closed port at the gateway's tunnel address from `client`: a refusal is a reset
/// that came back through the tunnel.
fn assert_tunnel_carries_traffic(client: &Netns, client_log: &str) {
    let stream = client.run(|| {
        TcpStream::connect_timeout(&SERVER_PROBE.parse().expect("addr"), Duration::from_secs(5))
    });
    assert!(
        stream.is_err_and(|e| e.kind() == std::io::ErrorKind::ConnectionRefused),
        "the tunnel carries traffic again (a closed port answers with a reset); client log:\n{client_log}"
    );
}

#[test]
fn without_an_uplink_the_client_follows_the_routing_table_when_the_wifi_route_goes() {
    let t = Tunnel::up_with(TunnelOptions {
        pin_wifi: false,
        ..TunnelOptions::default()
    });
    t.client.ip(&[
        "route",
        "del",
        "10.200.0.0/24",
        "via",
        "10.201.1.1",
        "dev",
        &t.wifi,
        "metric",
        "1",
    ]);
    let reason = format!(
        "route to the gateway changed: {WIFI_IP} via {} -> {LTE_IP} via {}",
        t.wifi, t.lte
    );
    assert_one_reattach_because(&t.f, t.session, || t.client_log(), &reason);
    assert_tunnel_carries_traffic(&t.client, &t.client_log());
}

#[test]
fn a_pinned_uplink_that_loses_its_address_gives_way_to_the_routing_table() {
    let t = Tunnel::up();
    t.client
        .ip(&["addr", "del", &format!("{WIFI_IP}/24"), "dev", &t.wifi]);
    let reason = format!(
        "uplink {} lost address {WIFI_IP}; following the routing table: {LTE_IP} via {}",
        t.wifi, t.lte
    );
    assert_one_reattach_because(&t.f, t.session, || t.client_log(), &reason);
    assert_tunnel_carries_traffic(&t.client, &t.client_log());
}
