//! A spoofed HELLO flood against the real `jvpn gateway` (issue 8, defect 4): HELLOs with a valid
//! mac1 (the attacker knows the gateway's public key) from hundreds of spoofed sources, sent from
//! a raw socket as fast as it goes. While it runs, an established session keeps its KEEPALIVE
//! round trips, and a new client (the real client code, `ClientConnection::connect`, cookie
//! exchange included) completes its handshake. The flood is refused in XDP (per-source buckets,
//! the global budget, `COOKIE_REQUIRED`) and adds no session.
//!
//! ```text
//!  gateway ns: jvpn gateway, <gw> 10.200.0.1 (XDP, :51900)
//!       || veth
//!  client ns:  <c> 10.200.0.2: the established session (wire client), the new client,
//!              and the flood generator (raw socket, sources 10.200.0.10-249 spoofed)
//! ```

use jvpn_common::abi::DEFAULT_PORT;
use jvpn_common::siphash::SipKey;
use jvpn_common::{MessageType, RejectReason};
use jvpn_tests::attacker::Noise;
use jvpn_tests::probe::{client_socket, drops, gateway, started};
use jvpn_tests::spoof::{fresh_hello, ipv4_udp, RawSender, StopOnDrop};
use jvpn_tests::topology::{Family, CLIENT_V4, GATEWAY_V4};
use jvpn_tests::wire_client::WireClient;
use jvpn_user::client_session::{ClientConnection, ConnectOptions, LocalBinding};
use jvpn_user::crypto::cookie::mac1_sip_key;
use jvpn_user::crypto::handshake::tai64n;
use jvpn_user::crypto::ClientHandshake;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant, SystemTime};

/// Spoofed sources: the client's /24 (routable back onto the link, as an on-link spoofer's are).
const SPOOFED: std::ops::Range<u8> = 10..250;
/// The new client's handshake must complete within this, flood or not.
const HANDSHAKE_PATIENCE: Duration = Duration::from_secs(5);

/// Sends spoofed HELLOs with a valid mac1 from a raw socket until `done`; returns how many.
fn flood(hello_template: &[u8], key: SipKey, done: &AtomicBool) -> u64 {
    let mut noise = Noise::new(8);
    let gateway = SocketAddrV4::new(GATEWAY_V4, DEFAULT_PORT);
    let packets: Vec<Vec<u8>> = (0..2048)
        .map(|i| {
            let source = Ipv4Addr::new(10, 200, 0, SPOOFED.start + (i % SPOOFED.len()) as u8);
            let hello = fresh_hello(hello_template, &mut noise, key);
            ipv4_udp(SocketAddrV4::new(source, 1024 + i as u16), gateway, &hello)
        })
        .collect();
    RawSender::open().flood(&packets, 0, done)
}

#[test]
fn a_spoofed_hello_flood_stops_neither_the_tunnel_nor_a_new_handshake() {
    let f = started(&[]);
    let to = gateway(Family::V4);
    // The established session, before the flood.
    let established_socket = client_socket(&f, Family::V4, 40_000);
    let mut established = WireClient::handshake(&f.client, &established_socket, to);
    let sessions_before = f
        .cli_json(&["sessions", "list"])
        .as_array()
        .map_or(0, Vec::len);
    let (_, template) = ClientHandshake::start(&f.client, tai64n(SystemTime::now())).unwrap();
    let key = mac1_sip_key(&f.gateway_public_key);
    let refused = [
        RejectReason::HandshakeRate,
        RejectReason::CookieRequired,
        RejectReason::HandshakeBusy,
    ];
    let before: Vec<u64> = refused.iter().map(|r| drops(&f, *r)).collect();

    let done = AtomicBool::new(false);
    let (sent, handshake_took, keepalives) = std::thread::scope(|scope| {
        let flooder = scope.spawn(|| f.hosts.client.run(|| flood(&template, key, &done)));
        let stop = StopOnDrop(&done);
        // Let the flood fill the buckets and the queue first.
        std::thread::sleep(Duration::from_millis(1500));
        let mut keepalives = 0;
        for _ in 0..5 {
            let keepalive = established.seal(MessageType::Keepalive, established.acked, &[]);
            established_socket.send_to(&keepalive, to).expect("send");
            let reply = established.receive(&established_socket, "KEEPALIVE during the flood");
            assert_eq!(reply.kind(), MessageType::Keepalive);
            keepalives += 1;
        }
        let identity = f.client.clone();
        let started_at = Instant::now();
        let connected = f.hosts.client.run(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a runtime");
            runtime.block_on(ClientConnection::connect(
                identity,
                to,
                LocalBinding::ip(CLIENT_V4.into()),
                ConnectOptions::default(),
            ))
        });
        let took = started_at.elapsed();
        drop(stop);
        let sent = flooder.join().expect("the flood");
        connected.unwrap_or_else(|e| panic!("the new client's handshake under the flood: {e}"));
        (sent, took, keepalives)
    });
    let refused_now: Vec<u64> = refused.iter().map(|r| drops(&f, *r)).collect();
    let stats = f.cli_json(&["stats"]);
    eprintln!(
        "flood: {sent} spoofed HELLOs; new handshake took {handshake_took:?}; {keepalives} \
         keepalive round trips; XDP refusals {:?} -> {refused_now:?}; controller {}",
        before, stats["controller"]
    );
    assert!(
        handshake_took < HANDSHAKE_PATIENCE,
        "the new handshake took {handshake_took:?}"
    );
    let refused_by_xdp: u64 = refused_now.iter().sum::<u64>() - before.iter().sum::<u64>();
    assert!(
        refused_by_xdp > sent / 2,
        "XDP refused only {refused_by_xdp} of {sent} spoofed HELLOs"
    );
    let sessions_after = f
        .cli_json(&["sessions", "list"])
        .as_array()
        .map_or(0, Vec::len);
    assert_eq!(
        sessions_after,
        sessions_before + 1,
        "the flood made no session; the new client made one"
    );
    // The established session still answers after the flood.
    let keepalive = established.seal(MessageType::Keepalive, established.acked, &[]);
    established_socket.send_to(&keepalive, to).expect("send");
    assert_eq!(
        established
            .receive(&established_socket, "KEEPALIVE after the flood")
            .kind(),
        MessageType::Keepalive
    );
}
