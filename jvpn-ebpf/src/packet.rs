//! Reading a frame: the one bounds-checked accessor for packet bytes ([`Packet::read`]) and the
//! parse of Ethernet (with up to `abi::VLAN_MAX_TAGS` 802.1Q / 802.1ad tags), IPv4 or IPv6 (with
//! options, extension headers and AH) and UDP, down to the datagram's payload.
//!
//! The parse only locates; judging the datagram is the program's business. The rule it serves
//! (docs/protocol.md, "What the XDP program judges"): whatever the stack could deliver to the
//! jvpn port must be judged, so a packet that may carry a UDP datagram the parse cannot see is
//! reported as [`Transport::Hidden`] rather than as foreign traffic: a VLAN stack deeper than the
//! walk (the stack strips any number of priority tags, VLAN id 0), an IPv4 header whose length
//! field is below the minimum, a first fragment too short for its UDP header (the tiny-fragment
//! attack of RFC 1858) and an IPv6 header chain longer than the walk. Later fragments carry no
//! transport header and pass; without their first fragment they are never reassembled.
//! Checksums are not read: on a veth they are still partial when XDP runs, and a frame whose
//! checksum fails is dropped by the stack after being judged, never delivered unjudged. Protocol
//! numbers of Ethernet, IP and UDP live here; everything jvpn-specific lives in `jvpn_common::abi`.

use aya_ebpf::programs::XdpContext;
use bytemuck::{Pod, Zeroable};
use jvpn_common::abi::{IPV6_MAX_EXTENSIONS, VLAN_MAX_TAGS};
use jvpn_common::wire::Be16;
use jvpn_common::TransportBinding;

const ETH_HEADER_LEN: usize = 14;
const ETH_TYPE_OFFSET: usize = 12;
const VLAN_TAG_LEN: usize = 4;
const ETH_P_IPV4: u16 = 0x0800;
const ETH_P_IPV6: u16 = 0x86dd;
/// 802.1Q customer tag.
const ETH_P_8021Q: u16 = 0x8100;
/// 802.1ad service tag (QinQ).
const ETH_P_8021AD: u16 = 0x88a8;
/// The pre-standard QinQ service tag some switches still send.
const ETH_P_QINQ_LEGACY: u16 = 0x9100;
const IPV4_MIN_HEADER_LEN: usize = 20;
const IPV6_HEADER_LEN: usize = 40;
const UDP_HEADER_LEN: usize = 8;
const IPPROTO_UDP: u8 = 17;
/// Authentication header (RFC 4302): authenticates but does not hide what follows it.
const IPPROTO_AH: u8 = 51;
const IPV6_HOP_BY_HOP: u8 = 0;
const IPV6_ROUTING: u8 = 43;
const IPV6_FRAGMENT: u8 = 44;
const IPV6_DEST_OPTS: u8 = 60;
/// IPv4 "more fragments" flag and fragment offset bits of the flags/offset field.
const IPV4_FRAGMENT_BITS: u16 = 0x3fff;
/// IPv4 fragment offset bits alone: non-zero means a later fragment, without the UDP header.
const IPV4_OFFSET_BITS: u16 = 0x1fff;
/// IPv6 fragment offset bits of the fragment header's offset/flags field.
const IPV6_OFFSET_BITS: u16 = 0xfff8;

/// A frame under inspection: the packet bounds as the verifier knows them.
pub struct Packet {
    start: usize,
    end: usize,
}

impl Packet {
    /// The frame of an XDP context.
    #[inline(always)]
    pub fn new(ctx: &XdpContext) -> Self {
        Self {
            start: ctx.data(),
            end: ctx.data_end(),
        }
    }

    /// Length of the whole frame in bytes.
    #[inline(always)]
    pub fn len(&self) -> u32 {
        (self.end - self.start) as u32
    }

    /// Whether the frame is empty.
    #[inline(always)]
    pub fn is_empty(&self) -> bool {
        self.end == self.start
    }

    /// Copies the `T` at `offset`, or `None` if it does not lie wholly inside the frame.
    ///
    /// The only way this crate reads packet bytes: the bounds check sits next to the access, in the
    /// form the verifier tracks (packet pointer plus size compared against `data_end`).
    #[inline(always)]
    pub fn read<T: Pod>(&self, offset: usize) -> Option<T> {
        let at = self.start + offset;
        if at + core::mem::size_of::<T>() > self.end {
            return None;
        }
        // SAFETY: `at .. at + size_of::<T>()` lies inside the frame (checked just above), the frame
        // stays mapped for the whole program run, and `T: Pod` accepts any bytes at any alignment
        // (read_unaligned).
        Some(unsafe { (at as *const T).read_unaligned() })
    }

    /// The frame from `offset` on, as a packet of its own: reads at constant offsets from one
    /// base, so a bounds check of its far end covers every read before it (the verifier ties them
    /// to the same base pointer). Bytes past the end are still refused by [`Packet::read`].
    #[inline(always)]
    pub fn tail(&self, offset: usize) -> Self {
        Self {
            start: self.start + offset,
            end: self.end,
        }
    }

    /// A raw pointer to `len` writable bytes at `offset`, or `None` if they are not all inside
    /// the frame. For the benchmark driver only, which rewrites frames between runs.
    #[inline(always)]
    pub fn bytes_mut(&self, offset: usize, len: usize) -> Option<*mut u8> {
        let at = self.start + offset;
        if at + len > self.end {
            return None;
        }
        Some(at as *mut u8)
    }
}

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct Ipv4Header {
    version_ihl: u8,
    tos: u8,
    total_len: Be16,
    id: Be16,
    flags_offset: Be16,
    ttl: u8,
    protocol: u8,
    checksum: Be16,
    source: [u8; 4],
    destination: [u8; 4],
}

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct Ipv6Header {
    version_class_flow: [u8; 4],
    payload_len: Be16,
    next_header: u8,
    hop_limit: u8,
    source: [u8; 16],
    destination: [u8; 16],
}

/// The first bytes of every IPv6 extension header and of AH: the next header, a length (in 8-byte
/// units less one, or for AH 4-byte units less two) and, in the fragment header, the offset field.
#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct Extension {
    next_header: u8,
    len_units: u8,
    fragment_offset_flags: Be16,
}

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct UdpHeader {
    source: Be16,
    destination: Be16,
    len: Be16,
    checksum: Be16,
}

/// A UDP datagram found in the frame.
pub struct Datagram {
    /// Source address (IPv4-mapped for IPv4) and port.
    pub source: TransportBinding,
    /// Destination port, network byte order.
    pub destination_port: Be16,
    /// Offset of the UDP payload in the frame.
    pub payload: usize,
    /// Payload length in bytes according to the UDP header (saturating at 0).
    pub payload_len: usize,
    /// Whether the datagram arrived in an IP fragment (its first fragment: later ones carry no UDP
    /// header and are never seen as a datagram).
    pub fragmented: bool,
    /// Whether the UDP length equals the IP payload length the IP header states, and the IP packet
    /// lies wholly inside the frame. Otherwise the stack would trim or drop what was judged.
    pub lengths_agree: bool,
}

/// What a frame carries, as far as jvpn is concerned.
pub enum Transport {
    /// Not UDP over IP, or a later fragment: never jvpn's to judge.
    Other,
    /// A UDP datagram.
    Udp(Datagram),
    /// Possibly UDP, but its header cannot be located (see the module doc); the source address of
    /// the IP header (all zero if the IP header was not reached), port 0.
    Hidden(TransportBinding),
}

/// Where the IP payload starts and what it is.
struct IpPayload {
    source: [u8; 16],
    protocol: u8,
    /// Offset of the transport header in the frame.
    offset: usize,
    /// Offset of the end of the IP packet, as its header states the length.
    end: usize,
    /// First fragment of a fragmented packet (or an IPv6 atomic fragment).
    fragmented: bool,
}

/// What the IP layer of a frame holds.
enum Ip {
    /// Not IP, not a header the stack accepts, or a later fragment.
    Other,
    /// A payload the parse cannot locate (see the module doc), from this source.
    Hidden([u8; 16]),
    /// A located payload.
    Payload(IpPayload),
}

/// Finds the UDP datagram of an IPv4 or IPv6 frame.
#[inline(always)]
pub fn udp_datagram(packet: &Packet) -> Transport {
    let ip = match ip_payload(packet) {
        Ip::Other => return Transport::Other,
        Ip::Hidden(source) => return Transport::Hidden(TransportBinding::from_v6(source, 0)),
        Ip::Payload(ip) => ip,
    };
    let source = TransportBinding::from_v6(ip.source, 0);
    if ip.protocol != IPPROTO_UDP {
        return Transport::Other;
    }
    let Some(udp) = packet.read::<UdpHeader>(ip.offset) else {
        // Unfragmented, a truncated datagram is dropped by the stack; a first fragment would be
        // completed by the next one.
        return match ip.fragmented {
            true => Transport::Hidden(source),
            false => Transport::Other,
        };
    };
    let udp_len = udp.len.get() as usize;
    let lengths_agree = udp_len >= UDP_HEADER_LEN
        && ip.end >= ip.offset
        && udp_len == ip.end - ip.offset
        && ip.end <= packet.len() as usize;
    Transport::Udp(Datagram {
        source: TransportBinding {
            port: udp.source,
            ..source
        },
        destination_port: udp.destination,
        payload: ip.offset + UDP_HEADER_LEN,
        payload_len: udp_len.saturating_sub(UDP_HEADER_LEN),
        fragmented: ip.fragmented,
        lengths_agree,
    })
}

#[inline(always)]
fn is_vlan_tag(ether_type: u16) -> bool {
    matches!(ether_type, ETH_P_8021Q | ETH_P_8021AD | ETH_P_QINQ_LEGACY)
}

/// The IP layer of a frame, behind at most [`VLAN_MAX_TAGS`] VLAN tags.
#[inline(always)]
fn ip_payload(packet: &Packet) -> Ip {
    let Some(ether_type) = packet.read::<Be16>(ETH_TYPE_OFFSET) else {
        return Ip::Other;
    };
    let mut ether_type = ether_type.get();
    let mut offset = ETH_HEADER_LEN;
    for _ in 0..VLAN_MAX_TAGS {
        if !is_vlan_tag(ether_type) {
            break;
        }
        // The tag's own type field follows its 2-byte tag control information.
        let Some(inner) = packet.read::<Be16>(offset + 2) else {
            return Ip::Other;
        };
        ether_type = inner.get();
        offset += VLAN_TAG_LEN;
    }
    match ether_type {
        ETH_P_IPV4 => ipv4_payload(packet, offset),
        ETH_P_IPV6 => ipv6_payload(packet, offset),
        // A deeper stack: the stack strips any number of priority tags and would deliver what
        // lies behind them.
        t if is_vlan_tag(t) => Ip::Hidden([0; 16]),
        _ => Ip::Other,
    }
}

#[inline(always)]
fn ipv4_payload(packet: &Packet, offset: usize) -> Ip {
    let Some(ip) = packet.read::<Ipv4Header>(offset) else {
        return Ip::Other;
    };
    if ip.version_ihl >> 4 != 4 {
        return Ip::Other;
    }
    let source = TransportBinding::from_v4(ip.source, 0).addr;
    let fragment = ip.flags_offset.get();
    if fragment & IPV4_OFFSET_BITS != 0 {
        return Ip::Other;
    }
    let mut protocol = ip.protocol;
    // The mask bounds the header length for the verifier (at most 60 bytes).
    let header_len = ((ip.version_ihl & 0x0f) as usize) * 4;
    if header_len < IPV4_MIN_HEADER_LEN {
        return match protocol {
            IPPROTO_UDP | IPPROTO_AH => Ip::Hidden(source),
            _ => Ip::Other,
        };
    }
    let mut at = offset + header_len;
    if protocol == IPPROTO_AH {
        let Some(ah) = packet.read::<Extension>(at) else {
            return Ip::Other;
        };
        protocol = ah.next_header;
        at += (ah.len_units as usize + 2) * 4;
    }
    Ip::Payload(IpPayload {
        source,
        protocol,
        offset: at,
        end: offset + ip.total_len.get() as usize,
        fragmented: fragment & IPV4_FRAGMENT_BITS != 0,
    })
}

#[inline(always)]
fn ipv6_payload(packet: &Packet, offset: usize) -> Ip {
    let Some(ip) = packet.read::<Ipv6Header>(offset) else {
        return Ip::Other;
    };
    if ip.version_class_flow[0] >> 4 != 6 {
        return Ip::Other;
    }
    let mut next = ip.next_header;
    let mut at = offset + IPV6_HEADER_LEN;
    let mut fragmented = false;
    for _ in 0..IPV6_MAX_EXTENSIONS {
        let size = match next {
            IPV6_HOP_BY_HOP | IPV6_ROUTING | IPV6_DEST_OPTS | IPV6_FRAGMENT | IPPROTO_AH => {
                let Some(ext) = packet.read::<Extension>(at) else {
                    return Ip::Other;
                };
                let size = match next {
                    IPV6_FRAGMENT => {
                        if ext.fragment_offset_flags.get() & IPV6_OFFSET_BITS != 0 {
                            return Ip::Other;
                        }
                        fragmented = true;
                        8
                    }
                    IPPROTO_AH => (ext.len_units as usize + 2) * 4,
                    _ => (ext.len_units as usize + 1) * 8,
                };
                next = ext.next_header;
                size
            }
            _ => break,
        };
        at += size;
    }
    if matches!(
        next,
        IPV6_HOP_BY_HOP | IPV6_ROUTING | IPV6_FRAGMENT | IPV6_DEST_OPTS | IPPROTO_AH
    ) {
        return Ip::Hidden(ip.source);
    }
    Ip::Payload(IpPayload {
        source: ip.source,
        protocol: next,
        offset: at,
        end: offset + IPV6_HEADER_LEN + ip.payload_len.get() as usize,
        fragmented,
    })
}
