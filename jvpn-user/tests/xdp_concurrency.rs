//! The same nonce arriving on two CPUs at the same time is accepted exactly once: two threads,
//! pinned to two CPUs, run the real XDP object through `BPF_PROG_TEST_RUN` on the same DATA frame
//! at the same moment, over many fresh nonces of one session.
//!
//! The threads leave a spinning barrier together before every nonce, so their runs overlap within
//! nanoseconds: with the compare-and-swap replaced by a plain read-compare-write, this test saw
//! about 600 of its 20,000 nonces accepted twice.
//!
//! Runs as root on a machine with at least two CPUs.

mod xdp_support;

use jvpn_common::maps::DataplaneMode;
use jvpn_common::reason::COUNTER_ACCEPTED;
use jvpn_common::{MessageType, RejectReason, SessionState};
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use xdp_support::*;

const SESSION: u64 = 0x0002_0000_0000_0007;
const KEY: [u8; 16] = [0x5a; 16];
const NONCES: u64 = 20_000;

#[test]
fn the_same_nonce_on_two_cpus_is_accepted_exactly_once() {
    require_root("xdp_concurrency");
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    assert!(
        cpus >= 2,
        "this test needs two CPUs, the machine has {cpus}"
    );

    let mut dp = TestDataplane::load(16);
    dp.set_config(config(DataplaneMode::Enforce));
    let client = SocketAddr::new(Ipv4Addr::new(192, 0, 2, 10).into(), 40_000);
    let gateway = SocketAddr::new(Ipv4Addr::new(198, 51, 100, 1).into(), PORT);
    dp.set_session(SESSION, session(SessionState::Attached, 1, KEY, client));
    let frames: Vec<Vec<u8>> = (1..=NONCES)
        .map(|nonce| {
            Udp::new(
                client,
                gateway,
                message(MessageType::Data, SESSION, 1, nonce, &KEY, 32),
            )
            .frame()
        })
        .collect();

    // A spinning barrier: both threads leave it within nanoseconds of each other, where a sleeping
    // one (futex wake-up) would spread them by microseconds, far wider than the program's window.
    let arrived = AtomicUsize::new(0);
    let verdicts: Vec<Vec<u32>> = std::thread::scope(|scope| {
        let threads: Vec<_> = (0..2)
            .map(|cpu| {
                let (dp, frames, arrived) = (&dp, &frames, &arrived);
                scope.spawn(move || {
                    pin_to_cpu(cpu);
                    frames
                        .iter()
                        .enumerate()
                        .map(|(i, frame)| {
                            arrived.fetch_add(1, Ordering::SeqCst);
                            while arrived.load(Ordering::SeqCst) < 2 * (i + 1) {
                                std::hint::spin_loop();
                            }
                            dp.run(frame)
                        })
                        .collect::<Vec<u32>>()
                })
            })
            .collect();
        threads
            .into_iter()
            .map(|t| t.join().expect("test-run thread"))
            .collect()
    });

    let mut wrong = Vec::new();
    for (i, (a, b)) in verdicts[0].iter().zip(&verdicts[1]).enumerate() {
        let accepted = [a, b].iter().filter(|&&&v| v == XDP_PASS).count();
        if accepted != 1 {
            wrong.push(format!("nonce {}: accepted {accepted} times", i + 1));
        }
    }
    assert!(
        wrong.is_empty(),
        "{} nonce(s) not accepted exactly once: {:?}",
        wrong.len(),
        &wrong[..wrong.len().min(10)]
    );
    let counters = dp.counters();
    assert_eq!(counters[COUNTER_ACCEPTED as usize].packets, NONCES);
    assert_eq!(
        counters[RejectReason::DuplicateNonce.counter_slot() as usize].packets,
        NONCES
    );
}
