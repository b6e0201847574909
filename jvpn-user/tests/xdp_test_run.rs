//! The real jvpn XDP object through `BPF_PROG_TEST_RUN`, around the decision list (which
//! `xdp_decision_list.rs` covers row by row): the object's maps, foreign traffic, an unconfigured
//! program, monitor mode, the HELLO rate limit, event rate limiting and a full ring buffer (the
//! slots have `xdp_replay_slots.rs`, the slot hint and the lines' sequence lock
//! `xdp_slot_hint.rs`).
//!
//! Runs as root (loading BPF programs needs it); each test loads its own copy of the object.

mod xdp_support;

use jvpn_common::abi::{
    MAP_CONFIG, MAP_COUNTERS, MAP_EVENTS, MAP_EVENT_BUDGET, MAP_EVENT_LOSS, MAP_HELLO_BUCKETS,
    MAP_HELLO_BUDGET, MAP_REPLAY, MAP_SCRATCH, MAP_SESSIONS, MAP_SESSION_INDEX,
};
use jvpn_common::maps::DataplaneMode;
use jvpn_common::reason::{COUNTER_ACCEPTED, COUNTER_TO_CONTROLLER};
use jvpn_common::{MessageType, RejectReason, SessionState, TransportBinding};
use std::net::{Ipv4Addr, SocketAddr};
use xdp_support::*;

const SESSION: u64 = 0x0001_0000_0000_0042;
const KEY: [u8; 16] = [0x11; 16];
const VERSION: u64 = 5;
const NONCE: u64 = 77;
const BODY: usize = 32;

fn msg(t: MessageType, version: u64, nonce: u64) -> Vec<u8> {
    message(t, SESSION, version, nonce, &KEY, BODY)
}

#[test]
fn object_declares_every_abi_map() {
    require_root("xdp_test_run");
    let dp = TestDataplane::load(16);
    for name in [
        MAP_SESSIONS,
        MAP_SESSION_INDEX,
        MAP_REPLAY,
        MAP_COUNTERS,
        MAP_EVENT_LOSS,
        MAP_EVENT_BUDGET,
        MAP_EVENTS,
        MAP_CONFIG,
        MAP_HELLO_BUCKETS,
        MAP_HELLO_BUDGET,
        MAP_SCRATCH,
    ] {
        assert!(dp.ebpf().map(name).is_some(), "the object lacks map {name}");
    }
}

#[test]
fn traffic_that_is_not_jvpn_passes_uncounted() {
    require_root("xdp_test_run");
    let mut dp = TestDataplane::load(16);
    dp.set_config(config(DataplaneMode::Enforce));
    let v4 = Family::v4(None);
    let v6 = Family::v6(None);
    let junk = vec![0xee; 64];
    let to_other_port = |f: &Family| {
        let mut gateway = f.gateway;
        gateway.set_port(PORT + 1);
        Udp::new(f.client, gateway, junk.clone()).frame()
    };
    let tcp_to_port = {
        let mut frame = Family::v4(None).frame(junk.clone());
        frame[14 + 9] = 6;
        frame
    };
    let later_fragment = {
        // Fragment offset 8 (64 bytes): no UDP header of its own, never reassembled without the
        // first fragment, which the program drops.
        let mut frame = Family::v4(None).frame(junk.clone());
        frame[14 + 6] = 0x20;
        frame[14 + 7] = 0x08;
        frame
    };
    let arp = {
        let mut frame = vec![0xff; 6];
        frame.extend_from_slice(&[2, 0, 0, 0, 0, 1, 0x08, 0x06]);
        frame.extend_from_slice(&[0; 28]);
        frame
    };
    let frames = [
        ("UDP/IPv4 to another port", to_other_port(&v4)),
        ("UDP/IPv6 to another port", to_other_port(&v6)),
        ("TCP/IPv4 to the jvpn port", tcp_to_port),
        ("later IPv4 fragment", later_fragment),
        ("ARP", arp),
        ("runt frame", vec![0; 14]),
    ];
    let before = dp.counters();
    for (name, frame) in frames {
        assert_eq!(dp.run(&frame), XDP_PASS, "{name} must pass");
    }
    assert_eq!(
        counter_delta(&before, &dp.counters()),
        [],
        "foreign traffic is not counted"
    );
    assert!(dp.events().is_empty(), "foreign traffic emits no events");
}

#[test]
fn packets_that_hide_their_udp_header_are_malformed() {
    require_root("xdp_test_run");
    let mut dp = TestDataplane::load(16);
    dp.set_config(config(DataplaneMode::Enforce));
    let v4 = Family::v4(None);
    let v6 = Family::v6(None);
    dp.set_session(
        SESSION,
        session(SessionState::Attached, VERSION, KEY, v6.client),
    );
    let tiny_first_fragment = {
        // A first fragment with 4 bytes of UDP header (RFC 1858's tiny fragment): the port is in
        // the next fragment, so the stack would reassemble a datagram the program never saw.
        let ip = ipv4(
            [192, 0, 2, 10],
            [198, 51, 100, 1],
            17,
            true,
            &[0x9c, 0x40, 0xca, 0xbc],
        );
        let mut frame = vec![0x02, 0, 0, 0, 0, 0x01, 0x02, 0, 0, 0, 0, 0x02, 0x08, 0x00];
        frame.extend_from_slice(&ip);
        frame
    };
    let data = msg(MessageType::Data, VERSION, NONCE);
    let mut long_chain = v6.udp(v6.client, data.clone());
    long_chain.ipv6_extensions = vec![0, 60, 43, 44, 51, 60, 60];
    let mut short_chain = v6.udp(v6.client, data);
    short_chain.ipv6_extensions = vec![0, 60];
    let before = dp.counters();
    assert_eq!(
        dp.run(&tiny_first_fragment),
        XDP_DROP,
        "tiny first fragment"
    );
    assert_eq!(
        dp.run(&long_chain.frame()),
        XDP_DROP,
        "header chain longer than the walk"
    );
    assert_eq!(
        dp.run(&short_chain.frame()),
        XDP_PASS,
        "a walkable chain is judged as usual"
    );
    let moved = counter_delta(&before, &dp.counters());
    let slots: Vec<(u32, u64)> = moved
        .iter()
        .map(|&(slot, packets, _)| (slot, packets))
        .collect();
    assert_eq!(
        slots,
        [
            (COUNTER_ACCEPTED, 1),
            (RejectReason::Malformed.counter_slot(), 2)
        ]
    );
    let events = dp.events();
    let sources: Vec<(u8, [u8; 16], u16)> = events
        .iter()
        .map(|e| (e.reason, e.addr, e.port.get()))
        .collect();
    let malformed = RejectReason::Malformed.code();
    assert_eq!(
        sources,
        [
            (
                malformed,
                TransportBinding::from_socket_addr(v4.client).addr,
                0
            ),
            (
                malformed,
                TransportBinding::from_socket_addr(v6.client).addr,
                0
            ),
        ]
    );
}

#[test]
fn unconfigured_program_passes_everything() {
    require_root("xdp_test_run");
    let mut dp = TestDataplane::load(16);
    let f = Family::v4(None);
    let before = dp.counters();
    for frame in [
        f.frame(vec![0; 8]),
        f.frame(msg(MessageType::Data, VERSION, NONCE)),
    ] {
        assert_eq!(
            dp.run(&frame),
            XDP_PASS,
            "port 0 means not configured: pass"
        );
    }
    assert_eq!(counter_delta(&before, &dp.counters()), []);
    assert!(dp.events().is_empty());
}

#[test]
fn monitor_mode_passes_what_it_would_drop_but_counts_and_reports_it() {
    require_root("xdp_test_run");
    let mut dp = TestDataplane::load(16);
    dp.set_config(config(DataplaneMode::Monitor));
    let f = Family::v6(None);
    dp.set_session(
        SESSION,
        session(SessionState::Attached, VERSION, KEY, f.client),
    );
    let data = f.frame(msg(MessageType::Data, VERSION, NONCE));
    let bad_tag = f.frame(message(
        MessageType::Data,
        SESSION,
        VERSION,
        NONCE + 1,
        &[9; 16],
        BODY,
    ));
    let before = dp.counters();
    assert_eq!(dp.run(&data), XDP_PASS);
    assert_eq!(
        dp.run(&data),
        XDP_PASS,
        "a duplicate passes in monitor mode"
    );
    assert_eq!(
        dp.run(&bad_tag),
        XDP_PASS,
        "a bad tag passes in monitor mode"
    );
    let len = data.len() as u64;
    assert_eq!(
        counter_delta(&before, &dp.counters()),
        [
            (COUNTER_ACCEPTED, 1, len),
            (RejectReason::BadTag.counter_slot(), 1, len),
            (RejectReason::DuplicateNonce.counter_slot(), 1, len),
        ]
    );
    let reasons: Vec<u8> = dp.events().iter().map(|e| e.reason).collect();
    assert_eq!(
        reasons,
        [
            RejectReason::DuplicateNonce.code(),
            RejectReason::BadTag.code()
        ]
    );
}

#[test]
fn hello_rate_limit_is_per_source_address() {
    require_root("xdp_test_run");
    let mut dp = TestDataplane::load(16);
    let mut cfg = config(DataplaneMode::Enforce);
    cfg.hello_burst = 3;
    cfg.hello_rate = 0;
    dp.set_config(cfg);
    let f = Family::v4(None);
    let hello = hello(1, None);
    let from_a = f.frame(hello.clone());
    // Another port of the same address shares its bucket; another address has its own.
    let from_a_other_port = f.udp(f.other_port, hello.clone()).frame();
    let from_b = f
        .udp(
            SocketAddr::new(Ipv4Addr::new(192, 0, 2, 11).into(), 40_000),
            hello,
        )
        .frame();
    let verdicts: Vec<u32> = [
        &from_a,
        &from_a,
        &from_a_other_port,
        &from_a,
        &from_b,
        &from_a_other_port,
    ]
    .iter()
    .map(|frame| dp.run(frame))
    .collect();
    assert_eq!(
        verdicts,
        [XDP_PASS, XDP_PASS, XDP_PASS, XDP_DROP, XDP_PASS, XDP_DROP]
    );
    let counters = dp.counters();
    assert_eq!(counters[COUNTER_TO_CONTROLLER as usize].packets, 4);
    assert_eq!(
        counters[RejectReason::HandshakeRate.counter_slot() as usize].packets,
        2
    );
    assert_eq!(dp.events().len(), 2);
}

#[test]
fn events_are_rate_limited_per_reason_and_every_one_missing_is_counted() {
    require_root("xdp_test_run");
    // One CPU, so the per-CPU budget is the one being spent.
    pin_to_cpu(0);
    let mut dp = TestDataplane::load(16);
    let mut cfg = config(DataplaneMode::Enforce);
    cfg.events_per_second = 2;
    dp.set_config(cfg);
    let f = Family::v4(None);
    let malformed = f.frame(vec![0; 8]);
    let unknown = f.frame(msg(MessageType::Data, VERSION, NONCE));
    // One test run of five repeats takes microseconds: well inside one budget second.
    assert_eq!(dp.run_repeat(&malformed, 5), XDP_DROP);
    assert_eq!(dp.run_repeat(&unknown, 1), XDP_DROP);
    let malformed_slot = RejectReason::Malformed.counter_slot();
    let unknown_slot = RejectReason::UnknownSession.counter_slot();
    let counters = dp.counters();
    assert_eq!(counters[malformed_slot as usize].packets, 5);
    let reasons: Vec<u8> = dp.events().iter().map(|e| e.reason).collect();
    assert_eq!(
        reasons,
        [
            RejectReason::Malformed.code(),
            RejectReason::Malformed.code(),
            RejectReason::UnknownSession.code()
        ],
        "two MALFORMED events, and the budget of UNKNOWN_SESSION is its own"
    );
    assert_eq!(dp.event_loss(malformed_slot).rate_limited, 3);
    assert_eq!(dp.event_loss(malformed_slot).ring_full, 0);
    assert_eq!(dp.event_loss(unknown_slot).rate_limited, 0);
}

#[test]
fn a_full_ring_buffer_loses_no_event_uncounted() {
    require_root("xdp_test_run");
    let mut dp = TestDataplane::load(16);
    let mut cfg = config(DataplaneMode::Enforce);
    cfg.events_per_second = u32::MAX;
    dp.set_config(cfg);
    let malformed = Family::v4(None).frame(vec![0; 8]);
    // More drops than the ring holds, with nobody draining it meanwhile.
    const DROPS: u64 = 40_000;
    assert_eq!(dp.run_repeat(&malformed, DROPS as u32), XDP_DROP);
    let slot = RejectReason::Malformed.counter_slot();
    let emitted = dp.events().len() as u64;
    let loss = dp.event_loss(slot);
    assert!(loss.ring_full > 0, "the ring should have filled up");
    assert_eq!(
        emitted + loss.ring_full + loss.rate_limited,
        DROPS,
        "emitted {emitted}, lost {loss:?}"
    );
    assert_eq!(dp.counters()[slot as usize].packets, DROPS);
}
