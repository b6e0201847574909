//! The system calls the TUN device needs that std does not offer: `TUNSETIFF`, which turns an
//! open `/dev/net/tun` descriptor into a named layer-3 device without packet-information headers
//! but with a `virtio_net_hdr` before each packet, and `TUNSETOFFLOAD`, which lets the kernel hand
//! over TCP superpackets and packets whose checksum is left to finish.
#![expect(
    unsafe_code,
    reason = "the TUNSETIFF and TUNSETOFFLOAD ioctls and tokio's AsyncFd::register, which std and tokio offer only unsafe"
)]

use std::fs::File;
use std::os::fd::AsRawFd;

/// Attaches `file` (an open `/dev/net/tun`) to the TUN device `name` (created if missing) with
/// `IFF_TUN | IFF_NO_PI | IFF_VNET_HDR`; returns the kernel's name for it.
pub fn set_tun_iff(file: &File, name: &str) -> std::io::Result<String> {
    // SAFETY: `ifreq` is a plain C struct (a name array and a union of integers); all-zero is a
    // valid value for every field.
    let mut request: libc::ifreq = unsafe { std::mem::zeroed() };
    for (slot, byte) in request.ifr_name.iter_mut().zip(name.bytes()) {
        *slot = byte as libc::c_char;
    }
    request.ifr_ifru.ifru_flags =
        (libc::IFF_TUN | libc::IFF_NO_PI | libc::IFF_VNET_HDR) as libc::c_short;
    // SAFETY: the descriptor is open for the call's duration (borrowed from `file`), and
    // TUNSETIFF reads and writes exactly one `ifreq`, which `request` is and outlives the call.
    let rc = unsafe { libc::ioctl(file.as_raw_fd(), libc::TUNSETIFF as _, &mut request) };
    if rc < 0 {
        return Err(std::io::Error::last_os_error());
    }
    let end = request
        .ifr_name
        .iter()
        .position(|&c| c == 0)
        .unwrap_or(request.ifr_name.len());
    Ok(request.ifr_name[..end]
        .iter()
        .map(|&c| c as u8 as char)
        .collect())
}

/// Offers the device checksum and TCP segmentation offload (IPv4 and IPv6): reads may then carry
/// up to 64 KiB of one TCP flow, described by the `virtio_net_hdr`.
pub fn set_offload(file: &File) -> std::io::Result<()> {
    let features = libc::TUN_F_CSUM | libc::TUN_F_TSO4 | libc::TUN_F_TSO6;
    // SAFETY: the descriptor is open for the call's duration (borrowed from `file`), and
    // TUNSETOFFLOAD takes its argument by value.
    let rc = unsafe {
        libc::ioctl(
            file.as_raw_fd(),
            libc::TUNSETOFFLOAD as _,
            features as libc::c_ulong,
        )
    };
    if rc < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// Registers the TUN descriptor with tokio's reactor.
pub fn register(file: File) -> std::io::Result<tokio::io::unix::AsyncFd<File>> {
    // SAFETY: the `File` owns its descriptor and moves into the `AsyncFd`, which only lends it
    // out by shared reference (reads and writes); nothing closes or replaces the descriptor
    // while it is registered.
    unsafe { tokio::io::unix::AsyncFd::register(file) }.map_err(|e| e.into_parts().1)
}
