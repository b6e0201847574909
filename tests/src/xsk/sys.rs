//! The system calls and raw memory AF_XDP needs that xdpilone leaves to its user: the UMEM's
//! anonymous mapping, reading a received frame out of it, the bind mode the kernel chose
//! (`XDP_OPTIONS`), and `poll` on the socket.
#![expect(
    unsafe_code,
    reason = "mmap/munmap of the UMEM, reading frames the kernel wrote into it, getsockopt and poll"
)]

use std::io;
use std::os::fd::RawFd;
use std::ptr::NonNull;
use std::time::Duration;

use xdpilone::{Umem, UmemConfig};

/// `SOL_XDP`'s `XDP_OPTIONS` (linux/if_xdp.h): the bound socket's flags.
const XDP_OPTIONS: libc::c_int = 8;
/// `XDP_OPTIONS_ZEROCOPY`: the socket was bound in zero-copy mode.
const XDP_OPTIONS_ZEROCOPY: u32 = 1;

/// An anonymous, page-aligned mapping the kernel reads and writes frames in; unmapped on drop.
#[derive(Debug)]
pub struct UmemArea {
    base: NonNull<u8>,
    len: usize,
}

impl UmemArea {
    /// Maps `len` bytes, zeroed and populated (the kernel pins them at `XDP_UMEM_REG`).
    pub fn new(len: usize) -> io::Result<Self> {
        // SAFETY: an anonymous private mapping at an address the kernel picks touches no existing
        // memory; the result is checked before use.
        let base = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_POPULATE,
                -1,
                0,
            )
        };
        if base == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let base = NonNull::new(base.cast::<u8>()).ok_or_else(io::Error::last_os_error)?;
        Ok(Self { base, len })
    }

    /// The whole area, for `Umem::new`.
    pub fn as_slice_ptr(&self) -> NonNull<[u8]> {
        NonNull::slice_from_raw_parts(self.base, self.len)
    }

    /// The `len` bytes at `offset`, or `None` if they are not inside the area.
    ///
    /// Sound only for a frame the kernel has handed over on the RX ring and not yet been given
    /// back on the fill ring: the kernel does not write it meanwhile.
    pub fn frame(&self, offset: u64, len: u32) -> Option<&[u8]> {
        let start = usize::try_from(offset).ok()?;
        let end = start.checked_add(usize::try_from(len).ok()?)?;
        if end > self.len {
            return None;
        }
        // SAFETY: `start..end` lies inside the mapping (checked above), which lives as long as
        // `self`; the caller only asks for frames the kernel handed over and does not write until
        // they are refilled, which needs `&mut` on the receiver that also borrows this slice.
        Some(unsafe { std::slice::from_raw_parts(self.base.as_ptr().add(start), end - start) })
    }
}

impl Drop for UmemArea {
    fn drop(&mut self) {
        // SAFETY: the mapping made in `new`, unmapped once; the sockets using it are dropped
        // before (they are declared before the area in the receiver).
        unsafe { libc::munmap(self.base.as_ptr().cast(), self.len) };
    }
}

/// Registers `area` as the UMEM of a new AF_XDP socket, in frames of `config.frame_size`.
pub fn umem(area: &UmemArea, config: UmemConfig) -> Result<Umem, xdpilone::Errno> {
    // SAFETY: `area` is a page-aligned mapping of its stated length (mmap's result), and the
    // receiver keeps it alive until after the `Umem` and every socket on it are dropped.
    unsafe { Umem::new(config, area.as_slice_ptr()) }
}

/// Whether the bound socket `fd` runs in zero-copy mode (`XDP_OPTIONS`, Linux 5.3).
pub fn is_zero_copy(fd: RawFd) -> io::Result<bool> {
    let mut options: u32 = 0;
    let mut len = std::mem::size_of::<u32>() as libc::socklen_t;
    // SAFETY: `options` and `len` are valid for writes of the size `len` states.
    let result = unsafe {
        libc::getsockopt(
            fd,
            libc::SOL_XDP,
            XDP_OPTIONS,
            std::ptr::from_mut(&mut options).cast(),
            &mut len,
        )
    };
    if result != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(options & XDP_OPTIONS_ZEROCOPY != 0)
}

/// Waits until `fd` has frames to read or `timeout` passes; whether it has.
pub fn poll_readable(fd: RawFd, timeout: Duration) -> io::Result<bool> {
    let mut request = libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    };
    let millis = libc::c_int::try_from(timeout.as_millis()).unwrap_or(libc::c_int::MAX);
    // SAFETY: one valid `pollfd`, count 1.
    let ready = unsafe { libc::poll(&mut request, 1, millis) };
    match ready {
        -1 => {
            let error = io::Error::last_os_error();
            match error.kind() {
                io::ErrorKind::Interrupted => Ok(false),
                _ => Err(error),
            }
        }
        0 => Ok(false),
        _ => Ok(request.revents & libc::POLLIN != 0),
    }
}
