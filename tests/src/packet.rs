//! Inner packets for tests that carry traffic through the tunnel by hand: IPv4 ICMP echo
//! requests with correct checksums, which the gateway's kernel answers when they reach its TUN.

use crate::frames::internet_checksum;
use std::net::Ipv4Addr;

const ICMP_ECHO_REQUEST: u8 = 8;

/// An IPv4 ICMP echo request from `src` to `dst` with identifier `id` and `payload`.
pub fn echo_request(src: Ipv4Addr, dst: Ipv4Addr, id: u16, payload: &[u8]) -> Vec<u8> {
    let mut icmp = vec![ICMP_ECHO_REQUEST, 0, 0, 0];
    icmp.extend_from_slice(&id.to_be_bytes());
    icmp.extend_from_slice(&1u16.to_be_bytes());
    icmp.extend_from_slice(payload);
    let sum = internet_checksum(&[&icmp]);
    icmp[2..4].copy_from_slice(&sum.to_be_bytes());
    let total = u16::try_from(20 + icmp.len()).expect("small packet");
    let mut ip = vec![0x45, 0];
    ip.extend_from_slice(&total.to_be_bytes());
    ip.extend_from_slice(&[0, 0, 0x40, 0, 64, 1, 0, 0]);
    ip.extend_from_slice(&src.octets());
    ip.extend_from_slice(&dst.octets());
    let sum = internet_checksum(&[&ip]);
    ip[10..12].copy_from_slice(&sum.to_be_bytes());
    ip.extend_from_slice(&icmp);
    ip
}
