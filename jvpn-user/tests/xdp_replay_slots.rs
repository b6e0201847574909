//! The replay slot rules on the real jvpn XDP object, through `BPF_PROG_TEST_RUN`: a session's
//! entry names the slot of its window in the replay array, and the program refuses a packet as
//! `REPLAY_SLOT` (counted, reported and logged, nothing written) when that slot is outside the
//! array or holds a window another session owns, or none does: a stale entry of a removed
//! session, a slot since reused. A reused slot starts with a fresh window.
//!
//! Runs as root (loading BPF programs needs it); each test loads its own copy of the object.

mod xdp_support;

use jvpn_common::maps::DataplaneMode;
use jvpn_common::reason::COUNTER_ACCEPTED;
use jvpn_common::{MessageType, RejectReason, SessionEntry, SessionState};
use xdp_support::*;

const A: u64 = 0x0001_0000_0000_00a1;
const B: u64 = 0x0001_0000_0000_00b2;
const KEY: [u8; 16] = [0x11; 16];
const VERSION: u64 = 5;

/// A dataplane whose replay array has `windows` slots, with session `A` attached in slot 0, and
/// the capture of its logs.
fn with_a(windows: u32) -> (TestDataplane, Family, CapturedLogs) {
    require_root("xdp_replay_slots");
    let mut dp = TestDataplane::load_with(16, windows);
    dp.set_config(config(DataplaneMode::Enforce));
    let f = Family::v4(None);
    dp.set_session(A, entry(&f));
    assert_eq!(dp.slot_of(A), Some(0));
    let logs = dp.capture_logs();
    (dp, f, logs)
}

fn entry(f: &Family) -> SessionEntry {
    session(SessionState::Attached, VERSION, KEY, f.client)
}

fn data(f: &Family, id: u64, nonce: u64) -> Vec<u8> {
    f.frame(message(MessageType::Data, id, VERSION, nonce, &KEY, 32))
}

/// Runs a DATA of `id` that must be refused as `REPLAY_SLOT`, and checks it was counted and
/// reported as such and logged with its slot.
fn refused_for_its_slot(
    (dp, f, logs): (&mut TestDataplane, &Family, &mut CapturedLogs),
    id: u64,
    slot: u32,
    nonce: u64,
) {
    let before = dp.counters();
    assert_eq!(dp.run(&data(f, id, nonce)), XDP_DROP, "session {id:x}");
    let frame_len = data(f, id, nonce).len() as u64;
    assert_eq!(
        counter_delta(&before, &dp.counters()),
        [(RejectReason::ReplaySlot.counter_slot(), 1, frame_len)],
        "one packet counted under REPLAY_SLOT and nothing else"
    );
    let events = dp.events();
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0].reason, RejectReason::ReplaySlot.code());
    assert_eq!((events[0].session_id, events[0].nonce), (id, nonce));
    let logs = logs.drain();
    let expected = format!("WARN replay slot {slot} is not session {id:x}'s window");
    assert!(
        logs.iter().any(|l| l.starts_with(&expected)),
        "the refusal is logged for the operator: {logs:?}"
    );
}

#[test]
fn a_slot_outside_the_replay_array_is_a_counted_drop() {
    let (mut dp, f, mut logs) = with_a(1);
    dp.set_exact_session(
        B,
        SessionEntry {
            session_id: B,
            replay_slot: 1,
            ..entry(&f)
        },
    );
    refused_for_its_slot((&mut dp, &f, &mut logs), B, 1, 1);
    dp.set_exact_session(
        B,
        SessionEntry {
            session_id: B,
            replay_slot: u32::MAX,
            ..entry(&f)
        },
    );
    refused_for_its_slot((&mut dp, &f, &mut logs), B, u32::MAX, 1);
    assert_eq!(
        dp.run(&data(&f, A, 1)),
        XDP_PASS,
        "A's own slot still works"
    );
}

#[test]
fn an_entry_pointing_at_another_sessions_window_is_refused_and_writes_nothing() {
    let (mut dp, f, mut logs) = with_a(4);
    assert_eq!(dp.run(&data(&f, A, 9)), XDP_PASS);
    let before = dp.window(0);
    dp.set_exact_session(
        B,
        SessionEntry {
            session_id: B,
            replay_slot: 0,
            ..entry(&f)
        },
    );
    // A fresh nonce for A's window, and one above its max: neither may land there.
    refused_for_its_slot((&mut dp, &f, &mut logs), B, 0, 10);
    refused_for_its_slot((&mut dp, &f, &mut logs), B, 0, 1_000);
    let after = dp.window(0);
    assert_eq!((after.owner, after.max), (A, 9));
    assert_eq!(after.slots, before.slots, "A's window is untouched");
    assert_eq!(
        dp.run(&data(&f, A, 10)),
        XDP_PASS,
        "10 is still fresh for A"
    );
}

#[test]
fn a_freed_slot_refuses_the_stale_entry_of_its_last_owner() {
    let (mut dp, f, mut logs) = with_a(1);
    assert_eq!(dp.run(&data(&f, A, 3)), XDP_PASS);
    let stale = SessionEntry {
        session_id: A,
        replay_slot: 0,
        ..entry(&f)
    };
    dp.remove_session(A);
    assert_eq!(dp.window(0).owner, 0, "a freed window names no owner");
    // A packet judged on a copy of the entry taken before the removal.
    dp.set_exact_session(A, stale);
    refused_for_its_slot((&mut dp, &f, &mut logs), A, 0, 4);
    assert_eq!(dp.window(0).max, 0, "nothing written to the free window");
}

#[test]
fn a_reused_slot_starts_fresh_and_is_only_its_new_owners() {
    let (mut dp, f, mut logs) = with_a(1);
    for nonce in [5, 6, 7] {
        assert_eq!(dp.run(&data(&f, A, nonce)), XDP_PASS);
    }
    let stale_a = SessionEntry {
        session_id: A,
        replay_slot: 0,
        ..entry(&f)
    };
    dp.remove_session(A);
    dp.set_session(B, entry(&f));
    assert_eq!(dp.slot_of(B), Some(0), "the only slot is reused");
    let window = dp.window(0);
    assert_eq!((window.owner, window.max), (B, 0));
    assert!(window.slots.iter().all(|&s| s == 0), "no bit of A's left");

    let before = dp.counter(COUNTER_ACCEPTED).packets;
    for nonce in [5, 6, 7] {
        assert_eq!(
            dp.run(&data(&f, B, nonce)),
            XDP_PASS,
            "nonce {nonce} is fresh for B, whatever A sent"
        );
    }
    assert_eq!(dp.counter(COUNTER_ACCEPTED).packets, before + 3);
    assert_eq!(
        dp.run(&data(&f, B, 6)),
        XDP_DROP,
        "and recorded in B's window"
    );
    let duplicate = dp.events();
    assert_eq!(duplicate[0].reason, RejectReason::DuplicateNonce.code());

    // A copy of A's entry still in flight now finds B's window: refused, B's window untouched.
    dp.set_exact_session(A, stale_a);
    refused_for_its_slot((&mut dp, &f, &mut logs), A, 0, 8);
    assert_eq!(dp.replay_max(B), Some(7));
    assert_eq!(dp.run(&data(&f, B, 8)), XDP_PASS, "8 is still fresh for B");
}
