//! The TUN device: a named layer-3 interface whose packets this process reads and writes.
//!
//! [`TunDevice::create`] opens `/dev/net/tun`, attaches it to a device by name (`IFF_TUN |
//! IFF_NO_PI | IFF_VNET_HDR`: a `virtio_net_hdr` then an IP packet per read or write), offers it
//! checksum and TCP segmentation offload, sets its MTU, adds its addresses and brings it up with
//! `ip` (iproute2), the tool an operator would use to inspect it. With the offload one read may
//! carry a TCP superpacket of up to 64 KiB; [`TunDevice::recv_packets`] cuts it into the packets
//! that go on the wire ([`crate::datapath::segment`]). Reads and writes are non-blocking and
//! driven by tokio's [`AsyncFd`]. The device lives as long as the descriptor: dropping the
//! [`TunDevice`] removes it.

mod sys;

use crate::datapath::coalesce::TunWrites;
use crate::datapath::segment::{split, Packets};
use crate::datapath::vnet::{VnetHeader, VNET_HDR_LEN};
use ipnet::IpNet;
use std::fs::{File, OpenOptions};
use std::io::{IoSlice, Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::process::Command;
use tokio::io::unix::AsyncFd;
use tokio::io::Interest;

/// Why a TUN device could not be created, configured or used.
#[derive(Debug, thiserror::Error)]
pub enum TunError {
    /// The name is not an interface name ([`crate::iface`]).
    #[error("bad TUN device name: {0}")]
    BadName(#[source] crate::iface::InterfaceNameError),
    /// `/dev/net/tun` could not be opened or attached.
    #[error("cannot create the TUN device {name}: {source}; run as root with the tun module loaded (`modprobe tun`)")]
    Create {
        /// The device name.
        name: String,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// An `ip` command failed.
    #[error("cannot configure the TUN device {name} (`ip {args}`): {detail}; check `ip link show {name}`")]
    Configure {
        /// The device name.
        name: String,
        /// The `ip` arguments.
        args: String,
        /// What `ip` said, or why it could not run.
        detail: String,
    },
    /// A read or write failed.
    #[error("TUN device {name} {op} failed: {source}")]
    Io {
        /// The device name.
        name: String,
        /// "read" or "write".
        op: &'static str,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
}

/// An open, configured TUN device.
pub struct TunDevice {
    name: String,
    fd: AsyncFd<File>,
}

impl TunDevice {
    /// Creates (or attaches to) the TUN device `name`, sets `mtu`, adds `addresses` and brings it
    /// up. Must be called within a tokio runtime.
    pub fn create(name: &str, mtu: u16, addresses: &[IpNet]) -> Result<Self, TunError> {
        crate::iface::check_interface_name(name).map_err(TunError::BadName)?;
        let create = |source| TunError::Create {
            name: name.to_owned(),
            source,
        };
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
            .open("/dev/net/tun")
            .map_err(create)?;
        let name = sys::set_tun_iff(&file, name).map_err(create)?;
        // Without the offload every read is one packet (its header says so): slower, not wrong.
        if let Err(e) = sys::set_offload(&file) {
            tracing::warn!(tun = %name, error = %e, "the TUN device refused segmentation offload; reading one packet at a time");
        }
        let mtu = mtu.to_string();
        ip(&name, &["link", "set", "dev", &name, "mtu", &mtu])?;
        for address in addresses {
            let address = address.to_string();
            ip(&name, &["addr", "replace", &address, "dev", &name])?;
        }
        // No IPv6 link-local address: the kernel would otherwise give the device an fe80::
        // address and send router and neighbour solicitations from it into the tunnel, where
        // cryptokey routing refuses them as a foreign source. A kernel without IPv6 refuses the
        // setting, which is then moot.
        if let Err(e) = ip(&name, &["link", "set", "dev", &name, "addrgenmode", "none"]) {
            tracing::debug!(error = %e, "cannot turn off IPv6 link-local addresses on the tunnel");
        }
        ip(&name, &["link", "set", "dev", &name, "up"])?;
        let fd = sys::register(file).map_err(create)?;
        Ok(Self { name, fd })
    }

    /// The device's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Reads what the kernel routed into the device, one packet or one TCP superpacket, into
    /// `batch`, cut into the IP packets that go on the wire; returns them. A read the offload
    /// header makes no sense of is dropped (logged) and the next one is awaited.
    pub async fn recv_packets<'a>(
        &self,
        batch: &'a mut ReadBatch,
    ) -> Result<&'a Packets, TunError> {
        loop {
            let mut guard = self.fd.readable().await.map_err(|e| self.io("read", e))?;
            let len = match guard.try_io(|inner| inner.get_ref().read(&mut batch.raw)) {
                Ok(result) => result.map_err(|e| self.io("read", e))?,
                Err(_would_block) => continue,
            };
            if self.cut(batch, len) {
                return Ok(&batch.packets);
            }
        }
    }

    /// [`Self::recv_packets`] without waiting: `None` if nothing is queued. Lets a reader send
    /// what several reads brought together (the ACKs of a flow, as one GSO run).
    pub fn try_recv_packets<'a>(
        &self,
        batch: &'a mut ReadBatch,
    ) -> Result<Option<&'a Packets>, TunError> {
        loop {
            let Some(len) = self.try_read(&mut batch.raw)? else {
                return Ok(None);
            };
            if self.cut(batch, len) {
                return Ok(Some(&batch.packets));
            }
        }
    }

    /// Appends the packets of one more read, if one is queued, to those `batch` holds (never
    /// waiting); true if a read was taken. Lets a reader seal what several reads brought under
    /// one lock and send it together.
    pub fn try_recv_more(&self, batch: &mut ReadBatch) -> Result<bool, TunError> {
        loop {
            let Some(len) = self.try_read(&mut batch.raw)? else {
                return Ok(false);
            };
            if self.cut_onto(batch, len) {
                return Ok(true);
            }
        }
    }

    /// One read into `raw` without waiting: its length, or `None` if nothing is queued.
    fn try_read(&self, raw: &mut [u8]) -> Result<Option<usize>, TunError> {
        let read = self.fd.try_io(Interest::READABLE, |inner| {
            let mut file: &File = inner;
            file.read(raw)
        });
        match read {
            Ok(len) => Ok(Some(len)),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => Ok(None),
            Err(e) => Err(self.io("read", e)),
        }
    }

    /// Cuts the read of `len` bytes in `batch` into wire-sized packets, replacing those it held;
    /// false (logged) if the offload header makes no sense of it.
    fn cut(&self, batch: &mut ReadBatch, len: usize) -> bool {
        batch.packets.clear();
        self.cut_onto(batch, len)
    }

    /// [`Self::cut`], appending to the packets `batch` holds (a read that fails appends none).
    fn cut_onto(&self, batch: &mut ReadBatch, len: usize) -> bool {
        let raw = &batch.raw[..len];
        let split = VnetHeader::parse(raw)
            .and_then(|header| split(header, &raw[VNET_HDR_LEN.min(len)..], &mut batch.packets));
        match split {
            Ok(()) => true,
            Err(e) => {
                tracing::debug!(tun = %self.name, error = %e, "a TUN read was dropped");
                false
            }
        }
    }

    /// Writes one IP packet (behind a header that asks nothing of the kernel).
    pub async fn send(&self, packet: &[u8]) -> Result<(), TunError> {
        let header = VnetHeader::NONE.to_bytes();
        let parts = [IoSlice::new(&header), IoSlice::new(packet)];
        loop {
            let mut guard = self.fd.writable().await.map_err(|e| self.io("write", e))?;
            // One writev is one packet to the TUN device.
            match guard.try_io(|inner| inner.get_ref().write_vectored(&parts)) {
                Ok(result) => return result.map(|_| ()).map_err(|e| self.io("write", e)),
                Err(_would_block) => continue,
            }
        }
    }

    /// Writes a batch of opened packets, consecutive TCP segments of one flow merged into one
    /// superpacket ([`crate::datapath::coalesce`]), and empties it. Every write is tried; the
    /// first failure is returned (TCP resends what was lost).
    pub async fn send_batch(&self, writes: &mut TunWrites) -> Result<(), TunError> {
        let mut result = Ok(());
        for frame in writes.finish() {
            if let Err(e) = self.write_frame(frame).await {
                result = result.and(Err(e));
            }
        }
        writes.clear();
        result
    }

    /// Writes one `virtio_net_hdr` and the packet behind it, in one write.
    async fn write_frame(&self, frame: &[u8]) -> Result<(), TunError> {
        loop {
            let mut guard = self.fd.writable().await.map_err(|e| self.io("write", e))?;
            match guard.try_io(|inner| inner.get_ref().write(frame)) {
                Ok(result) => return result.map(|_| ()).map_err(|e| self.io("write", e)),
                Err(_would_block) => continue,
            }
        }
    }

    fn io(&self, op: &'static str, source: std::io::Error) -> TunError {
        TunError::Io {
            name: self.name.clone(),
            op,
            source,
        }
    }
}

/// The buffers of [`TunDevice::recv_packets`], reused from read to read.
#[derive(Debug)]
pub struct ReadBatch {
    raw: Vec<u8>,
    packets: Packets,
}

impl ReadBatch {
    /// The packets the last reads left, in order.
    pub fn packets(&self) -> &Packets {
        &self.packets
    }
}

impl Default for ReadBatch {
    fn default() -> Self {
        Self {
            // The largest superpacket (64 KiB) and its offload header.
            raw: vec![0; usize::from(u16::MAX) + VNET_HDR_LEN],
            packets: Packets::default(),
        }
    }
}

/// Runs `ip ARGS` for device `name`.
fn ip(name: &str, args: &[&str]) -> Result<(), TunError> {
    let failed = |detail: String| TunError::Configure {
        name: name.to_owned(),
        args: args.join(" "),
        detail,
    };
    let output = Command::new("ip")
        .args(args)
        .output()
        .map_err(|e| failed(format!("cannot run `ip` ({e}); install iproute2")))?;
    if output.status.success() {
        Ok(())
    } else {
        Err(failed(
            String::from_utf8_lossy(&output.stderr).trim().to_owned(),
        ))
    }
}

/// The source and destination addresses of an IPv4 or IPv6 packet, if it is one.
pub fn packet_addresses(packet: &[u8]) -> Option<(std::net::IpAddr, std::net::IpAddr)> {
    match packet.first()? >> 4 {
        4 if packet.len() >= 20 => {
            let src: [u8; 4] = packet[12..16].try_into().ok()?;
            let dst: [u8; 4] = packet[16..20].try_into().ok()?;
            Some((src.into(), dst.into()))
        }
        6 if packet.len() >= 40 => {
            let src: [u8; 16] = packet[8..24].try_into().ok()?;
            let dst: [u8; 16] = packet[24..40].try_into().ok()?;
            Some((src.into(), dst.into()))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::IpAddr;

    #[test]
    fn packet_addresses_reads_ipv4_and_ipv6_headers_and_refuses_the_rest() {
        let mut v4 = [0u8; 20];
        v4[0] = 0x45;
        v4[12..16].copy_from_slice(&[10, 77, 0, 2]);
        v4[16..20].copy_from_slice(&[10, 77, 0, 1]);
        let mut v6 = [0u8; 40];
        v6[0] = 0x60;
        v6[23] = 2;
        v6[39] = 1;
        let addr = |s: &str| s.parse::<IpAddr>().expect("addr");
        type Case<'a> = (&'a [u8], Option<(IpAddr, IpAddr)>);
        let cases: [Case; 5] = [
            (&v4, Some((addr("10.77.0.2"), addr("10.77.0.1")))),
            (&v6, Some((addr("::2"), addr("::1")))),
            (&v4[..19], None),
            (&v6[..39], None),
            (&[], None),
        ];
        for (packet, expected) in cases {
            assert_eq!(packet_addresses(packet), expected, "{packet:?}");
        }
    }

    #[test]
    fn a_bad_name_is_refused_before_any_system_call() {
        for name in ["", "a-name-much-too-long", "a/b"] {
            assert!(matches!(
                TunDevice::create(name, 1400, &[]),
                Err(TunError::BadName(_))
            ));
        }
    }
}
