//! The real `jvpn gateway` on a veth with XDP attached, driven by a test client that speaks the
//! wire protocol: handshake, the jump with path validation, stale and duplicate refusals with
//! their REJECT replies and events, the dual-reattach race, BIRTH refusals. Crashes and restarts are
//! in `gateway_restart_netns.rs`.
//!
//! ```text
//!  +------------- gateway ns --------------+        +------------ client ns -------------+
//!  |  jvpn gateway (nsenter --net)          |        |  test client sockets:             |
//!  |    UDP [::]:51900, redb store in tmp   |        |   "wifi" :40001, "lte" :40002,    |
//!  |  <gw> 10.200.0.1/24 fd00:200::1/64     |        |   "attacker" :40666 ...           |
//!  |       XDP jvpn_xdp (driver) <==========|==veth==|==> <cl> 10.200.0.2 fd00:200::2    |
//!  +----------------------------------------+        +-----------------------------------+
//!     pins: /sys/fs/bpf/jvpn/<gw>/v4/   control socket + store: the test's temp dir
//! ```

use jvpn_common::control::{ReattachAck, Reject};
use jvpn_common::{MessageType, RejectReason};
use jvpn_tests::gateway::GatewayFixture;
use jvpn_tests::probe::{
    accepted, client_socket, drops, eventually, gateway, has_event, session_hex, started,
};
use jvpn_tests::require_root;
use jvpn_tests::topology::Family;
use jvpn_tests::wire_client::{as_reject, assert_silent, WireClient};
use std::time::Duration;

fn lifecycle(family: Family) {
    let f = started(&[]);
    let gw = gateway(family);
    let wifi = client_socket(&f, family, 40001);
    let lte = client_socket(&f, family, 40002);

    let mut c = WireClient::handshake(&f.client, &wifi, gw);
    assert_eq!(c.acked, 1, "WELCOME carries version 1 (spec section 2)");
    wifi.send_to(&c.data(b"first"), gw).expect("send DATA");
    eventually("the first DATA accepted by XDP", || accepted(&f) >= 1);

    assert_eq!(c.jump(&lte), 2, "the jump commits version 2");
    let stale = c.seal(MessageType::Data, 1, b"from the old path");
    wifi.send_to(&stale, gw).expect("send stale DATA");
    eventually("the stale DATA dropped", || {
        drops(&f, RejectReason::StaleVersion) >= 1
    });
    let before = accepted(&f);
    lte.send_to(&c.data(b"after the jump"), gw)
        .expect("send DATA");
    eventually("DATA on the new path accepted", || accepted(&f) > before);
    let detail = f.cli_json(&["sessions", "show", &session_hex(c.id)]);
    assert_eq!(
        detail["rx_nonce"].as_u64(),
        Some(c.next_nonce - 1),
        "the highest accepted nonce is the last one sent: {detail}"
    );

    lte.send_to(&c.terminate(), gw).expect("send TERMINATE");
    eventually("the termination committed", || {
        f.audit_versions(c.id) == vec![1, 2, 3]
    });
    let id = session_hex(c.id);
    let changes: Vec<u64> = f
        .events()
        .iter()
        .filter(|e| e["kind"] == "STATE_CHANGE" && e["session"] == id.as_str())
        .map(|e| e["to_version"].as_u64().expect("to_version"))
        .collect();
    assert_eq!(
        changes,
        vec![1, 2, 3],
        "one STATE_CHANGE per increment (spec section 11)"
    );
    assert!(has_event(&f, |e| e["source"] == "dataplane"
        && e["reason"] == "STALE_VERSION"
        && e["session"] == id.as_str()));
    let detail = f.cli_json(&["sessions", "show", &id]);
    assert_eq!(detail["state"], "TERMINATED");
    assert_eq!(detail["version"], 3);

    // The audit names the transport of every version: wifi, then lte.
    let audit = f.cli_json(&["audit", &id]);
    let peers: Vec<String> = audit
        .as_array()
        .expect("audit")
        .iter()
        .map(|e| e["peer"].as_str().expect("a peer").to_owned())
        .collect();
    let (wifi, lte) = (
        wifi.local_addr().expect("addr").to_string(),
        lte.local_addr().expect("addr").to_string(),
    );
    assert_eq!(peers, vec![wifi, lte.clone(), lte], "{audit}");
}

#[test]
fn ipv4_a_session_is_born_jumps_and_ends_at_versions_1_2_3() {
    lifecycle(Family::V4);
}

#[test]
fn ipv6_a_session_is_born_jumps_and_ends_at_versions_1_2_3() {
    lifecycle(Family::V6);
}

/// Spec sections 4 and 6: stale and jumping claims get an explicit REJECT with their reason and
/// a SECURITY_EVENT, and change nothing; a duplicate nonce is dropped in XDP and counted.
#[test]
fn stale_jumping_and_duplicate_reattaches_are_refused_explicitly() {
    let f = started(&[]);
    let gw = gateway(Family::V4);
    let wifi = client_socket(&f, Family::V4, 40001);
    let lte = client_socket(&f, Family::V4, 40002);
    let mut c = WireClient::handshake(&f.client, &wifi, gw);
    c.jump(&lte);

    for (claim, reason) in [
        (1, RejectReason::StaleVersion),
        (7, RejectReason::VersionJump),
    ] {
        let request = c.reattach_request(claim, 9);
        lte.send_to(&request, gw).expect("send REATTACH_REQUEST");
        let reply = c.receive(&lte, "REJECT");
        let reject: Reject =
            as_reject(&reply).unwrap_or_else(|| panic!("expected REJECT, got {reply:?}"));
        assert_eq!(reject.reason(), Some(reason), "claim {claim}");
        assert_eq!(reject.gateway_version.get(), 2);
        assert_eq!(reply.header.state_version.get(), 2);
    }
    let id = session_hex(c.id);
    for reason in ["STALE_VERSION", "VERSION_JUMP"] {
        assert!(
            has_event(&f, |e| e["kind"] == "SECURITY_EVENT"
                && e["source"] == "controller"
                && e["reason"] == reason
                && e["session"] == id.as_str()),
            "a controller SECURITY_EVENT {reason}"
        );
    }

    let request = c.reattach_request(2, 10);
    lte.send_to(&request, gw).expect("send REATTACH_REQUEST");
    let ack = c.receive(&lte, "REATTACH_ACK for the bound transport");
    assert_eq!(
        ack.body::<ReattachAck>().new_version.get(),
        2,
        "nothing moved"
    );
    lte.send_to(&request, gw).expect("resend the same datagram");
    eventually("the duplicate dropped in XDP", || {
        drops(&f, RejectReason::DuplicateNonce) >= 1
    });
    assert_silent(&lte, Duration::from_millis(500), "a duplicate nonce");
    assert_eq!(f.audit_versions(c.id), vec![1, 2]);
}

/// A REATTACH_REQUEST captured and sent from the attacker's own address gets a PATH_CHALLENGE
/// the attacker cannot answer; a replay is a duplicate nonce; the session never moves.
#[test]
fn a_captured_reattach_request_cannot_move_the_session() {
    let f = started(&[]);
    let gw = gateway(Family::V4);
    let wifi = client_socket(&f, Family::V4, 40001);
    let attacker = client_socket(&f, Family::V4, 40666);
    let mut c = WireClient::handshake(&f.client, &wifi, gw);

    let captured = c.reattach_request(1, 1);
    attacker
        .send_to(&captured, gw)
        .expect("attacker sends the captured request");
    let challenge = c.receive(&attacker, "PATH_CHALLENGE at the attacker");
    assert_eq!(challenge.kind(), MessageType::PathChallenge);
    // Without the keys the attacker can only echo bytes back: a bad tag, dropped in XDP.
    let mut forged = challenge.header.as_bytes().to_vec();
    forged[1] = MessageType::PathResponse as u8;
    forged.extend_from_slice(&[0u8; 64]);
    attacker.send_to(&forged, gw).expect("attacker answers");
    attacker.send_to(&captured, gw).expect("attacker replays");
    eventually("the forged answer and the replay dropped", || {
        drops(&f, RejectReason::BadTag) >= 1 && drops(&f, RejectReason::DuplicateNonce) >= 1
    });
    // Even the real client cannot answer the attacker's challenge from elsewhere.
    let response = c.path_response(&challenge);
    wifi.send_to(&response, gw)
        .expect("send PATH_RESPONSE from the wrong address");
    let reply = c.receive(&wifi, "REJECT");
    assert_eq!(
        as_reject(&reply).and_then(|r| r.reason()),
        Some(RejectReason::PathValidation)
    );

    let detail = f.cli_json(&["sessions", "show", &session_hex(c.id)]);
    assert_eq!(detail["version"], 1, "the session never moved");
    assert_eq!(detail["peer"], wifi.local_addr().expect("addr").to_string());
    assert_eq!(f.audit_versions(c.id), vec![1]);
}

/// Spec section 4: two transports racing to reattach at the same version: exactly one wins.
#[test]
fn dual_reattach_race_has_exactly_one_winner() {
    let f = started(&[]);
    let gw = gateway(Family::V4);
    let wifi = client_socket(&f, Family::V4, 40001);
    let lte = client_socket(&f, Family::V4, 40002);
    let third = client_socket(&f, Family::V4, 40003);
    let mut c = WireClient::handshake(&f.client, &wifi, gw);

    let mut responses = Vec::new();
    for (attempt, s) in [(1, &lte), (2, &third)] {
        let request = c.reattach_request(1, attempt);
        s.send_to(&request, gw).expect("send REATTACH_REQUEST");
        let challenge = c.receive(s, "PATH_CHALLENGE");
        responses.push(c.path_response(&challenge));
    }
    lte.send_to(&responses[0], gw).expect("send");
    third.send_to(&responses[1], gw).expect("send");
    let replies = [
        c.receive(&lte, "lte's reply"),
        c.receive(&third, "third's reply"),
    ];
    let acks: Vec<u64> = replies
        .iter()
        .filter(|r| r.kind() == MessageType::ReattachAck)
        .map(|r| r.body::<ReattachAck>().new_version.get())
        .collect();
    let rejects: Vec<RejectReason> = replies
        .iter()
        .filter_map(as_reject)
        .filter_map(|r| r.reason())
        .collect();
    assert_eq!(
        acks,
        vec![2],
        "exactly one winner at version 2: {replies:?}"
    );
    assert_eq!(rejects.len(), 1, "the loser is told: {replies:?}");
    assert!(
        matches!(
            rejects[0],
            RejectReason::StaleVersion | RejectReason::ConcurrentMutation
        ),
        "{rejects:?}"
    );
    assert_eq!(f.audit_versions(c.id), vec![1, 2]);
}

/// BIRTH refusals: an unknown client key and a replayed HELLO get no session and a
/// SECURITY_EVENT each.
#[test]
fn unknown_clients_and_replayed_hellos_get_no_session() {
    let f = started(&[]);
    let gw = gateway(Family::V4);
    let s = client_socket(&f, Family::V4, 40001);
    let mut stranger = f.client.clone();
    stranger.private_key = jvpn_user::crypto::PrivateKey::generate();
    let hello = jvpn_tests::wire_client::hello(&stranger);
    s.send_to(&hello, gw).expect("send HELLO");
    eventually("UNKNOWN_CLIENT reported", || {
        has_event(&f, |e| e["reason"] == "UNKNOWN_CLIENT")
    });

    let hello = jvpn_tests::wire_client::hello(&f.client);
    s.send_to(&hello, gw).expect("send HELLO");
    let _welcome = jvpn_tests::wire_client::receive_raw(&s, "WELCOME");
    s.send_to(&hello, gw).expect("replay HELLO");
    eventually("HANDSHAKE_REPLAY reported", || {
        has_event(&f, |e| e["reason"] == "HANDSHAKE_REPLAY")
    });
    let sessions = f.cli_json(&["sessions", "list"]);
    assert_eq!(
        sessions.as_array().expect("list").len(),
        1,
        "one session only"
    );
}

/// A full session table refuses the HELLO before anything is committed, and says so.
#[test]
fn a_full_session_table_refuses_new_sessions() {
    require_root();
    let mut f = GatewayFixture::new();
    f.extra_args = vec!["--max-sessions".into(), "1".into()];
    f.start(&[]);
    let gw = gateway(Family::V4);
    let first = client_socket(&f, Family::V4, 40001);
    let c = WireClient::handshake(&f.client, &first, gw);
    let second = client_socket(&f, Family::V4, 40002);
    let hello = jvpn_tests::wire_client::hello(&f.client);
    second.send_to(&hello, gw).expect("send HELLO");
    eventually("TABLE_FULL reported", || {
        has_event(&f, |e| e["reason"] == "TABLE_FULL")
    });
    assert_silent(
        &second,
        Duration::from_millis(300),
        "a HELLO refused for a full table",
    );
    let sessions = f.cli_json(&["sessions", "list"]);
    assert_eq!(sessions.as_array().expect("list").len(), 1);
    assert_eq!(f.audit_versions(c.id), vec![1]);

    // Once the first session ends, a HELLO finds room: the terminated session is evicted from
    // the table and the XDP map at once, and only its history stays.
    f.cli_json(&["sessions", "terminate", &format!("{:016x}", c.id)]);
    let d = WireClient::handshake(&f.client, &second, gw);
    let ids = |f: &GatewayFixture| -> Vec<String> {
        f.cli_json(&["sessions", "list"])
            .as_array()
            .expect("list")
            .iter()
            .map(|s| s["id"].as_str().expect("id").to_owned())
            .collect()
    };
    assert_eq!(
        ids(&f),
        vec![format!("{:016x}", d.id)],
        "only the new session"
    );
    let map = jvpn_user::dataplane::Dataplane::adopt(&f.hosts.gateway_if).expect("adopt the maps");
    assert!(
        map.session(c.id).expect("read the map").is_none(),
        "the terminated session left the XDP map"
    );
    assert!(map.session(d.id).expect("read the map").is_some());
    assert_eq!(f.audit_versions(c.id), vec![1, 2], "its history stays");

    // A restart does not bring the dead back into the table.
    f.kill();
    f.start(&[]);
    assert_eq!(
        ids(&f),
        vec![format!("{:016x}", d.id)],
        "after a restart too"
    );
    assert_eq!(f.audit_versions(c.id), vec![1, 2]);
}
