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
use jvpn_common::hello::HelloMessage;
use jvpn_common::{MessageType, RejectReason};
use jvpn_tests::attacker::Noise;
use jvpn_tests::probe::{client_socket, drops, gateway, started};
use jvpn_tests::topology::{Family, CLIENT_V4, GATEWAY_V4};
use jvpn_tests::wire_client::WireClient;
use jvpn_user::client_session::{ClientConnection, ConnectOptions, LocalBinding};
use jvpn_user::crypto::cookie::mac1_sip_key;
use jvpn_user::crypto::handshake::tai64n;
use jvpn_user::crypto::ClientHandshake;
use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};

/// Spoofed sources: the client's /24 (routable back onto the link, as an on-link spoofer's are).
const SPOOFED: std::ops::Range<u8> = 10..250;
/// The new client's handshake must complete within this, flood or not.
const HANDSHAKE_PATIENCE: Duration = Duration::from_secs(5);

/// IPv4 + UDP + a HELLO from `source` (the kernel fills the IP checksum; UDP checksum 0 = none).
fn spoofed_datagram(source: Ipv4Addr, port: u16, hello: &[u8]) -> Vec<u8> {
    let udp_len = 8 + hello.len();
    let mut p = vec![0x45, 0, 0, 0, 0, 0, 0x40, 0, 64, 17, 0, 0];
    p[2..4].copy_from_slice(&((20 + udp_len) as u16).to_be_bytes());
    p.extend_from_slice(&source.octets());
    p.extend_from_slice(&GATEWAY_V4.octets());
    p.extend_from_slice(&port.to_be_bytes());
    p.extend_from_slice(&DEFAULT_PORT.to_be_bytes());
    p.extend_from_slice(&(udp_len as u16).to_be_bytes());
    p.extend_from_slice(&[0, 0]);
    p.extend_from_slice(hello);
    p
}

/// Sends spoofed HELLOs with a valid mac1 from a raw socket until `done`; returns how many.
fn flood(hello_template: &[u8], key: jvpn_common::siphash::SipKey, done: &AtomicBool) -> u64 {
    // SAFETY: plain socket(2); the result is checked.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_RAW, libc::IPPROTO_RAW) };
    assert!(fd >= 0, "a raw socket: {}", std::io::Error::last_os_error());
    let mut noise = Noise::new(8);
    let frames: Vec<Vec<u8>> = (0..2048)
        .map(|i| {
            let mut hello = HelloMessage::from_bytes(hello_template).expect("a HELLO");
            let bytes = noise.bytes(hello.noise.len());
            hello.noise.copy_from_slice(&bytes);
            hello.seal_mac1(key);
            let source = Ipv4Addr::new(10, 200, 0, SPOOFED.start + (i % SPOOFED.len()) as u8);
            spoofed_datagram(source, 1024 + i as u16, hello.as_bytes())
        })
        .collect();
    let to = libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: 0,
        sin_addr: libc::in_addr {
            s_addr: u32::from_ne_bytes(GATEWAY_V4.octets()),
        },
        sin_zero: [0; 8],
    };
    let sent = AtomicU64::new(0);
    while !done.load(Ordering::Relaxed) {
        for frame in &frames {
            // SAFETY: `frame` and `to` outlive the call; the lengths are theirs.
            let n = unsafe {
                libc::sendto(
                    fd,
                    frame.as_ptr().cast(),
                    frame.len(),
                    0,
                    (&to as *const libc::sockaddr_in).cast(),
                    std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
                )
            };
            if n > 0 {
                sent.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
    // SAFETY: closing the socket opened above, once.
    unsafe { libc::close(fd) };
    sent.into_inner()
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
        done.store(true, Ordering::Relaxed);
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
