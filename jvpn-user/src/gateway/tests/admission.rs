//! Handshake admission, the version and transport checks on DATA, the controller's replay
//! refusal and cryptokey routing, each case through the real handler.

use super::*;
use crate::crypto::ClientIdentity;
use jvpn_common::{RejectReason, SessionState};

/// HELLO admission (docs/protocol.md, "Handshake"): only a configured client with a valid mac1
/// and a fresh timestamp gets a session; every refusal is counted under its reason and leaves
/// the map as it was.
#[test]
fn only_a_fresh_hello_of_a_configured_client_is_admitted() {
    let h = Harness::new();
    let (_, genuine) = Harness::hello(&h.identity);
    let stranger = ClientIdentity {
        private_key: PrivateKey::generate(),
        ..h.identity.clone()
    };
    let (_, unknown) = Harness::hello(&stranger);
    let mut bad_mac = Harness::hello(&h.identity).1;
    let last = bad_mac.len() - 1;
    bad_mac[last - 20] ^= 1;
    let cases: [(&str, &[u8], Option<RejectReason>, usize); 5] = [
        ("genuine", &genuine, None, 1),
        (
            "the same HELLO again",
            &genuine,
            Some(RejectReason::HandshakeReplay),
            1,
        ),
        (
            "unknown client",
            &unknown,
            Some(RejectReason::UnknownClient),
            1,
        ),
        ("mac1 broken", &bad_mac, Some(RejectReason::BadMac), 1),
        (
            "truncated",
            &genuine[..genuine.len() - 1],
            Some(RejectReason::Malformed),
            1,
        ),
    ];
    for (case, hello, refusal, sessions) in cases {
        let before = refusal.map(|r| h.controller.counters.rejects(r));
        let answer = sent_to(&h.step(hello, h.client_addr, T0), h.client_addr).pop();
        match refusal {
            None => {
                let welcome = answer.unwrap_or_else(|| panic!("{case}: no WELCOME"));
                let header = WireHeader::parse(&welcome).expect("header");
                assert_eq!(header.message_type(), Some(MessageType::Welcome), "{case}");
                let entry = h.entry(header.session_id.get()).expect("map entry");
                assert_eq!(entry.state_version, 1, "{case}");
                assert_eq!(entry.state, SessionState::Attached as u8, "{case}");
                assert_eq!(
                    header.hinted_slot(),
                    Some(entry.replay_slot),
                    "{case}: the WELCOME names the slot its commit wrote"
                );
            }
            Some(reason) => {
                assert!(answer.is_none(), "{case}: a refused HELLO gets no answer");
                let after = h.controller.counters.rejects(reason);
                assert_eq!(
                    after,
                    before.unwrap_or(0) + 1,
                    "{case}: counted as {reason:?}"
                );
            }
        }
        assert_eq!(h.map.lock().unwrap().len(), sessions, "{case}");
    }
}

/// DATA the XDP program passed is checked again here (spec sections 4, 6 and 10): the nonce once
/// (replay refusal), the version exactly (lower STALE_VERSION, higher VERSION_JUMP), the transport
/// bound. Only an exact match reaches the tunnel; nothing else changes the session.
#[test]
fn data_is_delivered_only_at_its_version_from_its_transport_once() {
    let h = Harness::new();
    let session = h.session();
    let id = session.welcome.session_id.get();
    let other: SocketAddr = "127.0.0.1:9".parse().expect("addr");
    let packet = ipv4_packet(CLIENT_V4, [10, 99, 0, 1]);
    let cases: [(&str, u64, u64, SocketAddr, Option<RejectReason>); 5] = [
        ("current", 1, 1, h.client_addr, None),
        (
            "replayed nonce",
            1,
            1,
            h.client_addr,
            Some(RejectReason::DuplicateNonce),
        ),
        (
            "lower version",
            0,
            2,
            h.client_addr,
            Some(RejectReason::StaleVersion),
        ),
        (
            "higher version",
            2,
            3,
            h.client_addr,
            Some(RejectReason::VersionJump),
        ),
        (
            "other transport",
            1,
            4,
            other,
            Some(RejectReason::TransportMismatch),
        ),
    ];
    for (case, version, nonce, from, refusal) in cases {
        let before = refusal.map(|r| h.controller.counters.rejects(r));
        let datagram = sealed(&session, MessageType::Data, version, nonce, &packet);
        let opened = tun_packets(&h.step(&datagram, from, T0 + 1)).pop();
        match refusal {
            None => assert_eq!(opened.as_deref(), Some(&packet[..]), "{case}"),
            Some(reason) => {
                assert_eq!(opened, None, "{case}");
                let after = h.controller.counters.rejects(reason);
                assert_eq!(
                    after,
                    before.unwrap_or(0) + 1,
                    "{case}: counted as {reason:?}"
                );
            }
        }
        assert_eq!(h.entry(id).expect("entry").state_version, 1, "{case}");
    }
    assert_eq!(h.controller.counters.data_packets(), 1);
}

/// Cryptokey routing: an opened packet enters the TUN device only if its inner source is one
/// of the session's client's addresses; anything else is dropped and counted.
#[test]
fn only_the_clients_own_inner_source_enters_the_tunnel() {
    let h = Harness::new();
    let session = h.session();
    let id = session.welcome.session_id.get();
    let cases: [(&str, Vec<u8>, bool); 4] = [
        ("own address", ipv4_packet(CLIENT_V4, [8, 8, 8, 8]), true),
        (
            "a neighbour's",
            ipv4_packet([10, 99, 0, 3], [8, 8, 8, 8]),
            false,
        ),
        (
            "the gateway's",
            ipv4_packet([10, 99, 0, 1], [8, 8, 8, 8]),
            false,
        ),
        ("not IP", vec![0x00; 24], false),
    ];
    for (nonce, (case, packet, admitted)) in (1..).zip(&cases) {
        let datagram = sealed(&session, MessageType::Data, 1, nonce, packet);
        let written = tun_packets(&h.step(&datagram, h.client_addr, T0 + 1));
        let expected = if *admitted {
            vec![packet.clone()]
        } else {
            vec![]
        };
        assert_eq!(written, expected, "{case}");
    }
    assert_eq!(h.entry(id).expect("entry").state_version, 1);
    let stats = h.controller.counters.tunnel_stats();
    assert_eq!(stats.upstream.packets, 1);
    assert_eq!(stats.upstream_foreign_source, 3);
}

/// The receive path only screens a HELLO: a valid one becomes a job for the handshake workers
/// and nothing else; under load, one without a valid mac2 gets a COOKIE_REPLY (the only
/// answer an unauthenticated sender ever gets), is counted, and queues nothing.
#[test]
fn a_hello_is_screened_inline_and_queued_or_answered_with_a_cookie() {
    let h = Harness::new();
    let (_, hello) = Harness::hello(&h.identity);
    let mut datagram = hello.clone();
    let mut out = Vec::new();
    h.controller
        .handle(&mut datagram, h.client_addr, T0, &mut out);
    assert!(
        matches!(out.as_slice(), [Effect::QueueHello(job)] if job.datagram == hello),
        "{out:?}"
    );

    h.controller.hello_guard.mark_load(T0);
    let (_, hello) = Harness::hello(&h.identity);
    let mut datagram = hello.clone();
    let mut out = Vec::new();
    h.controller
        .handle(&mut datagram, h.client_addr, T0, &mut out);
    assert!(
        matches!(out.as_slice(), [Effect::SendNow { to, .. }, Effect::Publish(_)] if *to == h.client_addr),
        "{out:?}"
    );
    assert_eq!(
        h.controller.counters.rejects(RejectReason::CookieRequired),
        1
    );
    assert!(h.map.lock().unwrap().is_empty());
}
