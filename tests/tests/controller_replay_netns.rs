//! The controller does not trust XDP blindly (issue 8, defect 3): with the XDP program detached,
//! replayed DATA, KEEPALIVE, REATTACH_REQUEST, PATH_RESPONSE and TERMINATE are refused by the
//! controller's own replay window, with an event and a counter, and change nothing; a replay from
//! the bound transport, if no shorter than a REJECT, is answered there with a sealed
//! REJECT(DUPLICATE_NONCE) (spec section 6.2), one from elsewhere with nothing; the window
//! survives a restart that adopts the pinned maps, and a restart that lost them leaves old
//! traffic stale. A jvpn datagram that arrives on an interface without the XDP program (a second
//! veth into the gateway namespace) does not reach the gateway at all.
//!
//! ```text
//!  +------------- gateway ns --------------+        +------------ client ns -------------+
//!  |  jvpn gateway (nsenter --net)          |        |  test client sockets:             |
//!  |  jvpn0 (TUN) 10.99.0.1/24              |        |   "wifi" :40001, "lte" :40002,    |
//!  |    UDP [::]:51900 bound to <gw>        |        |   "attacker" :40666               |
//!  |  <gw> 10.200.0.1/24                    |        |   inner source 10.99.0.2          |
//!  |       XDP jvpn_xdp, or detached <======|==veth==|==> <cl> 10.200.0.2                |
//!  |  <x>  10.210.0.1/24 (no XDP)  <========|==veth==|==> <y>  10.210.0.2                |
//!  +----------------------------------------+        |   "side" 10.210.0.2:40010         |
//!                                                    +-----------------------------------+
//! ```
//! The second veth (`<x>`/`<y>`) exists only in the last test, where a policy route sends what
//! the "side" socket sends to 10.200.0.1 by `<y>`, so it arrives on `<x>`.

use jvpn_common::abi::DEFAULT_PORT;
use jvpn_common::{RejectReason, WireHeader};
use jvpn_tests::capture::{inject, outgoing_udp_to, Capture};
use jvpn_tests::gateway::{jvpn_binary, GatewayFixture};
use jvpn_tests::netns::unique_name;
use jvpn_tests::packet::echo_request;
use jvpn_tests::probe::{client_socket, eventually, gateway, session_hex, started};
use jvpn_tests::require_root;
use jvpn_tests::topology::Family;
use jvpn_tests::tunnel::link;
use jvpn_tests::wire_client::{as_reject, assert_silent, hello, socket, WireClient};
use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::time::Duration;

const CLIENT_TUNNEL: Ipv4Addr = Ipv4Addr::new(10, 99, 0, 2);
/// An inner destination the gateway's kernel neither owns nor forwards to: a packet written to
/// the TUN device goes no further and draws no answer to confuse the sockets below.
const NOWHERE: Ipv4Addr = Ipv4Addr::new(10, 99, 0, 77);
/// How long a reply that must not come is waited for.
const QUIET: Duration = Duration::from_millis(1500);

/// An inner packet the client may send (its own tunnel source).
fn inner(id: u16) -> Vec<u8> {
    echo_request(CLIENT_TUNNEL, NOWHERE, id, b"replay me")
}

/// Detaches the XDP program from the gateway's interface while the gateway keeps running, as
/// an operator (or a crash of the link) might: the controller is on its own.
fn detach_xdp(f: &GatewayFixture) {
    let out = std::process::Command::new(jvpn_binary())
        .args(["detach", "--iface", &f.hosts.gateway_if])
        .output()
        .expect("run jvpn detach");
    assert!(
        out.status.success(),
        "jvpn detach: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        !f.hosts.gateway_has_xdp(),
        "no XDP program left on the interface"
    );
}

/// DATA packets written to the gateway's TUN device, per `jvpn stats`.
fn upstream(f: &GatewayFixture) -> u64 {
    f.cli_json(&["stats"])["tunnel"]["upstream"]["packets"]
        .as_u64()
        .expect("tunnel.upstream.packets")
}

/// Messages the controller refused for `reason`, per `jvpn stats`.
fn controller_refusals(f: &GatewayFixture, reason: RejectReason) -> u64 {
    f.cli_json(&["stats"])["controller"]["rejects"]
        .as_array()
        .expect("controller.rejects")
        .iter()
        .find(|r| r["reason"] == reason.name())
        .map_or(0, |r| r["packets"].as_u64().expect("packets"))
}

/// Whether the controller reported refusing `datagram` of `session` for `reason`.
fn controller_refused(
    f: &GatewayFixture,
    session: u64,
    reason: RejectReason,
    datagram: &[u8],
) -> bool {
    let nonce = WireHeader::parse(datagram)
        .expect("a jvpn header")
        .nonce
        .get();
    f.events().iter().any(|e| {
        e["source"] == "controller"
            && e["session"] == session_hex(session)
            && e["reason"] == reason.name()
            && e["nonce"].as_u64() == Some(nonce)
    })
}

/// The next message on `socket` is a REJECT(DUPLICATE_NONCE) of `replayed` at `version`.
fn assert_duplicate_reject(c: &WireClient, socket: &UdpSocket, replayed: &[u8], version: u64) {
    let reply = c.receive(socket, "the REJECT of a replay");
    let reject = as_reject(&reply).unwrap_or_else(|| panic!("a REJECT, got {reply:?}"));
    let nonce = WireHeader::parse(replayed).expect("header").nonce.get();
    assert_eq!(
        (
            reject.reason(),
            reject.gateway_version.get(),
            reject.rejected_nonce.get()
        ),
        (Some(RejectReason::DuplicateNonce), version, nonce)
    );
}

/// Sends `datagram` again from `from` and waits for the controller's refusal of it.
fn replay(
    f: &GatewayFixture,
    c: &WireClient,
    from: &UdpSocket,
    datagram: &[u8],
    reason: RejectReason,
) {
    from.send_to(datagram, c.gateway).expect("replay");
    eventually(&format!("the controller's {} event", reason.name()), || {
        controller_refused(f, c.id, reason, datagram)
    });
}

/// With XDP detached, every replayed client message stops at the controller's window: DATA
/// does not reach the TUN device, KEEPALIVE is not answered, REATTACH_REQUEST draws no
/// challenge, PATH_RESPONSE no second commit, TERMINATE no version; each is a DUPLICATE_NONCE
/// event and counted. The DATA and PATH_RESPONSE replays from the bound transport get a
/// REJECT(DUPLICATE_NONCE) there; the KEEPALIVE (shorter than a REJECT) and the replay from the
/// attacker's address get nothing. Fresh messages still pass.
#[test]
fn with_xdp_detached_the_controller_refuses_every_replayed_message() {
    let f = started(&[]);
    let gw = gateway(Family::V4);
    let wifi = client_socket(&f, Family::V4, 40001);
    let lte = client_socket(&f, Family::V4, 40002);
    let attacker = client_socket(&f, Family::V4, 40666);
    let mut c = WireClient::handshake(&f.client, &wifi, gw);
    detach_xdp(&f);

    // DATA, recorded on the wire and injected again.
    let on_wire = Capture::start(&f.hosts.client, &f.hosts.client_if, |fr| {
        outgoing_udp_to(fr, DEFAULT_PORT)
    });
    let data = c.data(&inner(1));
    wifi.send_to(&data, gw).expect("send DATA");
    eventually("the DATA written to the TUN device", || upstream(&f) == 1);
    eventually("the DATA recorded", || !on_wire.frames().is_empty());
    let recorded = on_wire.stop();
    assert_eq!(recorded.len(), 1, "one datagram on the wire");
    inject(&f.hosts.client, &f.hosts.client_if, &recorded);
    eventually("the replayed DATA refused", || {
        controller_refused(&f, c.id, RejectReason::DuplicateNonce, &data)
    });
    assert_duplicate_reject(&c, &wifi, &data, 1);
    wifi.send_to(&c.data(&inner(2)), gw).expect("send DATA");
    eventually("fresh DATA after the replay written", || upstream(&f) >= 2);
    assert_eq!(
        upstream(&f),
        2,
        "the replayed DATA never reached the TUN device"
    );

    // KEEPALIVE: answered once, not twice.
    let keepalive = c.seal(jvpn_common::MessageType::Keepalive, c.acked, &[]);
    wifi.send_to(&keepalive, gw).expect("send KEEPALIVE");
    let answer = c.receive(&wifi, "the KEEPALIVE answer");
    assert_eq!(answer.kind(), jvpn_common::MessageType::Keepalive);
    replay(&f, &c, &wifi, &keepalive, RejectReason::DuplicateNonce);
    assert_silent(&wifi, QUIET, "a replayed KEEPALIVE");

    // REATTACH_REQUEST: the replay from the attacker's address draws no challenge.
    let request = c.reattach_request(1, 1);
    lte.send_to(&request, gw).expect("send REATTACH_REQUEST");
    let challenge = c.receive(&lte, "PATH_CHALLENGE");
    replay(&f, &c, &attacker, &request, RejectReason::DuplicateNonce);
    assert_silent(&attacker, QUIET, "a replayed REATTACH_REQUEST");

    // PATH_RESPONSE: the jump commits once; the replay is refused before the challenge lookup.
    let response = c.path_response(&challenge);
    lte.send_to(&response, gw).expect("send PATH_RESPONSE");
    let _ack = c.receive(&lte, "REATTACH_ACK");
    c.acked = 2;
    replay(&f, &c, &lte, &response, RejectReason::DuplicateNonce);
    assert_duplicate_reject(&c, &lte, &response, 2);
    assert_silent(&lte, QUIET, "a replayed PATH_RESPONSE, after its REJECT");
    assert_eq!(f.audit_versions(c.id), vec![1, 2]);

    // TERMINATE: one version, however often it arrives.
    let terminate = c.terminate();
    lte.send_to(&terminate, gw).expect("send TERMINATE");
    eventually("the termination committed", || {
        f.audit_versions(c.id) == vec![1, 2, 3]
    });
    replay(&f, &c, &lte, &terminate, RejectReason::DuplicateNonce);
    assert_eq!(
        f.audit_versions(c.id),
        vec![1, 2, 3],
        "the replays moved nothing"
    );
    assert_eq!(
        controller_refusals(&f, RejectReason::DuplicateNonce),
        5,
        "every replay counted: DATA, KEEPALIVE, REATTACH_REQUEST, PATH_RESPONSE, TERMINATE"
    );
}

/// A restart that adopts the pinned maps starts the controller's window above the highest nonce
/// XDP accepted: DATA captured before the restart stays refused after it, XDP or not.
#[test]
fn a_restart_that_adopts_the_maps_still_refuses_traffic_captured_before_it() {
    let mut f = started(&[]);
    let gw = gateway(Family::V4);
    let wifi = client_socket(&f, Family::V4, 40001);
    let mut c = WireClient::handshake(&f.client, &wifi, gw);
    let captured: Vec<Vec<u8>> = (1..=3).map(|i| c.data(&inner(i))).collect();
    for datagram in &captured {
        wifi.send_to(datagram, gw).expect("send DATA");
    }
    eventually("the DATA written to the TUN device", || upstream(&f) == 3);

    f.kill();
    f.start(&[]);
    detach_xdp(&f);
    for datagram in &captured {
        replay(&f, &c, &wifi, datagram, RejectReason::NonceTooOld);
    }
    wifi.send_to(&c.data(&inner(4)), gw).expect("send DATA");
    eventually("fresh DATA after the restart written", || upstream(&f) >= 1);
    assert_eq!(upstream(&f), 1, "no captured DATA reached the TUN device");
    assert_eq!(f.audit_versions(c.id), vec![1]);
}

/// A restart that lost the maps (a reboot) leaves no replay window anywhere, but it moved every
/// session to RECOVERING (+1): old DATA claims a version that is no longer current, and is
/// refused as NOT_ATTACHED, then, after the client's reattach, as STALE_VERSION.
#[test]
fn a_restart_that_lost_the_maps_leaves_traffic_captured_before_it_stale() {
    let mut f = started(&[]);
    let gw = gateway(Family::V4);
    let wifi = client_socket(&f, Family::V4, 40001);
    let mut c = WireClient::handshake(&f.client, &wifi, gw);
    let old = c.data(&inner(1));
    wifi.send_to(&old, gw).expect("send DATA");
    eventually("the DATA written to the TUN device", || upstream(&f) == 1);

    f.kill();
    detach_xdp(&f);
    // The client crosses the gap by its own reattach here, so the gateway's recovery challenge
    // (gateway_recovery_netns) stays off.
    f.extra_args
        .extend(["--recovery-challenges", "0"].map(String::from));
    f.start(&[]);
    assert_eq!(
        f.audit_versions(c.id),
        vec![1, 2],
        "RECOVERING at version 2"
    );
    detach_xdp(&f);
    replay(&f, &c, &wifi, &old, RejectReason::NotAttached);
    assert_eq!(c.jump(&wifi), 3, "the client reattaches across the gap");
    let old_again = c.seal(jvpn_common::MessageType::Data, 1, &inner(2));
    replay(&f, &c, &wifi, &old_again, RejectReason::StaleVersion);
    wifi.send_to(&c.data(&inner(3)), gw).expect("send DATA");
    eventually("fresh DATA written", || upstream(&f) >= 1);
    assert_eq!(
        upstream(&f),
        1,
        "only the fresh DATA reached the TUN device"
    );
    assert_eq!(f.audit_versions(c.id), vec![1, 2, 3]);
}

/// The gateway's socket is bound to the XDP interface: a HELLO to the gateway's address that
/// comes in on another interface of its namespace (which the kernel would otherwise deliver, to
/// any local address) makes no session and draws no WELCOME.
#[test]
fn a_datagram_arriving_on_an_interface_without_xdp_is_not_accepted() {
    require_root();
    let mut f = GatewayFixture::new();
    let (x, y) = (unique_name("X"), unique_name("Y"));
    link(
        &f.hosts.gateway,
        &x,
        "10.210.0.1/24",
        &f.hosts.client,
        &y,
        "10.210.0.2/24",
    );
    // Only what the side socket sends (source 10.210.0.2) goes to the gateway's address by <y>.
    f.hosts.client.ip(&[
        "route",
        "add",
        "10.200.0.1/32",
        "via",
        "10.210.0.1",
        "dev",
        &y,
        "table",
        "100",
    ]);
    f.hosts
        .client
        .ip(&["rule", "add", "from", "10.210.0.2", "table", "100"]);
    f.start(&[]);
    let gw = gateway(Family::V4);

    let side = f
        .hosts
        .client
        .run(|| socket(SocketAddr::from(([10, 210, 0, 2], 40010))));
    side.send_to(&hello(&f.client), gw).expect("send HELLO");
    assert_silent(
        &side,
        Duration::from_secs(3),
        "a HELLO through the interface without XDP",
    );
    let sessions = f.cli_json(&["sessions", "list"]);
    assert_eq!(
        sessions.as_array().expect("list").len(),
        0,
        "no session: {sessions}"
    );

    // The same HELLO through the XDP interface is welcome: the gateway was listening.
    let wifi = client_socket(&f, Family::V4, 40001);
    let c = WireClient::handshake(&f.client, &wifi, gw);
    assert_eq!(f.audit_versions(c.id), vec![1]);
}
