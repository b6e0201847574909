//! A gateway restarted without its maps challenges every RECOVERING session at its last binding
//! (`gateway::recovery`), so the tunnel works again about one round trip and a commit after the
//! restart, not after the client's silence timeout; and nothing but the genuine answer from the
//! binding moves the session. Two ways to lose the maps, as operators do: `jvpn detach` (a reboot)
//! and a gateway run through `ip netns exec`, whose private mount namespace takes its pins along
//! when it exits (it says so in one line at start).
//!
//! ```text
//!  tunnel test (jvpn_tests::tunnel):
//!  gateway ns: jvpn gateway (killed, detached, restarted), TUN 10.99.0.1, <gw> (XDP)
//!       || veth
//!  router ns:  10.200.0.2, wifi side 10.201.1.1, lte side 10.201.2.1
//!       || wifi
//!  client ns:  jvpn client, TUN 10.99.0.2, wifi 10.201.1.2
//!
//!  wire test (as gateway_netns.rs):
//!  +------------- gateway ns ----------------+        +---------- client ns -----------+
//!  |  ip netns exec <gw ns> jvpn gateway      |        |  "wifi" :40001 (WireClient)    |
//!  |    its own bpffs in a private mount ns   |        |  "attacker" :40666             |
//!  |  <gw> 10.200.0.1/24  XDP <===============|==veth==|==> <cl> 10.200.0.2/24          |
//!  +------------------------------------------+        +--------------------------------+
//! ```

use jvpn_common::control::{PathChallenge, GATEWAY_CHALLENGE_ATTEMPT};
use jvpn_common::wire::MessageType;
use jvpn_common::RejectReason;
use jvpn_tests::probe::{client_socket, drops, eventually, gateway, session_hex};
use jvpn_tests::topology::Family;
use jvpn_tests::tunnel::Tunnel;
use jvpn_tests::wire_client::{as_reject, receive_raw, Reply, WireClient};
use jvpn_user::crypto::{open_message, Direction};
use std::time::{Duration, Instant};

/// The line a gateway whose pins die with it writes at start.
const PINS_WARNING: &str = "the pins cannot outlive this process";
/// The client's own way back is silence: three keepalive intervals (5 s in the fixture's config)
/// before it reattaches. The challenge must bring the tunnel back well before.
const WELL_BEFORE_SILENCE: Duration = Duration::from_secs(8);

/// Whether one ping from the client through the tunnel to the gateway's TUN address answers.
fn ping_through(t: &Tunnel) -> bool {
    t.client
        .command("ping")
        .args(["-c", "1", "-W", "1", "10.99.0.1"])
        .output()
        .is_ok_and(|o| o.status.success())
}

#[test]
fn the_tunnel_works_again_one_round_trip_after_a_restart_that_lost_the_maps() {
    let mut t = Tunnel::up();
    eventually("a ping through the tunnel", || ping_through(&t));
    t.f.kill();
    t.f.detach();
    let started = Instant::now();
    t.f.start(&[]);
    let serving = started.elapsed();
    let deadline = Instant::now() + WELL_BEFORE_SILENCE;
    while !ping_through(&t) {
        assert!(
            Instant::now() < deadline,
            "no ping through the tunnel {WELL_BEFORE_SILENCE:?} after the restart\n\
             client log:\n{}\ngateway log:\n{}",
            t.client_log(),
            t.f.log()
        );
    }
    eprintln!(
        "the gateway served {serving:?} after its start; the tunnel worked again {:?} after \
         that",
        started.elapsed() - serving
    );
    let audit = t.f.cli_json(&["audit", &session_hex(t.session)]);
    let audit = audit.as_array().expect("audit prints a JSON array");
    let steps: Vec<_> = audit
        .iter()
        .map(|e| {
            (
                e["version"].as_u64().expect("version"),
                e["to_state"].as_str().expect("to_state").to_owned(),
                e["cause"].as_str().expect("cause").to_owned(),
            )
        })
        .collect();
    let expected = [
        (1, "ATTACHED", "HANDSHAKE_COMPLETE"),
        (2, "RECOVERING", "DATAPLANE_LOST"),
        (3, "ATTACHED", "REATTACH"),
    ]
    .map(|(v, s, c)| (v, s.to_owned(), c.to_owned()));
    assert_eq!(steps, expected, "{audit:#?}");
    let row = t.only_session();
    assert_eq!(row["state"], "ATTACHED", "{row}");
    assert!(
        t.f.log().contains("challenged the RECOVERING sessions"),
        "{}",
        t.f.log()
    );
}

/// Restarted through `ip netns exec`, the gateway loses its maps at every restart and says so at
/// start. Its challenge reaches the client's binding; reflected back, or answered from another
/// address, it moves nothing; the genuine answer moves the session to ATTACHED exactly once.
#[test]
fn under_ip_netns_exec_the_pins_die_with_the_gateway_and_only_the_binding_answers() {
    let mut f = jvpn_tests::gateway::GatewayFixture::new();
    f.launcher = ["ip", "netns", "exec", f.hosts.gateway.name()]
        .map(String::from)
        .to_vec();
    f.start(&[]);
    assert_eq!(f.log().matches(PINS_WARNING).count(), 1, "{}", f.log());
    let gw = gateway(Family::V4);
    let wifi = client_socket(&f, Family::V4, 40001);
    let attacker = client_socket(&f, Family::V4, 40666);
    let mut c = WireClient::handshake(&f.client, &wifi, gw);
    f.kill();
    assert!(
        !f.hosts.gateway_has_xdp(),
        "the XDP program went with the gateway's mount namespace"
    );
    f.start(&[]);
    assert_eq!(f.log().matches(PINS_WARNING).count(), 2, "{}", f.log());

    let reflected = receive_raw(&wifi, "the gateway's PATH_CHALLENGE");
    let (header, body) = open_message(&c.keys, Direction::GatewayToClient, &reflected)
        .expect("the challenge is sealed for this session");
    let challenge = Reply { header, body };
    assert_eq!(challenge.kind(), MessageType::PathChallenge);
    assert_eq!(challenge.header.state_version.get(), 2, "at RECOVERING");
    assert_eq!(
        challenge.body::<PathChallenge>().attempt.get(),
        GATEWAY_CHALLENGE_ATTEMPT
    );
    let id = c.id;
    let recovering = |f: &jvpn_tests::gateway::GatewayFixture| {
        let detail = f.cli_json(&["sessions", "show", &session_hex(id)]);
        assert_eq!(detail["state"], "RECOVERING", "{detail}");
        assert_eq!(f.audit_versions(id), vec![1, 2]);
    };

    // Reflected to the gateway: a gateway-to-client type, dropped in XDP.
    let malformed = drops(&f, RejectReason::Malformed);
    for socket in [&attacker, &wifi] {
        socket
            .send_to(&reflected, gw)
            .expect("reflect the challenge");
    }
    eventually("both reflections dropped as MALFORMED", || {
        drops(&f, RejectReason::Malformed) >= malformed + 2
    });
    recovering(&f);

    // The genuine answer, but from another address: refused, the binding stays.
    let misdirected = c.path_response(&challenge);
    attacker
        .send_to(&misdirected, gw)
        .expect("answer from elsewhere");
    let refusal = c.receive(&attacker, "the REJECT");
    assert_eq!(
        as_reject(&refusal).and_then(|r| r.reason()),
        Some(RejectReason::PathValidation)
    );
    recovering(&f);

    // From the binding: ATTACHED one version up, once.
    let answer = c.path_response(&challenge);
    wifi.send_to(&answer, gw).expect("answer from the binding");
    let ack = c.receive(&wifi, "the REATTACH_ACK");
    assert_eq!(ack.kind(), MessageType::ReattachAck);
    assert_eq!(ack.header.state_version.get(), 3);
    // A replay from the bound transport is refused out loud there (spec 6.2), and changes nothing.
    wifi.send_to(&answer, gw).expect("the answer again");
    let notice = c.receive(&wifi, "the REJECT of the replayed answer");
    assert_eq!(
        as_reject(&notice).and_then(|r| r.reason()),
        Some(RejectReason::DuplicateNonce)
    );
    assert_eq!(f.audit_versions(c.id), vec![1, 2, 3]);
    c.acked = 3;
    let detail = f.cli_json(&["sessions", "show", &session_hex(c.id)]);
    assert_eq!(detail["state"], "ATTACHED", "{detail}");
}
