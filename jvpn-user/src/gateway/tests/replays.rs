//! Spec section 6.2 through the real handlers: a replay gets an explicit REJECT, only at the
//! session's bound transport, only when it came from there, within the REJECT budget and never
//! larger than the replay; the session does not change ([`crate::gateway::replay_notice`]).

use super::*;
use crate::crypto::open_body;
use crate::dataplane::DataplaneEvent;
use crate::gateway::reject_budget::REJECTS_PER_SECOND;
use jvpn_common::control::Reject;
use jvpn_common::RejectReason;

/// An IPv4 packet of 48 bytes from the client's tunnel address: its DATA is longer than a REJECT.
fn long_packet() -> Vec<u8> {
    let mut packet = ipv4_packet(CLIENT_V4, [10, 99, 0, 1]);
    packet.resize(48, 0);
    packet[3] = 48;
    packet
}

/// The REJECTs among `datagrams`, opened: (reason, gateway version, rejected nonce).
fn rejects(session: &ClientSession, datagrams: &[Vec<u8>]) -> Vec<(RejectReason, u64, u64)> {
    datagrams
        .iter()
        .map(|d| {
            let (_, reject) = open_body::<Reject>(&session.keys, Direction::GatewayToClient, d)
                .expect("a sealed REJECT");
            (
                reject.reason().expect("a known reason"),
                reject.gateway_version.get(),
                reject.rejected_nonce.get(),
            )
        })
        .collect()
}

fn refusals(seen: &[Seen]) -> Vec<RejectReason> {
    seen.iter()
        .filter_map(|s| match s {
            Seen::Event(e) => e.reason,
            _ => None,
        })
        .collect()
}

fn sent_anywhere(seen: &[Seen]) -> usize {
    seen.iter().filter(|s| matches!(s, Seen::Sent(..))).count()
}

/// The controller's own window (XDP absent): a DATA replayed from the bound transport gets
/// exactly one REJECT(DUPLICATE_NONCE) there and an event; replayed from another address,
/// nothing is sent anywhere; a KEEPALIVE, shorter than a REJECT, gets the event only; past the
/// budget the REJECTs stop; the session's version, binding and map entry never change.
#[test]
fn a_replay_from_the_bound_transport_gets_one_reject_there() {
    let h = Harness::new();
    let session = h.session();
    let id = session.welcome.session_id.get();
    let client = h.client_addr;
    let other: SocketAddr = ROAMED.parse().expect("addr");
    let entry = h.entry(id).expect("the session's map entry");
    let data = sealed(&session, MessageType::Data, 1, 1, &long_packet());

    let first = h.step(&data, client, T0);
    assert_eq!(tun_packets(&first), vec![long_packet()]);
    assert_eq!(sent_anywhere(&first), 0);

    let replay = h.step(&data, client, T0 + 1);
    assert_eq!(
        rejects(&session, &sent_to(&replay, client)),
        vec![(RejectReason::DuplicateNonce, 1, 1)]
    );
    assert_eq!(sent_anywhere(&replay), 1, "{replay:?}");
    assert_eq!(refusals(&replay), vec![RejectReason::DuplicateNonce]);
    assert!(tun_packets(&replay).is_empty());

    let spoofed = h.step(&data, other, T0 + 2);
    assert_eq!(sent_anywhere(&spoofed), 0, "{spoofed:?}");
    assert_eq!(refusals(&spoofed), vec![RejectReason::DuplicateNonce]);

    let keepalive = sealed(&session, MessageType::Keepalive, 1, 2, &[]);
    h.step(&keepalive, client, T0 + 3);
    let short = h.step(&keepalive, client, T0 + 4);
    assert_eq!(sent_anywhere(&short), 0, "a REJECT would outgrow it");
    assert_eq!(refusals(&short), vec![RejectReason::DuplicateNonce]);

    // One REJECT went out in this second: the rest of the budget, then nothing.
    let mut answered = 0;
    for _ in 0..REJECTS_PER_SECOND + 5 {
        answered += sent_to(&h.step(&data, client, T0 + 5), client).len() as u32;
    }
    assert_eq!(answered, REJECTS_PER_SECOND - 1);
    assert_eq!(
        h.controller.counters.controller_stats().rejects_suppressed,
        6
    );

    let (now, _) = h.controller.sessions.snapshot(id).expect("still live");
    assert_eq!(now.state_version, 1);
    assert_eq!(now.binding.to_socket_addr(), client);
    assert_eq!(h.entry(id), Some(entry));
}

/// XDP's DUPLICATE_NONCE and NONCE_TOO_OLD drops, read from the event stream: answered at the
/// bound transport if the dropped frame was at least as large as the REJECT's, never at another
/// address.
#[test]
fn an_xdp_replay_drop_from_the_bound_transport_is_answered_there() {
    let h = Harness::new();
    let session = h.session();
    let id = session.welcome.session_id.get();
    // Ethernet 14 + IPv4 20 + UDP 8 + the sealed REJECT.
    let reject_frame = 42 + jvpn_common::control::sealed_len(size_of::<Reject>()) as u32;
    let drop = |reason, source: &str, nonce, frame_len| DataplaneEvent {
        reason,
        source: source.parse().expect("addr"),
        session_id: id,
        state_version: 1,
        nonce,
        msg_type: Some(MessageType::Data),
        frame_len,
        monotonic_ns: 1,
        at: SystemTime::now(),
    };
    let mapped_client = "[::ffff:127.0.0.1]:40000";
    let answered = |event: DataplaneEvent| {
        let effects = h.controller.on_dataplane_drop(&event, T0);
        h.settle(effects, &[], T0)
    };

    let seen = answered(drop(
        RejectReason::DuplicateNonce,
        mapped_client,
        7,
        reject_frame,
    ));
    assert_eq!(
        rejects(&session, &sent_to(&seen, h.client_addr)),
        vec![(RejectReason::DuplicateNonce, 1, 7)]
    );
    let seen = answered(drop(RejectReason::NonceTooOld, CLIENT, 3, 200));
    assert_eq!(
        rejects(&session, &sent_to(&seen, h.client_addr)),
        vec![(RejectReason::NonceTooOld, 1, 3)]
    );
    for event in [
        drop(RejectReason::DuplicateNonce, ROAMED, 7, 200),
        drop(RejectReason::DuplicateNonce, CLIENT, 7, reject_frame - 1),
        drop(RejectReason::DuplicateNonce, "[::1]:40000", 7, 200),
    ] {
        let seen = answered(event.clone());
        assert_eq!(sent_anywhere(&seen), 0, "{event:?}: {seen:?}");
    }
}
