//! The TUN device: a named layer-3 interface whose packets this process reads and writes.
//!
//! [`TunDevice::create`] opens `/dev/net/tun`, attaches it to a device by name (`IFF_TUN |
//! IFF_NO_PI`: one raw IP packet per read or write), sets its MTU, adds its addresses and brings
//! it up with `ip` (iproute2), the tool an operator would use to inspect it. Reads and writes are
//! non-blocking and driven by tokio's [`AsyncFd`]. The device lives as long as the descriptor:
//! dropping the [`TunDevice`] removes it.

mod sys;

use ipnet::IpNet;
use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::process::Command;
use tokio::io::unix::AsyncFd;

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

    /// Reads one IP packet into `buf`; returns its length.
    pub async fn recv(&self, buf: &mut [u8]) -> Result<usize, TunError> {
        loop {
            let mut guard = self.fd.readable().await.map_err(|e| self.io("read", e))?;
            match guard.try_io(|inner| inner.get_ref().read(buf)) {
                Ok(result) => return result.map_err(|e| self.io("read", e)),
                Err(_would_block) => continue,
            }
        }
    }

    /// Writes one IP packet.
    pub async fn send(&self, packet: &[u8]) -> Result<(), TunError> {
        loop {
            let mut guard = self.fd.writable().await.map_err(|e| self.io("write", e))?;
            match guard.try_io(|inner| inner.get_ref().write(packet)) {
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
