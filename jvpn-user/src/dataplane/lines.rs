//! The session array (`abi::MAP_SESSIONS`, layout v5) mapped into this process and written in
//! place, one [`SessionLine`] per slot, under each line's sequence lock.
//!
//! An array value is not replaced atomically as a hash element is: a write through
//! `bpf_map_update_elem` is a `memcpy` the XDP program could read half-way. So the controller
//! writes each line through a shared memory map of the array (`BPF_F_MMAPABLE`) as a sequence
//! lock: `seq` made odd, a release fence, the fields, `seq` made even with release ordering. The
//! reader's side, and why it is sound on x86-64, is `jvpn-ebpf/src/session.rs`. Writers are
//! serialised by the session lock (`maps.rs`, `SessionMaps`), so the lock has one writer at a
//! time; `max` (the replay head) is left alone except when a slot changes hands, because the XDP
//! program moves it with compare-and-swap outside the lock.
#![expect(
    unsafe_code,
    reason = "the session array is written in place through mmap(2)"
)]

use super::DataplaneError;
use aya::maps::MapData;
use jvpn_common::maps::{SessionEntry, SessionLine};
use jvpn_common::{abi, SessionState};
use std::os::fd::{AsFd, AsRawFd};
use std::ptr::NonNull;
use std::sync::atomic::{fence, AtomicU32, AtomicU64, Ordering};

/// `BPF_F_MMAPABLE` (include/uapi/linux/bpf.h).
const BPF_F_MMAPABLE: u32 = 1 << 10;

/// The session array of a loaded or adopted dataplane, mapped shared and writable. Public so the
/// `BPF_PROG_TEST_RUN` tests drive this writer, not a copy of it, against the running program.
pub struct SessionLines {
    /// The first line; the mapping holds `len` of them back to back (64 bytes each, page-aligned
    /// start, so every line is one cache line).
    base: NonNull<SessionLine>,
    /// Number of lines (the array's capacity).
    len: u32,
    /// Bytes mapped, a whole number of pages.
    mapped: usize,
}

// SAFETY: the mapping is owned by this value and only reached through `&self`/`&mut self`;
// `SessionMaps` keeps it under a mutex, so no two threads write it at once.
unsafe impl Send for SessionLines {}

impl SessionLines {
    /// Maps the session array `data` (its capacity from the kernel).
    pub fn map(data: &MapData) -> Result<Self, DataplaneError> {
        let info = data.info().map_err(DataplaneError::map(
            "reading the layout of",
            abi::MAP_SESSIONS,
        ))?;
        let fail = |source| DataplaneError::SessionArrayMap {
            map: abi::MAP_SESSIONS,
            source,
        };
        if info.map_flags() & BPF_F_MMAPABLE == 0
            || info.value_size() as usize != abi::SESSION_LINE_LEN
        {
            return Err(fail(std::io::Error::from(std::io::ErrorKind::InvalidData)));
        }
        let len = info.max_entries();
        let page = page_size();
        let mapped = (len as usize * abi::SESSION_LINE_LEN).div_ceil(page) * page;
        // The kernel lays the values out back to back from offset 0 (64-byte values, a multiple
        // of 8, so no gaps), and the mapping stays valid after the descriptor is closed.
        // SAFETY: maps `mapped` bytes of the array's values shared and writable from a live map
        // fd; the result is checked just below and unmapped in `drop`.
        let base = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                mapped,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                data.fd().as_fd().as_raw_fd(),
                0,
            )
        };
        if base == libc::MAP_FAILED {
            return Err(fail(std::io::Error::last_os_error()));
        }
        let base = NonNull::new(base.cast()).ok_or_else(|| fail(std::io::Error::other("null")))?;
        Ok(Self { base, len, mapped })
    }

    /// Number of lines.
    pub(crate) fn len(&self) -> u32 {
        self.len
    }

    /// A copy of the line at `slot`, `None` outside the array. Called under the session lock, so
    /// no other writer of the locked fields runs meanwhile; `max` is read as one aligned word.
    pub(crate) fn read(&self, slot: u32) -> Option<SessionLine> {
        let line = self.line(slot)?;
        // SAFETY: `line` lies inside the mapping; volatile, since the XDP program writes `max`.
        Some(unsafe { line.read_volatile() })
    }

    /// Hands `slot` to `entry`'s session: its line names the session, with its fields, and a
    /// replay head of 0. The caller zeroes the slot's bitmaps before, and publishes the index
    /// entry after.
    pub(crate) fn assign(&mut self, slot: u32, entry: &SessionEntry) {
        self.write(slot, entry, Some(0));
    }

    /// Rewrites the fields of the session already at `slot`, keeping its replay head.
    pub fn update(&mut self, slot: u32, entry: &SessionEntry) {
        self.write(slot, entry, None);
    }

    /// Takes `slot` back: its line names no session (terminated, no key, head 0), so a packet
    /// still holding its slot finds nothing of the session that left.
    pub(crate) fn clear(&mut self, slot: u32) {
        let empty = SessionEntry {
            state: SessionState::Terminated as u8,
            ..bytemuck::Zeroable::zeroed()
        };
        self.write(slot, &empty, Some(0));
    }

    /// Writes `entry` into the line at `slot` under its sequence lock, and `max` if given. A slot
    /// outside the array is a bug of the slot bookkeeping (it hands out only slots below `len`).
    fn write(&mut self, slot: u32, entry: &SessionEntry, max: Option<u64>) {
        let Some(line) = self.line(slot) else {
            panic!(
                "slot {slot} is outside the session array of {} lines",
                self.len
            );
        };
        let line = line.as_ptr();
        let value = SessionLine::of(entry, 0, 0);
        // The XDP program reads `seq` and compare-and-swaps `max`, so those two are used as
        // atomics; the other fields are written with volatile stores between the odd and the even
        // sequence number, which is what a reader checks. Only this process, under the session
        // lock, writes them.
        // SAFETY: `line` lies inside the mapping and is 64-byte aligned, so every field pointer
        // is valid and aligned, and `seq` and `max` are aligned words that may be atomics.
        unsafe {
            let seq = AtomicU32::from_ptr(&raw mut (*line).seq);
            // A sequence left odd by a writer that died mid-write is completed, not doubled.
            let odd = seq.load(Ordering::Relaxed) | 1;
            seq.store(odd, Ordering::Relaxed);
            // Orders the odd sequence before every field store (a store-store barrier).
            fence(Ordering::Release);
            (&raw mut (*line).state).write_volatile(value.state);
            (&raw mut (*line)._pad).write_volatile(0);
            (&raw mut (*line).port).write_volatile(value.port);
            (&raw mut (*line).session_id).write_volatile(value.session_id);
            (&raw mut (*line).state_version).write_volatile(value.state_version);
            (&raw mut (*line).header_key).write_volatile(value.header_key);
            (&raw mut (*line).addr).write_volatile(value.addr);
            if let Some(max) = max {
                AtomicU64::from_ptr(&raw mut (*line).max).store(max, Ordering::SeqCst);
            }
            seq.store(odd.wrapping_add(1), Ordering::Release);
        }
    }

    /// The line at `slot`, if inside the array.
    fn line(&self, slot: u32) -> Option<NonNull<SessionLine>> {
        // SAFETY: `slot < len`, so the offset stays inside the mapping.
        (slot < self.len).then(|| unsafe { self.base.add(slot as usize) })
    }
}

impl Drop for SessionLines {
    fn drop(&mut self) {
        // SAFETY: unmaps exactly the mapping made in `map`, which nothing references any more.
        unsafe { libc::munmap(self.base.as_ptr().cast(), self.mapped) };
    }
}

/// The system's page size.
fn page_size() -> usize {
    // SAFETY: sysconf has no preconditions.
    let size = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    usize::try_from(size).unwrap_or(4096).max(1)
}
