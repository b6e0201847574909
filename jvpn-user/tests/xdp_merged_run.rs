//! Merged runs on the real jvpn XDP object, through `BPF_PROG_TEST_RUN`: a frame carrying
//! several DATA datagrams laid end to end (as generic XDP sees a client's UDP GSO packet or a GRO
//! merge, docs/datapath.md "Merged runs") is dropped whole as `MERGED_RUN`, counted once, reported
//! once with its first header, and moves no replay window: every datagram of it, sent alone
//! afterwards, is judged as if the run had never come. The limit is stated as a test too: a run
//! no longer than the longest datagram cannot be told from one datagram.
//!
//! Runs as root (loading BPF programs needs it); each test loads its own copy of the object.

mod xdp_support;

use jvpn_common::abi::HEADER_LEN;
use jvpn_common::control::MAX_DATAGRAM_LEN;
use jvpn_common::maps::DataplaneMode;
use jvpn_common::reason::COUNTER_ACCEPTED;
use jvpn_common::{MessageType, RejectReason, SessionState};
use xdp_support::*;

const ID: u64 = 0x0001_0000_0000_0a11;
const KEY: [u8; 16] = [0x11; 16];
const VERSION: u64 = 5;
/// Body of a datagram as long as a full tunnel packet makes it.
const FULL_BODY: usize = MAX_DATAGRAM_LEN - HEADER_LEN;
/// Body of each datagram of a merged run: three or four are longer than one datagram can be,
/// and fit the one page `BPF_PROG_TEST_RUN` gives a frame.
const RUN_BODY: usize = 600;

fn attached(f: &Family) -> TestDataplane {
    require_root("xdp_merged_run");
    let mut dp = TestDataplane::load(16);
    dp.set_config(config(DataplaneMode::Enforce));
    dp.set_session(ID, session(SessionState::Attached, VERSION, KEY, f.client));
    dp
}

fn data(version: u64, nonce: u64, key: &[u8; 16], body: usize) -> Vec<u8> {
    message(MessageType::Data, ID, version, nonce, key, body)
}

/// Runs `run` (datagrams laid end to end) and checks it was dropped whole as `MERGED_RUN`: one
/// packet of the frame's bytes counted there and nothing else, one event naming the first
/// datagram's header, and the replay window where it was.
fn dropped_whole(dp: &mut TestDataplane, f: &Family, run: &[Vec<u8>], first_nonce: u64) {
    let frame = f.frame(run.concat());
    let window_before = dp.replay_max(ID);
    let before = dp.counters();
    assert_eq!(dp.run(&frame), XDP_DROP);
    assert_eq!(
        counter_delta(&before, &dp.counters()),
        [(
            RejectReason::MergedRun.counter_slot(),
            1,
            frame.len() as u64
        )],
        "one packet counted under MERGED_RUN and nothing else"
    );
    let events = dp.events();
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0].reason, RejectReason::MergedRun.code());
    assert_eq!(
        (events[0].session_id, events[0].nonce, events[0].msg_type),
        (ID, first_nonce, MessageType::Data as u8)
    );
    assert_eq!(dp.replay_max(ID), window_before, "no replay window moved");
}

fn accepted(dp: &mut TestDataplane, f: &Family, datagram: Vec<u8>, what: &str) {
    let before = dp.counters();
    assert_eq!(dp.run(&f.frame(datagram.clone())), XDP_PASS, "{what}");
    let frame_len = f.frame(datagram).len() as u64;
    assert_eq!(
        counter_delta(&before, &dp.counters()),
        [(COUNTER_ACCEPTED, 1, frame_len)],
        "{what}"
    );
}

fn for_each_family(test: impl Fn(&Family)) {
    for f in [Family::v4(None), Family::v6(None), Family::v4(Some(7))] {
        test(&f);
    }
}

#[test]
fn a_run_with_forged_replayed_and_stale_datagrams_is_dropped_whole_and_moves_no_window() {
    for_each_family(|f| {
        let mut dp = attached(f);
        accepted(&mut dp, f, data(VERSION, 10, &KEY, 32), "a first DATA");
        let run = [
            data(VERSION, 11, &KEY, RUN_BODY),
            data(VERSION, 12, &[0x22; 16], RUN_BODY),
            data(VERSION, 10, &KEY, RUN_BODY),
            data(VERSION - 1, 13, &KEY, RUN_BODY),
        ];
        dropped_whole(&mut dp, f, &run, 11);
        assert_eq!(dp.replay_max(ID), Some(10));
        // The valid first datagram of the run was never recorded: alone, it is accepted.
        accepted(&mut dp, f, run[0].clone(), "the run's first datagram alone");
        assert_eq!(dp.replay_max(ID), Some(11));
    });
}

#[test]
fn a_run_of_valid_datagrams_is_dropped_whole_too() {
    for_each_family(|f| {
        let mut dp = attached(f);
        let run: Vec<Vec<u8>> = (1..=3).map(|n| data(VERSION, n, &KEY, RUN_BODY)).collect();
        dropped_whole(&mut dp, f, &run, 1);
        assert_eq!(dp.replay_max(ID), None, "the window is still empty");
        for datagram in run {
            accepted(&mut dp, f, datagram, "each datagram alone");
        }
    });
}

#[test]
fn the_longest_datagram_passes_and_one_byte_more_is_a_merged_run() {
    for_each_family(|f| {
        let mut dp = attached(f);
        accepted(&mut dp, f, data(VERSION, 1, &KEY, FULL_BODY), "the longest");
        dropped_whole(&mut dp, f, &[data(VERSION, 2, &KEY, FULL_BODY + 1)], 2);
        assert_eq!(dp.replay_max(ID), Some(1));
    });
}

/// The documented limit (docs/datapath.md, "Merged runs"): the wire format carries no length, so
/// two short datagrams laid end to end look like one longer DATA and only the first header is
/// judged. The gateway keeps such runs from forming where it can (no `UDP_GRO` in generic mode,
/// no generic mode on a veth); the controller still opens and checks each datagram.
#[test]
fn a_run_no_longer_than_one_datagram_is_judged_as_one() {
    for_each_family(|f| {
        let mut dp = attached(f);
        let half = MAX_DATAGRAM_LEN / 2 - HEADER_LEN;
        let run = [data(VERSION, 1, &KEY, half), data(VERSION, 2, &KEY, half)];
        accepted(&mut dp, f, run.concat(), "a short run, as one DATA");
        assert_eq!(
            dp.replay_max(ID),
            Some(1),
            "only the first header was judged"
        );
    });
}
