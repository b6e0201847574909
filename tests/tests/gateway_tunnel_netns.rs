//! The gateway's data path through its TUN device, driven by a test client that speaks the wire
//! protocol and carries hand-built ICMP echo requests: the gateway's kernel answers them through
//! `jvpn0`, and the answers come back sealed to the session's current transport, also after a
//! jump; a KEEPALIVE is answered in kind. A packet whose inner source is not the client's own is
//! dropped and reported (cryptokey routing).
//!
//! ```text
//!  +------------- gateway ns --------------+        +------------ client ns -------------+
//!  |  jvpn gateway (nsenter --net)          |        |  test client sockets:             |
//!  |  jvpn0 (TUN) 10.99.0.1/24              |        |   "wifi" :41001, "lte" :41002     |
//!  |    UDP [::]:51900, redb store in tmp   |        |   inner source 10.99.0.2          |
//!  |  <gw> 10.200.0.1/24                    |        |                                   |
//!  |       XDP jvpn_xdp (driver) <==========|==veth==|==> <cl> 10.200.0.2                |
//!  +----------------------------------------+        +-----------------------------------+
//! ```

use jvpn_common::abi::DEFAULT_PORT;
use jvpn_common::MessageType;
use jvpn_tests::gateway::GatewayFixture;
use jvpn_tests::packet::echo_request;
use jvpn_tests::require_root;
use jvpn_tests::topology::Family;
use jvpn_tests::wire_client::{assert_silent, Reply, WireClient};
use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::time::Duration;

/// The gateway's and the client's tunnel addresses in [`GatewayFixture`]'s config.
const GATEWAY_TUNNEL: Ipv4Addr = Ipv4Addr::new(10, 99, 0, 1);
const CLIENT_TUNNEL: Ipv4Addr = Ipv4Addr::new(10, 99, 0, 2);
const ICMP_ECHO_REPLY: u8 = 0;

/// Asserts `reply` is sealed DATA at `version` carrying the echo reply to request `id`.
fn assert_echo_reply(reply: &Reply, version: u64, id: u16, payload: &[u8]) {
    assert_eq!(reply.kind(), MessageType::Data, "{reply:?}");
    assert_eq!(reply.header.state_version.get(), version, "{reply:?}");
    let p = &reply.body;
    assert_eq!(p[0] >> 4, 4, "an IPv4 packet: {p:?}");
    assert_eq!(
        &p[12..16],
        &GATEWAY_TUNNEL.octets(),
        "from the gateway's tunnel address"
    );
    assert_eq!(
        &p[16..20],
        &CLIENT_TUNNEL.octets(),
        "to the client's tunnel address"
    );
    let icmp = &p[usize::from(p[0] & 0x0f) * 4..];
    assert_eq!(icmp[0], ICMP_ECHO_REPLY, "an echo reply: {icmp:?}");
    assert_eq!(&icmp[4..6], &id.to_be_bytes(), "to our request");
    assert_eq!(&icmp[8..], payload, "with our payload");
}

/// Receives one gateway message on `socket`, or panics with the gateway's log.
fn receive(f: &GatewayFixture, c: &WireClient, socket: &UdpSocket, what: &str) -> Reply {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| c.receive(socket, what))) {
        Ok(reply) => reply,
        Err(_) => {
            let link = f.hosts.gateway.ip(&["-s", "link", "show", "dev", "jvpn0"]);
            panic!(
                "no {what}; the gateway's TUN device:\n{}\nits stats:\n{}\nits log:\n{}",
                String::from_utf8_lossy(&link.stdout),
                String::from_utf8_lossy(&f.cli(&["stats"]).stdout),
                f.log()
            )
        }
    }
}

fn client_socket(f: &GatewayFixture, port: u16) -> UdpSocket {
    jvpn_tests::probe::client_socket(f, Family::V4, port)
}

#[test]
fn echo_through_the_tunnel_follows_the_jump_and_refuses_foreign_sources() {
    require_root();
    let mut f = GatewayFixture::new();
    f.start(&[]);
    let gw = SocketAddr::new(Family::V4.gateway(), DEFAULT_PORT);
    let wifi = client_socket(&f, 41001);
    let lte = client_socket(&f, 41002);
    let mut c = WireClient::handshake(&f.client, &wifi, gw);

    let ping = echo_request(CLIENT_TUNNEL, GATEWAY_TUNNEL, 7, b"over wifi");
    wifi.send_to(&c.data(&ping), gw).expect("send DATA");
    let reply = receive(&f, &c, &wifi, "the echo reply over wifi");
    assert_echo_reply(&reply, 1, 7, b"over wifi");

    assert_eq!(c.jump(&lte), 2, "the jump commits version 2");
    let ping = echo_request(CLIENT_TUNNEL, GATEWAY_TUNNEL, 8, b"over lte");
    lte.send_to(&c.data(&ping), gw).expect("send DATA");
    let reply = receive(&f, &c, &lte, "the echo reply over lte");
    assert_echo_reply(&reply, 2, 8, b"over lte");

    let keepalive = c.seal(MessageType::Keepalive, c.acked, &[]);
    lte.send_to(&keepalive, gw).expect("send KEEPALIVE");
    let answer = receive(&f, &c, &lte, "the KEEPALIVE answer");
    assert_eq!(answer.kind(), MessageType::Keepalive, "{answer:?}");
    assert_eq!(
        answer.header.state_version.get(),
        2,
        "at the current version"
    );

    let spoofed = echo_request(Ipv4Addr::new(10, 99, 0, 77), GATEWAY_TUNNEL, 9, b"spoofed");
    lte.send_to(&c.data(&spoofed), gw).expect("send DATA");
    assert_silent(&lte, Duration::from_millis(500), "a foreign inner source");
    let id = format!("{:016x}", c.id);
    let refused = f.events().iter().any(|e| {
        e["kind"] == "SECURITY_EVENT"
            && e["session"] == id.as_str()
            && e["detail"]
                .as_str()
                .is_some_and(|d| d.contains("10.99.0.77"))
    });
    assert!(
        refused,
        "a SECURITY_EVENT names the foreign source: {:?}",
        f.events()
    );

    // A DATA packet whose header (and so its tag) is intact but whose sealed body was altered:
    // the XDP program accepts it, the controller's AEAD refuses it, and nothing reaches the TUN.
    let before = f.cli_json(&["stats"]);
    let mut forged = c.data(&echo_request(CLIENT_TUNNEL, GATEWAY_TUNNEL, 10, b"forged"));
    *forged.last_mut().expect("a sealed body") ^= 0x01;
    lte.send_to(&forged, gw).expect("send DATA");
    assert_silent(
        &lte,
        Duration::from_millis(500),
        "a body that fails its AEAD",
    );
    let stats = f.cli_json(&["stats"]);
    let counter = |v: &serde_json::Value, path: &[&str]| {
        path.iter()
            .fold(v, |v, key| &v[key])
            .as_u64()
            .unwrap_or_else(|| panic!("stats has no {path:?}: {v}"))
    };
    assert_eq!(
        counter(&stats, &["controller", "seal_failures"]),
        counter(&before, &["controller", "seal_failures"]) + 1,
        "the AEAD failure is counted: {stats}"
    );
    assert!(
        f.events().iter().any(|e| e["kind"] == "SECURITY_EVENT"
            && e["source"] == "controller"
            && e["session"] == id.as_str()
            && e["nonce"] == forged_nonce(&forged)),
        "the AEAD failure is reported: {:?}",
        f.events()
    );
    // The tunnel's own counters: two echo requests written to the TUN device, two replies out
    // of it, the spoofed packet refused, the forged one never written.
    assert_eq!(
        counter(&stats, &["tunnel", "upstream", "packets"]),
        2,
        "{stats}"
    );
    assert_eq!(
        counter(&stats, &["tunnel", "downstream", "packets"]),
        2,
        "{stats}"
    );
    assert_eq!(
        counter(&stats, &["tunnel", "upstream_foreign_source"]),
        1,
        "{stats}"
    );
    assert!(
        counter(&stats, &["tunnel", "upstream", "bytes"]) >= 2 * 28,
        "{stats}"
    );

    assert_eq!(
        f.audit_versions(c.id),
        vec![1, 2],
        "the tunnel never changes the version"
    );
}

/// The nonce of a jvpn datagram, as the event stream spells it.
fn forged_nonce(datagram: &[u8]) -> u64 {
    jvpn_common::WireHeader::parse(datagram)
        .expect("a jvpn header")
        .nonce
        .get()
}
