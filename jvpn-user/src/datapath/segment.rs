//! Cutting what one TUN read returned into the packets that go on the wire, one per DATA
//! message: a TCP superpacket (TSO, up to 64 KiB) into segments of `gso_size` payload bytes with
//! their own IP and TCP headers and checksums, as the kernel's `tcp_gso_segment` would; a plain
//! packet whose checksum the kernel left to finish ([`super::vnet::F_NEEDS_CSUM`]) is finished.
//! Cutting happens before sealing, so every DATA message still carries one whole IP packet the
//! receiver can check on its own (the wire format does not change).

use super::checksum::{add_words, checksum};
use super::vnet::{GsoType, VnetError, VnetHeader, F_NEEDS_CSUM};

const TCP_FIN: u8 = 0x01;
const TCP_PSH: u8 = 0x08;
const TCP_CWR: u8 = 0x80;
const PROTO_TCP: u8 = 6;
const IPV6_HEADER_LEN: usize = 40;
const TCP_MIN_HEADER: usize = 20;
/// Where the checksum lies in a TCP header.
const TCP_CHECKSUM_AT: usize = 16;

/// Packets laid end to end in one reused buffer: the output of [`split`].
#[derive(Debug, Default)]
pub struct Packets {
    bytes: Vec<u8>,
    ends: Vec<usize>,
}

impl Packets {
    /// Forgets the packets, keeping the allocations.
    pub fn clear(&mut self) {
        self.bytes.clear();
        self.ends.clear();
    }

    /// How many packets there are.
    pub fn len(&self) -> usize {
        self.ends.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    /// The packets, in order.
    pub fn iter(&self) -> impl Iterator<Item = &[u8]> + '_ {
        let starts = std::iter::once(0).chain(self.ends.iter().copied());
        starts
            .zip(self.ends.iter().copied())
            .map(|(start, end)| &self.bytes[start..end])
    }

    fn push_with(&mut self, build: impl FnOnce(&mut Vec<u8>)) -> &mut [u8] {
        let start = self.bytes.len();
        build(&mut self.bytes);
        self.ends.push(self.bytes.len());
        &mut self.bytes[start..]
    }

    fn undo_last(&mut self) {
        self.ends.pop();
        self.bytes.truncate(self.ends.last().copied().unwrap_or(0));
    }
}

/// Cuts `packet` (what followed `header` in one TUN read) into wire packets appended to `out`.
/// On error nothing is appended.
pub fn split(header: VnetHeader, packet: &[u8], out: &mut Packets) -> Result<(), VnetError> {
    match header.gso_type {
        GsoType::None => {
            let needs_checksum = header.flags & F_NEEDS_CSUM != 0;
            let start = usize::from(header.csum_start);
            let field = start + usize::from(header.csum_offset);
            if needs_checksum && field + 2 > packet.len() {
                return Err(VnetError::Truncated);
            }
            let copy = out.push_with(|bytes| bytes.extend_from_slice(packet));
            if needs_checksum {
                copy[field..field + 2].copy_from_slice(&[0, 0]);
                // The kernel seeded the field with the pseudo-header sum; it was read into the
                // copy before zeroing, so add it back from the original.
                let seed = u64::from(u16::from_be_bytes([packet[field], packet[field + 1]]));
                let sum = checksum(seed, &copy[start..]);
                copy[field..field + 2].copy_from_slice(&sum);
            }
            Ok(())
        }
        GsoType::TcpV4 | GsoType::TcpV6 => split_tcp(header, packet, out),
    }
}

/// The layout of a TCP superpacket, checked.
struct Superpacket {
    v6: bool,
    ip_len: usize,
    headers_len: usize,
    mss: usize,
}

fn superpacket(header: VnetHeader, packet: &[u8]) -> Result<Superpacket, VnetError> {
    let bad = VnetError::BadSuperpacket;
    let v6 = header.gso_type == GsoType::TcpV6;
    let ip_len = usize::from(header.csum_start);
    let first = *packet.first().ok_or(VnetError::Truncated)?;
    let ip_ok = if v6 {
        first >> 4 == 6 && ip_len == IPV6_HEADER_LEN && packet.get(6) == Some(&PROTO_TCP)
    } else {
        first >> 4 == 4
            && usize::from(first & 0x0f) * 4 == ip_len
            && packet.get(9) == Some(&PROTO_TCP)
    };
    if !ip_ok || usize::from(header.csum_offset) != TCP_CHECKSUM_AT {
        return Err(bad);
    }
    let offset_byte = *packet.get(ip_len + 12).ok_or(VnetError::Truncated)?;
    let tcp_len = usize::from(offset_byte >> 4) * 4;
    let headers_len = ip_len + tcp_len;
    let mss = usize::from(header.gso_size);
    if tcp_len < TCP_MIN_HEADER || headers_len > packet.len() || mss == 0 {
        return Err(bad);
    }
    Ok(Superpacket {
        v6,
        ip_len,
        headers_len,
        mss,
    })
}

fn split_tcp(header: VnetHeader, packet: &[u8], out: &mut Packets) -> Result<(), VnetError> {
    let layout = superpacket(header, packet)?;
    let Superpacket {
        v6,
        ip_len,
        headers_len,
        mss,
    } = layout;
    let headers = &packet[..headers_len];
    let payload = &packet[headers_len..];
    let at = |offset: usize| [headers[offset], headers[offset + 1]];
    let seq = u32::from_be_bytes([
        headers[ip_len + 4],
        headers[ip_len + 5],
        headers[ip_len + 6],
        headers[ip_len + 7],
    ]);
    let ipv4_id = u16::from_be_bytes(at(4));
    // The addresses are the same in every segment: sum them once.
    let addresses = if v6 {
        &headers[8..40]
    } else {
        &headers[12..20]
    };
    let address_sum = add_words(u64::from(PROTO_TCP), addresses);
    let count = payload.len().div_ceil(mss).max(1);
    let written_before = out.len();
    for index in 0..count {
        let chunk = payload
            .get(index * mss..((index + 1) * mss).min(payload.len()))
            .unwrap_or(&[]);
        let total = headers_len + chunk.len();
        let (Ok(total16), Ok(tcp_len16)) = (u16::try_from(total), u16::try_from(total - ip_len))
        else {
            while out.len() > written_before {
                out.undo_last();
            }
            return Err(VnetError::BadSuperpacket);
        };
        let segment = out.push_with(|bytes| {
            bytes.extend_from_slice(headers);
            bytes.extend_from_slice(chunk);
        });
        if v6 {
            let payload_len = total16 - IPV6_HEADER_LEN as u16;
            segment[4..6].copy_from_slice(&payload_len.to_be_bytes());
        } else {
            segment[2..4].copy_from_slice(&total16.to_be_bytes());
            let id = ipv4_id.wrapping_add(index as u16);
            segment[4..6].copy_from_slice(&id.to_be_bytes());
            segment[10..12].copy_from_slice(&[0, 0]);
            let sum = checksum(0, &segment[..ip_len]);
            segment[10..12].copy_from_slice(&sum);
        }
        let tcp = &mut segment[ip_len..];
        let segment_seq = seq.wrapping_add((index * mss) as u32);
        tcp[4..8].copy_from_slice(&segment_seq.to_be_bytes());
        if index + 1 < count {
            tcp[13] &= !(TCP_FIN | TCP_PSH);
        }
        if index > 0 {
            tcp[13] &= !TCP_CWR;
        }
        tcp[TCP_CHECKSUM_AT..TCP_CHECKSUM_AT + 2].copy_from_slice(&[0, 0]);
        let sum = checksum(address_sum + u64::from(tcp_len16), tcp);
        tcp[TCP_CHECKSUM_AT..TCP_CHECKSUM_AT + 2].copy_from_slice(&sum);
    }
    Ok(())
}

#[cfg(test)]
pub(crate) mod tests;
