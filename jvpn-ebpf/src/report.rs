//! Accounting for every decision: per-CPU counters of packets and bytes per slot, and a security
//! event in the ring buffer for every refused packet, rate-limited per reason and CPU so a flood
//! cannot starve the ring buffer. Every event not emitted is counted (rate-limited or ring full):
//! nothing is dropped silently.
//!
//! The per-CPU values are updated without atomics: XDP runs with bottom halves disabled, so one
//! CPU never runs two instances of the program at once.

use crate::clock::{coarse_now_ns, now_ns, NS_PER_SECOND};
use crate::maps::{JVPN_COUNTERS, JVPN_EVENTS, JVPN_EVENT_BUDGET, JVPN_EVENT_LOSS};
use crate::verdict::{Refusal, Verdict};
use aya_ebpf::bindings::xdp_action::{XDP_DROP, XDP_PASS};
use jvpn_common::maps::DataplaneMode;
use jvpn_common::reason::{COUNTER_ACCEPTED, COUNTER_TO_CONTROLLER};
use jvpn_common::{GatewayConfig, SecurityEvent};

/// Counts a passing packet and returns its XDP action.
#[inline(always)]
pub fn passed(verdict: Verdict, frame_len: u32) -> u32 {
    match verdict {
        Verdict::NotJvpn => {}
        Verdict::Accepted => count(COUNTER_ACCEPTED, frame_len),
        Verdict::ToController => count(COUNTER_TO_CONTROLLER, frame_len),
    }
    XDP_PASS
}

/// Counts and reports a refused packet and returns its XDP action: a drop, or a pass in monitor
/// mode.
#[inline(always)]
pub fn refused(refusal: &Refusal, frame_len: u32, config: &GatewayConfig) -> u32 {
    let slot = refusal.reason.counter_slot();
    count(slot, frame_len);
    if within_budget(slot, config.events_per_second) {
        emit(refusal, frame_len);
    }
    if config.mode == DataplaneMode::Monitor as u8 {
        XDP_PASS
    } else {
        XDP_DROP
    }
}

#[inline(always)]
fn count(slot: u32, frame_len: u32) {
    if let Some(counter) = JVPN_COUNTERS.get_ptr_mut(slot) {
        // SAFETY: this CPU's value of a per-CPU array, valid for the run, written by no one else
        // meanwhile (see the module doc).
        unsafe {
            (*counter).packets += 1;
            (*counter).bytes += frame_len as u64;
        }
    }
}

/// Takes one event from the reason's budget of this window on this CPU, or counts the event as
/// rate-limited.
///
/// A window opens with its first event and lasts a second. The clock is read when a window opens
/// and, once the budget is spent, on every refusal (to see whether a new window may open); a
/// reason under its budget costs no clock read at all, so a window is only found to be over once
/// its budget is spent: any one second sees at most twice the budget.
#[inline(always)]
fn within_budget(slot: u32, per_second: u32) -> bool {
    let (Some(budget), Some(loss)) = (
        JVPN_EVENT_BUDGET.get_ptr_mut(slot),
        JVPN_EVENT_LOSS.get_ptr_mut(slot),
    ) else {
        return false;
    };
    // SAFETY: as in `count`.
    let (budget, loss) = unsafe { (&mut *budget, &mut *loss) };
    if budget.emitted < per_second as u64 {
        if budget.emitted == 0 {
            budget.window_start_ns = coarse_now_ns();
        }
        budget.emitted += 1;
        return true;
    }
    let now = coarse_now_ns();
    if per_second > 0 && now.wrapping_sub(budget.window_start_ns) >= NS_PER_SECOND {
        budget.window_start_ns = now;
        budget.emitted = 1;
        return true;
    }
    loss.rate_limited += 1;
    false
}

#[inline(always)]
fn emit(refusal: &Refusal, frame_len: u32) {
    let slot = refusal.reason.counter_slot();
    let Some(mut entry) = JVPN_EVENTS.reserve::<SecurityEvent>(0) else {
        if let Some(loss) = JVPN_EVENT_LOSS.get_ptr_mut(slot) {
            // SAFETY: as in `count`.
            unsafe { (*loss).ring_full += 1 };
        }
        return;
    };
    let seen = &refusal.seen;
    entry.write(SecurityEvent {
        time_ns: now_ns(),
        session_id: seen.session_id,
        state_version: seen.state_version,
        nonce: seen.nonce,
        addr: seen.source.addr,
        port: seen.source.port,
        reason: refusal.reason.code(),
        msg_type: seen.msg_type,
        len: frame_len,
    });
    entry.submit(0);
}
