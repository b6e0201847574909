//! Segments cut by [`crate::datapath::segment::split`] (as the sending end cuts them) are merged
//! back: the superpacket must cut again into exactly the same segments, so the kernel sees what
//! the sender's TCP handed over. Then the hostile and odd cases, each of which must stay a write
//! of its own, byte for byte as it came.

use super::*;
use crate::datapath::segment::tests::{offload_header, tcp_packet};
use crate::datapath::segment::{split, Packets};

const TCP_FIN: u8 = 0x01;
const TCP_SYN: u8 = 0x02;
const TCP_RST: u8 = 0x04;
const TCP_URG: u8 = 0x20;
const TCP_ECE: u8 = 0x40;
const TCP_CWR: u8 = 0x80;

/// The segments a sender cuts from `length` payload bytes at `mss`, all plain ACKs but the last
/// (ACK|PSH when `psh`).
fn segments(v6: bool, length: usize, mss: u16, psh: bool) -> Vec<Vec<u8>> {
    let payload: Vec<u8> = (0..length).map(|i| (i * 13 + 5) as u8).collect();
    let mut packet = tcp_packet(v6, &payload);
    let ip_len = if v6 { 40 } else { 20 };
    packet[ip_len + 13] = if psh { TCP_ACK | TCP_PSH } else { TCP_ACK };
    let mut out = Packets::default();
    split(offload_header(v6, mss), &packet, &mut out).expect("a valid superpacket");
    out.iter().map(<[u8]>::to_vec).collect()
}

/// Recomputes the IPv4 header checksum and the TCP checksum of a mutated segment.
fn fix(packet: &mut [u8]) {
    let v6 = packet[0] >> 4 == 6;
    let ip_len = if v6 {
        40
    } else {
        usize::from(packet[0] & 0x0f) * 4
    };
    if !v6 {
        packet[10..12].copy_from_slice(&[0, 0]);
        let sum = checksum(0, &packet[..ip_len]);
        packet[10..12].copy_from_slice(&sum);
    }
    let addresses = if v6 {
        packet[8..40].to_vec()
    } else {
        packet[12..20].to_vec()
    };
    let tcp = &mut packet[ip_len..];
    tcp[16..18].copy_from_slice(&[0, 0]);
    let pseudo = add_words(u64::from(PROTO_TCP) + tcp.len() as u64, &addresses);
    let sum = checksum(pseudo, tcp);
    tcp[16..18].copy_from_slice(&sum);
}

/// Pushes `packets` and returns the finished writes as (header, packet).
fn coalesce(writes: &mut TunWrites, packets: &[Vec<u8>]) -> Vec<(VnetHeader, Vec<u8>)> {
    writes.clear();
    for packet in packets {
        writes.push(packet);
    }
    writes
        .finish()
        .map(|w| {
            let header = VnetHeader::parse(w).expect("a header we wrote");
            (header, w[VNET_HDR_LEN..].to_vec())
        })
        .collect()
}

#[test]
fn consecutive_segments_merge_into_a_superpacket_that_cuts_back_into_them() {
    // (v6, payload, mss, psh on the last): an uneven tail, an exact multiple, a full 64 KiB.
    let cases = [
        (false, 3000, 1000, true),
        (true, 3000, 1000, false),
        (false, 4000, 1000, false),
        (true, 1344 * 45 + 7, 1344, true),
        (false, 1348 * 48, 1348, true),
    ];
    let mut writes = TunWrites::default();
    for (v6, length, mss, psh) in cases {
        let sent = segments(v6, length, mss, psh);
        let written = coalesce(&mut writes, &sent);
        assert_eq!(written.len(), 1, "one superpacket for {length} at {mss}");
        let (header, packet) = &written[0];
        let gso = if v6 { GsoType::TcpV6 } else { GsoType::TcpV4 };
        assert_eq!(header.gso_type, gso);
        assert_eq!(header.gso_size, mss);
        assert_eq!(header.flags, F_NEEDS_CSUM);
        let mut again = Packets::default();
        split(*header, packet, &mut again).expect("the kernel can cut it");
        let again: Vec<Vec<u8>> = again.iter().map(<[u8]>::to_vec).collect();
        assert_eq!(again, sent, "cut back into the very segments sent");
    }
}

#[test]
fn interleaved_flows_merge_each_in_the_order_they_first_came() {
    let a = segments(false, 3000, 1000, false);
    let mut b = segments(false, 2000, 1000, false);
    for packet in &mut b {
        packet[20..22].copy_from_slice(&40001u16.to_be_bytes());
        fix(packet);
    }
    let mixed = vec![
        a[0].clone(),
        b[0].clone(),
        a[1].clone(),
        b[1].clone(),
        a[2].clone(),
    ];
    let written = coalesce(&mut TunWrites::default(), &mixed);
    assert_eq!(written.len(), 2);
    assert_eq!(written[0].1.len(), 20 + 20 + 3000, "flow A first");
    assert_eq!(written[1].1.len(), 20 + 20 + 2000, "then flow B");
}

#[test]
fn a_superpacket_stops_at_64_segments() {
    let sent = segments(false, 100 * 70, 100, false);
    let written = coalesce(&mut TunWrites::default(), &sent);
    let sizes: Vec<usize> = written.iter().map(|(_, p)| p.len() - 40).collect();
    assert_eq!(sizes, vec![6400, 600]);
}

/// Inserts four bytes of IPv4 options (NOPs) after the header.
fn with_ip_options(packet: &mut Vec<u8>) {
    packet.splice(20..20, [1u8; 4]);
    packet[0] = 0x46;
    let total = packet.len() as u16;
    packet[2..4].copy_from_slice(&total.to_be_bytes());
}

#[test]
fn hostile_and_odd_segments_are_written_on_their_own_untouched() {
    type Mutation = (&'static str, fn(&mut Vec<u8>));
    let mutations: [Mutation; 16] = [
        ("IPv4 options", with_ip_options),
        ("SYN", |p| p[33] |= TCP_SYN),
        ("FIN", |p| p[33] |= TCP_FIN),
        ("RST", |p| p[33] |= TCP_RST),
        ("URG", |p| p[33] |= TCP_URG),
        ("ECE", |p| p[33] |= TCP_ECE),
        ("CWR", |p| p[33] |= TCP_CWR),
        ("other TTL", |p| p[8] = 63),
        ("other TOS", |p| p[1] = 0x10),
        ("other DF", |p| p[6] ^= 0x40),
        ("a fragment (MF)", |p| p[6] |= 0x20),
        ("another flow (port)", |p| p[21] ^= 1),
        ("another ack", |p| p[31] ^= 1),
        ("a sequence gap", |p| p[27] ^= 1),
        ("no payload", |p| {
            p.truncate(40);
            p[2..4].copy_from_slice(&40u16.to_be_bytes());
        }),
        ("UDP", |p| p[9] = 17),
    ];
    for (what, mutate) in mutations {
        let mut sent = segments(false, 3000, 1000, false);
        mutate(&mut sent[1]);
        fix(&mut sent[1]);
        let odd = sent[1].clone();
        let written = coalesce(&mut TunWrites::default(), &sent);
        assert!(written.len() >= 2, "{what}: not merged");
        assert!(
            written
                .iter()
                .any(|(h, p)| *h == VnetHeader::NONE && *p == odd),
            "{what}: written on its own, as it came"
        );
        let payload: usize = written.iter().map(|(_, p)| p.len()).sum();
        assert!(
            payload >= sent.iter().map(Vec::len).sum::<usize>() - 80,
            "{what}: nothing lost"
        );
    }
}

#[test]
fn out_of_order_bad_checksums_and_mismatched_options_do_not_merge() {
    let sent = segments(false, 3000, 1000, false);
    let reordered = vec![sent[0].clone(), sent[2].clone(), sent[1].clone()];
    let written = coalesce(&mut TunWrites::default(), &reordered);
    assert_eq!(written.len(), 3, "out of order: three writes");
    let bodies: Vec<&Vec<u8>> = written.iter().map(|(_, p)| p).collect();
    assert_eq!(bodies, reordered.iter().collect::<Vec<_>>());

    let mut corrupt = segments(false, 3000, 1000, false);
    corrupt[1][50] ^= 0xff;
    let written = coalesce(&mut TunWrites::default(), &corrupt);
    assert!(written
        .iter()
        .any(|(h, p)| *h == VnetHeader::NONE && *p == corrupt[1]));
    let mut corrupt_head = segments(false, 3000, 1000, false);
    corrupt_head[0][50] ^= 0xff;
    let written = coalesce(&mut TunWrites::default(), &corrupt_head);
    assert_eq!(written[0], (VnetHeader::NONE, corrupt_head[0].clone()));
    assert_eq!(written.len(), 2, "the rest still merges");

    // A shorter segment ends the superpacket; a PSH ends it too.
    let following = |seq: u32| {
        let mut p = segments(false, 1000, 1000, false).remove(0);
        p[24..28].copy_from_slice(&seq.to_be_bytes());
        fix(&mut p);
        p
    };
    let mut short_then_full = segments(false, 1500, 1000, false);
    short_then_full.push(following(2500));
    assert_eq!(
        coalesce(&mut TunWrites::default(), &short_then_full).len(),
        2
    );
    let pushed = segments(false, 2000, 1000, true);
    let mut after_psh = pushed.clone();
    after_psh.push(following(3000));
    assert_eq!(coalesce(&mut TunWrites::default(), &after_psh).len(), 2);
}

#[test]
fn ipv6_with_another_next_header_or_flow_label_does_not_merge() {
    let mut sent = segments(true, 3000, 1000, false);
    sent[1][3] ^= 1;
    fix(&mut sent[1]);
    assert!(
        coalesce(&mut TunWrites::default(), &sent).len() >= 2,
        "flow label"
    );
    let mut sent = segments(true, 3000, 1000, false);
    sent[1][6] = 0;
    assert!(
        coalesce(&mut TunWrites::default(), &sent).len() >= 2,
        "hop-by-hop header"
    );
}

#[test]
fn a_reused_batch_carries_nothing_over() {
    let mut writes = TunWrites::default();
    let big = segments(false, 1348 * 48, 1348, false);
    let first = coalesce(&mut writes, &big);
    let small = segments(true, 500, 1000, false);
    let second = coalesce(&mut writes, &small);
    assert_eq!(first.len(), 1);
    assert_eq!(second, vec![(VnetHeader::NONE, small[0].clone())]);
}
