//! The capture helper itself: a datagram recorded on one end of a veth is parsed correctly, and
//! injecting the recorded frame delivers the same datagram to the other end a second time.

use jvpn_tests::capture::{inject, outgoing_udp_to, Capture};
use jvpn_tests::probe::eventually;
use jvpn_tests::require_root;
use jvpn_tests::topology::{Family, TwoHosts};
use std::net::{SocketAddr, UdpSocket};
use std::time::Duration;

#[test]
fn a_recorded_datagram_is_parsed_and_delivered_again_when_injected() {
    require_root();
    for family in [Family::V4, Family::V6] {
        let hosts = TwoHosts::new();
        let receiver_address = SocketAddr::new(family.gateway(), 4444);
        let receiver = hosts
            .gateway
            .run(|| UdpSocket::bind(receiver_address).expect("bind the receiver"));
        receiver
            .set_read_timeout(Some(Duration::from_secs(5)))
            .expect("timeout");
        let capture = Capture::start(&hosts.client, &hosts.client_if, |f| {
            outgoing_udp_to(f, 4444)
        });
        let sender = hosts.client.run(|| {
            let s = UdpSocket::bind(SocketAddr::new(family.client(), 0)).expect("bind");
            s.send_to(b"recorded", receiver_address).expect("send");
            s
        });
        let mut buf = [0u8; 64];
        let (n, from) = receiver.recv_from(&mut buf).expect("the original");
        assert_eq!(&buf[..n], b"recorded");
        eventually("the capture to record the datagram", || {
            !capture.frames().is_empty()
        });
        let frames = capture.stop();
        assert_eq!(frames.len(), 1, "{family:?}: exactly the one datagram");
        let udp = frames[0].udp().expect("a UDP datagram");
        assert_eq!(udp.source, sender.local_addr().expect("addr"));
        assert_eq!(udp.source, from);
        assert_eq!(udp.destination, receiver_address);
        assert_eq!(udp.payload, b"recorded");

        inject(&hosts.client, &hosts.client_if, &frames);
        let (n, again_from) = receiver.recv_from(&mut buf).expect("the injected copy");
        assert_eq!((&buf[..n], again_from), (&b"recorded"[..], from));
    }
}
