//! The two BPF commands aya 0.14 does not expose and the loader needs: opening a pinned link as
//! a file descriptor (`BPF_OBJ_GET`) and forcibly detaching a link (`BPF_LINK_DETACH`). Forcing
//! matters because closing our descriptor only detaches XDP once no other process (say, a
//! controller that was replaced but not yet dead) holds the link open.
//!
//! This is the only module of the dataplane with `unsafe` code.
#![expect(unsafe_code, reason = "raw bpf(2) calls aya does not wrap")]

use std::ffi::CString;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// `BPF_OBJ_GET` from `enum bpf_cmd` (include/uapi/linux/bpf.h).
const BPF_OBJ_GET: libc::c_long = 7;
/// `BPF_LINK_DETACH` from `enum bpf_cmd`.
const BPF_LINK_DETACH: libc::c_long = 34;

/// The `BPF_OBJ_*` member of `union bpf_attr`.
#[repr(C)]
#[derive(Default)]
struct ObjAttr {
    pathname: u64,
    bpf_fd: u32,
    file_flags: u32,
    path_fd: i32,
    _pad: u32,
}

/// The `link_detach` member of `union bpf_attr`.
#[repr(C)]
#[derive(Default)]
struct LinkDetachAttr {
    link_fd: u32,
}

/// Calls `bpf(cmd, attr, size_of(attr))`.
fn bpf<T>(cmd: libc::c_long, attr: &mut T) -> io::Result<libc::c_long> {
    // SAFETY: `attr` is a live, exclusively borrowed `#[repr(C)]` prefix of `union bpf_attr` for
    // `cmd`, and its exact size is passed, so the kernel reads (and writes) only within it.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            cmd,
            attr as *mut T as *mut libc::c_void,
            std::mem::size_of::<T>(),
        )
    };
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

/// Opens the BPF object pinned at `path`.
pub(crate) fn obj_get(path: &Path) -> io::Result<OwnedFd> {
    let path = CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "path contains a NUL byte"))?;
    let mut attr = ObjAttr {
        pathname: path.as_ptr() as u64,
        ..ObjAttr::default()
    };
    let fd = bpf(BPF_OBJ_GET, &mut attr)?;
    let fd =
        i32::try_from(fd).map_err(|_| io::Error::other("bpf(BPF_OBJ_GET) returned a bad fd"))?;
    // SAFETY: a successful BPF_OBJ_GET returns a new file descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Detaches the link behind `link` from its hook, whoever else holds it open.
pub(crate) fn link_detach(link: BorrowedFd<'_>) -> io::Result<()> {
    let mut attr = LinkDetachAttr {
        link_fd: u32::try_from(link.as_fd().as_raw_fd())
            .map_err(|_| io::Error::other("negative link fd"))?,
    };
    bpf(BPF_LINK_DETACH, &mut attr).map(drop)
}

/// A value that owns the file descriptor it reports: the descriptor stays open and unchanged for
/// the value's whole life, which is what tokio's `AsyncFd` registration requires.
pub(crate) trait OwnsItsFd: AsRawFd {}

// aya's `RingBuf<MapData>` owns its `MapData`, which owns the map's descriptor; neither exposes a
// way to replace or close it.
impl OwnsItsFd for aya::maps::RingBuf<aya::maps::MapData> {}
// `EbpfLogger` owns a `RingBuf<MapData>` and reports its descriptor.
impl<T> OwnsItsFd for aya_log::EbpfLogger<T> {}

/// Registers `inner` with the current tokio reactor for readability.
pub(crate) fn register_readable<T: OwnsItsFd>(inner: T) -> io::Result<tokio::io::unix::AsyncFd<T>> {
    // SAFETY: `OwnsItsFd` is implemented only for types that own their descriptor for their
    // whole life and always report the same one, and the `AsyncFd` takes ownership of `inner`.
    unsafe {
        tokio::io::unix::AsyncFd::register_with_interest(inner, tokio::io::Interest::READABLE)
    }
    .map_err(io::Error::from)
}
