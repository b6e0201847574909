//! Hostile traffic against the real tunnel (issue 4): packets replayed from the old uplink after a
//! jump, a REATTACH_REQUEST replayed (or withheld and then sent) by an on-path attacker from its
//! own address, and a flood of garbage, unknown sessions and forged tags during a transfer. None
//! of it may move the session, add a version or stop the tunnel, and every refused packet is
//! counted by reason and reported (or its report counted as lost).
//!
//! ```text
//!  gateway ns: jvpn gateway, TUN 10.99.0.1, TCP server :5201, <gw> 10.200.0.1 (XDP, :51900)
//!       || veth
//!  router ns:  10.200.0.2 | wifi side 10.201.1.1 | lte side 10.201.2.1 | attacker side 10.202.0.1
//!       || wifi                 || lte                                       ||
//!  client ns:  jvpn client, TUN 10.99.0.2, wifi 10.201.1.2, lte 10.201.2.2  ||
//!                                                              attacker ns: 10.202.0.2
//! ```

use jvpn_common::abi::{DEFAULT_PORT, REPLAY_WINDOW};
use jvpn_common::{MessageType, RejectReason, WireHeader};
use jvpn_tests::attacker::{
    is_message, jvpn_header, path_drops, release, router_interface, withhold, Attacker,
};
use jvpn_tests::capture::{inject, outgoing_udp_to, Capture, Frame};
use jvpn_tests::event_follower::EventFollower;
use jvpn_tests::gateway::GatewayFixture;
use jvpn_tests::netns::Netns;
use jvpn_tests::probe::{drops, session_hex};
use jvpn_tests::transfer::Transfer;
use jvpn_tests::tunnel::{eventually, payload, Tunnel};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

const PAYLOAD_LEN: usize = 8_000_000;
const TRANSFER_PATIENCE: Duration = Duration::from_secs(90);
const WIFI_V4: Ipv4Addr = Ipv4Addr::new(10, 201, 1, 2);
const ROUTER_WIFI_V4: Ipv4Addr = Ipv4Addr::new(10, 201, 1, 1);
const LTE_V4: Ipv4Addr = Ipv4Addr::new(10, 201, 2, 2);
const GATEWAY: &str = "10.200.0.1:51900";
/// A port nobody listens on behind the tunnel: a reset proves a round trip through it.
const SERVER_PROBE: &str = "10.99.0.1:5299";
/// Frames per injected burst, each judged before the next is sent: well below the veth's XDP
/// receive ring (256 frames), so no injected frame is lost before the XDP program sees it.
const INJECT_BURST: usize = 128;
/// The reasons a replayed packet may be dropped for (issue 4), in the order of [`replay_drops`].
const REPLAY_REASONS: [RejectReason; 3] = [
    RejectReason::StaleVersion,
    RejectReason::TransportMismatch,
    RejectReason::DuplicateNonce,
];

#[test]
fn packets_replayed_after_a_jump_are_dropped_in_xdp_and_change_nothing() {
    let t = Tunnel::up();
    let f = &t.f;
    let on_wifi = Capture::start(&t.client, &t.wifi, |fr| outgoing_udp_to(fr, DEFAULT_PORT));
    let on_lte = Capture::start(&t.client, &t.lte, |fr| outgoing_udp_to(fr, DEFAULT_PORT));
    let transfer = Transfer::start(&t, payload(PAYLOAD_LEN));
    transfer.wait_for(&t, PAYLOAD_LEN / 4, TRANSFER_PATIENCE);
    assert_eq!(t.jump(&t.lte), 2);
    let old = on_wifi.stop();
    let wifi_source = old
        .first()
        .expect("the client sent on wifi")
        .udp()
        .expect("udp")
        .source;
    // The client switches sockets at the REATTACH_ACK, under the lock it seals with: everything
    // it sent on wifi was sealed at version 1, and only DATA and KEEPALIVE flow there.
    for header in old
        .iter()
        .map(|fr| jvpn_header(fr).expect("a jvpn datagram"))
    {
        assert_eq!(header.state_version.get(), 1, "{header:?}");
        assert!(matches!(
            header.message_type(),
            Some(MessageType::Data | MessageType::Keepalive)
        ));
    }
    let binding = t.peer();
    assert_eq!(binding.ip(), IpAddr::V4(LTE_V4));

    // DATA and KEEPALIVE meet the version check before the transport and replay checks, so
    // every old frame is STALE_VERSION (version 1 < 2), whether or not it arrived the first time.
    eprintln!("replaying {} frames recorded on wifi", old.len());
    let before = replay_drops(f);
    inject_counted(&t.client, &t.wifi, &old, "old wifi frames", || {
        replay_drops(f).iter().sum::<u64>() - before.iter().sum::<u64>()
    });
    assert_eq!(
        grown(before, replay_drops(f)),
        [old.len() as u64, 0, 0],
        "{} frames replayed from wifi: all STALE_VERSION ({REPLAY_REASONS:?})",
        old.len()
    );
    eventually("a dataplane STALE_VERSION event for the replay", || {
        has_drop_event(f, t.session, RejectReason::StaleVersion, wifi_source)
    });
    assert_eq!(
        f.audit_versions(t.session),
        vec![1, 2],
        "the replay added no version"
    );
    assert_eq!(t.peer(), binding, "the session is still bound to lte");
    transfer.finish(&t, TRANSFER_PATIENCE);

    // Frames sent on lte since the jump: same uplink, current version, nonces already seen.
    // Those within the replay window are DUPLICATE_NONCE (older ones would be NONCE_TOO_OLD).
    let recent = on_lte.stop();
    let newest = recent
        .iter()
        .filter_map(nonce)
        .max()
        .expect("frames on lte");
    let recent: Vec<Frame> = recent
        .into_iter()
        .filter(|fr| nonce(fr).is_some_and(|n| n + REPLAY_WINDOW / 2 > newest))
        .collect();
    eprintln!("replaying {} frames recorded on lte", recent.len());
    let before = replay_drops(f);
    inject_counted(&t.client, &t.lte, &recent, "recent lte frames", || {
        replay_drops(f)[2] - before[2]
    });
    assert_eq!(
        grown(before, replay_drops(f)),
        [0, 0, recent.len() as u64],
        "{} frames replayed on lte: all DUPLICATE_NONCE",
        recent.len()
    );
    eventually("a dataplane DUPLICATE_NONCE event for the replay", || {
        has_drop_event(f, t.session, RejectReason::DuplicateNonce, binding)
    });
    assert_eq!(f.audit_versions(t.session), vec![1, 2]);
    assert_eq!(t.peer(), binding);
    assert_round_trip(&t);
}

#[test]
fn an_on_path_attacker_cannot_move_the_session_with_a_reattach_request() {
    let t = Tunnel::up();
    let f = &t.f;
    let attacker = Attacker::on_path(&t);
    let own = attacker.socket();
    let own_address = own.local_addr().expect("the attacker's address");
    let gateway: SocketAddr = GATEWAY.parse().expect("addr");

    // 1. The attacker watches the router forward the client's jump to lte, then replays the
    //    request from its own address: the nonce was seen, XDP drops it (docs/protocol.md).
    let watching = Capture::start(&f.hosts.client, &f.hosts.client_if, |fr| {
        fr.outgoing && is_message(fr, MessageType::ReattachRequest)
    });
    assert_eq!(t.jump(&t.lte), 2);
    let lte_binding = t.peer();
    let request = first_payload(&watching, "the client's REATTACH_REQUEST");
    drop(watching);
    let duplicates = drops(f, RejectReason::DuplicateNonce);
    own.send_to(&request, gateway).expect("replay the request");
    eventually(
        "the replayed request to be dropped as DUPLICATE_NONCE",
        || drops(f, RejectReason::DuplicateNonce) == duplicates + 1,
    );
    eventually("a dataplane event naming the attacker", || {
        has_drop_event(f, t.session, RejectReason::DuplicateNonce, own_address)
    });
    assert_eq!(f.audit_versions(t.session), vec![1, 2]);
    assert_eq!(t.peer(), lte_binding);

    // 2. The router withholds the client's requests to jump back to wifi; the attacker sends the
    //    first one from its own address. It is fresh and claims the current version, so the
    //    gateway challenges the attacker's address, and nothing moves without the answer, which
    //    needs the session's keys.
    let wifi_side = router_interface(&t, ROUTER_WIFI_V4);
    let watching = Capture::start(&f.hosts.client, &wifi_side, |fr| {
        !fr.outgoing && is_message(fr, MessageType::ReattachRequest)
    });
    withhold(&t, WIFI_V4, DEFAULT_PORT, MessageType::ReattachRequest);
    std::thread::scope(|scope| {
        let jump = scope.spawn(|| t.jump_command(&t.wifi));
        let request = first_payload(&watching, "the withheld REATTACH_REQUEST");
        own.send_to(&request, gateway)
            .expect("send the withheld request");
        let challenge = receive_header(&own, "the gateway's answer to the attacker");
        assert_eq!(challenge.message_type(), Some(MessageType::PathChallenge));
        assert_eq!(
            (challenge.session_id.get(), challenge.state_version.get()),
            (t.session, 2)
        );
        let detail = f.cli_json(&["sessions", "show", &session_hex(t.session)]);
        assert_eq!(detail["pending_path"], own_address.to_string(), "{detail}");
        // The best the attacker can do without the keys: answer with the challenge's own bytes
        // retyped as a PATH_RESPONSE. The header tag no longer verifies.
        let bad_tags = drops(f, RejectReason::BadTag);
        let mut reflected = challenge;
        reflected.msg_type = MessageType::PathResponse as u8;
        own.send_to(reflected.as_bytes(), gateway).expect("send");
        eventually("the forged PATH_RESPONSE to be dropped as BAD_TAG", || {
            drops(f, RejectReason::BadTag) == bad_tags + 1
        });
        let out = jump.join().expect("the jump thread");
        assert!(
            !out.status.success(),
            "every request of this jump was withheld, yet it succeeded"
        );
    });
    drop(watching);
    assert_eq!(f.audit_versions(t.session), vec![1, 2], "nothing moved");
    assert_eq!(t.peer(), lte_binding);
    assert_round_trip(&t);

    release(&t);
    assert_eq!(t.jump(&t.wifi), 3, "the client jumps once the path lets it");
    assert_eq!(f.audit_versions(t.session), vec![1, 2, 3]);
    assert_eq!(t.peer().ip(), IpAddr::V4(WIFI_V4));
    assert_round_trip(&t);
}

#[test]
fn a_flood_at_the_gateway_port_does_not_stop_the_tunnel_and_is_counted_by_reason() {
    let t = Tunnel::up();
    let f = &t.f;
    let attacker = Attacker::on_path(&t);
    let audit = f.audit_versions(t.session);
    let binding = t.peer();
    let follower = EventFollower::start(f);
    let marker = f
        .events()
        .last()
        .map_or(0, |e| e["seq"].as_u64().expect("seq"));
    let counted = [
        RejectReason::Malformed,
        RejectReason::UnknownSession,
        RejectReason::BadTag,
    ];
    let drops_before = counted.map(|r| drops(f, r));
    let all_before = all_drops(f);
    let lost_before = f.cli_json(&["stats"])["events_lost"]["dataplane"]
        .as_u64()
        .expect("events_lost.dataplane");
    let path_before = path_drops(&[&f.hosts.gateway, &f.hosts.client, &attacker.ns]);

    let transfer = Transfer::start(&t, payload(PAYLOAD_LEN));
    transfer.wait_for(&t, PAYLOAD_LEN / 8, TRANSFER_PATIENCE);
    let done = AtomicBool::new(false);
    let sent = std::thread::scope(|scope| {
        let flood = scope.spawn(|| attacker.flood(t.session, &done));
        transfer.wait_for(&t, PAYLOAD_LEN, TRANSFER_PATIENCE);
        done.store(true, Ordering::Relaxed);
        flood.join().expect("the flood")
    });
    transfer.finish(&t, TRANSFER_PATIENCE);
    let lost_on_path = path_drops(&[&f.hosts.gateway, &f.hosts.client, &attacker.ns]) - path_before;
    eprintln!(
        "flood: {sent:?} (MALFORMED, UNKNOWN_SESSION, BAD_TAG), {lost_on_path} lost on the way"
    );

    for ((reason, before), sent) in counted.iter().zip(drops_before).zip(sent) {
        let dropped = drops(f, *reason) - before;
        assert!(
            dropped <= sent && dropped + lost_on_path >= sent,
            "{}: {dropped} dropped for {sent} sent ({lost_on_path} lost on the path)",
            reason.name()
        );
    }
    let flooded = all_drops(f) - all_before;
    assert_eq!(
        flooded,
        counted.map(|r| drops(f, r)).iter().sum::<u64>() - drops_before.iter().sum::<u64>(),
        "no drop for another reason: the flood was all the XDP program refused"
    );
    // Not silent: every drop is a dataplane event the follower saw or an event counted as lost
    // (in `jvpn stats` and in EVENTS_LOST notices). A follower that fell behind is told how many
    // records it skipped; only then can the sum exceed the drops.
    let lost = || {
        f.cli_json(&["stats"])["events_lost"]["dataplane"]
            .as_u64()
            .expect("events_lost.dataplane")
            - lost_before
    };
    eventually("every drop to be an event or a counted event loss", || {
        let (lost, tally) = (lost(), follower.tally(marker));
        if tally.skipped == 0 {
            tally.dataplane_refusals + lost == flooded && tally.dataplane_lost == lost
        } else {
            tally.dataplane_refusals + lost + tally.skipped >= flooded
        }
    });
    let (lost, tally) = (lost(), follower.tally(marker));
    eprintln!("{flooded} drops: {tally:?}, {lost} events lost per jvpn stats");
    assert!(
        tally.dataplane_refusals + lost <= flooded,
        "more events than drops: {tally:?}, {lost} lost"
    );
    assert_eq!(
        f.audit_versions(t.session),
        audit,
        "the flood added no version"
    );
    assert_eq!(t.peer(), binding);
    assert_round_trip(&t);
}

/// Drops so far for each of [`REPLAY_REASONS`].
fn replay_drops(f: &GatewayFixture) -> [u64; 3] {
    REPLAY_REASONS.map(|r| drops(f, r))
}

/// Drops so far, all reasons.
fn all_drops(f: &GatewayFixture) -> u64 {
    f.cli_json(&["stats"])["dataplane"]["drops"]
        .as_array()
        .expect("drops")
        .iter()
        .map(|d| d["packets"].as_u64().expect("packets"))
        .sum()
}

fn grown(before: [u64; 3], after: [u64; 3]) -> [u64; 3] {
    [0, 1, 2].map(|i| after[i] - before[i])
}

/// The jvpn nonce of a recorded frame.
fn nonce(frame: &Frame) -> Option<u64> {
    jvpn_header(frame).map(|h| h.nonce.get())
}

/// Injects `frames` on `iface` in bursts of [`INJECT_BURST`], waiting after each until `counted`
/// (the drops they must cause, since just before the first) has grown by the burst.
fn inject_counted(
    ns: &Netns,
    iface: &str,
    frames: &[Frame],
    what: &str,
    counted: impl Fn() -> u64,
) {
    assert!(!frames.is_empty(), "no {what} to inject");
    let mut injected = 0u64;
    for burst in frames.chunks(INJECT_BURST) {
        inject(ns, iface, burst);
        injected += burst.len() as u64;
        eventually(&format!("{injected} injected {what} to be dropped"), || {
            counted() >= injected
        });
    }
}

/// Whether the stream has a dataplane SECURITY_EVENT of `session` for `reason` from `peer`.
fn has_drop_event(
    f: &GatewayFixture,
    session: u64,
    reason: RejectReason,
    peer: SocketAddr,
) -> bool {
    f.events().iter().any(|e| {
        e["kind"] == "SECURITY_EVENT"
            && e["source"] == "dataplane"
            && e["session"] == session_hex(session)
            && e["reason"] == reason.name()
            && e["peer"] == peer.to_string()
    })
}

/// The UDP payload of the first frame `capture` records.
fn first_payload(capture: &Capture, what: &str) -> Vec<u8> {
    eventually(what, || !capture.frames().is_empty());
    capture.frames()[0].udp().expect("udp").payload.to_vec()
}

/// Receives one datagram on `socket` and reads its jvpn header.
fn receive_header(socket: &std::net::UdpSocket, what: &str) -> WireHeader {
    let mut buf = [0u8; 2048];
    let len = socket
        .recv(&mut buf)
        .unwrap_or_else(|e| panic!("waiting for {what}: {e}"));
    WireHeader::parse(&buf[..len]).unwrap_or_else(|e| panic!("{what}: not jvpn ({e:?})"))
}

/// A TCP connect through the tunnel to a closed port is refused: a round trip both ways.
fn assert_round_trip(t: &Tunnel) {
    let stream = t.client.run(|| {
        TcpStream::connect_timeout(
            &SERVER_PROBE.parse().expect("addr"),
            Duration::from_secs(10),
        )
    });
    assert!(
        stream.is_err_and(|e| e.kind() == std::io::ErrorKind::ConnectionRefused),
        "the tunnel carries traffic (a closed port answers with a reset)\nclient log:\n{}",
        t.client_log()
    );
}
