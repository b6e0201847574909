//! The one receive offload a driver-mode attach needs on a veth: GRO on the interface, read and
//! set through the ethtool ioctl (`SIOCETHTOOL`, as `ethtool -K IF gro on` does); and whether an
//! interface is a veth at all (the gateway refuses generic XDP on one, docs/datapath.md).
//!
//! Why (drivers/net/veth.c): with a native XDP program attached, a veth receives every frame in
//! its NAPI poll (`veth_xdp_rcv`), runs the program on it (`veth_xdp_rcv_skb`) and only then hands
//! what passed to `napi_gro_receive`, which merges nothing unless the device has `NETIF_F_GRO`.
//! Older kernels turned GRO on by themselves when a program was attached; since "net: veth: do
//! not manipulate GRO when using XDP" (in the 6.18 kernel here) they leave it as it was: off, a
//! veth's default. Attaching also strips the peer of its segmentation offloads (`veth_xdp_set` clears
//! `NETIF_F_GSO_SOFTWARE` from its hw_features), so a client's UDP GSO runs are cut into single
//! datagrams before they cross: without GRO they reach the gateway's socket one per `recvmsg`, with
//! it they arrive as runs again (the socket has `UDP_GRO` on). Every frame has been judged by the
//! program before GRO sees it, so merging after it changes nothing of what XDP checks.
//!
//! This is the only module of the dataplane besides `sys` with `unsafe` code.
#![expect(
    unsafe_code,
    reason = "the SIOCETHTOOL ioctl, which std and nix do not wrap"
)]

use std::io;
use std::os::fd::{AsRawFd, OwnedFd};

use nix::sys::socket::{socket, AddressFamily, SockFlag, SockType};

use super::{DataplaneError, XdpAttachMode};

/// `ETHTOOL_GDRVINFO` from include/uapi/linux/ethtool.h: the driver's name and version.
const ETHTOOL_GDRVINFO: u32 = 0x0000_0003;
/// `ETHTOOL_GGRO`: whether the device runs GRO.
const ETHTOOL_GGRO: u32 = 0x0000_002b;
/// `ETHTOOL_SGRO`: turns GRO on or off.
const ETHTOOL_SGRO: u32 = 0x0000_002c;
/// The driver name veth devices report.
const VETH_DRIVER: &[u8] = b"veth";

/// `struct ethtool_value`: a command and one value.
#[repr(C)]
struct EthtoolValue {
    cmd: u32,
    data: u32,
}

/// `struct ethtool_drvinfo` (196 bytes); only `driver` is read.
#[repr(C)]
struct EthtoolDrvinfo {
    cmd: u32,
    driver: [u8; 32],
    version: [u8; 32],
    fw_version: [u8; 32],
    bus_info: [u8; 32],
    erom_version: [u8; 32],
    reserved2: [u8; 12],
    n_priv_flags: u32,
    n_stats: u32,
    testinfo_len: u32,
    eedump_len: u32,
    regdump_len: u32,
}

const _: () = assert!(std::mem::size_of::<EthtoolDrvinfo>() == 196);

/// What [`enable_gro_on_veth`] found and did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VethGro {
    /// The interface is not a veth: its driver's defaults are left alone.
    NotVeth,
    /// A veth whose GRO was already on.
    AlreadyOn,
    /// A veth whose GRO this call turned on.
    TurnedOn,
}

/// Refuses generic XDP on a veth for a gateway: a veth runs XDP natively, and in generic mode a
/// peer's UDP GSO runs reach the program whole, so the one-datagram rule would drop a local
/// client's bulk traffic (docs/datapath.md, "Merged runs"). An interface whose driver cannot be
/// asked is let through: the rule itself still holds there.
pub fn refuse_generic_on_veth(iface: &str, mode: XdpAttachMode) -> Result<(), DataplaneError> {
    match mode {
        XdpAttachMode::Skb if is_veth(iface).unwrap_or(false) => {
            Err(DataplaneError::GenericXdpOnVeth {
                iface: iface.to_owned(),
            })
        }
        _ => Ok(()),
    }
}

/// Whether `iface` is a veth (its driver, as `ethtool -i` reports it).
pub fn is_veth(iface: &str) -> io::Result<bool> {
    is_veth_on(&control_socket()?, iface)
}

/// Turns GRO on at `iface` if it is a veth and GRO is off (needs `CAP_NET_ADMIN` in the
/// interface's network namespace, which the gateway holds while it attaches).
pub fn enable_gro_on_veth(iface: &str) -> io::Result<VethGro> {
    let control = control_socket()?;
    if !is_veth_on(&control, iface)? {
        return Ok(VethGro::NotVeth);
    }
    let mut gro = EthtoolValue {
        cmd: ETHTOOL_GGRO,
        data: 0,
    };
    ethtool(&control, iface, std::ptr::from_mut(&mut gro).cast())?;
    if gro.data != 0 {
        return Ok(VethGro::AlreadyOn);
    }
    let mut set = EthtoolValue {
        cmd: ETHTOOL_SGRO,
        data: 1,
    };
    ethtool(&control, iface, std::ptr::from_mut(&mut set).cast())?;
    Ok(VethGro::TurnedOn)
}

/// A socket to carry ethtool ioctls.
fn control_socket() -> io::Result<OwnedFd> {
    Ok(socket(
        AddressFamily::Inet,
        SockType::Datagram,
        SockFlag::SOCK_CLOEXEC,
        None,
    )?)
}

fn is_veth_on(control: &OwnedFd, iface: &str) -> io::Result<bool> {
    let mut info = EthtoolDrvinfo {
        cmd: ETHTOOL_GDRVINFO,
        driver: [0; 32],
        version: [0; 32],
        fw_version: [0; 32],
        bus_info: [0; 32],
        erom_version: [0; 32],
        reserved2: [0; 12],
        n_priv_flags: 0,
        n_stats: 0,
        testinfo_len: 0,
        eedump_len: 0,
        regdump_len: 0,
    };
    ethtool(control, iface, std::ptr::from_mut(&mut info).cast())?;
    let driver_len = info.driver.iter().position(|&b| b == 0).unwrap_or(32);
    Ok(&info.driver[..driver_len] == VETH_DRIVER)
}

/// One `SIOCETHTOOL` request on `iface`; `request` points at an ethtool command struct whose
/// first field is its `cmd`.
fn ethtool(control: &OwnedFd, iface: &str, request: *mut libc::c_void) -> io::Result<()> {
    // SAFETY: `ifreq` is a plain C struct (a name array and a union of integers and pointers);
    // all-zero is a valid value for every field.
    let mut ifreq: libc::ifreq = unsafe { std::mem::zeroed() };
    if iface.len() >= ifreq.ifr_name.len() {
        return Err(io::Error::from(io::ErrorKind::InvalidInput));
    }
    for (slot, byte) in ifreq.ifr_name.iter_mut().zip(iface.bytes()) {
        *slot = byte as libc::c_char;
    }
    ifreq.ifr_ifru.ifru_data = request.cast();
    // SAFETY: the descriptor is open for the call (borrowed from `control`); SIOCETHTOOL reads
    // the `ifreq`, which outlives the call, and reads and writes the command struct its data
    // pointer names: every caller passes a live, exclusively borrowed struct of the size the
    // kernel expects for the command in its first field.
    let rc = unsafe { libc::ioctl(control.as_raw_fd(), libc::SIOCETHTOOL as _, &mut ifreq) };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}
