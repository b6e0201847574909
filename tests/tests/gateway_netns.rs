//! The real `jvpn gateway` on a veth with XDP attached, driven by a test client that speaks the
//! wire protocol: handshake, the jump with path validation, stale and duplicate refusals with
//! their REJECT replies and events, the dual-reattach race, crashes and restarts.
//!
//! ```text
//!  +------------- gateway ns --------------+        +------------ client ns -------------+
//!  |  jvpn gateway (nsenter --net)          |        |  test client sockets:             |
//!  |    UDP [::]:51900, redb store in tmp   |        |   "wifi" :40001, "lte" :40002,    |
//!  |  <gw> 10.200.0.1/24 fd00:200::1/64     |        |   "attacker" :40666 ...           |
//!  |       XDP jvpn_xdp (driver) <==========|==veth==|==> <cl> 10.200.0.2 fd00:200::2    |
//!  +----------------------------------------+        +-----------------------------------+
//!     pins: /sys/fs/bpf/jvpn/<gw>/v1/   control socket + store: the test's temp dir
//! ```

use jvpn_common::abi::DEFAULT_PORT;
use jvpn_common::control::{ReattachAck, Reject};
use jvpn_common::{MessageType, RejectReason};
use jvpn_tests::gateway::GatewayFixture;
use jvpn_tests::require_root;
use jvpn_tests::topology::Family;
use jvpn_tests::wire_client::{as_reject, assert_silent, socket, WireClient};
use jvpn_user::dataplane::Dataplane;
use serde_json::Value;
use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

fn started(env: &[(&str, &str)]) -> GatewayFixture {
    require_root();
    let mut f = GatewayFixture::new();
    f.start(env);
    f
}

fn gateway(family: Family) -> SocketAddr {
    SocketAddr::new(family.gateway(), DEFAULT_PORT)
}

fn client_socket(f: &GatewayFixture, family: Family, port: u16) -> UdpSocket {
    f.hosts
        .client
        .run(|| socket(SocketAddr::new(family.client(), port)))
}

/// Polls `check` until it holds; panics with `what` after a bound. For state that another
/// process reaches asynchronously (a commit, a counter); never a fixed sleep.
fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn drops(f: &GatewayFixture, reason: RejectReason) -> u64 {
    let stats = f.cli_json(&["stats"]);
    stats["dataplane"]["drops"]
        .as_array()
        .expect("drops")
        .iter()
        .find(|d| d["reason"] == reason.name())
        .map_or(0, |d| d["packets"].as_u64().expect("packets"))
}

fn accepted(f: &GatewayFixture) -> u64 {
    f.cli_json(&["stats"])["dataplane"]["accepted"]["packets"]
        .as_u64()
        .expect("accepted packets")
}

fn has_event(f: &GatewayFixture, pred: impl Fn(&Value) -> bool) -> bool {
    f.events().iter().any(pred)
}

fn session_hex(id: u64) -> String {
    format!("{id:016x}")
}

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

/// A SIGKILL between the compare-and-set and the map update leaves the map behind the store;
/// the restart reconciles the map from the store, and no version goes back.
#[test]
fn a_crash_between_commit_and_map_update_is_reconciled_at_restart() {
    let mut f = started(&[("JVPN_FAULT", "after-cas:REATTACH")]);
    let gw = gateway(Family::V4);
    let wifi = client_socket(&f, Family::V4, 40001);
    let lte = client_socket(&f, Family::V4, 40002);
    let mut c = WireClient::handshake(&f.client, &wifi, gw);
    let request = c.reattach_request(1, 1);
    lte.send_to(&request, gw).expect("send REATTACH_REQUEST");
    let challenge = c.receive(&lte, "PATH_CHALLENGE");
    let response = c.path_response(&challenge);
    lte.send_to(&response, gw).expect("send PATH_RESPONSE");
    let status = f.wait_exit(Duration::from_secs(10));
    assert!(!status.success(), "the injected fault kills the gateway");

    let iface = f.hosts.gateway_if.clone();
    let id = c.id;
    let map_version = move || {
        Dataplane::adopt(&iface)
            .expect("adopt the pinned dataplane")
            .session(id)
            .expect("read the session map")
            .expect("the session is in the map")
            .state_version
    };
    assert_eq!(map_version(), 1, "the crash left the map behind the store");

    f.start(&[]);
    assert_eq!(
        f.audit_versions(c.id),
        vec![1, 2],
        "the commit survived the crash"
    );
    assert_eq!(
        map_version(),
        2,
        "the restart pushed the store's version into the map"
    );
    c.acked = 2;
    let before = accepted(&f);
    lte.send_to(&c.data(b"on the committed transport"), gw)
        .expect("send DATA");
    eventually("DATA at version 2 accepted", || accepted(&f) > before);
}

/// With the pinned maps gone (a reboot), every live session moves to RECOVERING (+1) so nothing
/// captured before can be accepted; the client reattaches across that gap.
#[test]
fn lost_maps_move_sessions_to_recovering_and_clients_reattach() {
    let mut f = started(&[]);
    let gw = gateway(Family::V4);
    let wifi = client_socket(&f, Family::V4, 40001);
    let mut c = WireClient::handshake(&f.client, &wifi, gw);
    let old_data = c.data(b"captured before the reboot");
    f.kill();
    let detach = std::process::Command::new(jvpn_tests::gateway::jvpn_binary())
        .args(["detach", "--iface", &f.hosts.gateway_if])
        .output()
        .expect("run jvpn detach");
    assert!(
        detach.status.success(),
        "jvpn detach, as a reboot would: {}",
        String::from_utf8_lossy(&detach.stderr)
    );
    assert!(
        !f.hosts.gateway_has_xdp(),
        "no XDP program left on the interface"
    );

    f.start(&[]);
    assert_eq!(f.audit_versions(c.id), vec![1, 2]);
    let detail = f.cli_json(&["sessions", "show", &session_hex(c.id)]);
    assert_eq!(detail["state"], "RECOVERING");
    wifi.send_to(&old_data, gw).expect("replay old DATA");
    eventually("old DATA refused as NOT_ATTACHED", || {
        drops(&f, RejectReason::NotAttached) >= 1
    });
    assert_eq!(c.jump(&wifi), 3, "the reattach crosses the RECOVERING gap");
    assert_eq!(f.audit_versions(c.id), vec![1, 2, 3]);
}

/// A gateway killed with SIGKILL and restarted with its pins: enforcement never stopped, the
/// session goes on at the same version, and the next jump works with fresh nonces.
#[test]
fn sessions_survive_a_killed_gateway() {
    let mut f = started(&[]);
    let gw = gateway(Family::V4);
    let wifi = client_socket(&f, Family::V4, 40001);
    let lte = client_socket(&f, Family::V4, 40002);
    let mut c = WireClient::handshake(&f.client, &wifi, gw);
    f.kill();
    let pinned_accepted = || {
        Dataplane::adopt(&f.hosts.gateway_if)
            .expect("adopt the pinned dataplane")
            .counters()
            .expect("read the counters")
            .accepted()
            .packets
    };
    let before = pinned_accepted();
    wifi.send_to(&c.data(b"while the controller is down"), gw)
        .expect("send");
    eventually("XDP kept enforcing while the controller was down", || {
        pinned_accepted() > before
    });
    f.start(&[]);
    assert_eq!(c.jump(&lte), 2);
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
    let (_, hello) = jvpn_user::crypto::ClientHandshake::start(
        &stranger,
        jvpn_user::crypto::handshake::tai64n(std::time::SystemTime::now()),
    )
    .expect("HELLO");
    s.send_to(&hello, gw).expect("send HELLO");
    eventually("UNKNOWN_CLIENT reported", || {
        has_event(&f, |e| e["reason"] == "UNKNOWN_CLIENT")
    });

    let (_, hello) = jvpn_user::crypto::ClientHandshake::start(
        &f.client,
        jvpn_user::crypto::handshake::tai64n(std::time::SystemTime::now()),
    )
    .expect("HELLO");
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
    let (_, hello) = jvpn_user::crypto::ClientHandshake::start(
        &f.client,
        jvpn_user::crypto::handshake::tai64n(std::time::SystemTime::now()),
    )
    .expect("HELLO");
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
}
