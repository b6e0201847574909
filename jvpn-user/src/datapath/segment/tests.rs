//! Superpackets built as the kernel hands them over (checksum seeded with the pseudo-header), cut,
//! and every segment checked as a receiver would: IP and TCP checksums verify, sequence numbers
//! follow the payload, flags land where TCP wants them, and the payloads put back together are
//! the original.

use super::*;
use crate::datapath::checksum::fold;

const SRC4: [u8; 4] = [10, 213, 0, 2];
const DST4: [u8; 4] = [10, 213, 0, 1];

fn pseudo_seed(addresses: &[u8], tcp_len: usize) -> u16 {
    fold(add_words(u64::from(PROTO_TCP) + tcp_len as u64, addresses))
}

/// A TCP packet of `payload` (seq 1000, flags PSH|ACK|FIN|CWR) over IPv4 or IPv6, its checksum
/// seeded as the kernel leaves it for offload.
pub(crate) fn tcp_packet(v6: bool, payload: &[u8]) -> Vec<u8> {
    let mut tcp = vec![0u8; 20];
    tcp[0..2].copy_from_slice(&40000u16.to_be_bytes());
    tcp[2..4].copy_from_slice(&5201u16.to_be_bytes());
    tcp[4..8].copy_from_slice(&1000u32.to_be_bytes());
    tcp[12] = 5 << 4;
    tcp[13] = TCP_PSH | 0x10 | TCP_FIN | TCP_CWR;
    tcp.extend_from_slice(payload);
    let mut packet = if v6 {
        let mut ip = vec![0u8; 40];
        ip[0] = 0x60;
        ip[4..6].copy_from_slice(&(tcp.len() as u16).to_be_bytes());
        ip[6] = PROTO_TCP;
        ip[7] = 64;
        ip[23] = 2;
        ip[39] = 1;
        ip
    } else {
        let mut ip = vec![0u8; 20];
        ip[0] = 0x45;
        ip[2..4].copy_from_slice(&((20 + tcp.len()) as u16).to_be_bytes());
        ip[4..6].copy_from_slice(&0xfffeu16.to_be_bytes());
        ip[8] = 64;
        ip[9] = PROTO_TCP;
        ip[12..16].copy_from_slice(&SRC4);
        ip[16..20].copy_from_slice(&DST4);
        let sum = checksum(0, &ip);
        ip[10..12].copy_from_slice(&sum);
        ip
    };
    let ip_len = packet.len();
    let addresses = if v6 {
        packet[8..40].to_vec()
    } else {
        packet[12..20].to_vec()
    };
    let seed = pseudo_seed(&addresses, tcp.len());
    tcp[16..18].copy_from_slice(&seed.to_be_bytes());
    packet.extend_from_slice(&tcp);
    assert_eq!(packet.len(), ip_len + 20 + payload.len());
    packet
}

pub(crate) fn offload_header(v6: bool, mss: u16) -> VnetHeader {
    let ip_len = if v6 { 40 } else { 20 };
    VnetHeader {
        flags: F_NEEDS_CSUM,
        gso_type: if v6 { GsoType::TcpV6 } else { GsoType::TcpV4 },
        hdr_len: ip_len + 20,
        gso_size: mss,
        csum_start: ip_len,
        csum_offset: 16,
    }
}

/// Checks one segment as the receiving stack would; returns (seq, flags, payload).
pub(crate) fn check_segment(v6: bool, segment: &[u8]) -> (u32, u8, Vec<u8>) {
    let ip_len = if v6 { 40 } else { 20 };
    let tcp = &segment[ip_len..];
    if v6 {
        let declared = u16::from_be_bytes([segment[4], segment[5]]) as usize;
        assert_eq!(declared, tcp.len(), "IPv6 payload length");
    } else {
        let declared = u16::from_be_bytes([segment[2], segment[3]]) as usize;
        assert_eq!(declared, segment.len(), "IPv4 total length");
        assert_eq!(
            fold(add_words(0, &segment[..20])),
            0xffff,
            "IPv4 header checksum"
        );
    }
    let addresses = if v6 {
        &segment[8..40]
    } else {
        &segment[12..20]
    };
    let pseudo = add_words(u64::from(PROTO_TCP) + tcp.len() as u64, addresses);
    assert_eq!(fold(add_words(pseudo, tcp)), 0xffff, "TCP checksum");
    let seq = u32::from_be_bytes([tcp[4], tcp[5], tcp[6], tcp[7]]);
    (seq, tcp[13], tcp[20..].to_vec())
}

#[test]
fn superpackets_are_cut_into_segments_a_receiver_accepts() {
    // (v6, payload length, mss): an uneven tail, an exact multiple, one short segment.
    let cases: [(bool, usize, u16); 5] = [
        (false, 3000, 1000),
        (true, 3000, 1000),
        (false, 4000, 1000),
        (true, 1344 * 48 + 7, 1344),
        (false, 10, 1344),
    ];
    for (v6, length, mss) in cases {
        let payload: Vec<u8> = (0..length).map(|i| (i * 7 + 3) as u8).collect();
        let packet = tcp_packet(v6, &payload);
        let mut out = Packets::default();
        split(offload_header(v6, mss), &packet, &mut out).expect("a valid superpacket");
        let expected = length.div_ceil(usize::from(mss));
        assert_eq!(out.len(), expected, "segments of {length} at {mss}");
        let mut joined = Vec::new();
        for (index, segment) in out.iter().enumerate() {
            let (seq, flags, data) = check_segment(v6, segment);
            assert_eq!(seq, 1000 + (index * usize::from(mss)) as u32);
            let last = index + 1 == expected;
            assert_eq!(
                flags & (TCP_FIN | TCP_PSH) != 0,
                last,
                "FIN/PSH on the last only"
            );
            assert_eq!(flags & TCP_CWR != 0, index == 0, "CWR on the first only");
            assert!(data.len() <= usize::from(mss));
            if !v6 {
                let id = u16::from_be_bytes([segment[4], segment[5]]);
                assert_eq!(
                    id,
                    0xfffeu16.wrapping_add(index as u16),
                    "IPv4 ids follow on"
                );
            }
            joined.extend_from_slice(&data);
        }
        assert_eq!(joined, payload, "payloads put back together");
    }
}

#[test]
fn a_plain_packet_gets_its_checksum_finished_and_one_needing_none_is_copied() {
    let packet = tcp_packet(false, b"hello");
    let header = VnetHeader {
        gso_type: GsoType::None,
        ..offload_header(false, 0)
    };
    let mut out = Packets::default();
    split(header, &packet, &mut out).expect("a plain packet");
    let segments: Vec<&[u8]> = out.iter().collect();
    assert_eq!(segments.len(), 1);
    assert_eq!(check_segment(false, segments[0]).2, b"hello");

    out.clear();
    split(VnetHeader::NONE, &packet, &mut out).expect("a plain packet");
    assert_eq!(
        out.iter().next(),
        Some(packet.as_slice()),
        "copied untouched"
    );
}

#[test]
fn malformed_superpackets_are_refused_and_leave_nothing_behind() {
    let packet = tcp_packet(false, &[1; 3000]);
    let good = offload_header(false, 1000);
    let mut not_tcp = packet.clone();
    not_tcp[9] = 17;
    let cases: [(VnetHeader, &[u8]); 5] = [
        (
            VnetHeader {
                gso_size: 0,
                ..good
            },
            &packet,
        ),
        (
            VnetHeader {
                csum_start: 24,
                ..good
            },
            &packet,
        ),
        (good, &not_tcp),
        (offload_header(true, 1000), &packet),
        (good, &packet[..30]),
    ];
    for (header, bytes) in cases {
        let mut out = Packets::default();
        assert!(split(header, bytes, &mut out).is_err(), "{header:?}");
        assert!(out.is_empty());
    }
    let mut out = Packets::default();
    let plain = VnetHeader {
        gso_type: GsoType::None,
        csum_start: 60,
        ..good
    };
    assert_eq!(
        split(plain, &packet[..70], &mut out),
        Err(VnetError::Truncated)
    );
    assert!(out.is_empty());
}
