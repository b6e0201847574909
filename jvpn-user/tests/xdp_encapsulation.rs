//! The real jvpn XDP object through `BPF_PROG_TEST_RUN`, on every encapsulation the stack
//! accepts around a datagram to the jvpn port (issue 8, defect 2): VLAN tags (802.1Q, 802.1ad,
//! the legacy 0x9100, stacked, priority tags with VLAN id 0), IPv4 options and AH, IPv6
//! extension chains, fragments, and lengths that disagree. Anything the stack could deliver to
//! the port is judged by the decision list; what the parse cannot establish is MALFORMED; nothing
//! on the port passes as foreign traffic. DATA is judged here; the control messages, REKEY_INIT
//! and a cluster's pass-through of unknown sessions' reattaches in [`control`].
//!
//! Runs as root (loading BPF programs needs it); each test loads its own copy of the object.

#[path = "xdp_encapsulation/control.rs"]
mod control;
mod xdp_support;

use jvpn_common::maps::DataplaneMode;
use jvpn_common::reason::{COUNTER_ACCEPTED, COUNTER_TO_CONTROLLER};
use jvpn_common::{MessageType, RejectReason, SessionState};
use xdp_support::*;

const SESSION: u64 = 0x0001_0000_0000_0042;
const KEY: [u8; 16] = [0x11; 16];
const VERSION: u64 = 5;
const BODY: usize = 32;

/// What a frame must come to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Outcome {
    /// Passed untouched and uncounted: not the program's to judge.
    NotJvpn,
    /// Passed and counted under this slot.
    Passed(u32),
    /// Dropped, counted and reported for this reason.
    Dropped(RejectReason),
}

/// A dataplane with one ATTACHED session of the client of `f`.
fn dataplane(f: &Family) -> TestDataplane {
    require_root("xdp_encapsulation");
    let mut dp = TestDataplane::load(16);
    dp.set_config(config(DataplaneMode::Enforce));
    dp.set_session(
        SESSION,
        session(SessionState::Attached, VERSION, KEY, f.client),
    );
    dp
}

/// Runs `frame` once and says what became of it, from the verdict, the counters and the events.
fn judge(dp: &mut TestDataplane, frame: &[u8]) -> Outcome {
    dp.events();
    let before = dp.counters();
    let verdict = dp.run(frame);
    let moved = counter_delta(&before, &dp.counters());
    let events = dp.events();
    let len = frame.len() as u64;
    match (verdict, moved.as_slice(), events.as_slice()) {
        (XDP_PASS, [], []) => Outcome::NotJvpn,
        (XDP_PASS, [(slot, 1, l)], []) if *l == len => Outcome::Passed(*slot),
        (XDP_DROP, [(slot, 1, l)], [event])
            if *l == len && u32::from(event.reason) == *slot && event.len as u64 == len =>
        {
            Outcome::Dropped(RejectReason::from_code(event.reason).expect("a known reason"))
        }
        other => panic!("an inconsistent judgement (verdict, counters, events): {other:?}"),
    }
}

fn data(nonce: u64) -> Vec<u8> {
    message(MessageType::Data, SESSION, VERSION, nonce, &KEY, BODY)
}

/// A datagram from the client of `f` inside `tags`.
fn tagged(f: &Family, payload: Vec<u8>, tags: &[VlanTag]) -> Vec<u8> {
    let mut udp = f.udp(f.client, payload);
    udp.tags = tags.to_vec();
    udp.frame()
}

/// A pre-standard QinQ tag (0x9100) with this VLAN id.
fn legacy(vlan_id: u16) -> VlanTag {
    VlanTag {
        tpid: TPID_QINQ_LEGACY,
        tci: vlan_id,
    }
}

/// The regression of defect 2: a DATA accepted once, then replayed inside VLAN tags, priority
/// tags (VLAN id 0) above all, which the stack strips and delivers through to the port.
fn replayed_inside_vlan_tags(f: &Family, label: &str) {
    use RejectReason::{DuplicateNonce, Malformed};
    let mut dp = dataplane(f);
    let nonce = 100;
    assert_eq!(
        judge(&mut dp, &f.frame(data(nonce))),
        Outcome::Passed(COUNTER_ACCEPTED),
        "{label}: the original"
    );
    let cases: [(&str, Vec<VlanTag>, Outcome); 8] = [
        (
            "802.1Q, VLAN 0",
            vec![VlanTag::q(0)],
            Outcome::Dropped(DuplicateNonce),
        ),
        (
            "802.1ad, VLAN 0",
            vec![VlanTag::ad(0)],
            Outcome::Dropped(DuplicateNonce),
        ),
        (
            "802.1ad, VLAN 7",
            vec![VlanTag::ad(7)],
            Outcome::Dropped(DuplicateNonce),
        ),
        (
            "0x9100, VLAN 0",
            vec![legacy(0)],
            Outcome::Dropped(DuplicateNonce),
        ),
        (
            "802.1ad over 802.1Q, VLAN 0",
            vec![VlanTag::ad(0), VlanTag::q(0)],
            Outcome::Dropped(DuplicateNonce),
        ),
        (
            "two 802.1Q priority tags",
            vec![VlanTag::q(0), VlanTag::q(0)],
            Outcome::Dropped(DuplicateNonce),
        ),
        (
            "three tags, deeper than the walk",
            vec![VlanTag::ad(0), VlanTag::q(0), VlanTag::q(0)],
            Outcome::Dropped(Malformed),
        ),
        (
            "five priority tags",
            vec![VlanTag::q(0); 5],
            Outcome::Dropped(Malformed),
        ),
    ];
    for (name, tags, want) in cases {
        assert_eq!(
            judge(&mut dp, &tagged(f, data(nonce), &tags)),
            want,
            "{label}: the replay inside {name}"
        );
    }
    // A fresh nonce inside the tags is judged like any DATA: the tags hide nothing.
    assert_eq!(
        judge(
            &mut dp,
            &tagged(f, data(nonce + 1), &[VlanTag::ad(0), VlanTag::q(0)])
        ),
        Outcome::Passed(COUNTER_ACCEPTED),
        "{label}: a fresh DATA inside two tags"
    );
}

#[test]
fn a_replay_inside_vlan_tags_is_a_duplicate_or_malformed_never_foreign() {
    replayed_inside_vlan_tags(&Family::v4(None), "IPv4");
    replayed_inside_vlan_tags(&Family::v6(None), "IPv6");
}

/// One IP-layer variation of a DATA with a fresh nonce, and what it must come to.
struct Shaped {
    name: &'static str,
    shape: fn(&mut Udp),
    want: Outcome,
}

fn shaped(f: &Family, label: &str, cases: &[Shaped]) {
    let mut dp = dataplane(f);
    for (i, case) in cases.iter().enumerate() {
        let mut udp = f.udp(f.client, data(1_000 + i as u64));
        (case.shape)(&mut udp);
        assert_eq!(
            judge(&mut dp, &udp.frame()),
            case.want,
            "{label}: {}",
            case.name
        );
    }
}

#[test]
fn ipv4_options_ah_fragments_and_lengths_are_judged() {
    use RejectReason::Malformed;
    let accepted = Outcome::Passed(COUNTER_ACCEPTED);
    shaped(
        &Family::v4(None),
        "IPv4",
        &[
            Shaped {
                name: "with a router-alert option (IHL 6)",
                shape: |u| u.shape.ipv4_options = vec![0x94, 4, 0, 0],
                want: accepted,
            },
            Shaped {
                name: "with 40 bytes of options (IHL 15)",
                shape: |u| u.shape.ipv4_options = vec![1; 40],
                want: accepted,
            },
            Shaped {
                name: "behind an authentication header",
                shape: |u| u.shape.ipv4_ah = true,
                want: accepted,
            },
            Shaped {
                name: "behind AH and a priority tag",
                shape: |u| {
                    u.shape.ipv4_ah = true;
                    u.tags = vec![VlanTag::ad(0)];
                },
                want: accepted,
            },
            Shaped {
                name: "without a UDP checksum",
                shape: |u| u.shape.zero_udp_checksum = true,
                want: accepted,
            },
            Shaped {
                name: "IHL 4 (below the minimum)",
                shape: |u| u.shape.ihl = Some(4),
                want: Outcome::Dropped(Malformed),
            },
            Shaped {
                name: "IHL 0",
                shape: |u| u.shape.ihl = Some(0),
                want: Outcome::Dropped(Malformed),
            },
            Shaped {
                name: "a total length past the frame",
                shape: |u| u.shape.ip_length_delta = 1,
                want: Outcome::Dropped(Malformed),
            },
            Shaped {
                name: "a total length short of the UDP length",
                shape: |u| u.shape.ip_length_delta = -1,
                want: Outcome::Dropped(Malformed),
            },
            Shaped {
                name: "a total length shorter than the header",
                shape: |u| u.shape.ip_length_delta = -85,
                want: Outcome::Dropped(Malformed),
            },
            Shaped {
                name: "a UDP length short of the IP payload",
                shape: |u| u.shape.udp_length_delta = -1,
                want: Outcome::Dropped(Malformed),
            },
            Shaped {
                name: "a UDP length past the IP payload",
                shape: |u| u.shape.udp_length_delta = 1,
                want: Outcome::Dropped(Malformed),
            },
            Shaped {
                name: "a UDP length below its header",
                shape: |u| u.shape.udp_length_delta = -(BODY as i32 + 40 + 1),
                want: Outcome::Dropped(Malformed),
            },
            Shaped {
                name: "a first fragment",
                shape: |u| u.fragment = true,
                want: Outcome::Dropped(Malformed),
            },
            Shaped {
                name: "a later fragment (no UDP header of its own)",
                shape: |u| u.shape.fragment_offset = 8,
                want: Outcome::NotJvpn,
            },
            Shaped {
                name: "version nibble 5 (the stack drops it)",
                shape: |u| u.shape.version = Some(5),
                want: Outcome::NotJvpn,
            },
        ],
    );
}

#[test]
fn ipv6_extension_chains_fragments_and_lengths_are_judged() {
    use RejectReason::Malformed;
    let accepted = Outcome::Passed(COUNTER_ACCEPTED);
    shaped(
        &Family::v6(None),
        "IPv6",
        &[
            Shaped {
                name: "hop-by-hop, routing, destination options",
                shape: |u| u.ipv6_extensions = vec![0, 43, 60],
                want: accepted,
            },
            Shaped {
                name: "behind an authentication header",
                shape: |u| u.ipv6_extensions = vec![51],
                want: accepted,
            },
            Shaped {
                name: "the longest walkable chain (six headers)",
                shape: |u| u.ipv6_extensions = vec![0, 60, 43, 51, 60, 60],
                want: accepted,
            },
            Shaped {
                name: "seven headers, longer than the walk",
                shape: |u| u.ipv6_extensions = vec![0, 60, 43, 51, 60, 60, 60],
                want: Outcome::Dropped(Malformed),
            },
            Shaped {
                name: "an atomic fragment (offset 0, no more fragments)",
                shape: |u| u.ipv6_extensions = vec![44],
                want: Outcome::Dropped(Malformed),
            },
            Shaped {
                name: "a first fragment behind AH",
                shape: |u| {
                    u.ipv6_extensions = vec![51];
                    u.fragment = true;
                },
                want: Outcome::Dropped(Malformed),
            },
            Shaped {
                name: "a later fragment",
                shape: |u| u.shape.fragment_offset = 8,
                want: Outcome::NotJvpn,
            },
            Shaped {
                name: "no next header (59): nothing follows",
                shape: |u| u.ipv6_extensions = vec![60, 59],
                want: Outcome::NotJvpn,
            },
            Shaped {
                name: "a payload length past the frame",
                shape: |u| u.shape.ip_length_delta = 1,
                want: Outcome::Dropped(Malformed),
            },
            Shaped {
                name: "a payload length short of the UDP length",
                shape: |u| u.shape.ip_length_delta = -1,
                want: Outcome::Dropped(Malformed),
            },
            Shaped {
                name: "a UDP length short of the payload",
                shape: |u| u.shape.udp_length_delta = -1,
                want: Outcome::Dropped(Malformed),
            },
            Shaped {
                name: "inside two tags, behind hop-by-hop and AH",
                shape: |u| {
                    u.tags = vec![VlanTag::ad(0), VlanTag::q(0)];
                    u.ipv6_extensions = vec![0, 51];
                },
                want: accepted,
            },
            Shaped {
                name: "version nibble 4 inside an IPv6 EtherType",
                shape: |u| u.shape.version = Some(4),
                want: Outcome::NotJvpn,
            },
        ],
    );
}
