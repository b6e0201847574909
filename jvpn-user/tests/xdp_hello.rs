//! The real jvpn XDP object through `BPF_PROG_TEST_RUN`, on HELLO admission beyond the decision
//! list's rows: the cookie under load (within and over the cookie budget, a mac2 for this source,
//! for another source, under the previous secret), the per-/64 buckets of IPv6 sources, and the
//! global HELLO budget that makes a cookie necessary once spent; and, on a node of a cluster, the
//! reattach messages of sessions not in the map, which pass to the controller within the same
//! per-source budget.
//!
//! Runs as root; each test loads its own copy of the object and pins itself to CPU 0, since the
//! global budgets are per CPU.

mod xdp_support;

use jvpn_common::maps::DataplaneMode;
use jvpn_common::reason::COUNTER_TO_CONTROLLER;
use jvpn_common::{GatewayConfig, RejectReason};
use std::net::{IpAddr, SocketAddr};
use xdp_support::*;

fn load(adjust: impl FnOnce(&mut GatewayConfig)) -> TestDataplane {
    require_root("xdp_hello");
    pin_to_cpu(0);
    let mut dp = TestDataplane::load(16);
    let mut cfg = config(DataplaneMode::Enforce);
    cfg.hello_burst = 1_000;
    adjust(&mut cfg);
    dp.set_config(cfg);
    dp
}

fn addr(s: &str, port: u16) -> SocketAddr {
    SocketAddr::new(s.parse::<IpAddr>().unwrap(), port)
}

/// Packets counted under `reason`.
fn refused(dp: &TestDataplane, reason: RejectReason) -> u64 {
    dp.counters()[reason.counter_slot() as usize].packets
}

fn to_controller(dp: &TestDataplane) -> u64 {
    dp.counters()[COUNTER_TO_CONTROLLER as usize].packets
}

#[test]
fn under_load_a_hello_needs_a_cookie_for_its_own_source() {
    let dp = load(|cfg| {
        cfg.handshake.under_load = 1;
        cfg.handshake.cookie_burst = 2;
        cfg.handshake.cookie_rate = 0;
    });
    let f = Family::v4(None);
    let at = |source: SocketAddr, hello: Vec<u8>| dp.run(&f.udp(source, hello).frame());
    let client = f.client;
    let own = cookie_for(&COOKIE_SECRET, client);
    let previous = cookie_for(&PREVIOUS_COOKIE_SECRET, client);
    let other_source = cookie_for(&COOKIE_SECRET, f.other_port);
    let stale = cookie_for(&[0x99; 16], client);

    // Without mac2: passed within the cookie budget (for the COOKIE_REPLY), dropped beyond it.
    assert_eq!(at(client, hello(1, None)), XDP_PASS, "1st, cookie budget");
    assert_eq!(at(client, hello(2, None)), XDP_PASS, "2nd, cookie budget");
    assert_eq!(at(client, hello(3, None)), XDP_DROP, "cookie budget spent");
    assert_eq!(refused(&dp, RejectReason::CookieRequired), 1);
    assert_eq!(to_controller(&dp), 2);

    // With a valid mac2 for its source, under either secret: passed, budget or not.
    assert_eq!(at(client, hello(4, Some(own))), XDP_PASS, "own cookie");
    assert_eq!(at(client, hello(5, Some(previous))), XDP_PASS, "previous");
    // A mac2 for another source (same address, other port), or under an unknown secret: refused.
    assert_eq!(at(client, hello(6, Some(other_source))), XDP_DROP);
    assert_eq!(at(client, hello(7, Some(stale))), XDP_DROP);
    // The cookie of the other port is good from that port.
    assert_eq!(at(f.other_port, hello(8, Some(other_source))), XDP_PASS);
    assert_eq!(refused(&dp, RejectReason::CookieRequired), 3);
    assert_eq!(to_controller(&dp), 5);
    let mut dp = dp;
    let reasons: Vec<u8> = dp.events().iter().map(|e| e.reason).collect();
    assert_eq!(reasons, [RejectReason::CookieRequired.code(); 3]);
}

#[test]
fn a_bad_mac1_is_refused_before_any_budget_is_spent() {
    let dp = load(|cfg| {
        cfg.hello_burst = 1;
        cfg.handshake.global_burst = 1;
    });
    let f = Family::v4(None);
    let forged = hello_with_key(1, &[0x22; 16], None);
    for _ in 0..5 {
        assert_eq!(dp.run(&f.frame(forged.clone())), XDP_DROP);
    }
    assert_eq!(refused(&dp, RejectReason::BadMac), 5);
    // The source's bucket and the global budget are untouched: a good HELLO passes.
    assert_eq!(dp.run(&f.frame(hello(2, None))), XDP_PASS);
    assert_eq!(to_controller(&dp), 1);
}

#[test]
fn ipv6_sources_of_one_64_share_a_bucket() {
    let dp = load(|cfg| {
        cfg.hello_burst = 2;
        cfg.hello_rate = 0;
    });
    let f = Family::v6(None);
    let run = |source: SocketAddr| dp.run(&f.udp(source, hello(1, None)).frame());
    assert_eq!(run(addr("2001:db8:0:7::10", 1000)), XDP_PASS);
    assert_eq!(run(addr("2001:db8:0:7:ffff:1:2:3", 1001)), XDP_PASS);
    assert_eq!(
        run(addr("2001:db8:0:7:aaaa::99", 1002)),
        XDP_DROP,
        "a third address of the same /64 finds the bucket empty"
    );
    assert_eq!(run(addr("2001:db8:0:8::10", 1000)), XDP_PASS, "another /64");
    assert_eq!(refused(&dp, RejectReason::HandshakeRate), 1);
    // IPv4 stays per address.
    let v4 = Family::v4(None);
    let run4 = |a: &str| dp.run(&v4.udp(addr(a, 1000), hello(1, None)).frame());
    assert_eq!(run4("192.0.2.1"), XDP_PASS);
    assert_eq!(run4("192.0.2.1"), XDP_PASS);
    assert_eq!(run4("192.0.2.1"), XDP_DROP);
    assert_eq!(run4("192.0.2.2"), XDP_PASS);
}

#[test]
fn once_the_global_budget_is_spent_every_hello_needs_a_cookie() {
    let dp = load(|cfg| {
        cfg.handshake.global_burst = 3;
        cfg.handshake.global_rate = 0;
        cfg.handshake.cookie_burst = 0;
    });
    let f = Family::v4(None);
    // Many spoofed sources, each within its own bucket: only the global budget stops them.
    let spoofed = |i: u8| addr(&format!("198.18.0.{i}"), 5000);
    let verdicts: Vec<u32> = (1..=6)
        .map(|i| dp.run(&f.udp(spoofed(i), hello(i, None)).frame()))
        .collect();
    assert_eq!(
        verdicts,
        [XDP_PASS, XDP_PASS, XDP_PASS, XDP_DROP, XDP_DROP, XDP_DROP]
    );
    assert_eq!(refused(&dp, RejectReason::CookieRequired), 3);
    // A client holding its cookie still gets through.
    let cookie = cookie_for(&COOKIE_SECRET, f.client);
    assert_eq!(dp.run(&f.frame(hello(9, Some(cookie)))), XDP_PASS);
    assert_eq!(to_controller(&dp), 4);
}

/// A clustered gateway (CONFIG_FLAG_CLUSTER) passes the REATTACH_REQUEST and PATH_RESPONSE of
/// a session it does not hold to the controller, which looks it up in the shared store, within
/// the per-source HELLO budget; its DATA, KEEPALIVE and TERMINATE stay UNKNOWN_SESSION, and a
/// standalone gateway drops them all.
#[test]
fn a_clustered_gateway_passes_unknown_sessions_reattaches_within_the_hello_budget() {
    use jvpn_common::maps::CONFIG_FLAG_CLUSTER;
    use jvpn_common::MessageType::{Data, Keepalive, PathResponse, ReattachRequest, Terminate};
    let unknown = 0x0002_0000_0000_0077;
    let f = Family::v4(None);
    let frame = |t| {
        f.udp(f.client, message(t, unknown, 3, 9, &[7; 16], 32))
            .frame()
    };
    let standalone = load(|_| {});
    for t in [ReattachRequest, PathResponse, Data, Keepalive, Terminate] {
        assert_eq!(standalone.run(&frame(t)), XDP_DROP, "standalone: {t:?}");
    }
    assert_eq!(refused(&standalone, RejectReason::UnknownSession), 5);

    let clustered = load(|cfg| {
        cfg.flags = CONFIG_FLAG_CLUSTER;
        cfg.hello_burst = 2;
        cfg.hello_rate = 0;
    });
    for t in [Data, Keepalive, Terminate] {
        assert_eq!(clustered.run(&frame(t)), XDP_DROP, "clustered: {t:?}");
    }
    assert_eq!(refused(&clustered, RejectReason::UnknownSession), 3);
    assert_eq!(clustered.run(&frame(ReattachRequest)), XDP_PASS);
    assert_eq!(clustered.run(&frame(PathResponse)), XDP_PASS);
    assert_eq!(to_controller(&clustered), 2);
    assert_eq!(
        clustered.run(&frame(ReattachRequest)),
        XDP_DROP,
        "the source's budget is spent"
    );
    assert_eq!(refused(&clustered, RejectReason::HandshakeRate), 1);
}
