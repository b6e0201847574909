//! The messages the XDP program hands to the controller, inside every encapsulation of the DATA
//! tables: REATTACH_REQUEST and HELLO inside tags, REKEY_INIT (judged like DATA, then passed), and
//! a clustered gateway's pass-through of an unknown session's REATTACH_REQUEST and PATH_RESPONSE
//! (within the per-source HELLO budget). Each gets, inside any encapsulation the stack delivers
//! through, the verdict and counter of the plain message; what the parse cannot establish is
//! MALFORMED, and a later fragment (no UDP header of its own) is not the program's to judge.

use super::*;
use jvpn_common::abi::HEADER_LEN;
use jvpn_common::control::{sealed_len, PathResponse, ReattachRequest, RekeyInit};
use jvpn_common::maps::CONFIG_FLAG_CLUSTER;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// What a message inside an encapsulation comes to, next to the plain one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Fate {
    /// The plain message's verdict and counter.
    AsPlain,
    /// MALFORMED, whatever the plain one gets.
    Malformed,
    /// Not the program's to judge (the stack has no UDP header to deliver it by).
    NotJvpn,
}

/// One encapsulation of a datagram.
struct Wrap {
    name: &'static str,
    wrap: fn(&mut Udp),
    fate: Fate,
}

/// The encapsulations of the DATA tables, for `f`'s family.
fn wraps(f: &Family) -> Vec<Wrap> {
    let mut wraps = vec![
        Wrap {
            name: "plain",
            wrap: |_| {},
            fate: Fate::AsPlain,
        },
        Wrap {
            name: "802.1Q, VLAN 0",
            wrap: |u| u.tags = vec![VlanTag::q(0)],
            fate: Fate::AsPlain,
        },
        Wrap {
            name: "802.1ad over 802.1Q, VLAN 0",
            wrap: |u| u.tags = vec![VlanTag::ad(0), VlanTag::q(0)],
            fate: Fate::AsPlain,
        },
        Wrap {
            name: "0x9100, VLAN 0",
            wrap: |u| u.tags = vec![legacy(0)],
            fate: Fate::AsPlain,
        },
        Wrap {
            name: "three tags, deeper than the walk",
            wrap: |u| u.tags = vec![VlanTag::ad(0), VlanTag::q(0), VlanTag::q(0)],
            fate: Fate::Malformed,
        },
        Wrap {
            name: "a first fragment",
            wrap: |u| u.fragment = true,
            fate: Fate::Malformed,
        },
        Wrap {
            name: "a later fragment",
            wrap: |u| u.shape.fragment_offset = 8,
            fate: Fate::NotJvpn,
        },
    ];
    if f.client.is_ipv4() {
        wraps.extend([
            Wrap {
                name: "with 40 bytes of IPv4 options",
                wrap: |u| u.shape.ipv4_options = vec![1; 40],
                fate: Fate::AsPlain,
            },
            Wrap {
                name: "behind AH and a priority tag",
                wrap: |u| {
                    u.shape.ipv4_ah = true;
                    u.tags = vec![VlanTag::ad(0)];
                },
                fate: Fate::AsPlain,
            },
        ]);
    } else {
        wraps.extend([
            Wrap {
                name: "the longest walkable extension chain",
                wrap: |u| u.ipv6_extensions = vec![0, 60, 43, 51, 60, 60],
                fate: Fate::AsPlain,
            },
            Wrap {
                name: "seven extension headers",
                wrap: |u| u.ipv6_extensions = vec![0, 60, 43, 51, 60, 60, 60],
                fate: Fate::Malformed,
            },
            Wrap {
                name: "an atomic fragment",
                wrap: |u| u.ipv6_extensions = vec![44],
                fate: Fate::Malformed,
            },
            Wrap {
                name: "inside two tags, behind hop-by-hop and AH",
                wrap: |u| {
                    u.tags = vec![VlanTag::ad(0), VlanTag::q(0)];
                    u.ipv6_extensions = vec![0, 51];
                },
                fate: Fate::AsPlain,
            },
        ]);
    }
    wraps
}

/// `payload` from `source` inside `wrap`.
fn wrapped(f: &Family, source: SocketAddr, payload: Vec<u8>, wrap: &Wrap) -> Vec<u8> {
    let mut udp = f.udp(source, payload);
    (wrap.wrap)(&mut udp);
    udp.frame()
}

/// What a message whose plain verdict is `plain` comes to inside `wrap`.
fn expected(wrap: &Wrap, plain: Outcome) -> Outcome {
    match wrap.fate {
        Fate::AsPlain => plain,
        Fate::Malformed => Outcome::Dropped(RejectReason::Malformed),
        Fate::NotJvpn => Outcome::NotJvpn,
    }
}

/// A sealed message of `T`'s length, as the real client sends it.
fn sized<T>(msg_type: MessageType, session: u64, version: u64, nonce: u64) -> Vec<u8> {
    let body = sealed_len(size_of::<T>()) - HEADER_LEN;
    message(msg_type, session, version, nonce, &KEY, body)
}

#[test]
fn rekey_inits_inside_every_encapsulation_are_judged_as_plain_ones() {
    let to_controller = Outcome::Passed(COUNTER_TO_CONTROLLER);
    for f in [Family::v4(None), Family::v6(None)] {
        let mut dp = dataplane(&f);
        let all = wraps(&f);
        for (i, wrap) in all.iter().enumerate() {
            let init = sized::<RekeyInit>(MessageType::RekeyInit, SESSION, VERSION, 100 + i as u64);
            let frame = wrapped(&f, f.client, init, wrap);
            let label = format!("{}: a REKEY_INIT {}", f.client, wrap.name);
            assert_eq!(
                judge(&mut dp, &frame),
                expected(wrap, to_controller),
                "{label}"
            );
            if wrap.fate == Fate::AsPlain {
                assert_eq!(
                    judge(&mut dp, &frame),
                    Outcome::Dropped(RejectReason::DuplicateNonce),
                    "{label}, replayed"
                );
            }
        }
        // The version and binding rules hold inside tags too.
        let two = &all[2];
        let stale = sized::<RekeyInit>(MessageType::RekeyInit, SESSION, VERSION - 1, 900);
        assert_eq!(
            judge(&mut dp, &wrapped(&f, f.client, stale, two)),
            Outcome::Dropped(RejectReason::StaleVersion),
            "a stale REKEY_INIT inside two tags"
        );
        let init = sized::<RekeyInit>(MessageType::RekeyInit, SESSION, VERSION, 901);
        assert_eq!(
            judge(&mut dp, &wrapped(&f, f.other_port, init, two)),
            Outcome::Dropped(RejectReason::TransportMismatch),
            "a REKEY_INIT from another port inside two tags"
        );
    }
}

/// A source of its own for the `n`th frame of a table, so each has a fresh HELLO budget.
fn fresh_source(f: &Family, n: u8) -> SocketAddr {
    let ip: IpAddr = if f.client.is_ipv4() {
        Ipv4Addr::new(203, 0, 113, n).into()
    } else {
        // The HELLO budget of IPv6 sources is per /64.
        Ipv6Addr::new(0x2001, 0xdb8, u16::from(n), 0, 0, 0, 0, 1).into()
    };
    SocketAddr::new(ip, 40_000)
}

#[test]
fn a_clusters_pass_through_inside_every_encapsulation_is_judged_as_the_plain_one() {
    let unknown = 0x0002_0000_0000_0077;
    let to_controller = Outcome::Passed(COUNTER_TO_CONTROLLER);
    for f in [Family::v4(None), Family::v6(None)] {
        let mut dp = dataplane(&f);
        let mut cfg = config(DataplaneMode::Enforce);
        cfg.flags = CONFIG_FLAG_CLUSTER;
        dp.set_config(cfg);
        let mut n = 0;
        let all = wraps(&f);
        for wrap in &all {
            let request = sized::<ReattachRequest>(MessageType::ReattachRequest, unknown, 3, 1);
            let response = sized::<PathResponse>(MessageType::PathResponse, unknown, 3, 2);
            for (what, datagram) in [("REATTACH_REQUEST", request), ("PATH_RESPONSE", response)] {
                n += 1;
                let frame = wrapped(&f, fresh_source(&f, n), datagram, wrap);
                assert_eq!(
                    judge(&mut dp, &frame),
                    expected(wrap, to_controller),
                    "{}: an unknown session's {what} {}",
                    f.client,
                    wrap.name
                );
            }
        }
        // One source's budget (the test config's burst, 2) counts whatever the tags; DATA of an
        // unknown session stays UNKNOWN_SESSION inside them.
        let two = &all[2];
        let source = fresh_source(&f, 250);
        for i in 0..3 {
            let request =
                sized::<ReattachRequest>(MessageType::ReattachRequest, unknown, 3, 10 + i);
            let want = match i {
                0 | 1 => to_controller,
                _ => Outcome::Dropped(RejectReason::HandshakeRate),
            };
            let frame = wrapped(&f, source, request, two);
            assert_eq!(judge(&mut dp, &frame), want, "request {i} from one source");
        }
        let data = message(MessageType::Data, unknown, 3, 5, &KEY, BODY);
        assert_eq!(
            judge(&mut dp, &wrapped(&f, fresh_source(&f, 251), data, two)),
            Outcome::Dropped(RejectReason::UnknownSession)
        );
    }
}

#[test]
fn control_messages_and_hellos_inside_tags_are_judged_too() {
    let f = Family::v4(None);
    let mut dp = dataplane(&f);
    let request = message(
        MessageType::ReattachRequest,
        SESSION,
        VERSION,
        9,
        &KEY,
        BODY,
    );
    let hello = xdp_support::hello(1, None);
    let two = [VlanTag::ad(0), VlanTag::q(0)];
    assert_eq!(
        judge(&mut dp, &tagged(&f, request.clone(), &two)),
        Outcome::Passed(COUNTER_TO_CONTROLLER)
    );
    assert_eq!(
        judge(&mut dp, &tagged(&f, request, &[VlanTag::q(0)])),
        Outcome::Dropped(RejectReason::DuplicateNonce),
        "the same REATTACH_REQUEST behind one tag"
    );
    // The test config's HELLO burst is 2: the bucket counts HELLOs whatever their tags.
    for (i, tags) in [&two[..], &[], &[legacy(0)]].into_iter().enumerate() {
        let want = match i {
            0 | 1 => Outcome::Passed(COUNTER_TO_CONTROLLER),
            _ => Outcome::Dropped(RejectReason::HandshakeRate),
        };
        assert_eq!(
            judge(&mut dp, &tagged(&f, hello.clone(), tags)),
            want,
            "HELLO {i}"
        );
    }
}
