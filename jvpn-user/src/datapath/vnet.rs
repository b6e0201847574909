//! The `virtio_net_hdr` the TUN device puts before every packet once it is opened with
//! `IFF_VNET_HDR` (include/uapi/linux/virtio_net.h): whether the packet is a TCP segmentation
//! offload "superpacket" to be cut at `gso_size`, and where its checksum is left to compute.
//! The kernel writes it in host byte order (a little-endian TUN on every machine jvpn runs on).

/// Length of the header before each packet (the kernel's `sizeof(struct virtio_net_hdr)`, the
/// TUN default `TUNSETVNETHDRSZ`).
pub const VNET_HDR_LEN: usize = 10;

/// `VIRTIO_NET_HDR_F_NEEDS_CSUM`: the transport checksum is only seeded with the pseudo-header;
/// the sum over `csum_start..` goes at `csum_start + csum_offset`.
pub const F_NEEDS_CSUM: u8 = 1;

/// `VIRTIO_NET_HDR_GSO_ECN`, or-ed into the segmentation type of a superpacket that set CWR.
const GSO_ECN: u8 = 0x80;

/// What segmentation the packet still needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GsoType {
    /// A packet as it goes on the wire.
    None,
    /// A TCP over IPv4 superpacket.
    TcpV4,
    /// A TCP over IPv6 superpacket.
    TcpV6,
}

/// One `virtio_net_hdr`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VnetHeader {
    /// `F_NEEDS_CSUM` or nothing.
    pub flags: u8,
    /// The segmentation the packet needs.
    pub gso_type: GsoType,
    /// Length of the IP and TCP headers (the kernel's figure; re-read from the packet).
    pub hdr_len: u16,
    /// Payload bytes per segment (the MSS).
    pub gso_size: u16,
    /// Where the checksummed part (the transport header) starts.
    pub csum_start: u16,
    /// Where in it the checksum field lies.
    pub csum_offset: u16,
}

/// Why a header or packet from the TUN device cannot be used; the packet is dropped.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum VnetError {
    /// Shorter than the header, or its offsets point outside the packet.
    #[error("TUN packet is truncated or its offload header points outside it")]
    Truncated,
    /// A segmentation type this device was not offered (UDP, ECN, SCTP).
    #[error("TUN packet asks for segmentation type {0:#x}, which jvpn does not offer")]
    UnsupportedGso(u8),
    /// The superpacket is not the TCP packet its header says it is.
    #[error("TUN superpacket is not a well-formed TCP packet")]
    BadSuperpacket,
}

impl VnetHeader {
    /// The header of a packet that needs nothing: what jvpn writes before each packet.
    pub const NONE: VnetHeader = VnetHeader {
        flags: 0,
        gso_type: GsoType::None,
        hdr_len: 0,
        gso_size: 0,
        csum_start: 0,
        csum_offset: 0,
    };

    /// Reads the header at the start of `bytes`.
    pub fn parse(bytes: &[u8]) -> Result<Self, VnetError> {
        let field = |at: usize| -> Result<u16, VnetError> {
            let pair = bytes.get(at..at + 2).ok_or(VnetError::Truncated)?;
            Ok(u16::from_ne_bytes([pair[0], pair[1]]))
        };
        let flags = *bytes.first().ok_or(VnetError::Truncated)?;
        // The ECN bit only says the first segment carries CWR, which segmenting keeps anyway.
        let gso_type = match *bytes.get(1).ok_or(VnetError::Truncated)? & !GSO_ECN {
            0 => GsoType::None,
            1 => GsoType::TcpV4,
            4 => GsoType::TcpV6,
            other => return Err(VnetError::UnsupportedGso(other)),
        };
        Ok(Self {
            flags,
            gso_type,
            hdr_len: field(2)?,
            gso_size: field(4)?,
            csum_start: field(6)?,
            csum_offset: field(8)?,
        })
    }

    /// The header as the kernel reads it.
    pub fn to_bytes(self) -> [u8; VNET_HDR_LEN] {
        let mut bytes = [0u8; VNET_HDR_LEN];
        bytes[0] = self.flags;
        bytes[1] = match self.gso_type {
            GsoType::None => 0,
            GsoType::TcpV4 => 1,
            GsoType::TcpV6 => 4,
        };
        for (at, value) in [
            (2, self.hdr_len),
            (4, self.gso_size),
            (6, self.csum_start),
            (8, self.csum_offset),
        ] {
            bytes[at..at + 2].copy_from_slice(&value.to_ne_bytes());
        }
        bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_round_trip_and_unknown_segmentation_is_refused() {
        let header = VnetHeader {
            flags: F_NEEDS_CSUM,
            gso_type: GsoType::TcpV6,
            hdr_len: 60,
            gso_size: 1336,
            csum_start: 40,
            csum_offset: 16,
        };
        assert_eq!(VnetHeader::parse(&header.to_bytes()), Ok(header));
        assert_eq!(
            VnetHeader::parse(&VnetHeader::NONE.to_bytes()),
            Ok(VnetHeader::NONE)
        );
        let mut udp = VnetHeader::NONE.to_bytes();
        udp[1] = 5;
        assert_eq!(VnetHeader::parse(&udp), Err(VnetError::UnsupportedGso(5)));
        let mut ecn = header.to_bytes();
        ecn[1] |= GSO_ECN;
        assert_eq!(VnetHeader::parse(&ecn), Ok(header));
        assert_eq!(
            VnetHeader::parse(&header.to_bytes()[..9]),
            Err(VnetError::Truncated)
        );
    }
}
