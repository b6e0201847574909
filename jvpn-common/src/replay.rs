//! The replay window: exact, lock-free, and safe for the same nonce arriving on two CPUs at once.
//!
//! This is the sliding-window scheme of RFC 6479 (a ring of bitmap words indexed by the nonce's
//! block, as WireGuard's `counter_validate` does), changed so that every update is one
//! compare-and-swap on one 64-bit word and no lock is needed:
//!
//! - Each of the [`REPLAY_SLOTS`] slots carries, beside its bitmap of 32 nonces, the *generation* of
//!   the block it holds (`block / REPLAY_SLOTS`, low 32 bits). RFC 6479 clears words as the window
//!   advances; here a slot holding an older generation is simply overwritten by the newer block, in
//!   the same compare-and-swap that sets the nonce's bit. There is no separate clearing step to race.
//! - `max`, the highest nonce accepted, is raised *before* the nonce's bit is set, and read *after* the
//!   slot. So whoever wrote a slot had already raised `max` to its nonce, and the `max` we read covers
//!   it. A nonce `n` inside the window (`n + REPLAY_WINDOW >= max`) therefore shares its slot only
//!   with blocks at or below its own: a slot of another generation is older and may be taken over.
//! - Two CPUs with the same nonce both reach the compare-and-swap on the same slot word; exactly one
//!   succeeds, the other re-reads the word, finds the bit and reports a duplicate.
//!
//! Equal truncated generations that are really 2^44 nonces apart would read as the same block; that
//! can only produce a false duplicate (a drop), never a second acceptance: the window fails closed.
//!
//! How far a nonce may leap above the newest accepted one is a property of the window's use
//! ([`Leap`]): client-to-gateway nonces count up by one from 1, so a nonce more than
//! [`NONCE_MAX_LEAP`] above the window's `max` is refused as too far, leaving the window as it
//! was; gateway-to-client nonces carry the gateway's boot epoch in their high bits, so a gateway
//! restart legitimately leaps by 2^40 or more.
//!
//! The algorithm is written once, over [`ReplayMemory`]: the XDP program implements it with BPF
//! atomics on the map value, userspace with [`core::sync::atomic`] ([`ReplayWindow`]).

use crate::abi::{
    NONCE_LIMIT, NONCE_MAX_LEAP, REPLAY_BITS_PER_SLOT, REPLAY_CAS_RETRIES, REPLAY_SLOTS,
    REPLAY_WINDOW,
};
use crate::reason::RejectReason;

/// Atomic access to a replay window's words. Every operation must be sequentially consistent.
pub trait ReplayMemory {
    /// Loads `max`.
    fn load_max(&self) -> u64;
    /// Sets `max` to `new` if it is `current`; otherwise returns what it is.
    fn cas_max(&self, current: u64, new: u64) -> Result<(), u64>;
    /// Loads slot `index` (`index < REPLAY_SLOTS`).
    fn load_slot(&self, index: usize) -> u64;
    /// Sets slot `index` to `new` if it is `current`; otherwise returns what it is.
    fn cas_slot(&self, index: usize, current: u64, new: u64) -> Result<(), u64>;
}

/// How far above the newest accepted nonce a window accepts a nonce.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Leap {
    /// At most [`NONCE_MAX_LEAP`] above `max` (client-to-gateway, checked by the XDP program
    /// before any AEAD): a farther nonce is a reflected or forged message, whose acceptance
    /// would make every genuine nonce after it too old.
    Bounded,
    /// Any height (gateway-to-client): a restarted gateway's nonces start at its new boot epoch,
    /// 2^40 or more above the last ones. The client records a nonce only after its message
    /// opened (tag and AEAD), so nothing forged reaches this window.
    Unbounded,
}

/// Why a nonce was refused by the window.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReplayReject {
    /// Already accepted once.
    Duplicate,
    /// Older than the window.
    TooOld,
    /// More than [`NONCE_MAX_LEAP`] above the newest accepted nonce, in a [`Leap::Bounded`]
    /// window.
    TooFar,
    /// At or past [`NONCE_LIMIT`].
    Exhausted,
    /// Every compare-and-swap retry lost; refused rather than guessed.
    Contended,
}

impl ReplayReject {
    /// The reason code this refusal is counted under.
    #[inline(always)]
    pub const fn reason(self) -> RejectReason {
        match self {
            Self::Duplicate => RejectReason::DuplicateNonce,
            Self::TooOld => RejectReason::NonceTooOld,
            Self::TooFar => RejectReason::NonceTooFar,
            Self::Exhausted => RejectReason::NonceExhausted,
            Self::Contended => RejectReason::ReplayContention,
        }
    }
}

/// Accepts `nonce` exactly once, or says why not. A refused nonce changes nothing.
#[inline(always)]
pub fn check_and_record<M: ReplayMemory>(
    mem: &M,
    nonce: u64,
    leap: Leap,
) -> Result<(), ReplayReject> {
    if nonce >= NONCE_LIMIT {
        return Err(ReplayReject::Exhausted);
    }
    // Judged against the `max` read here: a concurrent raise only makes the bound looser.
    if leap == Leap::Bounded && nonce > mem.load_max().saturating_add(NONCE_MAX_LEAP) {
        return Err(ReplayReject::TooFar);
    }
    let block = nonce / REPLAY_BITS_PER_SLOT;
    // The mask keeps the index provably below REPLAY_SLOTS (a power of two) for the verifier.
    let index = (block as usize) & (REPLAY_SLOTS - 1);
    let generation = (block / REPLAY_SLOTS as u64) as u32 as u64;
    let bit = 1u64 << (nonce % REPLAY_BITS_PER_SLOT);

    // A nonce above `max` whose bit is already set under its generation can only be a false
    // duplicate (its twin 2^44 below, see the module doc): refuse it before it raises `max`, so a
    // refused nonce never moves the window.
    if nonce > mem.load_max() {
        let slot = mem.load_slot(index);
        if slot >> 32 == generation && slot & bit != 0 {
            return Err(ReplayReject::Duplicate);
        }
    }
    raise_max(mem, nonce)?;

    for _ in 0..REPLAY_CAS_RETRIES {
        let slot = mem.load_slot(index);
        // Read after the slot: it covers the nonce of whoever wrote the slot (see the module doc).
        let max = mem.load_max();
        // No overflow: nonce < NONCE_LIMIT = u64::MAX - REPLAY_WINDOW - 1.
        if nonce + REPLAY_WINDOW < max {
            return Err(ReplayReject::TooOld);
        }
        let next = if slot >> 32 == generation {
            if slot & bit != 0 {
                return Err(ReplayReject::Duplicate);
            }
            slot | bit
        } else {
            (generation << 32) | bit
        };
        if mem.cas_slot(index, slot, next).is_ok() {
            return Ok(());
        }
    }
    Err(ReplayReject::Contended)
}

/// Raises `max` to at least `nonce`; fails only if every retry lost to a smaller concurrent raise.
#[inline(always)]
fn raise_max<M: ReplayMemory>(mem: &M, nonce: u64) -> Result<(), ReplayReject> {
    let mut max = mem.load_max();
    for _ in 0..REPLAY_CAS_RETRIES {
        if nonce <= max {
            return Ok(());
        }
        match mem.cas_max(max, nonce) {
            Ok(()) => return Ok(()),
            Err(now) => max = now,
        }
    }
    if nonce <= max {
        Ok(())
    } else {
        Err(ReplayReject::Contended)
    }
}

#[cfg(not(target_arch = "bpf"))]
pub use window::ReplayWindow;

#[cfg(not(target_arch = "bpf"))]
mod window {
    use super::*;
    use core::sync::atomic::{AtomicU64, Ordering::SeqCst};

    /// A replay window in ordinary memory: the client's window for gateway messages, the reference
    /// model for the dataplane's, and the subject of the unit tests.
    pub struct ReplayWindow {
        max: AtomicU64,
        slots: [AtomicU64; REPLAY_SLOTS],
        leap: Leap,
    }

    impl ReplayWindow {
        /// An empty window that accepts leaps as `leap` says.
        pub fn new(leap: Leap) -> Self {
            Self {
                max: AtomicU64::new(0),
                slots: core::array::from_fn(|_| AtomicU64::new(0)),
                leap,
            }
        }

        /// Accepts `nonce` exactly once, or says why not.
        pub fn check_and_record(&self, nonce: u64) -> Result<(), ReplayReject> {
            check_and_record(self, nonce, self.leap)
        }

        /// The highest nonce accepted so far.
        pub fn max(&self) -> u64 {
            self.max.load(SeqCst)
        }
    }

    impl ReplayMemory for ReplayWindow {
        fn load_max(&self) -> u64 {
            self.max.load(SeqCst)
        }
        fn cas_max(&self, current: u64, new: u64) -> Result<(), u64> {
            self.max
                .compare_exchange(current, new, SeqCst, SeqCst)
                .map(|_| ())
        }
        fn load_slot(&self, index: usize) -> u64 {
            self.slots[index].load(SeqCst)
        }
        fn cas_slot(&self, index: usize, current: u64, new: u64) -> Result<(), u64> {
            self.slots[index]
                .compare_exchange(current, new, SeqCst, SeqCst)
                .map(|_| ())
        }
    }
}

#[cfg(test)]
mod tests;
