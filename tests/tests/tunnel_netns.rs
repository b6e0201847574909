//! The Jumping VPN end to end: the real `jvpn gateway` (XDP + TUN) and the real `jvpn client`
//! (TUN) carry a TCP transfer of a known 50 MB payload while the client jumps ten times between
//! its two uplinks with `jvpn client jump`. Each jump happens at a set fraction of the transfer
//! (the receiver's byte count, never a sleep). The bytes arrive intact, the session id never
//! changes, its audit reads version 1, then +1 per jump, with one STATE_CHANGE each. When its
//! transport goes dead, the client reattaches by itself: within seconds when its DATA goes
//! unanswered, after three keepalive intervals of silence when it was idle. The topology is
//! [`jvpn_tests::tunnel`]'s:
//!
//! ```text
//!  gateway ns: jvpn gateway, TUN 10.99.0.1, TCP server :5201, <gw> 10.200.0.1 (XDP)
//!       || veth
//!  router ns:  10.200.0.2, wifi side 10.201.1.1, lte side 10.201.2.1
//!       || wifi                || lte
//!  client ns:  jvpn client, TUN 10.99.0.2, wifi 10.201.1.2, lte 10.201.2.2
//! ```

use jvpn_tests::attacker::router_interface;
use jvpn_tests::transfer::Transfer;
use jvpn_tests::tunnel::{payload, Tunnel};
use std::net::{Ipv4Addr, TcpStream};
use std::time::{Duration, Instant};

const PAYLOAD_LEN: usize = 50_000_000;
const JUMPS: u64 = 10;
/// The bound on each stretch of the transfer between jumps; a failure bound, not a sleep.
const STRETCH_PATIENCE: Duration = Duration::from_secs(120);
/// A port nobody listens on: a reset proves the round trip through the tunnel.
const SERVER_PROBE: &str = "10.99.0.1:5299";

#[test]
fn a_tcp_transfer_survives_jumps_between_uplinks() {
    let t = Tunnel::up();
    let transfer = Transfer::start(&t, payload(PAYLOAD_LEN));
    for jump in 1..=JUMPS {
        // Jump k once k/(JUMPS+1) of the payload has arrived: every jump meets a running
        // transfer, and the last stretch is carried after the last jump.
        let mark = PAYLOAD_LEN * jump as usize / (JUMPS as usize + 1);
        transfer.wait_for(&t, mark, STRETCH_PATIENCE);
        let uplink = if jump % 2 == 1 { &t.lte } else { &t.wifi };
        assert_eq!(
            t.jump(uplink),
            jump + 1,
            "jump {jump} to {uplink}\n{}",
            t.logs()
        );
        assert!(
            transfer.received() < PAYLOAD_LEN,
            "jump {jump} came after the transfer ended: nothing was tested"
        );
    }
    let took = transfer.finish(&t, STRETCH_PATIENCE);
    eprintln!("{PAYLOAD_LEN} bytes and {JUMPS} jumps in {took:?}");

    t.only_session();
    let versions = t.f.audit_versions(t.session);
    assert_eq!(
        versions,
        (1..=JUMPS + 1).collect::<Vec<_>>(),
        "version 1, then +1 per jump"
    );
    let session = format!("{:016x}", t.session);
    let changes: Vec<u64> =
        t.f.events()
            .iter()
            .filter(|e| e["kind"] == "STATE_CHANGE" && e["session"] == session)
            .map(|e| {
                e["to_version"]
                    .as_u64()
                    .expect("a STATE_CHANGE has to_version")
            })
            .collect();
    assert_eq!(
        changes,
        (1..=JUMPS + 1).collect::<Vec<_>>(),
        "one STATE_CHANGE per version"
    );
}

/// The wifi path goes dead beyond the client's reach (the router drops everything it would
/// forward from or to wifi) while every link and route stays as it was: only silence tells. The
/// client, pinned to wifi, hears nothing for three keepalive intervals (5 s in the fixture),
/// fails to reattach over wifi, and reattaches over the other uplink that leads to the gateway.
#[test]
fn the_client_reattaches_over_another_uplink_when_its_path_goes_silent() {
    let t = Tunnel::up();
    blackhole_wifi(&t);

    let deadline = Instant::now() + Duration::from_secs(90);
    while t.f.audit_versions(t.session).len() < 2 {
        assert!(
            Instant::now() < deadline,
            "no reattach after the path went silent; client log:\n{}",
            t.client_log()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(
        t.f.audit_versions(t.session),
        vec![1, 2],
        "one reattach, same session"
    );
    let log = t.client_log();
    assert!(
        log.contains("no acknowledgement from the gateway")
            && log.contains("reattached over another uplink after silence"),
        "the silence, not a route change, moved the session:\n{log}"
    );
    assert!(
        t.peer().to_string().starts_with("10.201.2.2:"),
        "bound to lte now: {}",
        t.peer()
    );
    let stream = t.client.run(|| {
        TcpStream::connect_timeout(&SERVER_PROBE.parse().expect("addr"), Duration::from_secs(5))
    });
    assert!(
        stream.is_err_and(|e| e.kind() == std::io::ErrorKind::ConnectionRefused),
        "the tunnel carries traffic again (a closed port answers with a reset)"
    );
}

/// Makes the router drop everything it would forward from or to the client's wifi uplink, while
/// every link and route stays as it was.
fn blackhole_wifi(t: &Tunnel) {
    let router_wifi = router_interface(t, Ipv4Addr::new(10, 201, 1, 1));
    router_drops(
        t,
        &[
            format!("iifname \"{router_wifi}\""),
            format!("oifname \"{router_wifi}\""),
        ],
    );
}

/// Makes the router drop the packets it would forward that match any of `matches` (nft
/// expressions), in a table of the test's own.
fn router_drops(t: &Tunnel, matches: &[String]) {
    let mut rules = "add table inet jvpn_test_blackhole\n\
         add chain inet jvpn_test_blackhole forward { type filter hook forward priority 0; }\n"
        .to_owned();
    for m in matches {
        rules.push_str(&format!(
            "add rule inet jvpn_test_blackhole forward {m} drop\n"
        ));
    }
    let mut nft =
        t.f.hosts
            .client
            .command("nft")
            .args(["-f", "-"])
            .stdin(std::process::Stdio::piped())
            .spawn()
            .expect("spawn nft");
    std::io::Write::write_all(nft.stdin.as_mut().expect("nft stdin"), rules.as_bytes())
        .expect("write the nft rules");
    assert!(
        nft.wait().expect("wait for nft").success(),
        "nft refused:\n{rules}"
    );
}

/// How long a client whose DATA goes unanswered may take to reattach: well before three keepalive
/// intervals of silence (15 s in the fixture), after which it would reattach anyway.
const WELL_BEFORE_SILENCE: Duration = Duration::from_secs(10);

/// Under a running TCP transfer the router starts dropping the client's datagrams from the
/// transport its session is bound to, and nothing else: the gateway no longer answers the
/// client's DATA, as when an anycast front starts sending the client to a node without its
/// session. The client's DATA goes unanswered, then its KEEPALIVE probe, and it reattaches within
/// seconds from a new socket (same uplink, new port), long before three keepalive intervals of
/// silence. The transfer completes intact.
#[test]
fn the_client_reattaches_promptly_when_its_data_goes_unanswered() {
    let t = Tunnel::up();
    let transfer = Transfer::start(&t, payload(PAYLOAD_LEN));
    transfer.wait_for(&t, PAYLOAD_LEN / 10, STRETCH_PATIENCE);
    let bound = t.peer();
    router_drops(
        &t,
        &[format!(
            "ip saddr {} udp sport {}",
            bound.ip(),
            bound.port()
        )],
    );
    let cut = Instant::now();
    assert!(
        transfer.received() < PAYLOAD_LEN,
        "the transfer ended before its transport went dead: nothing was tested"
    );
    while t.f.audit_versions(t.session).len() < 2 {
        assert!(
            cut.elapsed() < WELL_BEFORE_SILENCE,
            "no reattach {WELL_BEFORE_SILENCE:?} after the DATA went unanswered; client log:\n{}",
            t.client_log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    eprintln!(
        "reattached {:?} after the transport went dead",
        cut.elapsed()
    );
    let log = t.client_log();
    assert!(
        log.contains("no acknowledgement from the gateway to DATA or a KEEPALIVE probe"),
        "the reattach did not come from the unanswered DATA:\n{log}"
    );
    transfer.finish(&t, STRETCH_PATIENCE);
    let now_bound = t.peer();
    assert!(
        now_bound.ip() == bound.ip() && now_bound.port() != bound.port(),
        "the same uplink, a new port: {bound} -> {now_bound}"
    );
}
