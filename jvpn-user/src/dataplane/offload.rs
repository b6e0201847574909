//! The one receive offload a driver-mode attach needs on a veth: GRO on the interface, read and
//! set through the ethtool ioctl (`SIOCETHTOOL`, as `ethtool -K IF gro on` does); and whether an
//! interface is a veth at all (the gateway refuses generic XDP on one, docs/datapath.md); and
//! fraglist GRO off for generic mode, where it would merge the gateway's datagrams before XDP.
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
//! Besides `sys` and `lines`, the only module of the dataplane with `unsafe` code.
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
/// `ETHTOOL_GSTRINGS`: the names of a string set.
const ETHTOOL_GSTRINGS: u32 = 0x0000_001b;
/// `ETHTOOL_GSSET_INFO`: the sizes of string sets.
const ETHTOOL_GSSET_INFO: u32 = 0x0000_0037;
/// `ETHTOOL_GFEATURES`: the device's features, in words of 32 bits.
const ETHTOOL_GFEATURES: u32 = 0x0000_003a;
/// `ETHTOOL_SFEATURES`: changes features named by a mask.
const ETHTOOL_SFEATURES: u32 = 0x0000_003b;
/// `ETH_SS_FEATURES`: the string set naming the feature bits.
const ETH_SS_FEATURES: u32 = 4;
/// `ETH_GSTRING_LEN`: bytes of one name of a string set.
const ETH_GSTRING_LEN: usize = 32;
/// The feature (`NETIF_F_GRO_FRAGLIST`) under which GRO merges UDP datagrams for a local socket
/// even without `UDP_GRO` on it (`udp_gro_receive`).
const FRAGLIST_GRO: &[u8] = b"rx-gro-list";

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

/// Sets the receive offloads the attach mode needs at `iface`, logging what it changed or
/// could not: GRO on a veth in driver mode, fraglist GRO off in generic mode.
pub fn after_attach(iface: &str, mode: XdpAttachMode) {
    match mode {
        XdpAttachMode::Driver => regroup_on_veth(iface),
        XdpAttachMode::Skb => no_fraglist_gro(iface),
    }
}

/// After a driver-mode attach, turns GRO on if `iface` is a veth (see the module doc): without it
/// the client's datagrams, cut into single frames at its end of the veth, reach the socket one
/// per read. A failure costs throughput, not enforcement, so it is a warning with the command
/// that does the same.
fn regroup_on_veth(iface: &str) {
    match enable_gro_on_veth(iface) {
        Ok(VethGro::TurnedOn) => tracing::info!(
            iface,
            "turned GRO on at the veth {iface}: native XDP strips its peer of segmentation \
             offload, and GRO after the program gathers the peer's datagrams again"
        ),
        Ok(VethGro::AlreadyOn | VethGro::NotVeth) => {}
        Err(error) => tracing::warn!(
            iface,
            %error,
            "could not turn GRO on at the veth {iface}, so datagrams from its peer reach the \
             socket one at a time; run `ethtool -K {iface} gro on`"
        ),
    }
}

/// After a generic-mode attach, turns fraglist GRO off (see [`disable_fraglist_gro`]).
fn no_fraglist_gro(iface: &str) {
    match disable_fraglist_gro(iface) {
        Ok(FraglistGro::TurnedOff) => tracing::info!(
            iface,
            "turned rx-gro-list off at {iface}: with it, GRO merges the gateway's datagrams \
             into runs before generic XDP, which drops them whole"
        ),
        Ok(FraglistGro::Off) => {}
        Err(error) => tracing::warn!(
            iface,
            %error,
            "could not read or turn off rx-gro-list at {iface}; if it is on, GRO merges the \
             gateway's datagrams into runs that generic XDP drops whole: run \
             `ethtool -K {iface} rx-gro-list off`"
        ),
    }
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
    // SAFETY: `gro` is a whole `struct ethtool_value`, what ETHTOOL_GGRO reads and writes.
    unsafe { ethtool(&control, iface, std::ptr::from_mut(&mut gro).cast())? };
    if gro.data != 0 {
        return Ok(VethGro::AlreadyOn);
    }
    let mut set = EthtoolValue {
        cmd: ETHTOOL_SGRO,
        data: 1,
    };
    // SAFETY: `set` is a whole `struct ethtool_value`, what ETHTOOL_SGRO reads.
    unsafe { ethtool(&control, iface, std::ptr::from_mut(&mut set).cast())? };
    Ok(VethGro::TurnedOn)
}

/// What [`disable_fraglist_gro`] found and did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FraglistGro {
    /// Off already (every driver's default), or a kernel without it.
    Off,
    /// On; this call turned it off.
    TurnedOff,
}

/// Turns fraglist GRO (`rx-gro-list`) off at `iface`: with it on, GRO merges a flow's UDP
/// datagrams for a local socket without `UDP_GRO`, so generic XDP, which runs after GRO, would
/// see the gateway's datagrams as runs (docs/datapath.md, "Merged runs").
pub fn disable_fraglist_gro(iface: &str) -> io::Result<FraglistGro> {
    let control = control_socket()?;
    let count = feature_count(&control, iface)?;
    let Some(bit) = feature_bit(&control, iface, count, FRAGLIST_GRO)? else {
        return Ok(FraglistGro::Off);
    };
    // `ETHTOOL_DEV_FEATURE_WORDS`: the feature bits in 32-bit words.
    let words = count.div_ceil(32);
    let (word, mask) = (bit / 32, 1u32 << (bit % 32));
    // `struct ethtool_gfeatures`: cmd, size, then per word {available, requested, active,
    // never_changed}.
    let mut get = vec![0u32; 2 + 4 * words];
    get[0] = ETHTOOL_GFEATURES;
    get[1] = words as u32;
    // SAFETY: `get` holds the header and the `words` blocks the kernel writes for that size.
    unsafe { ethtool(&control, iface, get.as_mut_ptr().cast())? };
    if get[2 + 4 * word + 2] & mask == 0 {
        return Ok(FraglistGro::Off);
    }
    // `struct ethtool_sfeatures`: cmd, size, then per word {valid, requested}.
    let mut set = vec![0u32; 2 + 2 * words];
    set[0] = ETHTOOL_SFEATURES;
    set[1] = words as u32;
    set[2 + 2 * word] = mask;
    // SAFETY: `set` holds the header and the `words` blocks the kernel reads for that size,
    // and `get` is as above.
    unsafe {
        ethtool(&control, iface, set.as_mut_ptr().cast())?;
        ethtool(&control, iface, get.as_mut_ptr().cast())?;
    }
    if get[2 + 4 * word + 2] & mask != 0 {
        return Err(io::Error::other("the driver kept rx-gro-list on"));
    }
    Ok(FraglistGro::TurnedOff)
}

/// `struct ethtool_sset_info` asking for one string set's size.
#[repr(C)]
struct EthtoolSsetInfo {
    cmd: u32,
    reserved: u32,
    sset_mask: u64,
    data: [u32; 1],
}

/// The number of feature bits the kernel names.
fn feature_count(control: &OwnedFd, iface: &str) -> io::Result<usize> {
    let mut info = EthtoolSsetInfo {
        cmd: ETHTOOL_GSSET_INFO,
        reserved: 0,
        sset_mask: 1 << ETH_SS_FEATURES,
        data: [0],
    };
    // SAFETY: `info` is a `struct ethtool_sset_info` with room for the one set it asks about.
    unsafe { ethtool(control, iface, std::ptr::from_mut(&mut info).cast())? };
    if info.sset_mask & (1 << ETH_SS_FEATURES) == 0 {
        return Err(io::Error::other("the kernel names no feature bits"));
    }
    Ok(info.data[0] as usize)
}

/// The index of the feature bit called `name` among the `count` the kernel names, if it has it.
fn feature_bit(
    control: &OwnedFd,
    iface: &str,
    count: usize,
    name: &[u8],
) -> io::Result<Option<usize>> {
    // `struct ethtool_gstrings`: cmd, string_set, len, then `len` names of 32 bytes (the
    // kernel writes as many as the set has, which `count` just said).
    let mut strings = vec![0u32; 3 + count * ETH_GSTRING_LEN / 4];
    strings[0] = ETHTOOL_GSTRINGS;
    strings[1] = ETH_SS_FEATURES;
    strings[2] = count as u32;
    // SAFETY: `strings` holds the header and `count` names, all the kernel writes.
    unsafe { ethtool(control, iface, strings.as_mut_ptr().cast())? };
    let names: Vec<u8> = strings[3..].iter().flat_map(|w| w.to_ne_bytes()).collect();
    Ok(names.chunks(ETH_GSTRING_LEN).position(|n| {
        let len = n.iter().position(|&b| b == 0).unwrap_or(ETH_GSTRING_LEN);
        &n[..len] == name
    }))
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
    // SAFETY: `info` is a whole `struct ethtool_drvinfo`, what ETHTOOL_GDRVINFO writes.
    unsafe { ethtool(control, iface, std::ptr::from_mut(&mut info).cast())? };
    let driver_len = info.driver.iter().position(|&b| b == 0).unwrap_or(32);
    Ok(&info.driver[..driver_len] == VETH_DRIVER)
}

/// One `SIOCETHTOOL` request on `iface`; `request` points at an ethtool command struct whose
/// first field is its `cmd`.
///
/// # Safety
///
/// `request` must point at a live buffer, not otherwise borrowed during the call, at least as
/// long as the kernel reads and writes for the command in its first word (for the
/// variable-length commands, as long as the counts in its header say).
unsafe fn ethtool(control: &OwnedFd, iface: &str, request: *mut libc::c_void) -> io::Result<()> {
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
    // SAFETY: the descriptor is open (borrowed from `control`), the `ifreq` outlives the call,
    // and the command buffer its data pointer names is as this function's contract requires.
    let rc = unsafe { libc::ioctl(control.as_raw_fd(), libc::SIOCETHTOOL as _, &mut ifreq) };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}
