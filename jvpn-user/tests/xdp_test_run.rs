//! The real jvpn XDP object through `BPF_PROG_TEST_RUN`: one table-driven test per family (IPv4,
//! IPv6, and both behind an 802.1Q tag) over every row of the decision list of issue 2, asserting
//! the verdict, the counter slot that moved (by one packet of the frame's bytes, and no other) and
//! the security event; then the behaviours around the list: foreign traffic, an unconfigured
//! program, monitor mode, the HELLO rate limit, event rate limiting and a full ring buffer.
//!
//! Runs as root (loading BPF programs needs it); each case loads its own copy of the object, so
//! cases share no map state.

mod xdp_support;

use jvpn_common::abi::{
    HEADER_LEN, MAP_CONFIG, MAP_COUNTERS, MAP_EVENTS, MAP_EVENT_BUDGET, MAP_EVENT_LOSS,
    MAP_HELLO_BUCKETS, MAP_REPLAY, MAP_REPLAY_ZERO, MAP_SESSIONS, REPLAY_WINDOW,
};
use jvpn_common::maps::DataplaneMode;
use jvpn_common::reason::{COUNTER_ACCEPTED, COUNTER_TO_CONTROLLER};
use jvpn_common::{MessageType, RejectReason, SessionEntry, SessionState, TransportBinding};
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use xdp_support::*;

const SESSION: u64 = 0x0001_0000_0000_0042;
const KEY: [u8; 16] = [0x11; 16];
const VERSION: u64 = 5;
const NONCE: u64 = 77;
const BODY: usize = 32;

/// How the frames of one table run are addressed.
struct Family {
    client: SocketAddr,
    other_port: SocketAddr,
    gateway: SocketAddr,
    vlan: Option<u16>,
}

impl Family {
    fn v4(vlan: Option<u16>) -> Self {
        let client = Ipv4Addr::new(192, 0, 2, 10);
        Self {
            client: SocketAddr::new(client.into(), 40_000),
            other_port: SocketAddr::new(client.into(), 40_001),
            gateway: SocketAddr::new(Ipv4Addr::new(198, 51, 100, 1).into(), PORT),
            vlan,
        }
    }

    fn v6(vlan: Option<u16>) -> Self {
        let client: Ipv6Addr = "2001:db8::10".parse().unwrap();
        Self {
            client: SocketAddr::new(client.into(), 40_000),
            other_port: SocketAddr::new(client.into(), 40_001),
            gateway: SocketAddr::new("2001:db8::1".parse::<Ipv6Addr>().unwrap().into(), PORT),
            vlan,
        }
    }

    fn udp(&self, source: SocketAddr, payload: Vec<u8>) -> Udp {
        let mut udp = Udp::new(source, self.gateway, payload);
        udp.vlan = self.vlan;
        udp
    }

    fn frame(&self, payload: Vec<u8>) -> Vec<u8> {
        self.udp(self.client, payload).frame()
    }
}

/// What the program must do with the frame of a case.
#[derive(Debug)]
enum Expect {
    /// Pass, counted under this slot, no event.
    Pass(u32),
    /// Drop for this reason, with an event carrying these header fields (zero if the header could
    /// not be read): session id, state_version, nonce, message type byte.
    Drop(RejectReason, [u64; 4]),
}

struct Case {
    name: String,
    /// The session as the controller wrote it, if any.
    session: Option<SessionEntry>,
    /// Frames run before the judged one (to fill a window or spend a bucket).
    before: Vec<Vec<u8>>,
    frame: Vec<u8>,
    expect: Expect,
}

fn msg(t: MessageType, version: u64, nonce: u64) -> Vec<u8> {
    message(t, SESSION, version, nonce, &KEY, BODY)
}

fn fields(t: MessageType, version: u64, nonce: u64) -> [u64; 4] {
    [SESSION, version, nonce, t as u64]
}

/// Every row of the decision list, in its order, for one family.
fn decision_list(f: &Family) -> Vec<Case> {
    use MessageType::*;
    use RejectReason::*;
    let attached = Some(session(SessionState::Attached, VERSION, KEY, f.client));
    let data = msg(Data, VERSION, NONCE);
    let data_fields = fields(Data, VERSION, NONCE);
    let mutated = |byte: usize, value: u8| {
        let mut m = data.clone();
        m[byte] = value;
        m
    };
    let hello = message(Hello, 0, 0, 0, &KEY, BODY);
    let hello_fields = [0, 0, 0, Hello as u64];
    let mut cases = vec![
        Case {
            name: "1 truncated header: MALFORMED".into(),
            session: attached,
            before: vec![],
            frame: f.frame(data[..HEADER_LEN - 1].to_vec()),
            expect: Expect::Drop(Malformed, [0; 4]),
        },
        Case {
            name: "1 fragmented: MALFORMED".into(),
            session: attached,
            before: vec![],
            frame: {
                let mut udp = f.udp(f.client, data.clone());
                udp.fragment = true;
                udp.frame()
            },
            expect: Expect::Drop(Malformed, [0; 4]),
        },
        Case {
            name: "1 wrong protocol version: MALFORMED".into(),
            session: attached,
            before: vec![],
            frame: f.frame(mutated(0, 2)),
            expect: Expect::Drop(Malformed, data_fields),
        },
        Case {
            name: "1 unknown type: MALFORMED".into(),
            session: attached,
            before: vec![],
            frame: f.frame(mutated(1, 11)),
            expect: Expect::Drop(Malformed, [SESSION, VERSION, NONCE, 11]),
        },
        Case {
            name: "1 unknown flag: MALFORMED".into(),
            session: attached,
            before: vec![],
            frame: f.frame(mutated(3, 1)),
            expect: Expect::Drop(Malformed, data_fields),
        },
        Case {
            name: "1 gateway-only type (WELCOME): MALFORMED".into(),
            session: attached,
            before: vec![],
            frame: f.frame(msg(Welcome, VERSION, NONCE)),
            expect: Expect::Drop(Malformed, fields(Welcome, VERSION, NONCE)),
        },
        Case {
            name: "1 gateway-only type (PATH_CHALLENGE): MALFORMED".into(),
            session: attached,
            before: vec![],
            frame: f.frame(msg(PathChallenge, VERSION, NONCE)),
            expect: Expect::Drop(Malformed, fields(PathChallenge, VERSION, NONCE)),
        },
        Case {
            name: "2 HELLO within the limit: to the controller".into(),
            session: None,
            before: vec![],
            frame: f.frame(hello.clone()),
            expect: Expect::Pass(COUNTER_TO_CONTROLLER),
        },
        Case {
            name: "2 HELLO over the limit: HANDSHAKE_RATE".into(),
            session: None,
            before: vec![f.frame(hello.clone()), f.frame(hello.clone())],
            frame: f.frame(hello),
            expect: Expect::Drop(HandshakeRate, hello_fields),
        },
        Case {
            name: "3 unknown session: UNKNOWN_SESSION".into(),
            session: None,
            before: vec![],
            frame: f.frame(data.clone()),
            expect: Expect::Drop(UnknownSession, data_fields),
        },
        Case {
            name: "3 tag does not verify: BAD_TAG".into(),
            session: attached,
            before: vec![],
            frame: f.frame(message(Data, SESSION, VERSION, NONCE, &[0x22; 16], BODY)),
            expect: Expect::Drop(BadTag, data_fields),
        },
        Case {
            name: "4 session terminated: TERMINATED".into(),
            session: Some(session(SessionState::Terminated, VERSION, KEY, f.client)),
            before: vec![],
            frame: f.frame(data.clone()),
            expect: Expect::Drop(Terminated, data_fields),
        },
    ];
    for t in [ReattachRequest, PathResponse, Terminate] {
        let control = msg(t, VERSION, NONCE);
        // Control messages come from any transport and in any state but TERMINATED.
        let recovering = Some(session(SessionState::Recovering, VERSION, KEY, f.client));
        cases.extend([
            Case {
                name: format!("{t:?}: 5 control message, fresh nonce: to the controller"),
                session: recovering,
                before: vec![],
                frame: f.udp(f.other_port, control.clone()).frame(),
                expect: Expect::Pass(COUNTER_TO_CONTROLLER),
            },
            Case {
                name: format!("{t:?}: 5 control message, duplicate nonce: DUPLICATE_NONCE"),
                session: recovering,
                before: vec![f.frame(control.clone())],
                frame: f.frame(control),
                expect: Expect::Drop(DuplicateNonce, fields(t, VERSION, NONCE)),
            },
            Case {
                name: format!(
                    "{t:?}: 5 control message, nonce older than the window: NONCE_TOO_OLD"
                ),
                session: recovering,
                before: vec![f.frame(msg(t, VERSION, NONCE + REPLAY_WINDOW + 1))],
                frame: f.frame(msg(t, VERSION, NONCE)),
                expect: Expect::Drop(NonceTooOld, fields(t, VERSION, NONCE)),
            },
        ]);
    }
    for t in [Data, Keepalive] {
        let m = msg(t, VERSION, NONCE);
        let fl = fields(t, VERSION, NONCE);
        cases.extend([
            Case {
                name: format!("{t:?}: 6 not ATTACHED: NOT_ATTACHED"),
                session: Some(session(SessionState::Recovering, VERSION, KEY, f.client)),
                before: vec![],
                frame: f.frame(m.clone()),
                expect: Expect::Drop(NotAttached, fl),
            },
            Case {
                name: format!("{t:?}: 6 not ATTACHED (BIRTH): NOT_ATTACHED"),
                session: Some(session(SessionState::Birth, VERSION, KEY, f.client)),
                before: vec![],
                frame: f.frame(m.clone()),
                expect: Expect::Drop(NotAttached, fl),
            },
            Case {
                name: format!("{t:?}: 6 version below the session's: STALE_VERSION"),
                session: attached,
                before: vec![],
                frame: f.frame(msg(t, VERSION - 1, NONCE)),
                expect: Expect::Drop(StaleVersion, fields(t, VERSION - 1, NONCE)),
            },
            Case {
                name: format!("{t:?}: 6 version above the session's: VERSION_JUMP"),
                session: attached,
                before: vec![],
                frame: f.frame(msg(t, VERSION + 1, NONCE)),
                expect: Expect::Drop(VersionJump, fields(t, VERSION + 1, NONCE)),
            },
            Case {
                name: format!("{t:?}: 6 source port not the bound transport: TRANSPORT_MISMATCH"),
                session: attached,
                before: vec![],
                frame: f.udp(f.other_port, m.clone()).frame(),
                expect: Expect::Drop(TransportMismatch, fl),
            },
            Case {
                name: format!("{t:?}: 6 nonce already seen: DUPLICATE_NONCE"),
                session: attached,
                before: vec![f.frame(m.clone())],
                frame: f.frame(m.clone()),
                expect: Expect::Drop(DuplicateNonce, fl),
            },
            Case {
                name: format!("{t:?}: 6 nonce older than the window: NONCE_TOO_OLD"),
                session: attached,
                before: vec![f.frame(msg(t, VERSION, NONCE + REPLAY_WINDOW + 1))],
                frame: f.frame(m.clone()),
                expect: Expect::Drop(NonceTooOld, fl),
            },
            Case {
                name: format!("{t:?}: 6 everything right: accepted"),
                session: attached,
                before: vec![f.frame(msg(t, VERSION, NONCE + 1))],
                frame: f.frame(m),
                expect: Expect::Pass(COUNTER_ACCEPTED),
            },
        ]);
    }
    cases
}

fn run_table(family: &Family, label: &str) {
    require_root("xdp_test_run");
    let mut failures = Vec::new();
    for case in decision_list(family) {
        if let Err(why) = run_case(family, &case) {
            failures.push(format!("{label}: {}: {why}", case.name));
        }
    }
    assert!(
        failures.is_empty(),
        "{} case(s) failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

fn run_case(family: &Family, case: &Case) -> Result<(), String> {
    let mut dp = TestDataplane::load(1024);
    dp.set_config(config(DataplaneMode::Enforce));
    if let Some(entry) = case.session {
        dp.set_session(SESSION, entry);
    }
    for frame in &case.before {
        dp.run(frame);
    }
    dp.events();
    let before = dp.counters();
    let verdict = dp.run(&case.frame);
    let moved = counter_delta(&before, &dp.counters());
    let events = dp.events();
    let len = case.frame.len() as u64;
    let (want_verdict, want_slot) = match case.expect {
        Expect::Pass(slot) => (XDP_PASS, slot),
        Expect::Drop(reason, _) => (XDP_DROP, reason.counter_slot()),
    };
    if verdict != want_verdict {
        return Err(format!("verdict {verdict}, expected {want_verdict}"));
    }
    if moved != [(want_slot, 1, len)] {
        return Err(format!(
            "counters moved {moved:?}, expected [({want_slot}, 1, {len})]"
        ));
    }
    match case.expect {
        Expect::Pass(_) if !events.is_empty() => Err(format!("a pass emitted events {events:?}")),
        Expect::Pass(_) => Ok(()),
        Expect::Drop(reason, [session_id, state_version, nonce, msg_type]) => {
            let source = if reason == RejectReason::TransportMismatch {
                family.other_port
            } else {
                family.client
            };
            let source = TransportBinding::from_socket_addr(source);
            match events.as_slice() {
                [e] if e.reason == reason.code()
                    && e.session_id == session_id
                    && e.state_version == state_version
                    && e.nonce == nonce
                    && e.msg_type as u64 == msg_type
                    && e.addr == source.addr
                    && e.port == source.port
                    && e.len as u64 == len
                    && e.time_ns > 0 =>
                {
                    Ok(())
                }
                other => Err(format!(
                    "events {other:?}, expected one {} for session {session_id:#x} version \
                     {state_version} nonce {nonce} type {msg_type} from {source:?}",
                    reason.name()
                )),
            }
        }
    }
}

#[test]
fn decision_list_ipv4() {
    run_table(&Family::v4(None), "IPv4");
}

#[test]
fn decision_list_ipv6() {
    run_table(&Family::v6(None), "IPv6");
}

#[test]
fn decision_list_behind_a_vlan_tag() {
    run_table(&Family::v4(Some(7)), "IPv4 in VLAN 7");
    run_table(&Family::v6(Some(7)), "IPv6 in VLAN 7");
}

#[test]
fn object_declares_every_abi_map() {
    require_root("xdp_test_run");
    let dp = TestDataplane::load(16);
    for name in [
        MAP_SESSIONS,
        MAP_REPLAY,
        MAP_COUNTERS,
        MAP_EVENT_LOSS,
        MAP_EVENT_BUDGET,
        MAP_EVENTS,
        MAP_CONFIG,
        MAP_HELLO_BUCKETS,
        MAP_REPLAY_ZERO,
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
    let hello = message(MessageType::Hello, 0, 0, 0, &KEY, BODY);
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

#[test]
fn a_window_that_cannot_be_created_refuses_with_table_full() {
    require_root("xdp_test_run");
    let mut dp = TestDataplane::load_with(16, 1);
    dp.set_config(config(DataplaneMode::Enforce));
    let f = Family::v4(None);
    let other = SESSION + 1;
    dp.set_session(
        SESSION,
        session(SessionState::Attached, VERSION, KEY, f.client),
    );
    dp.set_session(
        other,
        session(SessionState::Attached, VERSION, KEY, f.client),
    );
    let mut logs = dp.capture_logs();
    assert_eq!(
        dp.run(&f.frame(msg(MessageType::Data, VERSION, 1))),
        XDP_PASS
    );
    let second = f.frame(message(MessageType::Data, other, VERSION, 1, &KEY, BODY));
    assert_eq!(dp.run(&second), XDP_DROP, "no window, no acceptance");
    let events = dp.events();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].reason, RejectReason::TableFull.code());
    assert_eq!(events[0].session_id, other);
    let logs = logs.drain();
    assert!(
        logs.iter()
            .any(|l| l.starts_with("WARN replay table full") && l.contains(&format!("{other:x}"))),
        "the refusal is logged for the operator: {logs:?}"
    );
}
