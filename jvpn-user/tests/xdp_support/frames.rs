//! Frames for the XDP program, built by hand (Ethernet, VLAN tags, IPv4 with options and AH or
//! IPv6 with extension headers, fragments, UDP) because the program reads exactly these bytes.
//! [`IpShape`] breaks or wraps the IP layer in the ways the stack still accepts (or almost). The
//! IPv4 header checksum and the UDP checksum are computed, so a frame injected on a real
//! interface is delivered by the stack; XDP itself never reads them.

use super::PORT;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// EtherType of 802.1Q (customer) tags.
pub const TPID_8021Q: u16 = 0x8100;
/// EtherType of 802.1ad (service, QinQ) tags.
pub const TPID_8021AD: u16 = 0x88a8;
/// EtherType of the pre-standard QinQ tag.
pub const TPID_QINQ_LEGACY: u16 = 0x9100;
const ETHERTYPE_IPV4: u16 = 0x0800;
const ETHERTYPE_IPV6: u16 = 0x86dd;
const PROTOCOL_UDP: u8 = 17;
const PROTOCOL_AH: u8 = 51;
const IPV6_FRAGMENT: u8 = 44;
const IPV6_NO_NEXT: u8 = 59;

/// One VLAN tag: its tag protocol identifier and tag control information (priority, DEI and
/// VLAN id; VLAN id 0 is a priority tag, which the stack strips and delivers through).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VlanTag {
    /// The EtherType announcing the tag.
    pub tpid: u16,
    /// Priority (3 bits), DEI (1 bit), VLAN id (12 bits).
    pub tci: u16,
}

impl VlanTag {
    /// An 802.1Q tag with this VLAN id.
    pub const fn q(vlan_id: u16) -> Self {
        Self {
            tpid: TPID_8021Q,
            tci: vlan_id,
        }
    }

    /// An 802.1ad tag with this VLAN id.
    pub const fn ad(vlan_id: u16) -> Self {
        Self {
            tpid: TPID_8021AD,
            tci: vlan_id,
        }
    }
}

/// The IP layer's deviations from a plain header, all off by default.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct IpShape {
    /// IPv4 options, padded with end-of-list bytes to a multiple of 4 (at most 40 bytes).
    pub ipv4_options: Vec<u8>,
    /// IPv4: an authentication header (16 bytes) between the IP header and UDP.
    pub ipv4_ah: bool,
    /// IPv4: this IHL instead of the header's real length in 32-bit words.
    pub ihl: Option<u8>,
    /// This IP version nibble instead of 4 or 6.
    pub version: Option<u8>,
    /// A later fragment at this offset (in 8-byte units, non-zero); IPv6 adds a fragment header.
    pub fragment_offset: u16,
    /// Added to the IP length field (IPv4 total length, IPv6 payload length).
    pub ip_length_delta: i32,
    /// Added to the UDP length field.
    pub udp_length_delta: i32,
    /// Leaves the UDP checksum at zero ("none" in IPv4, invalid in IPv6).
    pub zero_udp_checksum: bool,
}

/// A UDP datagram to be framed.
#[derive(Clone, Debug)]
pub struct Udp {
    /// Source address and port.
    pub source: SocketAddr,
    /// Destination address and port.
    pub destination: SocketAddr,
    /// VLAN tags, outermost first.
    pub tags: Vec<VlanTag>,
    /// Sent as the first fragment of a fragmented packet (IPv4 MF flag, IPv6 fragment header).
    pub fragment: bool,
    /// IPv6 only: extension headers before UDP (see [`ipv6`]).
    pub ipv6_extensions: Vec<u8>,
    /// Further deviations of the IP layer.
    pub shape: IpShape,
    /// The UDP payload.
    pub payload: Vec<u8>,
}

impl Udp {
    /// A datagram from `source` to `destination`.
    pub fn new(source: SocketAddr, destination: SocketAddr, payload: Vec<u8>) -> Self {
        Self {
            source,
            destination,
            tags: Vec::new(),
            fragment: false,
            ipv6_extensions: Vec::new(),
            shape: IpShape::default(),
            payload,
        }
    }

    /// The Ethernet frame carrying it.
    pub fn frame(&self) -> Vec<u8> {
        let shape = &self.shape;
        let udp_len = (8 + self.payload.len() as i32 + shape.udp_length_delta) as u16;
        let mut udp = Vec::with_capacity(8 + self.payload.len());
        udp.extend_from_slice(&self.source.port().to_be_bytes());
        udp.extend_from_slice(&self.destination.port().to_be_bytes());
        udp.extend_from_slice(&udp_len.to_be_bytes());
        udp.extend_from_slice(&[0, 0]);
        udp.extend_from_slice(&self.payload);
        let (ether_type, ip) = match (self.source.ip(), self.destination.ip()) {
            (IpAddr::V4(s), IpAddr::V4(d)) => {
                if !shape.zero_udp_checksum {
                    let pseudo = [&s.octets()[..], &d.octets(), &[0, PROTOCOL_UDP]].concat();
                    set_udp_checksum(&mut udp, &pseudo, udp_len);
                }
                let ip = ipv4_shaped(
                    s.octets(),
                    d.octets(),
                    PROTOCOL_UDP,
                    self.fragment,
                    shape,
                    &udp,
                );
                (ETHERTYPE_IPV4, ip)
            }
            (IpAddr::V6(s), IpAddr::V6(d)) => {
                if !shape.zero_udp_checksum {
                    let pseudo = [&s.octets()[..], &d.octets(), &[0, 0, 0, PROTOCOL_UDP]].concat();
                    set_udp_checksum(&mut udp, &pseudo, udp_len);
                }
                let ip = ipv6_shaped(
                    s.octets(),
                    d.octets(),
                    &self.ipv6_extensions,
                    self.fragment,
                    shape,
                    &udp,
                );
                (ETHERTYPE_IPV6, ip)
            }
            _ => panic!("source and destination of one family"),
        };
        let mut frame = vec![0x02, 0, 0, 0, 0, 0x01, 0x02, 0, 0, 0, 0, 0x02];
        for tag in &self.tags {
            frame.extend_from_slice(&tag.tpid.to_be_bytes());
            frame.extend_from_slice(&tag.tci.to_be_bytes());
        }
        frame.extend_from_slice(&ether_type.to_be_bytes());
        frame.extend_from_slice(&ip);
        frame
    }
}

/// The Internet checksum (RFC 1071) of the concatenation of `parts`.
pub fn internet_checksum(parts: &[&[u8]]) -> u16 {
    let bytes: Vec<u8> = parts.concat();
    let mut sum: u64 = bytes
        .chunks(2)
        .map(|c| u64::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)])))
        .sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// Fills in the checksum of the UDP datagram `udp` (header and payload) under `pseudo` (the
/// pseudo-header without its length, which is `udp_len`).
fn set_udp_checksum(udp: &mut [u8], pseudo: &[u8], udp_len: u16) {
    let sum = match internet_checksum(&[pseudo, &udp_len.to_be_bytes(), udp]) {
        0 => 0xffff,
        c => c,
    };
    udp[6..8].copy_from_slice(&sum.to_be_bytes());
}

/// An IPv4 packet (20-byte header) around `payload`.
pub fn ipv4(
    source: [u8; 4],
    destination: [u8; 4],
    protocol: u8,
    more_fragments: bool,
    payload: &[u8],
) -> Vec<u8> {
    ipv4_shaped(
        source,
        destination,
        protocol,
        more_fragments,
        &IpShape::default(),
        payload,
    )
}

/// An IPv4 packet around `payload` as `shape` says, with its header checksum.
fn ipv4_shaped(
    source: [u8; 4],
    destination: [u8; 4],
    protocol: u8,
    more_fragments: bool,
    shape: &IpShape,
    payload: &[u8],
) -> Vec<u8> {
    let mut options = shape.ipv4_options.clone();
    while !options.len().is_multiple_of(4) {
        options.push(0);
    }
    let header_len = 20 + options.len();
    let ah = if shape.ipv4_ah {
        ah_header(protocol)
    } else {
        Vec::new()
    };
    let total = (header_len + ah.len() + payload.len()) as i32 + shape.ip_length_delta;
    let flags: u16 = match (more_fragments, shape.fragment_offset) {
        (false, 0) => 0x4000,
        (true, offset) => 0x2000 | offset,
        (false, offset) => offset,
    };
    let version = shape.version.unwrap_or(4);
    let ihl = shape.ihl.unwrap_or((header_len / 4) as u8);
    let first_protocol = if shape.ipv4_ah { PROTOCOL_AH } else { protocol };
    let mut ip = vec![(version << 4) | (ihl & 0x0f), 0];
    ip.extend_from_slice(&(total as u16).to_be_bytes());
    ip.extend_from_slice(&[0, 1]);
    ip.extend_from_slice(&flags.to_be_bytes());
    ip.extend_from_slice(&[64, first_protocol, 0, 0]);
    ip.extend_from_slice(&source);
    ip.extend_from_slice(&destination);
    ip.extend_from_slice(&options);
    let checksum = internet_checksum(&[&ip]);
    ip[10..12].copy_from_slice(&checksum.to_be_bytes());
    ip.extend_from_slice(&ah);
    ip.extend_from_slice(payload);
    ip
}

/// An authentication header (RFC 4302) of 16 bytes (a 4-byte ICV) announcing `next`.
fn ah_header(next: u8) -> Vec<u8> {
    vec![next, 2, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0]
}

/// An IPv6 packet around a UDP datagram, after extension headers of the given types and a
/// fragment header (offset 0, more fragments) if `fragment`. Hop-by-hop (0) and destination
/// options (60) hold one PadN option, routing (43) is type 0 with no segments left, 44 is an
/// atomic fragment header (offset 0, no more fragments), 51 an authentication header, and 59 (no
/// next header) ends the chain (what follows is never read by a receiver).
pub fn ipv6(
    source: [u8; 16],
    destination: [u8; 16],
    extensions: &[u8],
    fragment: bool,
    udp: &[u8],
) -> Vec<u8> {
    ipv6_shaped(
        source,
        destination,
        extensions,
        fragment,
        &IpShape::default(),
        udp,
    )
}

/// An IPv6 packet around a UDP datagram as [`ipv6`] and `shape` say.
fn ipv6_shaped(
    source: [u8; 16],
    destination: [u8; 16],
    extensions: &[u8],
    fragment: bool,
    shape: &IpShape,
    udp: &[u8],
) -> Vec<u8> {
    let mut chain: Vec<u8> = extensions.to_vec();
    let real_fragment = fragment || shape.fragment_offset != 0;
    if real_fragment {
        chain.push(IPV6_FRAGMENT);
    }
    chain.push(PROTOCOL_UDP);
    let mut ext = Vec::new();
    let last_fragment_header = chain.len().saturating_sub(2);
    for (i, pair) in chain.windows(2).enumerate() {
        let (kind, next) = (pair[0], pair[1]);
        match kind {
            IPV6_FRAGMENT => {
                let offset_flags: u16 = if real_fragment && i == last_fragment_header {
                    (shape.fragment_offset << 3) | u16::from(fragment)
                } else {
                    0
                };
                ext.extend_from_slice(&[next, 0]);
                ext.extend_from_slice(&offset_flags.to_be_bytes());
                ext.extend_from_slice(&[0, 0, 0, 1]);
            }
            PROTOCOL_AH => ext.extend_from_slice(&ah_header(next)),
            IPV6_NO_NEXT => {}
            43 => ext.extend_from_slice(&[next, 0, 0, 0, 0, 0, 0, 0]),
            _ => ext.extend_from_slice(&[next, 0, 1, 4, 0, 0, 0, 0]),
        }
    }
    let payload_len = (ext.len() + udp.len()) as i32 + shape.ip_length_delta;
    let version = shape.version.unwrap_or(6);
    let mut ip = vec![version << 4, 0, 0, 0];
    ip.extend_from_slice(&(payload_len as u16).to_be_bytes());
    ip.extend_from_slice(&[chain[0], 64]);
    ip.extend_from_slice(&source);
    ip.extend_from_slice(&destination);
    ip.extend_from_slice(&ext);
    ip.extend_from_slice(udp);
    ip
}

/// How the frames of one table run are addressed.
pub struct Family {
    /// The client's address, the sessions' bound transport.
    pub client: SocketAddr,
    /// The client's address with another port.
    pub other_port: SocketAddr,
    /// The gateway, at [`PORT`].
    pub gateway: SocketAddr,
    /// The 802.1Q tag of every frame.
    pub vlan: Option<u16>,
}

impl Family {
    /// IPv4 addresses.
    pub fn v4(vlan: Option<u16>) -> Self {
        let client = Ipv4Addr::new(192, 0, 2, 10);
        Self {
            client: SocketAddr::new(client.into(), 40_000),
            other_port: SocketAddr::new(client.into(), 40_001),
            gateway: SocketAddr::new(Ipv4Addr::new(198, 51, 100, 1).into(), PORT),
            vlan,
        }
    }

    /// IPv6 addresses.
    pub fn v6(vlan: Option<u16>) -> Self {
        let client: Ipv6Addr = "2001:db8::10".parse().unwrap();
        Self {
            client: SocketAddr::new(client.into(), 40_000),
            other_port: SocketAddr::new(client.into(), 40_001),
            gateway: SocketAddr::new("2001:db8::1".parse::<Ipv6Addr>().unwrap().into(), PORT),
            vlan,
        }
    }

    /// A datagram from `source` to the gateway.
    pub fn udp(&self, source: SocketAddr, payload: Vec<u8>) -> Udp {
        let mut udp = Udp::new(source, self.gateway, payload);
        udp.tags = self.vlan.map(VlanTag::q).into_iter().collect();
        udp
    }

    /// The frame of a datagram from the client to the gateway.
    pub fn frame(&self, payload: Vec<u8>) -> Vec<u8> {
        self.udp(self.client, payload).frame()
    }
}
