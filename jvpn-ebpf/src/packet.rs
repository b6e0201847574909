//! Reading a frame: the one bounds-checked accessor for packet bytes ([`Packet::read`]) and the
//! parse of Ethernet (with at most one 802.1Q tag), IPv4 or IPv6 and UDP, down to the datagram's
//! payload.
//!
//! The parse only locates; judging the datagram is the program's business. A packet that may
//! carry a UDP datagram the parse cannot see is reported as [`Transport::Hidden`] rather than as
//! foreign traffic, since the stack would deliver it uninspected: a first fragment too short for
//! its UDP header (the tiny-fragment attack of RFC 1858) and an IPv6 header chain longer than the
//! walk. Later fragments carry no transport header and pass; without their first fragment they
//! are never reassembled. Protocol numbers of Ethernet, IP and UDP live here; everything
//! jvpn-specific lives in `jvpn_common::abi`.

use aya_ebpf::programs::XdpContext;
use bytemuck::{Pod, Zeroable};
use jvpn_common::wire::Be16;
use jvpn_common::TransportBinding;

const ETH_HEADER_LEN: usize = 14;
const VLAN_TAG_LEN: usize = 4;
const ETH_P_IPV4: u16 = 0x0800;
const ETH_P_IPV6: u16 = 0x86dd;
const ETH_P_8021Q: u16 = 0x8100;
const IPV6_HEADER_LEN: usize = 40;
const UDP_HEADER_LEN: usize = 8;
const IPPROTO_UDP: u8 = 17;
const IPV6_HOP_BY_HOP: u8 = 0;
const IPV6_ROUTING: u8 = 43;
const IPV6_FRAGMENT: u8 = 44;
const IPV6_DEST_OPTS: u8 = 60;
/// Extension headers walked before the parse gives up and calls the transport hidden. RFC 8200
/// section 4.1 allows each of hop-by-hop, routing and fragment once and destination options twice.
const IPV6_MAX_EXTENSIONS: usize = 5;
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

/// The first bytes of every IPv6 extension header (the fragment header is 8 bytes with the
/// offset field in bytes 2..4).
#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct Ipv6Extension {
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
}

/// What a frame carries, as far as jvpn is concerned.
pub enum Transport {
    /// Not UDP over IP, or a later fragment: never jvpn's to judge.
    Other,
    /// A UDP datagram.
    Udp(Datagram),
    /// Possibly UDP, but its header cannot be read (see the module doc); the source address of
    /// the IP header, port 0.
    Hidden(TransportBinding),
}

/// Where the IP payload starts and what it is.
struct IpPayload {
    source: [u8; 16],
    protocol: u8,
    offset: usize,
    /// First fragment of a fragmented packet.
    fragmented: bool,
    /// A later fragment: its payload does not start with the transport header.
    later_fragment: bool,
    /// The IPv6 header chain is longer than the walk: the protocol is unknown.
    chain_too_long: bool,
}

/// Finds the UDP datagram of an IPv4 or IPv6 frame.
#[inline(always)]
pub fn udp_datagram(packet: &Packet) -> Transport {
    let Some(ip) = ip_payload(packet) else {
        return Transport::Other;
    };
    let source = TransportBinding::from_v6(ip.source, 0);
    if ip.later_fragment {
        return Transport::Other;
    }
    if ip.chain_too_long {
        return Transport::Hidden(source);
    }
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
    Transport::Udp(Datagram {
        source: TransportBinding {
            port: udp.source,
            ..source
        },
        destination_port: udp.destination,
        payload: ip.offset + UDP_HEADER_LEN,
        payload_len: (udp.len.get() as usize).saturating_sub(UDP_HEADER_LEN),
        fragmented: ip.fragmented,
    })
}

/// The IP payload of an IPv4 or IPv6 frame (with at most one 802.1Q tag), or `None`.
#[inline(always)]
fn ip_payload(packet: &Packet) -> Option<IpPayload> {
    let mut ether_type = packet.read::<Be16>(12)?.get();
    let mut offset = ETH_HEADER_LEN;
    if ether_type == ETH_P_8021Q {
        ether_type = packet.read::<Be16>(ETH_HEADER_LEN + 2)?.get();
        offset += VLAN_TAG_LEN;
    }
    match ether_type {
        ETH_P_IPV4 => ipv4_payload(packet, offset),
        ETH_P_IPV6 => ipv6_payload(packet, offset),
        _ => None,
    }
}

#[inline(always)]
fn ipv4_payload(packet: &Packet, offset: usize) -> Option<IpPayload> {
    let ip = packet.read::<Ipv4Header>(offset)?;
    // The mask bounds the header length for the verifier (at most 60 bytes).
    let header_len = ((ip.version_ihl & 0x0f) as usize) * 4;
    let fragment = ip.flags_offset.get();
    Some(IpPayload {
        source: TransportBinding::from_v4(ip.source, 0).addr,
        protocol: ip.protocol,
        offset: offset + header_len,
        fragmented: fragment & IPV4_FRAGMENT_BITS != 0,
        later_fragment: fragment & IPV4_OFFSET_BITS != 0,
        chain_too_long: false,
    })
}

#[inline(always)]
fn ipv6_payload(packet: &Packet, offset: usize) -> Option<IpPayload> {
    let ip = packet.read::<Ipv6Header>(offset)?;
    let mut next = ip.next_header;
    let mut at = offset + IPV6_HEADER_LEN;
    let mut fragmented = false;
    let mut later_fragment = false;
    for _ in 0..IPV6_MAX_EXTENSIONS {
        match next {
            IPV6_HOP_BY_HOP | IPV6_ROUTING | IPV6_DEST_OPTS => {
                let ext = packet.read::<Ipv6Extension>(at)?;
                next = ext.next_header;
                at += (ext.len_units as usize + 1) * 8;
            }
            IPV6_FRAGMENT => {
                let ext = packet.read::<Ipv6Extension>(at)?;
                fragmented = true;
                later_fragment |= ext.fragment_offset_flags.get() & IPV6_OFFSET_BITS != 0;
                next = ext.next_header;
                at += 8;
            }
            _ => break,
        }
    }
    Some(IpPayload {
        source: ip.source,
        protocol: next,
        offset: at,
        fragmented,
        later_fragment,
        chain_too_long: matches!(
            next,
            IPV6_HOP_BY_HOP | IPV6_ROUTING | IPV6_FRAGMENT | IPV6_DEST_OPTS
        ),
    })
}
