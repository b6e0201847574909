//! The BPF commands aya 0.14 does not expose and the loader needs: opening a pinned link as a file
//! descriptor (`BPF_OBJ_GET`), forcibly detaching a link (`BPF_LINK_DETACH`), and loading a
//! hand-assembled probe program (`BPF_PROG_LOAD`) for a kernel feature aya has no probe for.
//! Forcing a detach matters because closing our descriptor only detaches XDP once no other
//! process (say, a controller that was replaced but not yet dead) holds the link open.
//!
//! One of the three modules of the dataplane with `unsafe` code (with `lines` and `offload`).
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
/// `BPF_PROG_LOAD` from `enum bpf_cmd`.
const BPF_PROG_LOAD: libc::c_long = 5;
/// `BPF_PROG_TYPE_XDP` from `enum bpf_prog_type`.
const BPF_PROG_TYPE_XDP: u32 = 6;

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

/// The `BPF_PROG_LOAD` prefix of `union bpf_attr`, up to `prog_flags`; the kernel zero-fills the
/// rest.
#[repr(C)]
#[derive(Default)]
struct ProgLoadAttr {
    prog_type: u32,
    insn_cnt: u32,
    insns: u64,
    license: u64,
    log_level: u32,
    log_size: u32,
    log_buf: u64,
    kern_version: u32,
    prog_flags: u32,
}

/// `struct bpf_insn`: opcode, destination register (low nibble) and source register (high
/// nibble), offset, immediate.
#[repr(C)]
struct Insn {
    code: u8,
    regs: u8,
    off: i16,
    imm: i32,
}

impl Insn {
    const fn new(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> Self {
        Self {
            code,
            regs: (src << 4) | dst,
            off,
            imm,
        }
    }
}

/// Whether the kernel's verifier accepts a 64-bit atomic compare-and-exchange (Linux 5.12), the
/// instruction the replay window is built on: an XDP program that runs
/// `r0 = atomic64_cmpxchg(*(u64 *)(r10 - 8), r0, r1)` on a zeroed stack slot.
/// `Ok(false)` when the verifier refuses it (`EINVAL`).
pub(crate) fn xdp_atomic_cmpxchg_loads() -> io::Result<bool> {
    const R0: u8 = 0;
    const R1: u8 = 1;
    const R10: u8 = 10;
    // BPF_ST | BPF_MEM | BPF_DW, BPF_ALU64 | BPF_MOV | BPF_K, BPF_STX | BPF_ATOMIC | BPF_DW,
    // BPF_JMP | BPF_EXIT.
    const STORE_IMM_DW: u8 = 0x7a;
    const MOV_IMM: u8 = 0xb7;
    const ATOMIC_DW: u8 = 0xdb;
    const EXIT: u8 = 0x95;
    // BPF_CMPXCHG (0xf0 | BPF_FETCH).
    const CMPXCHG: i32 = 0xf1;
    const XDP_PASS: i32 = 2;
    let insns = [
        Insn::new(STORE_IMM_DW, R10, 0, -8, 0),
        Insn::new(MOV_IMM, R0, 0, 0, 0),
        Insn::new(MOV_IMM, R1, 0, 0, 1),
        Insn::new(ATOMIC_DW, R10, R1, -8, CMPXCHG),
        Insn::new(MOV_IMM, R0, 0, 0, XDP_PASS),
        Insn::new(EXIT, 0, 0, 0, 0),
    ];
    let license = c"GPL";
    let mut attr = ProgLoadAttr {
        prog_type: BPF_PROG_TYPE_XDP,
        insn_cnt: insns.len() as u32,
        insns: insns.as_ptr() as u64,
        license: license.as_ptr() as u64,
        ..ProgLoadAttr::default()
    };
    match bpf(BPF_PROG_LOAD, &mut attr) {
        Ok(fd) => {
            let fd = i32::try_from(fd)
                .map_err(|_| io::Error::other("bpf(BPF_PROG_LOAD) returned a bad fd"))?;
            // SAFETY: a successful BPF_PROG_LOAD returns a new file descriptor that nothing else
            // owns; dropping it unloads the probe.
            drop(unsafe { OwnedFd::from_raw_fd(fd) });
            Ok(true)
        }
        Err(error) if error.raw_os_error() == Some(libc::EINVAL) => Ok(false),
        Err(error) => Err(error),
    }
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
