//! Encapsulated and hostile frames at the real gateway (issue 8, defect 2 and the adversarial
//! testing): frames are injected with `AF_PACKET` on the client's end of the veth, so they reach
//! the gateway's XDP program exactly as built, VLAN tags and all, and whatever XDP passes meets
//! the gateway's real stack, socket, controller and TUN device.
//!
//! ```text
//!  +------------- gateway ns --------------+        +------------ client ns -------------+
//!  |  jvpn gateway (nsenter --net)          |        |  test client socket :41001         |
//!  |  jvpn0 (TUN) 10.99.0.1/24              |        |   (handshake, one real DATA)       |
//!  |    UDP [::]:51900, redb store in tmp   |        |  AF_PACKET injection on <cl>:      |
//!  |  <gw> 10.200.0.1/24, fd00:200::1/64    |        |   tagged replays, generated frames |
//!  |       XDP jvpn_xdp (driver) <==========|==veth==|==> <cl> 10.200.0.2, fd00:200::2    |
//!  +----------------------------------------+        +------------------------------------+
//! ```
//!
//! The stack strips priority tags (VLAN id 0, 802.1Q or 802.1ad, stacked) and delivers what is
//! behind them to the jvpn port: a replayed DATA inside them must die in XDP as a duplicate (or
//! MALFORMED, behind more tags than the walk), never reach the TUN. The sample then injects
//! generated frames (`xdp_model::generate`, the model of `jvpn-user/tests/xdp_model`) and holds
//! the gateway's counters against the model's, and its TUN against the model's accepted DATA.

mod xdp_support {
    //! Where the model finds the frame and datagram builders, as in jvpn-user's tests.
    pub use jvpn_tests::datagrams::*;
    pub use jvpn_tests::frames::*;
}
#[path = "encapsulation_netns/sample.rs"]
mod sample;
#[path = "../../jvpn-user/tests/xdp_model/mod.rs"]
mod xdp_model;

use jvpn_common::abi::DEFAULT_PORT;
use jvpn_common::{MessageType, RejectReason, SessionState, TransportBinding};
use jvpn_tests::gateway::GatewayFixture;
use jvpn_tests::probe::{accepted, drops, eventually, tun_upstream};
use jvpn_tests::require_root;
use jvpn_tests::topology::Family;
use jvpn_tests::veth::Wire;
use jvpn_tests::wire_client::WireClient;
use jvpn_user::crypto::{Direction, SessionKeys};
use sample::{added, jump, rand_seed, verdict_name, xdp_counters, RealData};
use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::time::{Duration, Instant};
use xdp_model::decide::{Model, Session, Verdict};
use xdp_model::generate::{Endpoints, Generator};
use xdp_support::{internet_checksum, Udp, VlanTag, TPID_QINQ_LEGACY};

/// The client's tunnel address in [`GatewayFixture`]'s config, and the gateway's.
const CLIENT_TUNNEL: Ipv4Addr = Ipv4Addr::new(10, 99, 0, 2);
const GATEWAY_TUNNEL: Ipv4Addr = Ipv4Addr::new(10, 99, 0, 1);
const CLIENT_PORT: u16 = 41001;
/// How long injected frames may take to be judged and, if passed, delivered.
const JUDGED_PATIENCE: Duration = Duration::from_secs(10);
/// Frames injected before waiting for XDP to have judged them: well below the veth's receive
/// ring (256), so none is lost before XDP sees it.
const BURST: usize = 64;
/// Frames of the generated sample.
const SAMPLE: usize = 3_000;
/// The gateway's HELLO bucket (`abi::DEFAULT_HELLO_BURST`) less the handshake's HELLO: the
/// model's buckets never refill, the gateway's do, so the sample stays within it per address.
const HELLO_BUDGET: u32 = jvpn_common::abi::DEFAULT_HELLO_BURST - 1;

/// An IPv4 UDP packet from the client's tunnel address to the gateway's discard port.
fn inner_packet(tag: u16) -> Vec<u8> {
    let payload = tag.to_be_bytes();
    let mut udp = vec![0x30, 0x39, 0, 9];
    udp.extend_from_slice(&(8 + payload.len() as u16).to_be_bytes());
    udp.extend_from_slice(&[0, 0]);
    udp.extend_from_slice(&payload);
    let total = (20 + udp.len()) as u16;
    let mut ip = vec![0x45, 0];
    ip.extend_from_slice(&total.to_be_bytes());
    ip.extend_from_slice(&[0, 0, 0x40, 0, 64, 17, 0, 0]);
    ip.extend_from_slice(&CLIENT_TUNNEL.octets());
    ip.extend_from_slice(&GATEWAY_TUNNEL.octets());
    let sum = internet_checksum(&[&ip]);
    ip[10..12].copy_from_slice(&sum.to_be_bytes());
    ip.extend_from_slice(&udp);
    ip
}

/// A running gateway with one session, opened from the client's socket on [`CLIENT_PORT`].
fn session(f: &mut GatewayFixture) -> (WireClient, UdpSocket) {
    require_root();
    f.start(&[]);
    let gateway = SocketAddr::new(Family::V4.gateway(), DEFAULT_PORT);
    let socket = jvpn_tests::probe::client_socket(f, Family::V4, CLIENT_PORT);
    let client = WireClient::handshake(&f.client, &socket, gateway);
    (client, socket)
}

/// The client's address on the veth, at [`CLIENT_PORT`].
fn client_address() -> SocketAddr {
    SocketAddr::new(Family::V4.client(), CLIENT_PORT)
}

#[test]
fn a_replayed_data_inside_vlan_tags_never_reaches_the_tun() {
    let mut f = GatewayFixture::new();
    let (mut c, socket) = session(&mut f);
    let wire = Wire::new(&f);
    let gateway = SocketAddr::new(Family::V4.gateway(), DEFAULT_PORT);

    let data = c.data(&inner_packet(1));
    socket.send_to(&data, gateway).expect("send DATA");
    eventually("the DATA to reach the TUN", || tun_upstream(&f) == 1);
    let accepted_before = accepted(&f);
    let duplicates = drops(&f, RejectReason::DuplicateNonce);
    let malformed = drops(&f, RejectReason::Malformed);

    // The captured DATA again, byte for byte, behind tags the stack strips.
    let legacy = VlanTag {
        tpid: TPID_QINQ_LEGACY,
        tci: 0,
    };
    let parsed: [&[VlanTag]; 5] = [
        &[VlanTag::q(0)],
        &[VlanTag::ad(0)],
        &[VlanTag::ad(0), VlanTag::q(0)],
        &[VlanTag::q(0), VlanTag::q(0)],
        &[legacy],
    ];
    let too_deep: [&[VlanTag]; 2] = [
        &[VlanTag::ad(0), VlanTag::q(0), VlanTag::q(0)],
        &[VlanTag::q(0); 5],
    ];
    let frame = |tags: &[VlanTag], payload: &[u8]| {
        let mut udp = Udp::new(client_address(), gateway, payload.to_vec());
        udp.tags = tags.to_vec();
        udp.frame()
    };
    let replays: Vec<Vec<u8>> = parsed
        .iter()
        .chain(&too_deep)
        .map(|tags| frame(tags, &data))
        .collect();
    wire.inject(&replays);
    let dropped = || {
        (
            drops(&f, RejectReason::DuplicateNonce) - duplicates,
            drops(&f, RejectReason::Malformed) - malformed,
        )
    };
    // Each replay is either dropped in XDP or delivered to the TUN; wait for all of them.
    let judged = || {
        let (d, m) = dropped();
        d + m + tun_upstream(&f) > replays.len() as u64
    };
    let deadline = Instant::now() + JUDGED_PATIENCE;
    while !judged() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(
        (tun_upstream(&f), dropped()),
        (1, (parsed.len() as u64, too_deep.len() as u64)),
        "no replay reaches the TUN (left: TUN packets, then drops as DUPLICATE_NONCE and \
         MALFORMED)"
    );
    assert_eq!(accepted(&f), accepted_before, "XDP accepted no replay");

    // A fresh DATA behind two priority tags is judged like any other, accepted, and the stack
    // delivers it through the tags: the path the replays would have taken.
    let fresh = c.data(&inner_packet(2));
    wire.inject(&[frame(&[VlanTag::ad(0), VlanTag::q(0)], &fresh)]);
    eventually("the fresh tagged DATA to reach the TUN", || {
        tun_upstream(&f) == 2
    });
    assert_eq!(accepted(&f), accepted_before + 1);
    assert_eq!(
        tun_upstream(&f),
        2,
        "only the original and the fresh DATA reached the TUN, no replay\n{}",
        f.log()
    );
}

#[test]
fn generated_frames_reach_the_tun_only_when_the_model_accepts_them() {
    let mut f = GatewayFixture::new();
    let (mut c, socket) = session(&mut f);
    let wire = Wire::new(&f);
    let gateway = SocketAddr::new(Family::V4.gateway(), DEFAULT_PORT);
    let seed = std::env::var("JVPN_MODEL_SEED")
        .ok()
        .map_or_else(rand_seed, |s| {
            s.parse().expect("JVPN_MODEL_SEED is a number")
        });
    eprintln!("seed {seed} (rerun with JVPN_MODEL_SEED={seed})");

    // The model holds what the gateway's maps hold: the one session, its window after one DATA.
    let mut model = Model::new(DEFAULT_PORT, HELLO_BUDGET);
    model.mac1_key = jvpn_user::crypto::cookie::mac1_key(&f.gateway_public_key);
    model.set_session(
        c.id,
        Some(Session {
            version: c.acked,
            state: SessionState::Attached as u8,
            binding: TransportBinding::from_socket_addr(client_address()),
            header_key: *c.keys.header_key(Direction::ClientToGateway),
        }),
    );
    let first = c.data(&inner_packet(0));
    socket.send_to(&first, gateway).expect("send DATA");
    let mirrored = model.judge(&Udp::new(client_address(), gateway, first).frame());
    assert_eq!(mirrored.verdict, Verdict::Accepted);
    eventually("the first DATA to reach the TUN", || tun_upstream(&f) == 1);

    let mut sources = vec![client_address()];
    // Many addresses, so that no HELLO bucket comes near its end (see HELLO_BUDGET); the IPv6
    // ones each in their own /64, the unit of an IPv6 bucket.
    for host in 10..32u8 {
        sources.push(SocketAddr::new(
            Ipv4Addr::new(10, 200, 0, host).into(),
            40_000,
        ));
        sources.push(SocketAddr::new(
            format!("fd00:200:0:{host:x}::1")
                .parse::<std::net::Ipv6Addr>()
                .expect("v6")
                .into(),
            40_000,
        ));
    }
    sources.push(SocketAddr::new(Family::V4.client(), CLIENT_PORT + 1));
    let endpoints = Endpoints {
        gateway_v4: gateway,
        gateway_v6: SocketAddr::new(Family::V6.gateway(), DEFAULT_PORT),
        sources,
    };
    let mut generator = Generator::new(seed, DEFAULT_PORT, endpoints);
    generator.manage(c.id);
    // The gateway would (rightly) terminate the session at such a nonce; the sample keeps it.
    generator.accept_near_limit = false;
    // A merged run is longer than the veth's MTU: the link would refuse it before XDP.
    generator.merged_runs = false;
    let keys = SessionKeys::from_stored(&c.keys.to_stored());
    let mut bodies = RealData {
        keys: &keys,
        session: c.id,
        next_inner: 100,
    };

    let counters_before = xdp_counters(&f);
    let tun_before = tun_upstream(&f);
    let mut expected: BTreeMap<String, u64> = BTreeMap::new();
    let (mut accepted_data, mut accepted_plain) = (0u64, 0u64);
    let (mut sent, mut jumped) = (0, false);
    while sent < SAMPLE {
        let mut burst = Vec::with_capacity(BURST);
        for _ in 0..BURST {
            let g = generator.next(&model, &mut bodies);
            let want = model.judge(&g.frame);
            if let Some(name) = verdict_name(want.verdict) {
                *expected.entry(name).or_default() += 1;
            }
            let real_data =
                want.seen.session_id == c.id && want.seen.msg_type == MessageType::Data as u8;
            if want.verdict == Verdict::Accepted && real_data {
                accepted_data += 1;
                accepted_plain += u64::from(g.intact && g.plain);
            }
            burst.push(g.frame);
        }
        wire.inject(&burst);
        sent += burst.len();
        let want_total: u64 = expected.values().sum();
        eventually(&format!("XDP to judge the {sent} frames injected"), || {
            added(&counters_before, &xdp_counters(&f))
                .values()
                .sum::<u64>()
                >= want_total
        });
        if sent >= SAMPLE / 2 && !jumped {
            jumped = true;
            // Halfway, the client jumps for real; the rest of the sample (replays of the first
            // half among it) meets the new version and binding.
            jump(&f, &mut c, &mut model);
            *expected.entry("ToController".to_owned()).or_default() += 2;
        }
    }
    assert!(
        !expected.contains_key(RejectReason::HandshakeRate.name()),
        "seed {seed}: the sample outran the HELLO budget the model can follow"
    );
    let got = added(&counters_before, &xdp_counters(&f));
    if got != expected {
        let log = f.log();
        panic!(
            "seed {seed}: the gateway's XDP counters over the sample\n{got:?}\nagainst the \
             model's\n{expected:?}\ngateway log (end):\n{}",
            &log[log.len().saturating_sub(4_000)..]
        );
    }
    eventually("the accepted DATA to reach the TUN", || {
        tun_upstream(&f) - tun_before >= accepted_plain
    });
    let reached = tun_upstream(&f) - tun_before;
    eprintln!(
        "{SAMPLE} frames: {expected:?}; {accepted_data} DATA of the session accepted \
         ({accepted_plain} plain), {reached} reached the TUN"
    );
    assert!(
        reached <= accepted_data,
        "seed {seed}: {reached} packets reached the TUN, the model accepted {accepted_data} \
         DATA\n{}",
        f.log()
    );
}
