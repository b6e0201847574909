//! Replay windows in map memory: finds or creates a session's window and runs
//! `jvpn_common::replay::check_and_record` (RFC 6479 style, lock-free; see that module for the
//! algorithm) on it through BPF atomic instructions.
//!
//! `ReplayMemory` asks for sequentially consistent operations. The compare-and-swap is
//! `BPF_CMPXCHG`, fully ordered in the BPF memory model (the x86-64 JIT emits `lock cmpxchg`;
//! checked with `bpftool prog dump xlated` and the JIT image). The loads are plain volatile 64-bit
//! loads: LLVM selects atomic loads for BPF only from CPU v4 on, which aya-build cannot ask for
//! (see `build.rs`). On x86-64 that is still sequentially consistent here: TSO never reorders a
//! load with an earlier load or a locked instruction, and its one reordering (a plain store
//! overtaken by a later load) cannot occur, as every store to a window is a `lock cmpxchg`. A JIT
//! for a weakly ordered CPU would need load-acquire; `tests/xdp_concurrency.rs` checks the x86-64
//! build (it catches a non-atomic compare-and-swap within one run).

use crate::maps::{JVPN_REPLAY, JVPN_REPLAY_ZERO};
use aya_ebpf::bindings::BPF_NOEXIST;
use aya_ebpf::programs::XdpContext;
use core::intrinsics::{atomic_cxchg, AtomicOrdering};
use jvpn_common::abi::REPLAY_SLOTS;
use jvpn_common::maps::ReplayState;
use jvpn_common::replay::{Leap, ReplayMemory};
use jvpn_common::RejectReason;

/// Accepts `nonce` for `session_id` exactly once, or says why not. Every window here serves the
/// client-to-gateway direction, so a nonce more than `NONCE_MAX_LEAP` above the newest accepted
/// one is refused as `NONCE_TOO_FAR` ([`Leap::Bounded`]).
///
/// A window that cannot be created (the replay table is full) refuses with `TABLE_FULL`: a packet
/// is never accepted without its nonce recorded. That is also logged (aya-log), off the hot path:
/// only authenticated packets of sessions without a window get there.
#[inline(always)]
pub fn check_and_record(ctx: &XdpContext, session_id: u64, nonce: u64) -> Result<(), RejectReason> {
    let Some(window) = window(session_id) else {
        aya_log_ebpf::warn!(
            ctx,
            "replay table full: session {:x} refused; raise the session capacity",
            session_id
        );
        return Err(RejectReason::TableFull);
    };
    jvpn_common::replay::check_and_record(&window, nonce, Leap::Bounded).map_err(|r| r.reason())
}

/// The session's window, created zeroed on first use. Two CPUs creating it at once both end up on
/// the one that was inserted first (`BPF_NOEXIST`); the other insert fails harmlessly.
#[inline(always)]
fn window(session_id: u64) -> Option<MapWindow> {
    if let Some(state) = JVPN_REPLAY.get_ptr_mut(session_id) {
        return Some(MapWindow(state));
    }
    let zero = JVPN_REPLAY_ZERO.get_ptr(0)?;
    // SAFETY: `zero` points to this CPU's value of an array map, valid for the whole run and never
    // written; the kernel only reads it to copy the new element.
    let zero = unsafe { &*zero };
    // An error here is either EEXIST (another CPU won the race; the lookup below finds its window)
    // or a full table (the lookup below fails and the caller refuses the packet).
    let _ = JVPN_REPLAY.insert(session_id, zero, BPF_NOEXIST as u64);
    JVPN_REPLAY.get_ptr_mut(session_id).map(MapWindow)
}

/// A replay window in a map value, accessed only through atomic instructions.
struct MapWindow(*mut ReplayState);

impl MapWindow {
    #[inline(always)]
    fn slot(&self, index: usize) -> *mut u64 {
        // The mask keeps the index inside the array for the verifier as well as for safety.
        let index = index & (REPLAY_SLOTS - 1);
        // SAFETY: `self.0` is a live map value (see `window`) and `index < REPLAY_SLOTS`, so the
        // pointer stays inside its `slots` array.
        unsafe { (&raw mut (*self.0).slots).cast::<u64>().add(index) }
    }

    #[inline(always)]
    fn max(&self) -> *mut u64 {
        // SAFETY: `self.0` is a live map value (see `window`).
        unsafe { &raw mut (*self.0).max }
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
