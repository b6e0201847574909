//! The real `jvpn gateway` killed and restarted: a crash between commit and map update, lost pinned
//! maps (a reboot), and a SIGKILL with the pins intact. No version ever goes back, and sessions go
//! on or reattach. Topology as in `gateway_netns.rs`.
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

use jvpn_common::RejectReason;
use jvpn_tests::probe::{
    accepted, client_socket, drops, eventually, gateway, session_hex, started,
};
use jvpn_tests::topology::Family;
use jvpn_tests::wire_client::WireClient;
use jvpn_user::dataplane::Dataplane;
use std::time::Duration;

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
/// captured before can be accepted; the client reattaches across that gap by itself (the
/// gateway's own recovery challenge is turned off here: `gateway_recovery_netns` tests it, and
/// a client it missed still comes back this way).
#[test]
fn lost_maps_move_sessions_to_recovering_and_clients_reattach() {
    let mut f = started(&[]);
    f.extra_args
        .extend(["--recovery-challenges", "0"].map(String::from));
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

/// A SIGKILL in the middle of the RECOVERING pass that follows lost maps: the next start adopts
/// the maps the interrupted start had loaded, and must still move every session that pass did
/// not reach to RECOVERING, or DATA captured before the reboot would be accepted again (the new
/// maps' replay windows are empty).
#[test]
fn a_crash_during_the_recovering_pass_still_recovers_every_session() {
    jvpn_tests::require_root();
    let mut f = jvpn_tests::gateway::GatewayFixture::new();
    let other = f.add_clients(1);
    f.start(&[]);
    let gw = gateway(Family::V4);
    let s1 = client_socket(&f, Family::V4, 40001);
    let s2 = client_socket(&f, Family::V4, 40002);
    let mut a = WireClient::handshake(&f.client, &s1, gw);
    let mut b = WireClient::handshake(&other[0], &s2, gw);
    let captured = [(a.data(b"captured a"), &s1), (b.data(b"captured b"), &s2)];
    f.kill();
    f.detach();

    // The first RECOVERING commit kills the start; the other session was not reached.
    f.spawn(&[("JVPN_FAULT", "after-cas:DATAPLANE_LOST")]);
    let status = f.wait_exit(Duration::from_secs(20));
    assert!(!status.success(), "the injected fault kills the gateway");
    f.start(&[]);

    let accepted_before = accepted(&f);
    let refused_before = drops(&f, RejectReason::NotAttached);
    for (datagram, socket) in &captured {
        socket.send_to(datagram, gw).expect("replay DATA");
    }
    eventually("the XDP program judged both replays", || {
        accepted(&f) + drops(&f, RejectReason::NotAttached) >= accepted_before + refused_before + 2
    });
    assert_eq!(
        accepted(&f),
        accepted_before,
        "DATA captured before the maps were lost was accepted after the restart"
    );
    for id in [a.id, b.id] {
        let detail = f.cli_json(&["sessions", "show", &session_hex(id)]);
        assert_eq!(detail["state"], "RECOVERING", "session {id:016x}: {detail}");
        assert_eq!(f.audit_versions(id), vec![1, 2], "session {id:016x}");
    }
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

/// A HELLO captured before a restart is still a replay after it: the newest accepted HELLO
/// timestamp of each client is rebuilt from the stored sessions, so the replay makes no session
/// (which would otherwise become the client's newest and take its downstream traffic).
#[test]
fn a_hello_captured_before_a_restart_is_refused_after_it() {
    let mut f = started(&[]);
    let gw = gateway(Family::V4);
    let s = client_socket(&f, Family::V4, 40001);
    let hello = jvpn_tests::wire_client::hello(&f.client);
    s.send_to(&hello, gw).expect("send HELLO");
    let _welcome = jvpn_tests::wire_client::receive_raw(&s, "WELCOME");

    f.kill();
    f.start(&[]);
    let attacker = client_socket(&f, Family::V4, 40666);
    attacker.send_to(&hello, gw).expect("replay HELLO");
    eventually("HANDSHAKE_REPLAY reported after the restart", || {
        jvpn_tests::probe::has_event(&f, |e| e["reason"] == "HANDSHAKE_REPLAY")
    });
    let sessions = f.cli_json(&["sessions", "list"]);
    assert_eq!(
        sessions.as_array().expect("list").len(),
        1,
        "the replay made no session: {sessions}"
    );

    // A fresh HELLO of the same client is still welcome.
    let c = WireClient::handshake(&f.client, &s, gw);
    assert_eq!(f.audit_versions(c.id), vec![1], "a new session is born");
}
