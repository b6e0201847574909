//! Replay windows in map memory: a session's window is its line's `max` (the head, in the
//! session array) and the bitmaps at the same slot of the replay array. This module checks the
//! line still names the session, and runs `jvpn_common::replay::check_and_record` (RFC 6479 style,
//! lock-free; see that module for the algorithm) on it through BPF atomic instructions.
//!
//! Slot rules (userspace, `jvpn-user/src/dataplane/slots.rs` and `sessions.rs`, keeps them): a
//! slot's bitmaps and `max` are zeroed and its line names the new session before the index points
//! at it; when a session leaves, its index entry is deleted first, then its line names no session
//! and its window is zeroed; a freed slot is reused last. A packet judged on a stale copy (a line
//! read, or an index element found, just before the session left) therefore finds the line naming
//! no session or another one, and is refused; if it read the line just before the reset, its at
//! most one bit or `max` lands in a window no session uses, or in the next owner's fresh window,
//! where it can only make a nonce look used or old: a drop, never a second acceptance.
//!
//! `ReplayMemory` asks for sequentially consistent operations. The compare-and-swap is
//! `BPF_CMPXCHG`, fully ordered in the BPF memory model (the x86-64 JIT emits `lock cmpxchg`;
//! checked with `bpftool prog dump xlated` and the JIT image). The loads are plain volatile 64-bit
//! loads: LLVM selects atomic loads for BPF only from CPU v4 on, which aya-build cannot ask for
//! (see `build.rs`). On x86-64 that is still sequentially consistent here: TSO never reorders a
//! load with an earlier load or a locked instruction, and its one reordering (a plain store
//! overtaken by a later load) cannot occur on a window in use, where every store of this program
//! is a `lock cmpxchg` and userspace stores only when the slot changes hands. A JIT for a weakly
//! ordered CPU would need load-acquire; `tests/xdp_concurrency.rs` checks the x86-64 build (it
//! catches a non-atomic compare-and-swap within one run).

use crate::maps::{JVPN_REPLAY, JVPN_SESSIONS};
use aya_ebpf::programs::XdpContext;
use core::intrinsics::{atomic_cxchg, AtomicOrdering};
use jvpn_common::abi::REPLAY_SLOTS;
use jvpn_common::maps::{ReplayState, SessionLine};
use jvpn_common::replay::{Leap, ReplayMemory};
use jvpn_common::RejectReason;

/// Accepts `nonce` for `session_id` exactly once in the window at `slot` (the slot its line was
/// found at), or says why not. Every window here serves the client-to-gateway direction, so
/// a nonce more than `NONCE_MAX_LEAP` above the newest accepted one is refused as
/// `NONCE_TOO_FAR` ([`Leap::Bounded`]).
///
/// A slot outside the replay array, or a line that no longer names the session, refuses with
/// `REPLAY_SLOT` before anything is written: a packet is never checked against, nor recorded
/// in, a window that is not its session's. That is also logged (aya-log): only a packet whose
/// tag verified under its line gets here, so an attacker without the session's key cannot flood
/// the log.
#[inline(always)]
pub fn check_and_record(
    ctx: &XdpContext,
    session_id: u64,
    slot: u32,
    nonce: u64,
) -> Result<(), RejectReason> {
    let Some(window) = window(session_id, slot) else {
        aya_log_ebpf::warn!(
            ctx,
            "replay slot {} is not session {:x}'s window: packet refused",
            slot,
            session_id
        );
        return Err(RejectReason::ReplaySlot);
    };
    jvpn_common::replay::check_and_record(&window, nonce, Leap::Bounded).map_err(|r| r.reason())
}

/// The window at `slot` if its line still names `session_id`. Both array lookups are inlined by
/// the verifier (an index check and an address computation); the line is the one the packet was
/// judged on, still in this CPU's cache.
#[inline(always)]
fn window(session_id: u64, slot: u32) -> Option<MapWindow> {
    let line = JVPN_SESSIONS.get_ptr_mut(slot)?;
    let bitmaps = JVPN_REPLAY.get_ptr_mut(slot)?;
    let window = MapWindow { line, bitmaps };
    (load(window.owner()) == session_id).then_some(window)
}

/// A replay window in map memory, accessed only through atomic instructions: the head in the
/// session's line, the bitmaps in the replay array.
struct MapWindow {
    line: *mut SessionLine,
    bitmaps: *mut ReplayState,
}

impl MapWindow {
    #[inline(always)]
    fn slot(&self, index: usize) -> *mut u64 {
        // The mask keeps the index inside the array for the verifier as well as for safety.
        let index = index & (REPLAY_SLOTS - 1);
        // SAFETY: `self.bitmaps` is a live map value (see `window`) and `index < REPLAY_SLOTS`,
        // so the pointer stays inside its `slots` array.
        unsafe { (&raw mut (*self.bitmaps).slots).cast::<u64>().add(index) }
    }

    #[inline(always)]
    fn owner(&self) -> *mut u64 {
        // SAFETY: `self.line` is a live map value (see `window`).
        unsafe { &raw mut (*self.line).session_id }
    }

    #[inline(always)]
    fn max(&self) -> *mut u64 {
        // SAFETY: `self.line` is a live map value (see `window`).
        unsafe { &raw mut (*self.line).max }
    }
}
/// A sequentially consistent load on x86-64 (see the module doc).
#[inline(always)]
fn load(word: *mut u64) -> u64 {
    // SAFETY: `word` is an aligned u64 inside a live map value; other CPUs only write it with
    // compare-and-swap, and BPF never tears an aligned 64-bit load.
    unsafe { word.read_volatile() }
}

#[inline(always)]
fn compare_and_swap(word: *mut u64, current: u64, new: u64) -> Result<(), u64> {
    // SAFETY: as in `load`.
    let (was, swapped) = unsafe {
        atomic_cxchg::<u64, { AtomicOrdering::SeqCst }, { AtomicOrdering::SeqCst }>(
            word, current, new,
        )
    };
    if swapped {
        Ok(())
    } else {
        Err(was)
    }
}

impl ReplayMemory for MapWindow {
    #[inline(always)]
    fn load_max(&self) -> u64 {
        load(self.max())
    }

    #[inline(always)]
    fn cas_max(&self, current: u64, new: u64) -> Result<(), u64> {
        compare_and_swap(self.max(), current, new)
    }

    #[inline(always)]
    fn load_slot(&self, index: usize) -> u64 {
        load(self.slot(index))
    }

    #[inline(always)]
    fn cas_slot(&self, index: usize, current: u64, new: u64) -> Result<(), u64> {
        compare_and_swap(self.slot(index), current, new)
    }
}
