//! The Jumping VPN end to end: the real `jvpn gateway` (XDP + TUN) and the real `jvpn client`
//! (TUN) carry a TCP transfer of a known payload while the client jumps between its two uplinks
//! with `jvpn client jump`. The bytes arrive intact, the session id never changes, and its audit
//! reads version 1, then +1 per jump. The topology is [`jvpn_tests::tunnel`]'s.

use jvpn_tests::tunnel::{payload, Tunnel};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::{Duration, Instant};

const PAYLOAD_LEN: usize = 24 << 20;
const JUMPS: u64 = 6;
const SERVER: &str = "10.99.0.1:5201";
/// A port nobody listens on: a reset proves the round trip through the tunnel.
const SERVER_PROBE: &str = "10.99.0.1:5299";

#[test]
fn a_tcp_transfer_survives_jumps_between_uplinks() {
    let t = Tunnel::up();
    let (f, client, wifi, lte) = (&t.f, &t.client, &t.wifi, &t.lte);

    let listener = f
        .hosts
        .gateway
        .run(|| TcpListener::bind(SERVER).expect("bind the TCP server"));
    let expected = payload(PAYLOAD_LEN);
    let receiver = std::thread::spawn(move || {
        let (mut stream, _) = listener.accept().expect("accept");
        let mut received = Vec::with_capacity(PAYLOAD_LEN);
        stream
            .read_to_end(&mut received)
            .expect("read the transfer");
        received
    });
    let data = expected.clone();
    let sender = std::thread::spawn({
        let path = client.path();
        move || {
            jvpn_tests::netns::enter(&path);
            let addr: SocketAddr = SERVER.parse().expect("addr");
            let mut stream =
                TcpStream::connect_timeout(&addr, Duration::from_secs(10)).expect("connect");
            for chunk in data.chunks(64 << 10) {
                stream.write_all(chunk).expect("send through the tunnel");
                std::thread::sleep(Duration::from_millis(2));
            }
        }
    });

    for jump in 0..JUMPS {
        std::thread::sleep(Duration::from_millis(300));
        let uplink = if jump % 2 == 0 { lte } else { wifi };
        assert_eq!(t.jump(uplink), jump + 2, "jump {jump}");
    }
    sender.join().expect("the sender");
    let received = receiver.join().expect("the receiver");
    assert!(
        received == expected,
        "the transfer arrived altered ({} of {PAYLOAD_LEN} bytes)",
        received.len()
    );

    let versions: Vec<u64> = f.audit_versions(t.session);
    assert_eq!(
        versions,
        (1..=JUMPS + 1).collect::<Vec<_>>(),
        "version 1, then +1 per jump"
    );
    let sessions = f.cli_json(&["sessions", "list"]);
    assert_eq!(
        sessions.as_array().expect("a list").len(),
        1,
        "one session, never a new handshake"
    );
}

#[test]
fn the_client_reattaches_by_itself_when_its_uplink_goes_silent() {
    let t = Tunnel::up();
    // The gateway's answers to wifi stop arriving: the client hears nothing for three keepalive
    // intervals (5 s in the fixture), tries wifi, and then whatever route is left (lte).
    t.client.ip(&["link", "set", &t.wifi, "down"]);
    let deadline = Instant::now() + Duration::from_secs(40);
    while t.f.audit_versions(t.session).len() < 2 {
        assert!(
            Instant::now() < deadline,
            "no reattach after the uplink went silent; client log:\n{}",
            t.client_log()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(
        t.f.audit_versions(t.session),
        vec![1, 2],
        "one reattach, same session"
    );
    let stream = t.client.run(|| {
        TcpStream::connect_timeout(&SERVER_PROBE.parse().expect("addr"), Duration::from_secs(5))
    });
    assert!(
        stream.is_err_and(|e| e.kind() == std::io::ErrorKind::ConnectionRefused),
        "the tunnel carries traffic again (a closed port answers with a reset)"
    );
}
