//! Where the UDP datagram of a frame is, as docs/protocol.md ("What the XDP program judges")
//! states it: Ethernet, at most two VLAN tags, IPv4 (options, one AH) or IPv6 (at most six
//! extension headers), UDP; and what the parse cannot establish.

use jvpn_common::abi::{IPV6_MAX_EXTENSIONS as MAX_EXTENSIONS, VLAN_MAX_TAGS as MAX_TAGS};
use jvpn_common::TransportBinding;

/// EtherTypes that announce a VLAN tag: 802.1Q, 802.1ad and the pre-standard QinQ tag.
const VLAN_TPIDS: [u16; 3] = [0x8100, 0x88a8, 0x9100];
const UDP: u8 = 17;
const AH: u8 = 51;
const FRAGMENT: u8 = 44;
/// IPv6 extension headers the walk steps over (hop-by-hop, routing, fragment, destination
/// options, AH).
const EXTENSIONS: [u8; 5] = [0, 43, FRAGMENT, 60, AH];

/// What a frame carries for the program.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Located {
    /// Not UDP over IP that the stack could deliver: passed as foreign traffic.
    Foreign,
    /// Maybe UDP to the port, but the parse cannot say: MALFORMED, from this source (port 0).
    Hidden(TransportBinding),
    /// A UDP datagram.
    Udp(Datagram),
}

/// A located UDP datagram.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Datagram {
    /// Source address (IPv4-mapped for IPv4) and port.
    pub source: TransportBinding,
    /// Destination port.
    pub port: u16,
    /// The UDP payload as far as the UDP length says and the frame holds.
    pub payload: Vec<u8>,
    /// The UDP length less its header, saturating at 0.
    pub payload_len: usize,
    /// A first (or IPv6 atomic) fragment.
    pub fragmented: bool,
    /// UDP length == IP payload length per the IP header, >= 8, and the IP packet inside the frame.
    pub lengths_agree: bool,
}

fn be16(frame: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*frame.get(at)?, *frame.get(at + 1)?]))
}

/// Locates the datagram of `frame`.
pub fn locate(frame: &[u8]) -> Located {
    let Some(mut ether_type) = be16(frame, 12) else {
        return Located::Foreign;
    };
    let mut at = 14;
    let mut tags = 0;
    while VLAN_TPIDS.contains(&ether_type) {
        if tags == MAX_TAGS {
            return Located::Hidden(TransportBinding::default());
        }
        let Some(inner) = be16(frame, at + 2) else {
            return Located::Foreign;
        };
        ether_type = inner;
        at += 4;
        tags += 1;
    }
    let ip = match ether_type {
        0x0800 => ipv4(frame, at),
        0x86dd => ipv6(frame, at),
        _ => return Located::Foreign,
    };
    let ip = match ip {
        Ip::Foreign => return Located::Foreign,
        Ip::Hidden(addr) => return Located::Hidden(TransportBinding::from_v6(addr, 0)),
        Ip::Payload(ip) => ip,
    };
    if ip.protocol != UDP {
        return Located::Foreign;
    }
    let Some(udp) = frame.get(ip.start..ip.start + 8) else {
        // A first fragment would be completed by the next; unfragmented, the stack drops it.
        return match ip.fragmented {
            true => Located::Hidden(TransportBinding::from_v6(ip.source, 0)),
            false => Located::Foreign,
        };
    };
    let source_port = u16::from_be_bytes([udp[0], udp[1]]);
    let port = u16::from_be_bytes([udp[2], udp[3]]);
    let udp_len = usize::from(u16::from_be_bytes([udp[4], udp[5]]));
    let ip_payload = ip.end.checked_sub(ip.start);
    let lengths_agree = udp_len >= 8 && ip_payload == Some(udp_len) && ip.end <= frame.len();
    let payload_start = ip.start + 8;
    let payload_end = (ip.start + udp_len).min(frame.len()).max(payload_start);
    Located::Udp(Datagram {
        source: TransportBinding::from_v6(ip.source, source_port),
        port,
        payload: frame[payload_start..payload_end].to_vec(),
        payload_len: udp_len.saturating_sub(8),
        fragmented: ip.fragmented,
        lengths_agree,
    })
}

enum Ip {
    Foreign,
    Hidden([u8; 16]),
    Payload(IpPayload),
}

struct IpPayload {
    source: [u8; 16],
    protocol: u8,
    /// Offset of the transport header.
    start: usize,
    /// Offset of the end of the IP packet per its length field.
    end: usize,
    fragmented: bool,
}

fn ipv4(frame: &[u8], at: usize) -> Ip {
    let Some(header) = frame.get(at..at + 20) else {
        return Ip::Foreign;
    };
    if header[0] >> 4 != 4 {
        return Ip::Foreign;
    }
    let mut source = [0u8; 16];
    source[10] = 0xff;
    source[11] = 0xff;
    source[12..].copy_from_slice(&header[12..16]);
    let flags_offset = u16::from_be_bytes([header[6], header[7]]);
    if flags_offset & 0x1fff != 0 {
        return Ip::Foreign;
    }
    let mut protocol = header[9];
    let ihl = usize::from(header[0] & 0x0f);
    if ihl < 5 {
        return match protocol {
            UDP | AH => Ip::Hidden(source),
            _ => Ip::Foreign,
        };
    }
    let mut start = at + ihl * 4;
    if protocol == AH {
        // AH is read as its first four bytes: next header, length (4-byte units less two).
        let Some(ah) = frame.get(start..start + 4) else {
            return Ip::Foreign;
        };
        protocol = ah[0];
        start += (usize::from(ah[1]) + 2) * 4;
    }
    Ip::Payload(IpPayload {
        source,
        protocol,
        start,
        end: at + usize::from(u16::from_be_bytes([header[2], header[3]])),
        fragmented: flags_offset & 0x3fff != 0,
    })
}

fn ipv6(frame: &[u8], at: usize) -> Ip {
    let Some(header) = frame.get(at..at + 40) else {
        return Ip::Foreign;
    };
    if header[0] >> 4 != 6 {
        return Ip::Foreign;
    }
    let source: [u8; 16] = header[8..24].try_into().expect("16 bytes");
    let mut next = header[6];
    let mut start = at + 40;
    let mut fragmented = false;
    let mut walked = 0;
    while EXTENSIONS.contains(&next) {
        if walked == MAX_EXTENSIONS {
            return Ip::Hidden(source);
        }
        // Every extension header is read as its first four bytes.
        let Some(ext) = frame.get(start..start + 4) else {
            return Ip::Foreign;
        };
        let size = match next {
            FRAGMENT => {
                if u16::from_be_bytes([ext[2], ext[3]]) & 0xfff8 != 0 {
                    return Ip::Foreign;
                }
                fragmented = true;
                8
            }
            AH => (usize::from(ext[1]) + 2) * 4,
            _ => (usize::from(ext[1]) + 1) * 8,
        };
        next = ext[0];
        start += size;
        walked += 1;
    }
    Ip::Payload(IpPayload {
        source,
        protocol: next,
        start,
        end: at + 40 + usize::from(u16::from_be_bytes([header[4], header[5]])),
        fragmented,
    })
}
