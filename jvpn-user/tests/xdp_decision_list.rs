//! The real jvpn XDP object through `BPF_PROG_TEST_RUN`, one table-driven test per family (IPv4,
//! IPv6, and both behind an 802.1Q tag) over every row of the decision list of issue 2, in its
//! order: each case asserts the verdict, the counter slot that moved (by one packet of the frame's
//! bytes, and no other) and the security event (reason, session, version, nonce, type, source).
//!
//! Runs as root (loading BPF programs needs it); each case loads its own copy of the object, so
//! cases share no map state.

mod xdp_support;

use jvpn_common::abi::{HEADER_LEN, REPLAY_WINDOW};
use jvpn_common::maps::DataplaneMode;
use jvpn_common::reason::{COUNTER_ACCEPTED, COUNTER_TO_CONTROLLER};
use jvpn_common::{MessageType, RejectReason, SessionEntry, SessionState, TransportBinding};
use xdp_support::*;

const SESSION: u64 = 0x0001_0000_0000_0042;
const KEY: [u8; 16] = [0x11; 16];
const VERSION: u64 = 5;
const NONCE: u64 = 77;
const BODY: usize = 32;

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

/// The entry of [`SESSION`] in `state`, as the controller writes it (naming its session).
fn entry(state: SessionState, f: &Family) -> SessionEntry {
    SessionEntry {
        session_id: SESSION,
        ..session(state, VERSION, KEY, f.client)
    }
}

/// Every row of the decision list, in its order, for one family.
fn decision_list(f: &Family) -> Vec<Case> {
    use MessageType::*;
    use RejectReason::*;
    let attached = Some(entry(SessionState::Attached, f));
    let data = msg(Data, VERSION, NONCE);
    let data_fields = fields(Data, VERSION, NONCE);
    let mutated = |byte: usize, value: u8| {
        let mut m = data.clone();
        m[byte] = value;
        m
    };
    let hello = hello(1, None);
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
            name: "1 COOKIE_REPLY (gateway-only) arriving: MALFORMED".into(),
            session: None,
            before: vec![],
            frame: f.frame(message(CookieReply, 0, 0, 0, &KEY, 56)),
            expect: Expect::Drop(Malformed, [0, 0, 0, CookieReply as u64]),
        },
        Case {
            name: "2 HELLO one byte short: MALFORMED".into(),
            session: None,
            before: vec![],
            frame: f.frame(hello[..hello.len() - 1].to_vec()),
            expect: Expect::Drop(Malformed, hello_fields),
        },
        Case {
            name: "2 HELLO one byte long: MALFORMED".into(),
            session: None,
            before: vec![],
            frame: f.frame([hello.as_slice(), &[0]].concat()),
            expect: Expect::Drop(Malformed, hello_fields),
        },
        Case {
            name: "2 HELLO with mac1 under another key: BAD_MAC".into(),
            session: None,
            before: vec![],
            frame: f.frame(hello_with_key(1, &[0x22; 16], None)),
            expect: Expect::Drop(BadMac, hello_fields),
        },
        Case {
            name: "2 HELLO altered after mac1: BAD_MAC".into(),
            session: None,
            before: vec![],
            frame: f.frame({
                let mut h = hello.clone();
                h[HEADER_LEN + 5] ^= 1;
                h
            }),
            expect: Expect::Drop(BadMac, hello_fields),
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
            // The preallocated map reused a deleted element for another session between the
            // lookup and the copy: the copy names that session, not this packet's.
            name: "3 entry names another session: UNKNOWN_SESSION".into(),
            session: attached.map(|a| SessionEntry {
                session_id: SESSION + 1,
                ..a
            }),
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
            session: Some(entry(SessionState::Terminated, f)),
            before: vec![],
            frame: f.frame(data.clone()),
            expect: Expect::Drop(Terminated, data_fields),
        },
    ];
    for t in [ReattachRequest, PathResponse, Terminate] {
        let control = msg(t, VERSION, NONCE);
        // Control messages come from any transport and in any state but TERMINATED.
        let recovering = Some(entry(SessionState::Recovering, f));
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
                session: Some(entry(SessionState::Recovering, f)),
                before: vec![],
                frame: f.frame(m.clone()),
                expect: Expect::Drop(NotAttached, fl),
            },
            Case {
                name: format!("{t:?}: 6 not ATTACHED (BIRTH): NOT_ATTACHED"),
                session: Some(entry(SessionState::Birth, f)),
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
    require_root("xdp_decision_list");
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
        dp.set_raw_session(SESSION, entry);
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
