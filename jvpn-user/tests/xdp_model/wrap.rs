//! Encapsulations around a datagram, chosen at random: VLAN stacks of every tag type, IPv4
//! options, AH and broken IHLs, IPv6 extension chains, fragments, lengths that disagree, missing
//! checksums.

use super::random::Rng;
use crate::xdp_support::{IpShape, Udp, VlanTag, TPID_8021AD, TPID_8021Q, TPID_QINQ_LEGACY};

/// Wraps `udp` in random encapsulations; whether it changed anything.
pub fn encapsulate(rng: &mut Rng, udp: &mut Udp) -> bool {
    let tags = match rng.below(100) {
        0..70 => 0,
        70..85 => 1,
        85..95 => 2,
        95..98 => 3,
        _ => 4 + rng.below(3),
    };
    udp.tags = (0..tags)
        .map(|_| VlanTag {
            tpid: rng.pick(&[TPID_8021Q, TPID_8021AD, TPID_QINQ_LEGACY]),
            tci: if rng.chance(70) {
                0
            } else {
                rng.below(1 << 16) as u16
            },
        })
        .collect();
    let mut shape = IpShape::default();
    let v4 = udp.source.is_ipv4();
    if v4 && rng.chance(8) {
        let len = 1 + rng.below(40) as usize;
        shape.ipv4_options = match rng.chance(50) {
            true => vec![1; len],
            false => rng.bytes(len),
        };
    }
    if v4 && rng.chance(4) {
        shape.ipv4_ah = true;
    }
    if v4 && rng.chance(2) {
        shape.ihl = Some(rng.below(16) as u8);
    }
    if rng.chance(1) {
        shape.version = Some(rng.below(16) as u8);
    }
    if !v4 && rng.chance(12) {
        let n = 1 + rng.below(8);
        udp.ipv6_extensions = (0..n).map(|_| rng.pick(&[0, 43, 60, 44, 51, 59])).collect();
    }
    if rng.chance(2) {
        udp.fragment = true;
    }
    if rng.chance(2) {
        shape.fragment_offset = 1 + rng.below(100) as u16;
    }
    if rng.chance(2) {
        shape.ip_length_delta = rng.below(61) as i32 - 30;
    }
    if rng.chance(2) {
        shape.udp_length_delta = rng.below(61) as i32 - 30;
    }
    if rng.chance(3) {
        shape.zero_udp_checksum = true;
    }
    let changed =
        tags > 0 || shape != IpShape::default() || udp.fragment || !udp.ipv6_extensions.is_empty();
    udp.shape = shape;
    changed
}
