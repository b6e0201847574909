//! The slot hint and the session lines' sequence lock (layout v5) on the real jvpn XDP object,
//! through `BPF_PROG_TEST_RUN`.
//!
//! A header's slot hint names the slot of its session's line; the program uses that line only if
//! it names the header's session, and verifies the tag with that line's key, so a hint is never
//! trusted: a hint that is 0, out of range or names another session falls back to the session
//! index; a hint changed on the way breaks the tag; a stale hint after a slot was reused finds
//! the new owner's line, falls back, and never touches the new owner's window. A line whose
//! sequence word is odd (being rewritten) is never judged: `SESSION_BUSY`, nothing written.
//!
//! Runs as root (loading BPF programs needs it); each test loads its own copy of the object.

mod xdp_support;

use jvpn_common::maps::DataplaneMode;
use jvpn_common::{MessageType, RejectReason, SessionEntry, SessionState};
use xdp_support::*;

const A: u64 = 0x0001_0000_0000_00a1;
const B: u64 = 0x0001_0000_0000_00b2;
const KEY_A: [u8; 16] = [0x11; 16];
const KEY_B: [u8; 16] = [0x22; 16];
const VERSION: u64 = 5;

/// Sessions A (slot 0) and B (slot 1), attached, in a table of `capacity` slots.
fn a_and_b_in(capacity: u32) -> (TestDataplane, Family) {
    require_root("xdp_slot_hint");
    let mut dp = TestDataplane::load(capacity);
    dp.set_config(config(DataplaneMode::Enforce));
    let f = Family::v4(None);
    dp.set_session(A, entry(&f, KEY_A));
    dp.set_session(B, entry(&f, KEY_B));
    assert_eq!((dp.slot_of(A), dp.slot_of(B)), (Some(0), Some(1)));
    (dp, f)
}

/// Sessions A (slot 0) and B (slot 1), attached, in a table of 16 slots.
fn a_and_b() -> (TestDataplane, Family) {
    a_and_b_in(16)
}

fn entry(f: &Family, key: [u8; 16]) -> SessionEntry {
    session(SessionState::Attached, VERSION, key, f.client)
}

fn data(f: &Family, id: u64, key: &[u8; 16], nonce: u64, hint: Option<u32>) -> Vec<u8> {
    f.frame(hinted_message(
        MessageType::Data,
        id,
        VERSION,
        nonce,
        key,
        32,
        hint,
    ))
}

/// Runs `frame`, which must be dropped for `reason` (counted and reported as such).
fn refused(dp: &mut TestDataplane, frame: &[u8], reason: RejectReason) {
    let before = dp.counters();
    assert_eq!(dp.run(frame), XDP_DROP, "{}", reason.name());
    assert_eq!(
        counter_delta(&before, &dp.counters()),
        [(reason.counter_slot(), 1, frame.len() as u64)],
        "counted under {} and nothing else",
        reason.name()
    );
    let events = dp.events();
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0].reason, reason.code());
}

#[test]
fn a_hint_finds_the_line_without_the_index() {
    let (mut dp, f) = a_and_b();
    // With B's index entry gone, only the hint can find B: the hint path is real.
    dp.remove_index(B);
    assert_eq!(dp.run(&data(&f, B, &KEY_B, 1, Some(1))), XDP_PASS);
    assert_eq!(dp.replay_max(B), Some(1));
    refused(
        &mut dp,
        &data(&f, B, &KEY_B, 2, None),
        RejectReason::UnknownSession,
    );
}

#[test]
fn a_missing_wrong_or_out_of_range_hint_falls_back_to_the_index() {
    let (dp, f) = a_and_b();
    let hints = [None, Some(0), Some(2), Some(16), Some(u32::MAX - 1)];
    for (nonce, hint) in (1..).zip(hints) {
        assert_eq!(
            dp.run(&data(&f, B, &KEY_B, nonce, hint)),
            XDP_PASS,
            "hint {hint:?}"
        );
    }
    assert_eq!(dp.replay_max(B), Some(hints.len() as u64));
    assert_eq!(
        dp.replay_max(A),
        None,
        "A's window, named by hint 0, untouched"
    );
}

#[test]
fn a_hint_changed_on_the_way_breaks_the_tag() {
    let (mut dp, f) = a_and_b();
    let genuine = hinted_message(MessageType::Data, B, VERSION, 1, &KEY_B, 32, Some(1));
    for hint in [0u32, 1, 3] {
        let mut forged = genuine.clone();
        forged[4..8].copy_from_slice(&hint.to_be_bytes());
        refused(&mut dp, &f.frame(forged), RejectReason::BadTag);
    }
    // A header tagged with another session's key and a hint at B's line: B's key refuses it.
    refused(
        &mut dp,
        &data(&f, B, &KEY_A, 1, Some(1)),
        RejectReason::BadTag,
    );
    assert_eq!(dp.replay_max(B), None, "nothing recorded");
    assert_eq!(
        dp.run(&f.frame(genuine)),
        XDP_PASS,
        "the genuine one passes"
    );
}

#[test]
fn a_stale_hint_after_the_slot_is_reused_never_touches_the_new_owner() {
    let (mut dp, f) = a_and_b_in(2);
    assert_eq!(dp.run(&data(&f, A, &KEY_A, 5, Some(0))), XDP_PASS);
    dp.remove_session(A);
    const C: u64 = 0x0001_0000_0000_00c3;
    dp.set_session(C, entry(&f, KEY_A));
    assert_eq!(
        dp.slot_of(C),
        Some(0),
        "A's slot reused by C, even with A's key"
    );
    // A's packets still carry hint 0: the line names C, the index knows no A.
    refused(
        &mut dp,
        &data(&f, A, &KEY_A, 6, Some(0)),
        RejectReason::UnknownSession,
    );
    // A back as a new session in B's old slot: its stale hint falls back to its new slot.
    dp.remove_session(B);
    dp.set_session(A, entry(&f, KEY_A));
    assert_eq!(dp.slot_of(A), Some(1));
    assert_eq!(dp.run(&data(&f, A, &KEY_A, 7, Some(0))), XDP_PASS);
    assert_eq!(dp.replay_max(A), Some(7));
    assert_eq!(dp.replay_max(C), None, "C's window untouched");
    assert!(dp.window(0).slots.iter().all(|&w| w == 0));
}

#[test]
fn a_line_being_rewritten_is_never_judged() {
    let (mut dp, f) = a_and_b();
    let mut line = dp.line(1);
    line.seq = 7;
    dp.write_line(1, line);
    for (nonce, hint) in [(1, Some(1)), (2, None)] {
        refused(
            &mut dp,
            &data(&f, B, &KEY_B, nonce, hint),
            RejectReason::SessionBusy,
        );
    }
    assert_eq!(dp.replay_max(B), None, "nothing recorded");
    assert!(dp.window(1).slots.iter().all(|&w| w == 0));
    // A busy line named by a hint of another session's packet does not stop that packet.
    assert_eq!(dp.run(&data(&f, A, &KEY_A, 1, Some(1))), XDP_PASS);
    line.seq = 8;
    dp.write_line(1, line);
    assert_eq!(
        dp.run(&data(&f, B, &KEY_B, 1, Some(1))),
        XDP_PASS,
        "whole again"
    );
}
