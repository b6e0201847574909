//! A session line rewritten while the program reads it is never judged on a mix of two
//! versions (layout v5): one thread, pinned to one CPU, runs the real XDP object through
//! `BPF_PROG_TEST_RUN` on a DATA frame, while another, pinned to another CPU, rewrites the
//! session's line in place with the controller's own writer (`SessionLines`,
//! `jvpn-user/src/dataplane/lines.rs`: a memory map of the array, under the line's sequence lock),
//! alternating two versions:
//!
//! ```text
//!   version X: header key K1, bound to port 40000      frame: tagged with K1, from port 40001
//!   version Y: header key K2, bound to port 40001
//! ```
//!
//! Neither version accepts the frame (X refuses its port, Y its tag); only a read that took the
//! key from X and the port from Y would. The program must drop the reads that overlap a write as
//! `SESSION_BUSY` and accept nothing. With the writer's sequence steps removed (fields written
//! with the sequence left even), this test saw torn reads accepted: it fails if the writer or
//! the reader stops keeping the protocol.
//!
//! Runs as root on a machine with at least two CPUs.

mod xdp_support;

use aya::maps::Map;
use jvpn_common::abi::MAP_SESSIONS;
use jvpn_common::maps::DataplaneMode;
use jvpn_common::reason::COUNTER_ACCEPTED;
use jvpn_common::{MessageType, RejectReason, SessionEntry, SessionState};
use jvpn_user::dataplane::SessionLines;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};
use xdp_support::*;

const SESSION: u64 = 0x0002_0000_0000_0009;
const K1: [u8; 16] = [0x61; 16];
const K2: [u8; 16] = [0x62; 16];
const REPEAT: u32 = 200_000;
const ATTEMPTS: u64 = 20;

#[test]
fn a_line_rewritten_while_read_is_never_judged_on_a_mix() {
    require_root("xdp_torn_line");
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    assert!(
        cpus >= 2,
        "this test needs two CPUs, the machine has {cpus}"
    );
    let mut dp = TestDataplane::load(4);
    dp.set_config(config(DataplaneMode::Enforce));
    let bound = SocketAddr::new(Ipv4Addr::new(192, 0, 2, 10).into(), 40_000);
    let mut from = bound;
    from.set_port(40_001);
    let gateway = SocketAddr::new(Ipv4Addr::new(198, 51, 100, 1).into(), PORT);
    dp.set_session(SESSION, session(SessionState::Attached, 1, K1, bound));
    assert_eq!(dp.slot_of(SESSION), Some(0));
    let Some(Map::Array(data)) = dp.ebpf().map(MAP_SESSIONS) else {
        panic!("the session array is not an array");
    };
    let mut lines = SessionLines::map(data).expect("mapping the session array");
    // The entries name the session, as the controller's always do.
    let version_x = SessionEntry {
        session_id: SESSION,
        ..session(SessionState::Attached, 1, K1, bound)
    };
    let version_y = SessionEntry {
        session_id: SESSION,
        ..session(SessionState::Attached, 1, K2, from)
    };
    let frame = |nonce| {
        let m = hinted_message(MessageType::Data, SESSION, 1, nonce, &K1, 32, Some(0));
        Udp::new(from, gateway, m).frame()
    };
    let busy_slot = RejectReason::SessionBusy.counter_slot();
    let stop = AtomicBool::new(false);
    let busy = std::thread::scope(|scope| {
        scope.spawn(|| {
            pin_to_cpu(1);
            while !stop.load(Ordering::Relaxed) {
                lines.update(0, &version_x);
                lines.update(0, &version_y);
            }
        });
        pin_to_cpu(0);
        let mut busy = 0;
        // Until the writer has overlapped some reads (a loaded machine may keep it off its CPU).
        for nonce in 1..=ATTEMPTS {
            dp.run_repeat(&frame(nonce), REPEAT);
            busy = dp.counter(busy_slot).packets;
            if busy > 0 && nonce >= 3 {
                break;
            }
        }
        stop.store(true, Ordering::Relaxed);
        busy
    });
    let accepted = dp.counter(COUNTER_ACCEPTED).packets;
    assert_eq!(accepted, 0, "a torn read was accepted ({busy} busy)");
    assert!(
        busy > 0,
        "the writer never overlapped a read in {ATTEMPTS} x {REPEAT} runs: nothing was shown"
    );
    eprintln!("{busy} reads overlapped a write and were refused as SESSION_BUSY");
}
