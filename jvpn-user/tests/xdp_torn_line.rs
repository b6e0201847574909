//! A session line rewritten while the program reads it is never judged on a mix of two
//! versions (layout v5): one thread, pinned to one CPU, runs the real XDP object through
//! `BPF_PROG_TEST_RUN` on a DATA frame, while another, pinned to another CPU, rewrites the
//! session's line in place through a memory map of the array, under the line's sequence lock, as
//! the controller does (`jvpn-user/src/dataplane/lines.rs`), alternating two versions:
//!
//! ```text
//!   version X: header key K1, bound to port 40000      frame: tagged with K1, from port 40001
//!   version Y: header key K2, bound to port 40001
//! ```
//!
//! Neither version accepts the frame (X refuses its port, Y its tag); only a read that took the
//! key from X and the port from Y would. The program must drop the reads that overlap a write as
//! `SESSION_BUSY` and accept nothing. With the writer's sequence steps removed (fields written
//! with the sequence left even), this test saw torn reads accepted.
//!
//! Runs as root on a machine with at least two CPUs.

mod xdp_support;

use aya::maps::Map;
use jvpn_common::abi::{MAP_SESSIONS, SESSION_LINE_LEN};
use jvpn_common::maps::{DataplaneMode, SessionLine};
use jvpn_common::reason::COUNTER_ACCEPTED;
use jvpn_common::wire::Be16;
use jvpn_common::{MessageType, RejectReason, SessionState};
use std::net::{Ipv4Addr, SocketAddr};
use std::os::fd::{AsFd, AsRawFd};
use std::sync::atomic::{fence, AtomicBool, AtomicU32, Ordering};
use xdp_support::*;

const SESSION: u64 = 0x0002_0000_0000_0009;
const K1: [u8; 16] = [0x61; 16];
const K2: [u8; 16] = [0x62; 16];
const REPEAT: u32 = 200_000;
const ATTEMPTS: u64 = 20;

/// Line 0 of the session array, mapped shared.
struct MappedLine(*mut SessionLine);

// SAFETY: the mapping lives until the test ends (it is never unmapped: the process exits) and
// only the writer thread writes through it.
unsafe impl Send for MappedLine {}
// SAFETY: as for `Send`: shared only so the writer thread can borrow it; the XDP program is the
// other party, and the sequence lock is what the test is about.
unsafe impl Sync for MappedLine {}

impl MappedLine {
    fn map(dp: &TestDataplane) -> Self {
        let Some(Map::Array(data)) = dp.ebpf().map(MAP_SESSIONS) else {
            panic!("the session array is not an array");
        };
        // SAFETY: maps the first page of the BPF_F_MMAPABLE array (its first line) shared and
        // writable; checked below.
        let base = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                4096,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                data.fd().as_fd().as_raw_fd(),
                0,
            )
        };
        assert_ne!(
            base,
            libc::MAP_FAILED,
            "{}",
            std::io::Error::last_os_error()
        );
        assert!(size_of::<SessionLine>() == SESSION_LINE_LEN);
        Self(base.cast())
    }

    /// Writes key and port under the sequence lock, as the controller's writer does.
    fn write(&self, key: [u8; 16], port: u16) {
        let line = self.0;
        // SAFETY: `line` is the mapped, 64-byte aligned first line; `seq` is an aligned u32.
        unsafe {
            let seq = AtomicU32::from_ptr(&raw mut (*line).seq);
            let odd = seq.load(Ordering::Relaxed) | 1;
            seq.store(odd, Ordering::Relaxed);
            fence(Ordering::Release);
            (&raw mut (*line).header_key).write_volatile(key);
            (&raw mut (*line).port).write_volatile(Be16::new(port));
            seq.store(odd.wrapping_add(1), Ordering::Release);
        }
    }
}

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
    let line = MappedLine::map(&dp);
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
                line.write(K1, 40_000);
                line.write(K2, 40_001);
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
