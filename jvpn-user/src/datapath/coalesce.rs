//! The receive side's mirror of [`super::segment`]: opened packets bound for the TUN device,
//! consecutive TCP segments of one flow merged into one superpacket written with a
//! `virtio_net_hdr` that asks the kernel to treat it as one GSO packet (as its own GRO would have
//! built it), so the inner TCP stack takes one packet where it took dozens. The rules are Linux's
//! `tcp_gro_receive` as wireguard-go's `tun/offload_linux.go` states them:
//!
//! - only IPv4 without options or fragmentation, and IPv6 whose next header is TCP;
//! - only ACK or ACK|PSH segments with a payload; a PSH segment ends its superpacket;
//! - the same addresses, ports and acknowledgement number, the same TCP options byte for byte,
//!   the same TOS/traffic class, TTL/hop limit and IPv4 DF bit (and IPv6 flow label);
//! - the sequence number follows on exactly; every segment but the last is `gso_size` long, the
//!   last no longer; at most 64 segments and 64 KiB.
//!
//! Each packet's TCP checksum is verified before it joins: the superpacket's checksum is left to
//! the kernel ([`super::vnet::F_NEEDS_CSUM`]), which would otherwise make a corrupt segment whole.
//! A packet that fails any rule is written on its own, as it came. The packets given here have
//! already been authenticated, replay-checked and cryptokey-routed one by one: merging changes
//! how they reach the kernel, never which.

use super::checksum::{add_words, checksum, fold};
use super::vnet::{GsoType, VnetHeader, F_NEEDS_CSUM, VNET_HDR_LEN};

const PROTO_TCP: u8 = 6;
const TCP_PSH: u8 = 0x08;
const TCP_ACK: u8 = 0x10;
const IPV4_HEADER_LEN: usize = 20;
const IPV6_HEADER_LEN: usize = 40;
/// Where the checksum lies in a TCP header.
const TCP_CHECKSUM_AT: usize = 16;
/// Most segments in one superpacket (the kernel's GRO limit).
const MAX_SEGMENTS: usize = 64;
/// Largest IP packet a length field can state.
const MAX_PACKET: usize = u16::MAX as usize;

/// What identifies a TCP flow for merging: addresses, ports and acknowledgement number (varying
/// acks are separate flows, as in wireguard-go).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Flow {
    addresses: [u8; 32],
    ports: [u8; 4],
    ack: [u8; 4],
}

/// A TCP segment that may merge, read from its headers.
#[derive(Clone, Copy, Debug)]
struct Segment {
    v6: bool,
    ip_len: usize,
    tcp_len: usize,
    flow: Flow,
    seq: u32,
    psh: bool,
    payload: usize,
}

/// Reads `packet` as a segment that may merge; `None` writes it on its own.
fn segment(packet: &[u8]) -> Option<Segment> {
    let v6 = match packet.first()? >> 4 {
        4 => {
            let whole = usize::from(u16::from_be_bytes([*packet.get(2)?, *packet.get(3)?]));
            // No options, TCP, the length it states, not a fragment (MF clear, offset zero).
            let plain = packet[0] & 0x0f == 5 && packet.get(9) == Some(&PROTO_TCP);
            if !plain || whole != packet.len() || packet[6] & 0x3f != 0 || packet[7] != 0 {
                return None;
            }
            false
        }
        6 => {
            let payload = usize::from(u16::from_be_bytes([*packet.get(4)?, *packet.get(5)?]));
            if packet.get(6) != Some(&PROTO_TCP) || payload + IPV6_HEADER_LEN != packet.len() {
                return None;
            }
            true
        }
        _ => return None,
    };
    let ip_len = if v6 { IPV6_HEADER_LEN } else { IPV4_HEADER_LEN };
    let tcp_len = usize::from(packet.get(ip_len + 12)? >> 4) * 4;
    if tcp_len < 20 || packet.len() < ip_len + tcp_len {
        return None;
    }
    let tcp = &packet[ip_len..];
    let psh = match tcp[13] {
        TCP_ACK => false,
        flags if flags == TCP_ACK | TCP_PSH => true,
        _ => return None,
    };
    let payload = packet.len() - ip_len - tcp_len;
    if payload == 0 {
        return None;
    }
    let mut addresses = [0u8; 32];
    let (at, len) = if v6 { (8, 32) } else { (12, 8) };
    addresses[..len].copy_from_slice(&packet[at..at + len]);
    Some(Segment {
        v6,
        ip_len,
        tcp_len,
        flow: Flow {
            addresses,
            ports: [tcp[0], tcp[1], tcp[2], tcp[3]],
            ack: [tcp[8], tcp[9], tcp[10], tcp[11]],
        },
        seq: u32::from_be_bytes([tcp[4], tcp[5], tcp[6], tcp[7]]),
        psh,
        payload,
    })
}

/// Whether the IP headers agree where merging needs them to (wireguard-go's
/// `ipHeadersCanCoalesce`, and the IPv6 flow label too).
fn ip_headers_agree(v6: bool, a: &[u8], b: &[u8]) -> bool {
    if v6 {
        a[..4] == b[..4] && a[7] == b[7]
    } else {
        a[1] == b[1] && a[6] >> 5 == b[6] >> 5 && a[8] == b[8]
    }
}

/// Whether the TCP checksum of `packet` (IP header `ip_len` long) verifies.
fn tcp_checksum_valid(v6: bool, ip_len: usize, packet: &[u8]) -> bool {
    let addresses = if v6 { &packet[8..40] } else { &packet[12..20] };
    let tcp = &packet[ip_len..];
    let pseudo = add_words(u64::from(PROTO_TCP) + tcp.len() as u64, addresses);
    fold(add_words(pseudo, tcp)) == 0xffff
}

/// A superpacket still open to the next segment of its flow.
#[derive(Clone, Copy, Debug)]
struct Open {
    head: Segment,
    /// Payload bytes per segment: the first segment's.
    gso_size: usize,
    /// The sequence number the next segment must carry.
    next_seq: u32,
    segments: usize,
    /// Whether the head's checksum was verified (done at the first merge only).
    head_checked: bool,
}

/// One write to the TUN device: `virtio_net_hdr` room, then the packet or superpacket.
#[derive(Debug, Default)]
struct Write {
    bytes: Vec<u8>,
    open: Option<Open>,
    /// The header to write once the batch is finished.
    header: Option<VnetHeader>,
}

impl Write {
    fn packet(&self) -> &[u8] {
        &self.bytes[VNET_HDR_LEN..]
    }
}

/// Packets bound for the TUN device, merged where the rules allow; reused from batch to batch
/// (the buffers are kept, so a warm batch allocates nothing).
#[derive(Debug, Default)]
pub struct TunWrites {
    writes: Vec<Write>,
    used: usize,
}

impl TunWrites {
    /// How many writes the batch holds (each a packet or a superpacket).
    pub fn len(&self) -> usize {
        self.used
    }

    /// Whether there is nothing to write.
    pub fn is_empty(&self) -> bool {
        self.used == 0
    }

    /// Forgets the batch, keeping the buffers.
    pub fn clear(&mut self) {
        self.used = 0;
    }

    /// Adds one opened IP packet: merged into an open superpacket of its flow if the rules allow,
    /// otherwise a write of its own.
    pub fn push(&mut self, packet: &[u8]) {
        let Some(segment) = segment(packet) else {
            self.start(packet, None);
            return;
        };
        let found = self.writes[..self.used]
            .iter()
            .rposition(|w| w.open.is_some_and(|o| o.head.flow == segment.flow));
        if let Some(index) = found {
            match self.try_append(index, &segment, packet) {
                Appended::Yes => return,
                Appended::BadPacket => {
                    self.start(packet, None);
                    return;
                }
                Appended::No => {}
            }
        }
        let open = Open {
            head: segment,
            gso_size: segment.payload,
            next_seq: segment.seq.wrapping_add(segment.payload as u32),
            segments: 1,
            head_checked: false,
        };
        // A PSH segment ends its superpacket: nothing may follow it.
        self.start(packet, (!segment.psh).then_some(open));
    }

    /// Writes `packet` as a new write of the batch, reusing a buffer.
    fn start(&mut self, packet: &[u8], open: Option<Open>) {
        if self.used == self.writes.len() {
            self.writes.push(Write::default());
        }
        let write = &mut self.writes[self.used];
        self.used += 1;
        write.bytes.clear();
        write.bytes.extend_from_slice(&[0; VNET_HDR_LEN]);
        write.bytes.extend_from_slice(packet);
        write.open = open;
        write.header = None;
    }

    /// Appends `segment` to the open superpacket at `index` if the rules allow.
    fn try_append(&mut self, index: usize, segment: &Segment, packet: &[u8]) -> Appended {
        let write = &mut self.writes[index];
        let Some(mut open) = write.open else {
            return Appended::No;
        };
        let head = open.head;
        let headers = head.ip_len + head.tcp_len;
        let current = write.packet();
        let fits = segment.v6 == head.v6
            && segment.tcp_len == head.tcp_len
            && current[head.ip_len + 20..headers] == packet[head.ip_len + 20..headers]
            && ip_headers_agree(head.v6, current, packet)
            && segment.seq == open.next_seq
            && segment.payload <= open.gso_size
            && open.segments < MAX_SEGMENTS
            && current.len() + segment.payload <= MAX_PACKET;
        if !fits {
            return Appended::No;
        }
        if !open.head_checked {
            if !tcp_checksum_valid(head.v6, head.ip_len, current) {
                // The head goes on its own (the kernel drops it); this packet opens anew.
                write.open = None;
                return Appended::No;
            }
            open.head_checked = true;
        }
        if !tcp_checksum_valid(segment.v6, segment.ip_len, packet) {
            write.open = Some(open);
            return Appended::BadPacket;
        }
        write.bytes.extend_from_slice(&packet[headers..]);
        if segment.psh {
            let at = VNET_HDR_LEN + head.ip_len + 13;
            write.bytes[at] |= TCP_PSH;
        }
        open.segments += 1;
        open.next_seq = open.next_seq.wrapping_add(segment.payload as u32);
        // A short segment or a PSH is the last one.
        let last = segment.payload < open.gso_size || segment.psh;
        write.open = (!last).then_some(open);
        write.header = Some(superpacket_header(&open));
        Appended::Yes
    }

    /// Finishes every write (lengths, IPv4 header checksum, the TCP pseudo-header seed and the
    /// `virtio_net_hdr` of each superpacket) and returns them in order: each is what one TUN
    /// write takes, header and packet.
    pub fn finish(&mut self) -> impl Iterator<Item = &[u8]> + '_ {
        for write in &mut self.writes[..self.used] {
            write.open = None;
            match write.header {
                Some(header) => finish_superpacket(&mut write.bytes, header),
                None => write.bytes[..VNET_HDR_LEN].copy_from_slice(&VnetHeader::NONE.to_bytes()),
            }
        }
        self.writes[..self.used].iter().map(|w| w.bytes.as_slice())
    }
}

/// The outcome of [`TunWrites::try_append`].
enum Appended {
    /// Merged.
    Yes,
    /// The superpacket cannot take it; it may open one of its own.
    No,
    /// Its checksum does not verify: it is written on its own.
    BadPacket,
}

/// The `virtio_net_hdr` of a superpacket whose segments follow `open`'s head.
fn superpacket_header(open: &Open) -> VnetHeader {
    let head = open.head;
    VnetHeader {
        flags: F_NEEDS_CSUM,
        gso_type: if head.v6 {
            GsoType::TcpV6
        } else {
            GsoType::TcpV4
        },
        hdr_len: (head.ip_len + head.tcp_len) as u16,
        gso_size: open.gso_size as u16,
        csum_start: head.ip_len as u16,
        csum_offset: TCP_CHECKSUM_AT as u16,
    }
}

/// Writes `header` and fixes the superpacket behind it: its IP length, its IPv4 header checksum,
/// and its TCP checksum field seeded with the pseudo-header sum, as the kernel's own GSO packets
/// carry it (the kernel completes it per segment).
fn finish_superpacket(bytes: &mut [u8], header: VnetHeader) {
    bytes[..VNET_HDR_LEN].copy_from_slice(&header.to_bytes());
    let packet = &mut bytes[VNET_HDR_LEN..];
    let ip_len = usize::from(header.csum_start);
    let total = packet.len() as u16;
    let v6 = header.gso_type == GsoType::TcpV6;
    if v6 {
        packet[4..6].copy_from_slice(&(total - IPV6_HEADER_LEN as u16).to_be_bytes());
    } else {
        packet[2..4].copy_from_slice(&total.to_be_bytes());
        packet[10..12].copy_from_slice(&[0, 0]);
        let sum = checksum(0, &packet[..ip_len]);
        packet[10..12].copy_from_slice(&sum);
    }
    let addresses = if v6 { &packet[8..40] } else { &packet[12..20] };
    let tcp_len = packet.len() - ip_len;
    let seed = fold(add_words(u64::from(PROTO_TCP) + tcp_len as u64, addresses));
    let at = ip_len + TCP_CHECKSUM_AT;
    packet[at..at + 2].copy_from_slice(&seed.to_be_bytes());
}

#[cfg(test)]
mod tests;
