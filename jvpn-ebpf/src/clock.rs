//! The program's clocks, both CLOCK_MONOTONIC as the controller reads event times: a precise one
//! for event timestamps and a coarse one (jiffy resolution, a few milliseconds) for the
//! one-second event budgets and the HELLO token buckets, which need no more and are read on
//! every drop, where the precise clock's TSC read would be a large part of the cost.

use aya_ebpf::helpers::{bpf_ktime_get_coarse_ns, bpf_ktime_get_ns};

/// Nanoseconds of one second.
pub const NS_PER_SECOND: u64 = 1_000_000_000;

/// Now, in CLOCK_MONOTONIC nanoseconds.
#[inline(always)]
pub fn now_ns() -> u64 {
    // SAFETY: a helper without arguments or preconditions, available to every program type.
    unsafe { bpf_ktime_get_ns() }
}

/// Now, in CLOCK_MONOTONIC_COARSE nanoseconds (the same clock, updated once per tick).
#[inline(always)]
pub fn coarse_now_ns() -> u64 {
    // SAFETY: as `now_ns`.
    unsafe { bpf_ktime_get_coarse_ns() }
}
