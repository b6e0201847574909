//! The raw system calls behind the capability drop: `capget`/`capset` and the bounding-set
//! `prctl`s on the calling thread, and a real-time signal whose handler makes another thread do
//! the same. Capabilities belong to threads, not processes, and no system call changes another
//! thread's; like libcap's psx and Go's `AllThreadsSyscall`, each thread is asked, by signal, to
//! drop its own. The handler only reads atomics and makes raw system calls, which is what a signal
//! handler may do.
//!
//! This is the only module of the service layer with `unsafe` code.
#![allow(
    unsafe_code,
    reason = "raw capset/prctl/tgkill calls and a signal handler"
)]

use std::io;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Once;

/// `_LINUX_CAPABILITY_VERSION_3` (linux/capability.h): 64-bit sets as two 32-bit words.
const CAPABILITY_VERSION_3: u32 = 0x2008_0522;
/// `CAP_SETPCAP`: needed to drop from the bounding set.
const CAP_SETPCAP: u32 = 8;
/// The highest capability number any kernel defines today (`CAP_CHECKPOINT_RESTORE`, 40) with room
/// to spare; the bounding-set loop stops at the first number the kernel does not know.
const CAP_NUMBER_LIMIT: u32 = 64;

/// `struct __user_cap_header_struct`.
#[repr(C)]
struct CapHeader {
    version: u32,
    pid: libc::c_int,
}

/// `struct __user_cap_data_struct`; version 3 takes two of them (capabilities 0-31, 32-63).
#[repr(C)]
#[derive(Clone, Copy, Default)]
struct CapData {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

/// The capabilities every thread keeps, as a bit mask; read by the signal handler.
static KEEP: AtomicU64 = AtomicU64::new(0);
/// Threads whose handler ran since [`signal_thread`]'s caller last reset it.
static ACKNOWLEDGED: AtomicUsize = AtomicUsize::new(0);
/// Threads whose handler's drop failed.
static FAILED: AtomicUsize = AtomicUsize::new(0);
static INSTALL: Once = Once::new();

/// The signal that asks a thread to drop: a real-time signal nothing else in jvpn uses.
fn drop_signal() -> libc::c_int {
    libc::SIGRTMIN() + 5
}

/// Sets the mask every thread keeps and installs the handler (once per process).
pub(super) fn prepare(keep: u64) -> io::Result<()> {
    KEEP.store(keep, Ordering::SeqCst);
    let mut result = Ok(());
    INSTALL.call_once(|| {
        // SAFETY: `action` is fully initialised (zeroed, then the handler, flags and an empty
        // mask set) before `sigaction` reads it; the handler is an `extern "C" fn(c_int)` that
        // only touches atomics and makes async-signal-safe system calls.
        result = unsafe {
            let mut action: libc::sigaction = std::mem::zeroed();
            action.sa_sigaction = on_drop_signal as extern "C" fn(libc::c_int) as usize;
            action.sa_flags = libc::SA_RESTART;
            libc::sigemptyset(&mut action.sa_mask);
            if libc::sigaction(drop_signal(), &action, std::ptr::null_mut()) == 0 {
                Ok(())
            } else {
                Err(io::Error::last_os_error())
            }
        };
    });
    result
}

/// How many handlers have run and how many of them failed, since the last [`reset_counts`].
pub(super) fn counts() -> (usize, usize) {
    (
        ACKNOWLEDGED.load(Ordering::SeqCst),
        FAILED.load(Ordering::SeqCst),
    )
}

/// Zeroes the handler counts before a round of signals.
pub(super) fn reset_counts() {
    ACKNOWLEDGED.store(0, Ordering::SeqCst);
    FAILED.store(0, Ordering::SeqCst);
}

/// The calling thread's id.
pub(super) fn current_tid() -> libc::pid_t {
    // SAFETY: gettid takes no arguments and cannot fail.
    unsafe { libc::syscall(libc::SYS_gettid) as libc::pid_t }
}

/// Asks thread `tid` of this process to drop (its handler runs [`drop_current_thread`]).
pub(super) fn signal_thread(tid: libc::pid_t) -> io::Result<()> {
    // SAFETY: tgkill with this process's id only ever signals one of its own threads; the
    // signal's handler was installed by `prepare`.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_tgkill,
            libc::getpid(),
            tid,
            drop_signal() as libc::c_long,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

extern "C" fn on_drop_signal(_signal: libc::c_int) {
    // SAFETY: errno is thread-local; the handler saves and restores it so that the interrupted
    // code sees the value it left.
    let errno = unsafe { *libc::__errno_location() };
    let result = drop_current_thread(KEEP.load(Ordering::SeqCst));
    if result.is_err() {
        FAILED.fetch_add(1, Ordering::SeqCst);
    }
    ACKNOWLEDGED.fetch_add(1, Ordering::SeqCst);
    // SAFETY: as above.
    unsafe { *libc::__errno_location() = errno };
}

/// Drops every capability of the calling thread that is not in `keep`: from the bounding set
/// (when the thread may, i.e. holds `CAP_SETPCAP`), then from the effective, permitted and
/// inheritable sets (which also empties the ambient set). Async-signal-safe: no allocation,
/// only system calls.
pub(super) fn drop_current_thread(keep: u64) -> Result<(), libc::c_int> {
    let mut data = [CapData::default(); 2];
    let mut header = CapHeader {
        version: CAPABILITY_VERSION_3,
        pid: 0,
    };
    // SAFETY: version 3 reads and writes two `CapData`, which `data` holds.
    if unsafe { libc::syscall(libc::SYS_capget, &mut header, data.as_mut_ptr()) } != 0 {
        return Err(errno());
    }
    let permitted = u64::from(data[0].permitted) | u64::from(data[1].permitted) << 32;
    let effective = u64::from(data[0].effective) | u64::from(data[1].effective) << 32;
    if effective & 1 << CAP_SETPCAP != 0 {
        for cap in 0..CAP_NUMBER_LIMIT {
            if keep & 1 << cap != 0 {
                continue;
            }
            // SAFETY: PR_CAPBSET_READ/DROP take a capability number and no pointers.
            let in_bounding =
                unsafe { libc::prctl(libc::PR_CAPBSET_READ, cap as libc::c_ulong, 0, 0, 0) };
            if in_bounding < 0 {
                break; // EINVAL: past the last capability this kernel knows.
            }
            if in_bounding == 1
                // SAFETY: as above.
                && unsafe { libc::prctl(libc::PR_CAPBSET_DROP, cap as libc::c_ulong, 0, 0, 0) } != 0
            {
                return Err(errno());
            }
        }
    }
    let kept = permitted & keep;
    let words = [kept as u32, (kept >> 32) as u32];
    for (slot, word) in data.iter_mut().zip(words) {
        *slot = CapData {
            effective: word,
            permitted: word,
            inheritable: 0,
        };
    }
    let mut header = CapHeader {
        version: CAPABILITY_VERSION_3,
        pid: 0,
    };
    // SAFETY: version 3 reads two `CapData` from `data`; lowering one's own sets needs no
    // privilege.
    if unsafe { libc::syscall(libc::SYS_capset, &mut header, data.as_ptr()) } != 0 {
        return Err(errno());
    }
    Ok(())
}

fn errno() -> libc::c_int {
    // SAFETY: errno is a thread-local the C library keeps valid for the thread's lifetime.
    unsafe { *libc::__errno_location() }
}
