//! The slot rules on the real jvpn XDP object, through `BPF_PROG_TEST_RUN` (layout v5): a
//! session lives in a slot, its line in the session array naming it and its replay bitmaps at the
//! same index of the replay array. A slot outside the replay array is refused as `REPLAY_SLOT`
//! (counted, reported and logged, nothing written); an index entry whose slot's line names
//! another session, or none (a stale entry of a removed session, a slot since reused), finds no
//! session: `UNKNOWN_SESSION`, and nothing of the line's owner is touched. A reused slot starts
//! with a fresh window.
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

/// A dataplane of `sessions` slots whose replay array has `windows`, with session `A` attached
/// in slot 0, and the capture of its logs.
fn with_a(sessions: u32, windows: u32) -> (TestDataplane, Family, CapturedLogs) {
    require_root("xdp_replay_slots");
    let mut dp = TestDataplane::load_with(sessions, windows);
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

/// Runs a DATA of `id` that must be refused for `reason`, counted and reported as such.
fn refused(dp: &mut TestDataplane, f: &Family, id: u64, nonce: u64, reason: RejectReason) {
    let before = dp.counters();
    assert_eq!(dp.run(&data(f, id, nonce)), XDP_DROP, "session {id:x}");
    let frame_len = data(f, id, nonce).len() as u64;
    assert_eq!(
        counter_delta(&before, &dp.counters()),
        [(reason.counter_slot(), 1, frame_len)],
        "one packet counted under {} and nothing else",
        reason.name()
    );
    let events = dp.events();
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0].reason, reason.code());
    assert_eq!((events[0].session_id, events[0].nonce), (id, nonce));
}

#[test]
fn a_slot_outside_the_replay_array_is_a_counted_drop() {
    let (mut dp, f, mut logs) = with_a(16, 1);
    dp.set_session(B, entry(&f));
    assert_eq!(dp.slot_of(B), Some(1), "a line, but no window");
    refused(&mut dp, &f, B, 1, RejectReason::ReplaySlot);
    let logs = logs.drain();
    let expected = format!("WARN replay slot 1 is not session {B:x}'s window");
    assert!(
        logs.iter().any(|l| l.starts_with(&expected)),
        "the refusal is logged for the operator: {logs:?}"
    );
    assert_eq!(dp.line(1).max, 0, "nothing recorded");
    // An index entry past the session array finds no line at all.
    dp.set_index(B, u32::MAX);
    refused(&mut dp, &f, B, 2, RejectReason::UnknownSession);
    assert_eq!(
        dp.run(&data(&f, A, 1)),
        XDP_PASS,
        "A's own slot still works"
    );
}

#[test]
fn an_index_entry_pointing_at_another_sessions_line_finds_nothing_and_writes_nothing() {
    let (mut dp, f, _logs) = with_a(16, 4);
    assert_eq!(dp.run(&data(&f, A, 9)), XDP_PASS);
    let before = dp.window(0);
    dp.set_index(B, 0);
    // A fresh nonce for A's window, and one above its max: neither may land there.
    refused(&mut dp, &f, B, 10, RejectReason::UnknownSession);
    refused(&mut dp, &f, B, 1_000, RejectReason::UnknownSession);
    let line = dp.line(0);
    assert_eq!((line.session_id, line.max), (A, 9));
    assert_eq!(dp.window(0).slots, before.slots, "A's window is untouched");
    assert_eq!(
        dp.run(&data(&f, A, 10)),
        XDP_PASS,
        "10 is still fresh for A"
    );
}

#[test]
fn a_freed_slot_refuses_the_stale_index_entry_of_its_last_owner() {
    let (mut dp, f, _logs) = with_a(1, 1);
    assert_eq!(dp.run(&data(&f, A, 3)), XDP_PASS);
    dp.remove_session(A);
    assert_eq!(dp.line(0).session_id, 0, "a freed line names no session");
    // A packet that found the index element just before its removal.
    dp.set_index(A, 0);
    refused(&mut dp, &f, A, 4, RejectReason::UnknownSession);
    assert_eq!(dp.line(0).max, 0, "nothing written to the free slot");
}

#[test]
fn a_reused_slot_starts_fresh_and_is_only_its_new_owners() {
    let (mut dp, f, _logs) = with_a(1, 1);
    for nonce in [5, 6, 7] {
        assert_eq!(dp.run(&data(&f, A, nonce)), XDP_PASS);
    }
    dp.remove_session(A);
    dp.set_session(B, entry(&f));
    assert_eq!(dp.slot_of(B), Some(0), "the only slot is reused");
    let line = dp.line(0);
    assert_eq!((line.session_id, line.max), (B, 0));
    assert!(
        dp.window(0).slots.iter().all(|&s| s == 0),
        "no bit of A's left"
    );

    let before = dp.counter(COUNTER_ACCEPTED).packets;
    for nonce in [5, 6, 7] {
        assert_eq!(
            dp.run(&data(&f, B, nonce)),
            XDP_PASS,
            "nonce {nonce} is fresh for B, whatever A sent"
        );
    }
    assert_eq!(dp.counter(COUNTER_ACCEPTED).packets, before + 3);
    refused(&mut dp, &f, B, 6, RejectReason::DuplicateNonce);

    // A's index element still in flight now finds B's line: no session, B's window untouched.
    dp.set_index(A, 0);
    refused(&mut dp, &f, A, 8, RejectReason::UnknownSession);
    assert_eq!(dp.replay_max(B), Some(7));
    assert_eq!(dp.run(&data(&f, B, 8)), XDP_PASS, "8 is still fresh for B");
}
